//! The early memory map: RAM from the mailbox, minus what must never be handed out.

use crate::platform;
use crate::{pr_info, pr_warn};
use mm::addr::{PhysAddr, PAGE_SIZE};
use mm::memblock::Memblock;

/// Page 0: the firmware's spin table for the parked secondary cores (slots 0xd8-0xf0)
/// and the ATAGS at 0x100. Left untouched while secondaries may still be parked.
const SPIN_TABLE_SIZE: u64 = PAGE_SIZE as u64;
const FDT_MAGIC: u32 = 0xd00d_feed;

/// Builds the memblock map: the ARM memory the firmware reports (never assumed) and the
/// reservations: page 0, the kernel image (with its boot page tables and stacks), and the
/// device tree blob if the loader passed one.
pub fn setup(dtb: u64) -> Memblock {
    let mut mb = Memblock::new();
    let (base, size) = match board::mailbox::arm_memory() {
        Ok((b, s)) => (b as u64, s as u64),
        Err(e) => {
            // Nothing sensible can run without knowing the RAM; 256 MiB is in every Pi 3.
            pr_warn!("memblock: mailbox did not report ARM memory ({:?}); assuming 256 MiB", e);
            (0, 256 << 20)
        }
    };
    let ok = mb.add(PhysAddr::new(base), size).is_ok();
    let l = platform::image_layout();
    let kstart = boot::kimage_virt_to_phys(l.start) as u64;
    let kend = boot::kimage_virt_to_phys(l.end) as u64;
    let reserved = [(0, SPIN_TABLE_SIZE, "spin-table"), (kstart, kend - kstart, "kernel")];
    let mut ok = ok;
    for (b, s, name) in reserved {
        ok &= mb.reserve(PhysAddr::new(b), s, name).is_ok();
    }
    if let Some((b, s)) = fdt_extent(dtb, base + size) {
        ok &= mb.reserve(PhysAddr::new(b), s, "dtb").is_ok();
        pr_info!("memblock: device tree at {:#x} ({} bytes) reserved", b, s);
    }
    if !ok {
        pr_warn!("memblock: a region could not be recorded; memory map may be incomplete");
    }
    pr_info!(
        "memblock: memory {:#010x}-{:#010x}, reserved {} KiB (spin table, kernel {:#x}-{:#x})",
        base,
        base + size - 1,
        mb.reserved_total() >> 10,
        kstart,
        kend
    );
    mb
}

/// The DTB's physical extent if `x0` points at a flattened device tree in RAM.
fn fdt_extent(x0: u64, ram_end: u64) -> Option<(u64, u64)> {
    if x0 == 0 || !x0.is_multiple_of(8) || x0 + 8 > ram_end {
        return None;
    }
    let va = mm::pgtable::layout::phys_to_linear(x0) as *const u32;
    // SAFETY: x0 lies in RAM, which the boot tables map at PAGE_OFFSET; 8-byte aligned.
    let (magic, total) = unsafe { (u32::from_be(va.read_volatile()), u32::from_be(va.add(1).read_volatile())) };
    if magic != FDT_MAGIC || total == 0 || x0 + total as u64 > ram_end {
        return None;
    }
    let start = x0 & !(PAGE_SIZE as u64 - 1);
    let end = (x0 + total as u64).next_multiple_of(PAGE_SIZE as u64);
    Some((start, end - start))
}

/// Linux's `Memory: 953748K/983040K available (...)` line.
pub fn print_memory_line(mb: &Memblock) {
    let l = platform::image_layout();
    let kb = |(s, e): (usize, usize)| (e - s) >> 10;
    let total = mb.memory_total() >> 10;
    let free = super::page_alloc::PAGES.meminfo().free_kb();
    pr_info!(
        "Memory: {}K/{}K available ({}K kernel code, {}K rwdata, {}K rodata, {}K bss, {}K reserved)",
        free,
        total,
        kb(l.text),
        kb(l.data),
        kb(l.rodata),
        kb(l.bss),
        total - free
    );
}
