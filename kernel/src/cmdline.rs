//! The kernel command line, from wherever the loader put it: the device tree's
//! `/chosen/bootargs` (the Pi firmware, from cmdline.txt) or the ATAGS list (QEMU's
//! `-append` with a raw image). Pure parsing over byte slices, tested on the host.
//!
//! Options understood: `sweep=all|pages|kmalloc|vmalloc|off` (what the boot sweep runs) and
//! `slub_debug` (slab debugging: poison, red zones, double/invalid free checks) and
//! `loglevel=N` (Linux's console log level).

const ATAG_NONE: u32 = 0;
const ATAG_CORE: u32 = 0x5441_0001;
const ATAG_CMDLINE: u32 = 0x5441_0009;
/// The magic number at the start of a flattened device tree.
pub const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn c_str(b: &[u8]) -> Option<&str> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    core::str::from_utf8(&b[..end]).ok()
}

/// The command line in an ATAGS list (ATAG_CORE first), if any.
pub fn from_atags(b: &[u8]) -> Option<&str> {
    if le32(b, 4)? != ATAG_CORE {
        return None;
    }
    let mut at = 0usize;
    loop {
        let words = le32(b, at)? as usize;
        let tag = le32(b, at + 4)?;
        if tag == ATAG_NONE || words < 2 {
            return None;
        }
        if tag == ATAG_CMDLINE {
            return c_str(b.get(at + 8..at + words * 4)?);
        }
        at = at.checked_add(words * 4)?;
    }
}

/// `/chosen/bootargs` of a flattened device tree, if any.
pub fn from_fdt(b: &[u8]) -> Option<&str> {
    if be32(b, 0)? != FDT_MAGIC {
        return None;
    }
    let total = be32(b, 4)? as usize;
    let b = b.get(..total)?;
    let (off_struct, off_strings) = (be32(b, 8)? as usize, be32(b, 12)? as usize);
    let mut at = off_struct;
    let mut depth = 0usize;
    let mut in_chosen = false;
    loop {
        let token = be32(b, at)?;
        at += 4;
        match token {
            FDT_BEGIN_NODE => {
                let name = c_str(b.get(at..)?)?;
                at += (name.len() + 4) & !3;
                depth += 1;
                in_chosen = depth == 2 && (name == "chosen" || name.starts_with("chosen@"));
            }
            FDT_END_NODE => {
                depth = depth.checked_sub(1)?;
                in_chosen = false;
            }
            FDT_PROP => {
                let len = be32(b, at)? as usize;
                let nameoff = be32(b, at + 4)? as usize;
                let value = b.get(at + 8..at + 8 + len)?;
                at += 8 + ((len + 3) & !3);
                if in_chosen && c_str(b.get(off_strings + nameoff..)?)? == "bootargs" {
                    return c_str(value);
                }
            }
            FDT_NOP => {}
            _ => return None,
        }
    }
}

/// Whether a bare flag (`slub_debug`) or `flag=...` is on the command line.
pub fn flag(cmdline: &str, name: &str) -> bool {
    cmdline.split_whitespace().any(|w| w == name || w.strip_prefix(name).is_some_and(|r| r.starts_with('=')))
}

/// The value of `key=value` in a command line.
pub fn option<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atags(cmdline: Option<&str>) -> Vec<u8> {
        let mut v = vec![];
        let word = |v: &mut Vec<u8>, w: u32| v.extend(w.to_le_bytes());
        word(&mut v, 5);
        word(&mut v, ATAG_CORE);
        for w in [1, 4096, 0] {
            word(&mut v, w);
        }
        if let Some(c) = cmdline {
            let mut bytes = c.as_bytes().to_vec();
            bytes.push(0);
            while !bytes.len().is_multiple_of(4) {
                bytes.push(0);
            }
            word(&mut v, 2 + bytes.len() as u32 / 4);
            word(&mut v, ATAG_CMDLINE);
            v.extend(bytes);
        }
        word(&mut v, 0);
        word(&mut v, ATAG_NONE);
        v
    }

    #[test]
    fn atags_cmdline() {
        assert_eq!(from_atags(&atags(Some("sweep=off quiet"))), Some("sweep=off quiet"));
        assert_eq!(from_atags(&atags(None)), None);
        assert_eq!(from_atags(&[0u8; 16]), None);
        assert_eq!(from_atags(&atags(Some("x"))[..12]), None, "truncated list");
    }

    fn fdt(bootargs: &str) -> Vec<u8> {
        let strings = b"model\0bootargs\0".to_vec();
        let mut st = vec![];
        let w = |v: &mut Vec<u8>, x: u32| v.extend(x.to_be_bytes());
        let name = |v: &mut Vec<u8>, n: &str| {
            v.extend(n.as_bytes());
            v.push(0);
            while !v.len().is_multiple_of(4) {
                v.push(0);
            }
        };
        w(&mut st, FDT_BEGIN_NODE);
        name(&mut st, "");
        w(&mut st, FDT_PROP);
        w(&mut st, 4);
        w(&mut st, 0);
        st.extend(b"rpi\0");
        w(&mut st, FDT_BEGIN_NODE);
        name(&mut st, "chosen");
        w(&mut st, FDT_NOP);
        w(&mut st, FDT_PROP);
        w(&mut st, bootargs.len() as u32 + 1);
        w(&mut st, 6);
        name(&mut st, bootargs);
        w(&mut st, FDT_END_NODE);
        w(&mut st, FDT_END_NODE);
        w(&mut st, 9);
        let off_struct = 40u32;
        let off_strings = off_struct + st.len() as u32;
        let total = off_strings + strings.len() as u32;
        let mut v = vec![];
        for x in [FDT_MAGIC, total, off_struct, off_strings, 0, 17, 16, 0, strings.len() as u32, st.len() as u32] {
            w(&mut v, x);
        }
        v.extend(st);
        v.extend(strings);
        v
    }

    #[test]
    fn fdt_bootargs() {
        let t = fdt("console=ttyAMA0 sweep=pages");
        assert_eq!(from_fdt(&t), Some("console=ttyAMA0 sweep=pages"));
        assert_eq!(from_fdt(&t[..30]), None, "truncated blob");
        assert_eq!(from_fdt(&[0u8; 64]), None);
    }

    #[test]
    fn options() {
        assert_eq!(option("a=1 sweep=off b", "sweep"), Some("off"));
        assert_eq!(option("sweeper=x", "sweep"), None);
        assert_eq!(option("", "sweep"), None);
        assert!(flag("quiet slub_debug", "slub_debug"));
        assert!(flag("slub_debug=FZP", "slub_debug"));
        assert!(!flag("slub_debugger", "slub_debug"));
    }
}
