//! `/proc/slabinfo` (version 2.1), meminfo's `Slab:` total, and `slabtop`'s one-shot view.

use core::fmt::{self, Write};

use super::cache::CacheStats;
use super::SlabAllocator;

/// The two header lines of `/proc/slabinfo`.
pub const SLABINFO_HEADER: &str = "slabinfo - version: 2.1\n# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n";

/// Writes `/proc/slabinfo`: the header, then one row per cache, newest cache first as Linux
/// lists them. `objsize` is the slot size including debug metadata; `sharedfactor` is 0
/// for a cache without a shared array (debug caches, objects over a page).
pub fn slabinfo(slab: &SlabAllocator<'_>, out: &mut dyn Write) -> fmt::Result {
    out.write_str(SLABINFO_HEADER)?;
    let mut rows: [Option<super::cache::CacheStats>; super::MAX_CACHES] = [None; super::MAX_CACHES];
    slab.for_each_cache(|id, s| rows[id.index()] = Some(*s));
    for s in rows.iter().rev().flatten() {
        writeln!(
            out,
            "{:<17} {:>6} {:>6} {:>6} {:>4} {:>4} : tunables {:>4} {:>4} {:>4} : slabdata {:>6} {:>6} {:>6}",
            s.name,
            s.active_objs,
            s.num_objs,
            s.size,
            s.objperslab,
            s.pagesperslab,
            s.limit,
            s.batchcount,
            s.sharedfactor,
            s.active_slabs,
            s.num_slabs,
            s.shared_avail
        )?;
    }
    Ok(())
}

/// meminfo's `Slab:` line value in kB.
pub fn meminfo_slab_kb(slab: &SlabAllocator<'_>) -> usize {
    slab.slab_bytes() / 1024
}

/// `n/d` in hundredths, rounded down, printed `12.34`.
struct Hundredths(u64, u64);

impl fmt::Display for Hundredths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = (self.0 as u128 * 100 / self.1.max(1) as u128) as u64;
        let s = format_args!("{}.{:02}", h / 100, h % 100);
        match f.width() {
            Some(w) => {
                // Right-aligned in `w` columns, as `%7.2f` does: format once to count.
                let mut n = Count(0);
                let _ = fmt::write(&mut n, s);
                for _ in n.0..w {
                    f.write_char(' ')?;
                }
                f.write_fmt(s)
            }
            None => f.write_fmt(s),
        }
    }
}

struct Count(usize);

impl Write for Count {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

/// `part` of `whole` as a percentage with one decimal (`91.7`); 0.0 of nothing.
struct Percent(u64, u64);

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = (self.0 as u128 * 1000 / self.1.max(1) as u128) as u64;
        write!(f, "{}.{}", t / 10, t % 10)
    }
}

/// `slabtop -o` (procps): the summary lines, then one row per cache, sorted by the
/// number of objects (slabtop's default, `-s o`), largest first; ties by name. `rows` is
/// sorted in place. Sizes are in KiB with two decimals, as slabtop prints them; OBJ SIZE is
/// slabinfo's objsize (the slot, metadata included), CACHE SIZE the cache's slabs' pages.
pub fn slabtop(rows: &mut [CacheStats], out: &mut dyn Write) -> fmt::Result {
    rows.sort_unstable_by(|a, b| b.num_objs.cmp(&a.num_objs).then(a.name.cmp(b.name)));
    let sum = |f: fn(&CacheStats) -> u64| rows.iter().map(f).sum::<u64>();
    let (active_objs, num_objs) = (sum(|s| s.active_objs as u64), sum(|s| s.num_objs as u64));
    let (active_slabs, num_slabs) = (sum(|s| s.active_slabs as u64), sum(|s| s.num_slabs as u64));
    let active_caches = rows.iter().filter(|s| s.active_objs != 0).count() as u64;
    let (active_size, total_size) = (sum(|s| (s.active_objs * s.size) as u64), sum(|s| (s.num_objs * s.size) as u64));
    let min = rows.iter().map(|s| s.size as u64).min().unwrap_or(0);
    let max = rows.iter().map(|s| s.size as u64).max().unwrap_or(0);
    let avg = (total_size, num_objs.max(1));
    let n = rows.len() as u64;
    writeln!(
        out,
        " Active / Total Objects (% used)    : {} / {} ({}%)",
        active_objs,
        num_objs,
        Percent(active_objs, num_objs)
    )?;
    writeln!(
        out,
        " Active / Total Slabs (% used)      : {} / {} ({}%)",
        active_slabs,
        num_slabs,
        Percent(active_slabs, num_slabs)
    )?;
    writeln!(out, " Active / Total Caches (% used)     : {} / {} ({}%)", active_caches, n, Percent(active_caches, n))?;
    writeln!(
        out,
        " Active / Total Size (% used)       : {}K / {}K ({}%)",
        Hundredths(active_size, 1024),
        Hundredths(total_size, 1024),
        Percent(active_size, total_size)
    )?;
    writeln!(
        out,
        " Minimum / Average / Maximum Object : {}K / {}K / {}K",
        Hundredths(min, 1024),
        Hundredths(avg.0, avg.1 * 1024),
        Hundredths(max, 1024)
    )?;
    writeln!(out)?;
    writeln!(out, "  OBJS ACTIVE  USE OBJ SIZE  SLABS OBJ/SLAB CACHE SIZE NAME")?;
    for s in rows.iter() {
        let use_pct = (s.active_objs * 100).checked_div(s.num_objs).unwrap_or(0);
        writeln!(
            out,
            "{:6} {:6} {:3}% {:7}K {:6} {:8} {:9}K {}",
            s.num_objs,
            s.active_objs,
            use_pct,
            Hundredths(s.size as u64, 1024),
            s.num_slabs,
            s.objperslab,
            (s.num_slabs * s.pagesperslab * crate::addr::PAGE_SIZE) / 1024,
            s.name
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(name: &'static str, size: usize, objs: usize, active: usize, per: usize, slabs: usize) -> CacheStats {
        CacheStats {
            name,
            size,
            objperslab: per,
            pagesperslab: 1,
            num_objs: objs,
            active_objs: active,
            num_slabs: slabs,
            active_slabs: slabs,
            ..CacheStats::default()
        }
    }

    #[test]
    fn slabtop_format_and_order() {
        let mut rows = [
            cache("kmalloc-64", 64, 128, 100, 64, 2),
            cache("kmalloc-8", 8, 512, 512, 512, 1),
            cache("kmalloc-4k", 4096, 0, 0, 1, 0),
            cache("kmalloc-32", 32, 128, 1, 128, 1),
        ];
        let mut s = String::new();
        slabtop(&mut rows, &mut s).unwrap();
        let want = " Active / Total Objects (% used)    : 613 / 768 (79.8%)
 Active / Total Slabs (% used)      : 4 / 4 (100.0%)
 Active / Total Caches (% used)     : 3 / 4 (75.0%)
 Active / Total Size (% used)       : 10.28K / 16.00K (64.2%)
 Minimum / Average / Maximum Object : 0.00K / 0.02K / 4.00K

  OBJS ACTIVE  USE OBJ SIZE  SLABS OBJ/SLAB CACHE SIZE NAME
   512    512 100%    0.00K      1      512         4K kmalloc-8
   128      1   0%    0.03K      1      128         4K kmalloc-32
   128    100  78%    0.06K      2       64         8K kmalloc-64
     0      0   0%    4.00K      0        1         0K kmalloc-4k
";
        assert_eq!(s, want);
    }
}
