//! `/proc/slabinfo` (version 2.1) and meminfo's `Slab:` total.

use core::fmt::{self, Write};

use super::SlabAllocator;

/// The two header lines of `/proc/slabinfo`.
pub const SLABINFO_HEADER: &str = "slabinfo - version: 2.1\n# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n";

/// Writes `/proc/slabinfo`: the header, then one row per cache, newest cache first as Linux
/// lists them. `objsize` is the slot size including debug metadata; there is no shared
/// array, so `sharedfactor` and `sharedavail` are 0.
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
            0,
            s.active_slabs,
            s.num_slabs,
            0
        )?;
    }
    Ok(())
}

/// meminfo's `Slab:` line value in kB.
pub fn meminfo_slab_kb(slab: &SlabAllocator<'_>) -> usize {
    slab.slab_bytes() / 1024
}
