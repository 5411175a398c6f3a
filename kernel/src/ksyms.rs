//! The kernel's own symbol table, for call traces: `crash_null+0x8/0x10`.
//!
//! `tools/ksyms.py` extracts the function symbols from the linked ELF and writes them
//! into the image's `.ksyms` reservation (a fixed size, so addresses do not move). The
//! blob is little endian:
//!
//! ```text
//! "KSYM" magic, u32 count, then count entries { u64 addr, u32 size, u32 name_offset },
//! sorted by address, then the NUL-separated names.
//! ```

/// A symbol found for an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbol<'a> {
    /// Demangled name without the hash.
    pub name: &'a str,
    /// Start address.
    pub addr: u64,
    /// Size in bytes (0 if unknown).
    pub size: u64,
}

const MAGIC: &[u8; 4] = b"KSYM";
const ENTRY: usize = 16;

/// A parsed view of a symbol blob.
#[derive(Clone, Copy)]
pub struct SymbolTable<'a> {
    entries: &'a [u8],
    names: &'a [u8],
    count: usize,
    limit: u64,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl<'a> SymbolTable<'a> {
    /// Parses a blob; `None` if it is not one (e.g. the reservation was never filled).
    pub fn parse(blob: &'a [u8]) -> Option<Self> {
        if blob.get(..4)? != MAGIC {
            return None;
        }
        let count = u32_at(blob, 4)? as usize;
        let table_end = 8usize.checked_add(count.checked_mul(ENTRY)?)?;
        Some(Self { entries: blob.get(8..table_end)?, names: blob.get(table_end..)?, count, limit: u64::MAX })
    }

    /// The same table answering only for addresses below `end` (the end of the code):
    /// an address past the last function is not "last function + a lot".
    pub fn with_limit(self, end: u64) -> Self {
        Self { limit: end, ..self }
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn entry(&self, i: usize) -> Option<Symbol<'a>> {
        let base = i * ENTRY;
        let addr = u64_at(self.entries, base)?;
        let size = u32_at(self.entries, base + 8)? as u64;
        let off = u32_at(self.entries, base + 12)? as usize;
        let rest = self.names.get(off..)?;
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        let name = core::str::from_utf8(&rest[..end]).ok()?;
        Some(Symbol { name, addr, size })
    }

    /// The symbol containing `addr` (the last one starting at or before it, within its
    /// size when the size is known).
    pub fn lookup(&self, addr: u64) -> Option<Symbol<'a>> {
        if addr >= self.limit {
            return None;
        }
        let (mut lo, mut hi) = (0usize, self.count);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.entry(mid)?.addr <= addr {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let sym = self.entry(lo.checked_sub(1)?)?;
        if sym.size != 0 && addr >= sym.addr + sym.size {
            return None;
        }
        Some(sym)
    }
}

/// Formats `addr` Linux style: `name+0xoff/0xsize`, or the raw address if unknown.
pub struct SymbolizedAddr<'a>(pub Option<SymbolTable<'a>>, pub u64);

impl core::fmt::Display for SymbolizedAddr<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0.and_then(|t| t.lookup(self.1)) {
            Some(s) => write!(f, "{}+{:#x}/{:#x}", s.name, self.1 - s.addr, s.size),
            None => write!(f, "{:#018x}", self.1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(syms: &[(u64, u32, &str)]) -> Vec<u8> {
        let mut b = b"KSYM".to_vec();
        b.extend((syms.len() as u32).to_le_bytes());
        let mut names = vec![];
        for (addr, size, name) in syms {
            b.extend(addr.to_le_bytes());
            b.extend(size.to_le_bytes());
            b.extend((names.len() as u32).to_le_bytes());
            names.extend(name.as_bytes());
            names.push(0);
        }
        b.extend(names);
        b
    }

    #[test]
    fn lookup_and_format() {
        let b = blob(&[(0x1000, 0x10, "a::first"), (0x1010, 0x20, "b::second"), (0x2000, 0, "c::last")]);
        let t = SymbolTable::parse(&b).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.lookup(0x1008).unwrap().name, "a::first");
        assert_eq!(t.lookup(0x1010).unwrap().name, "b::second");
        assert!(t.lookup(0x1030).is_none(), "past the end of a sized symbol");
        assert!(t.lookup(0xfff).is_none());
        assert_eq!(t.lookup(0x9999).unwrap().name, "c::last");
        assert_eq!(SymbolizedAddr(Some(t), 0x1018).to_string(), "b::second+0x8/0x20");
        assert_eq!(SymbolizedAddr(None, 0x1018).to_string(), "0x0000000000001018");
        assert!(t.with_limit(0x2000).lookup(0x2004).is_none(), "past the end of the code");
        assert_eq!(t.with_limit(0x2000).lookup(0x1004).unwrap().name, "a::first");
    }

    #[test]
    fn rejects_garbage() {
        assert!(SymbolTable::parse(&[0; 64]).is_none());
        let mut b = b"KSYM".to_vec();
        b.extend(1000u32.to_le_bytes());
        assert!(SymbolTable::parse(&b).is_none());
    }
}
