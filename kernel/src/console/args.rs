//! Argument parsing for console commands: sizes with K/M/G suffixes, numbers in decimal
//! or hex.

use core::fmt;

/// Why an argument was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgError {
    /// Not a number.
    NotANumber,
    /// Too large for 64 bits.
    Overflow,
    /// Unknown suffix.
    BadSuffix,
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArgError::NotANumber => "not a number",
            ArgError::Overflow => "number too large",
            ArgError::BadSuffix => "unknown size suffix (use K, M or G)",
        })
    }
}

/// Parses an unsigned number: decimal, or hex with `0x`.
pub fn parse_u64(s: &str) -> Result<u64, ArgError> {
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None => (s, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(ArgError::NotANumber);
    }
    u64::from_str_radix(digits, radix).map_err(|_| ArgError::Overflow)
}

/// Parses a byte size: `4096`, `0x1000`, `64K`, `4M`, `1G` (also `kB`, `MiB` forms).
pub fn parse_size(s: &str) -> Result<u64, ArgError> {
    let split = s.find(|c: char| c.is_ascii_alphabetic() && !(s.starts_with("0x") && c.is_ascii_hexdigit()));
    let (num, suffix) = match split {
        Some(i) if !s.starts_with("0x") && !s.starts_with("0X") => s.split_at(i),
        _ => (s, ""),
    };
    let n = parse_u64(num)?;
    // Compared without case folding into a new string: nothing here allocates.
    let is = |names: &[&str]| names.iter().any(|n| suffix.eq_ignore_ascii_case(n));
    let shift = if is(&["", "b"]) {
        0
    } else if is(&["k", "kb", "kib"]) {
        10
    } else if is(&["m", "mb", "mib"]) {
        20
    } else if is(&["g", "gb", "gib"]) {
        30
    } else {
        return Err(ArgError::BadSuffix);
    };
    n.checked_mul(1 << shift).ok_or(ArgError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("4m"), Ok(4 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("0x1000"), Ok(4096));
        assert_eq!(parse_size("0xABC"), Ok(0xabc));
        assert_eq!(parse_size("12Q"), Err(ArgError::BadSuffix));
        assert_eq!(parse_size("M"), Err(ArgError::NotANumber));
        assert_eq!(parse_size("-4"), Err(ArgError::NotANumber));
        assert_eq!(parse_size("99999999999999999999"), Err(ArgError::Overflow));
        assert_eq!(parse_size("17179869184G"), Err(ArgError::Overflow));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("10"), Ok(10));
        assert_eq!(parse_u64("0x10"), Ok(16));
        assert_eq!(parse_u64(""), Err(ArgError::NotANumber));
        assert_eq!(parse_u64("0x"), Err(ArgError::NotANumber));
        assert_eq!(parse_u64("1.5"), Err(ArgError::NotANumber));
    }
}
