//! The early memory map: RAM from the mailbox, minus what must never be handed out.

use crate::platform;
use crate::{pr_info, pr_warn};
use mm::addr::{PhysAddr, PAGE_SIZE};
use mm::memblock::Memblock;

/// Page 0: the firmware's spin table for the parked secondary cores (slots 0xd8-0xf0)
/// and the ATAGS at 0x100. Left untouched while secondaries may still be parked.
const SPIN_TABLE_SIZE: u64 = PAGE_SIZE as u64;

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
    if let Some(fdt) = platform::loader_fdt(dtb, base + size) {
        let start = dtb & !(PAGE_SIZE as u64 - 1);
        let end = (dtb + fdt.len() as u64).next_multiple_of(PAGE_SIZE as u64);
        ok &= mb.reserve(PhysAddr::new(start), end - start, "dtb").is_ok();
        pr_info!("memblock: device tree at {:#x} ({} bytes) reserved", dtb, fdt.len());
        cross_check(fdt, base, size);
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

/// Compares the device tree's `/memory` with the mailbox's ARM memory (the firmware
/// fills in both from the same split, QEMU writes its whole RAM size into the tree) and
/// prints both when they differ. The mailbox's answer is the one used.
fn cross_check(fdt: &[u8], base: u64, size: u64) {
    match crate::fdt::memory(fdt) {
        Some((b, s)) if (b, s) == (base, size) => {
            pr_info!("memblock: device tree /memory {:#010x}-{:#010x} agrees with the mailbox", b, b + s - 1)
        }
        Some((b, s)) => pr_warn!(
            "memblock: device tree /memory {:#010x}-{:#010x} ({} MiB) differs from the mailbox's ARM memory {:#010x}-{:#010x} ({} MiB); using the mailbox's",
            b,
            (b + s).saturating_sub(1),
            s >> 20,
            base,
            base + size - 1,
            size >> 20
        ),
        None => pr_warn!("memblock: device tree has no readable /memory; using the mailbox's ARM memory"),
    }
}

/// Linux's `Memory: 953748K/983040K available (...)` line.
pub fn print_memory_line(mb: &Memblock) {
    let l = platform::image_layout();
    let kb = |(s, e): (usize, usize)| (e - s) >> 10;
    let total = mb.memory_total() >> 10;
    let free = super::page_alloc::PAGES.snapshot().meminfo().free_kb();
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
