//! Reading the flattened device tree the loader passes in `x0`: just what the kernel
//! needs from it, `/chosen/bootargs` (the command line the Pi firmware builds from its
//! own options and cmdline.txt) and `/memory` (the RAM the firmware gave the ARM).
//! Pure parsing over a byte slice, bounds-checked at every step (a damaged blob gives
//! `None`, never a fault), tested on the host.

/// The magic number at the start of a flattened device tree.
pub const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;
/// Deepest node nesting followed; the Pi's trees go 4 deep.
const MAX_DEPTH: usize = 16;

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

/// The bytes of a NUL-terminated string starting at `b[0]` (without the NUL).
fn c_bytes(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

/// One property met while walking the tree.
struct Prop<'a> {
    /// Names of the nodes from the root's child down to the property's node.
    path: [&'a [u8]; MAX_DEPTH],
    depth: usize,
    name: &'a [u8],
    value: &'a [u8],
}

impl Prop<'_> {
    /// Whether the property's node is the root's child `node` (`node` or `node@...`).
    fn in_top_node(&self, node: &[u8]) -> bool {
        self.depth == 1 && {
            let n = self.path[0];
            n == node || (n.len() > node.len() && n.starts_with(node) && n[node.len()] == b'@')
        }
    }
}

/// Calls `f` for every property until it returns `Some`; `None` if the blob is damaged
/// or `f` never answers.
fn walk<'a, R>(blob: &'a [u8], mut f: impl FnMut(&Prop<'a>) -> Option<R>) -> Option<R> {
    if be32(blob, 0)? != FDT_MAGIC {
        return None;
    }
    let b = blob.get(..be32(blob, 4)? as usize)?;
    let (off_struct, off_strings) = (be32(b, 8)? as usize, be32(b, 12)? as usize);
    let mut at = off_struct;
    let mut depth = 0usize; // nodes open, the root included
    let mut prop = Prop { path: [&[]; MAX_DEPTH], depth: 0, name: &[], value: &[] };
    loop {
        let token = be32(b, at)?;
        at += 4;
        match token {
            FDT_BEGIN_NODE => {
                let name = c_bytes(b.get(at..)?);
                at = at.checked_add((name.len() + 4) & !3)?;
                if depth > 0 {
                    *prop.path.get_mut(depth - 1)? = name;
                }
                depth += 1;
            }
            FDT_END_NODE => depth = depth.checked_sub(1)?,
            FDT_PROP => {
                let len = be32(b, at)? as usize;
                let nameoff = be32(b, at + 4)? as usize;
                let value = b.get(at + 8..(at + 8).checked_add(len)?)?;
                at = at.checked_add(8 + ((len + 3) & !3))?;
                prop.depth = depth.checked_sub(1)?;
                prop.name = c_bytes(b.get(off_strings.checked_add(nameoff)?..)?);
                prop.value = value;
                if let Some(r) = f(&prop) {
                    return Some(r);
                }
            }
            FDT_NOP => {}
            FDT_END => return None,
            _ => return None,
        }
    }
}

/// `/chosen/bootargs`: the raw bytes up to the terminating NUL (not checked for UTF-8:
/// the command line code keeps what it can read).
pub fn bootargs(blob: &[u8]) -> Option<&[u8]> {
    walk(blob, |p| (p.in_top_node(b"chosen") && p.name == b"bootargs").then(|| c_bytes(p.value)))
}

/// A property of the root node as a u32 cell (`#address-cells`, `#size-cells`).
fn root_cells(blob: &[u8], name: &[u8]) -> Option<u32> {
    walk(blob, |p| (p.depth == 0 && p.name == name).then(|| be32(p.value, 0)).flatten())
}

/// The first range of `/memory`'s `reg` as (base, size), read with the root's
/// `#address-cells` and `#size-cells` (2 and 1 when absent, as the specification says).
pub fn memory(blob: &[u8]) -> Option<(u64, u64)> {
    let acells = root_cells(blob, b"#address-cells").unwrap_or(2) as usize;
    let scells = root_cells(blob, b"#size-cells").unwrap_or(1) as usize;
    if !(1..=2).contains(&acells) || !(1..=2).contains(&scells) {
        return None;
    }
    let reg = walk(blob, |p| (p.in_top_node(b"memory") && p.name == b"reg").then_some(p.value))?;
    let cells = |at: usize, n: usize| -> Option<u64> {
        (0..n).try_fold(0u64, |v, i| Some((v << 32) | be32(reg, (at + i) * 4)? as u64))
    };
    Some((cells(0, acells)?, cells(acells, scells)?))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A device tree blob with a root property, `/chosen/bootargs` = `bootargs` (raw
    /// bytes), and `/memory@0` with `reg` in `acells`/`scells` cells.
    pub fn fdt(bootargs: &[u8], acells: u32, scells: u32, mem: (u64, u64)) -> Vec<u8> {
        let strings = b"model\0bootargs\0#address-cells\0#size-cells\0reg\0device_type\0".to_vec();
        let off = |s: &str| {
            strings.windows(s.len() + 1).position(|w| &w[..s.len()] == s.as_bytes() && w[s.len()] == 0).unwrap() as u32
        };
        let mut st = vec![];
        let w = |v: &mut Vec<u8>, x: u32| v.extend(x.to_be_bytes());
        let pad = |v: &mut Vec<u8>| {
            while !v.len().is_multiple_of(4) {
                v.push(0);
            }
        };
        let name = |v: &mut Vec<u8>, n: &str| {
            v.extend(n.as_bytes());
            v.push(0);
            pad(v);
        };
        let prop = |v: &mut Vec<u8>, n: u32, value: &[u8]| {
            w(v, FDT_PROP);
            w(v, value.len() as u32);
            w(v, n);
            v.extend(value);
            pad(v);
        };
        let cells = |x: u64, n: u32| -> Vec<u8> {
            if n == 2 {
                x.to_be_bytes().to_vec()
            } else {
                (x as u32).to_be_bytes().to_vec()
            }
        };
        w(&mut st, FDT_BEGIN_NODE);
        name(&mut st, "");
        prop(&mut st, off("model"), b"rpi\0");
        prop(&mut st, off("#address-cells"), &acells.to_be_bytes());
        prop(&mut st, off("#size-cells"), &scells.to_be_bytes());
        // A node whose property is also called bootargs, which must not be taken.
        w(&mut st, FDT_BEGIN_NODE);
        name(&mut st, "soc");
        w(&mut st, FDT_BEGIN_NODE);
        name(&mut st, "chosen");
        prop(&mut st, off("bootargs"), b"wrong\0");
        w(&mut st, FDT_END_NODE);
        w(&mut st, FDT_END_NODE);
        w(&mut st, FDT_BEGIN_NODE);
        name(&mut st, "chosen");
        w(&mut st, FDT_NOP);
        let mut args = bootargs.to_vec();
        args.push(0);
        prop(&mut st, off("bootargs"), &args);
        w(&mut st, FDT_END_NODE);
        w(&mut st, FDT_BEGIN_NODE);
        name(&mut st, "memory@0");
        prop(&mut st, off("device_type"), b"memory\0");
        let mut reg = cells(mem.0, acells);
        reg.extend(cells(mem.1, scells));
        prop(&mut st, off("reg"), &reg);
        w(&mut st, FDT_END_NODE);
        w(&mut st, FDT_END_NODE);
        w(&mut st, FDT_END);
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
    fn chosen_bootargs() {
        let t = fdt(b"console=ttyAMA0 sweep=pages", 1, 1, (0, 0x3b40_0000));
        assert_eq!(bootargs(&t), Some(&b"console=ttyAMA0 sweep=pages"[..]));
        assert_eq!(bootargs(&fdt(b"a\xffb", 1, 1, (0, 1))), Some(&b"a\xffb"[..]), "raw bytes, not UTF-8 checked");
        assert_eq!(bootargs(&t[..60]), None, "truncated blob");
        assert_eq!(bootargs(&[0u8; 64]), None);
    }

    #[test]
    fn memory_reg_with_the_roots_cells() {
        assert_eq!(memory(&fdt(b"", 1, 1, (0, 0x3b40_0000))), Some((0, 0x3b40_0000)));
        assert_eq!(memory(&fdt(b"", 2, 2, (0x1_0000_0000, 0x4000_0000))), Some((0x1_0000_0000, 0x4000_0000)));
        assert_eq!(memory(&fdt(b"", 2, 1, (0x8000, 0x1000))), Some((0x8000, 0x1000)));
        assert_eq!(memory(&fdt(b"", 3, 1, (0, 1))), None, "three address cells are not read");
    }

    #[test]
    fn damaged_blobs_give_none() {
        let t = fdt(b"sweep=off", 1, 1, (0, 0x1000));
        for cut in (0..t.len()).step_by(7) {
            let _ = bootargs(&t[..cut]);
            let _ = memory(&t[..cut]);
        }
        let mut bad = t.clone();
        bad[4..8].copy_from_slice(&u32::MAX.to_be_bytes()); // totalsize past the end
        assert_eq!(bootargs(&bad), None);
    }
}
