//! A tiny deterministic pseudo-random generator (xorshift64) for the stress test and the
//! benchmarks: reproducible from a seed, no state but one word.

/// Advances `state` and returns the next value (never 0 for a non-zero seed).
pub fn xorshift64(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[cfg(test)]
mod tests {
    use super::xorshift64;

    #[test]
    fn deterministic_and_nonzero() {
        let (mut a, mut b) = (42u64, 42u64);
        let xs: Vec<u64> = (0..100).map(|_| xorshift64(&mut a)).collect();
        let ys: Vec<u64> = (0..100).map(|_| xorshift64(&mut b)).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|&x| x != 0));
        assert!(xs.windows(2).all(|w| w[0] != w[1]));
    }
}
