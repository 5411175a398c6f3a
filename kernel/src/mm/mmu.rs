//! The kernel's own translation tables, replacing boot/'s early 2 MiB identity and
//! higher-half map: a linear map of all RAM (read/write, never executable), the kernel
//! image by section (text RX, rodata R, data/bss RW; the linear alias of text and rodata
//! read-only too), an unmapped guard page below the boot stack, and empty vmalloc and
//! ioremap ranges that the vmalloc layer fills.

use crate::platform;
use crate::{pr_info, pr_warn};
use mm::addr::{PhysAddr, VirtAddr, PAGE_SIZE};
use mm::memblock::Memblock;
use mm::pgtable::boot::{map_kimage, map_linear, protect_linear_alias, BumpTables};
use mm::pgtable::layout::*;
use mm::pgtable::{LinearPhysMemory, PageTable, Prot, PtConfig, TlbMaint};

/// TLB maintenance for the kernel's tables, broadcast to all cores (inner shareable).
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelTlb;

impl TlbMaint for KernelTlb {
    fn flush_va(&self, va: VirtAddr) {
        boot::tlb::flush_kernel_page(va.as_usize());
    }
    fn flush_all(&self) {
        boot::tlb::flush_all();
    }
    fn flush_vas(&self, vas: &[VirtAddr]) {
        // One policy for every invalidation (`mm::pgtable::TLB_FLUSH_ALL_PAGES`).
        if mm::pgtable::TLB_FLUSH_ALL_PAGES <= vas.len() as u64 {
            boot::tlb::flush_all();
        } else {
            let mut buf = [0usize; mm::pgtable::MIGRATE_BATCH];
            for chunk in vas.chunks(buf.len()) {
                for (b, va) in buf.iter_mut().zip(chunk) {
                    *b = va.as_usize();
                }
                boot::tlb::flush_kernel_pages(&buf[..chunk.len()]);
            }
        }
    }
    fn sync(&self) {
        // Real hardware: table writes must reach the walkers before an entry is used.
        boot::tlb::sync();
    }
}

/// The kernel's page tables (TTBR1).
pub type KernelPageTable = PageTable<LinearPhysMemory, KernelTlb>;

/// Pages set aside for the boot-time tables: root, the linear map's L2, the image's L2
/// and L3 tables and the split of the linear alias.
const BOOT_TABLE_PAGES: u64 = 16;

fn pa_of(va: usize) -> PhysAddr {
    PhysAddr::new(boot::kimage_virt_to_phys(va) as u64)
}

/// Builds the kernel's tables from memblock pages and switches TTBR1 to them.
pub fn paging_init(mb: &mut Memblock) -> KernelPageTable {
    let (granule_4k, pa_bits) = boot::mmu::mmu_features();
    if !granule_4k {
        // boot/ already runs on 4 KiB tables, so this cannot happen on a Cortex-A53.
        panic!("paging_init: the CPU does not support the 4 KiB translation granule");
    }
    pr_info!("paging_init: 4 KiB granule, {}-bit physical addresses, 39-bit kernel virtual addresses", pa_bits);
    let ram_end = mb.memory().iter().map(|r| r.base + r.size).max().unwrap_or(0);
    let pool = match mb.alloc_named(BOOT_TABLE_PAGES * PAGE_SIZE as u64, PAGE_SIZE as u64, "page tables") {
        Ok(Some(p)) => p,
        _ => panic!("paging_init: no memory for the kernel page tables"),
    };
    let mut bump = BumpTables::new(pool, pool.add(BOOT_TABLE_PAGES * PAGE_SIZE as u64));
    // SAFETY: boot/'s early tables already map RAM at PAGE_OFFSET, and from here on the
    // new tables do too, so every table page is reachable through the linear map.
    let mem = unsafe { LinearPhysMemory::new(PAGE_OFFSET) };
    let l = platform::image_layout();
    let mut build = || -> Result<KernelPageTable, mm::pgtable::PtError> {
        let mut pt = PageTable::create(&mut bump, PtConfig::KERNEL_39, mem, KernelTlb)?;
        map_linear(&mut pt, &mut bump, PhysAddr::new(0), PhysAddr::new(ram_end))?;
        let guard = l.boot_stack_guard;
        map_kimage(
            &mut pt,
            &mut bump,
            &[
                (pa_of(l.text.0), pa_of(l.text.1), Prot::KERNEL_RX),
                (pa_of(l.rodata.0), pa_of(l.rodata.1), Prot::KERNEL_RO),
                (pa_of(l.data.0), pa_of(guard), Prot::KERNEL_RW),
                // The page at `guard` stays unmapped: a boot stack overflow faults there.
                (pa_of(guard + STACK_GUARD_SIZE as usize), pa_of(l.end), Prot::KERNEL_RW),
            ],
        )?;
        protect_linear_alias(&mut pt, &mut bump, pa_of(l.text.0), pa_of(l.rodata.1), Prot::KERNEL_RO)?;
        Ok(pt)
    };
    let pt = match build() {
        Ok(pt) => pt,
        Err(e) => panic!("paging_init: cannot build the kernel page tables: {e}"),
    };
    // SAFETY: the new tables map the image, its stacks and RAM exactly where the early
    // ones do (with tighter permissions), and TTBR0 still holds boot/'s identity map.
    unsafe { boot::mmu::replace_ttbr1(pt.root().as_u64()) };
    pr_info!(
        "paging_init: kernel page tables at {:#x}, {} table pages; W^X image, guard page at {:#x}",
        pt.root().as_u64(),
        bump.in_use(),
        l.boot_stack_guard
    );
    if bump.lost() != 0 {
        pr_warn!("paging_init: {} table pages could not be reused", bump.lost());
    }
    pt
}

/// Prints the virtual memory layout, like Linux's "Virtual kernel memory layout".
pub fn print_layout() {
    let l = platform::image_layout();
    let row = |name: &str, s: u64, e: u64| {
        let size = e - s;
        let (v, unit) = if size >= 1 << 30 {
            (size >> 30, "GB")
        } else if size >= 1 << 20 {
            (size >> 20, "MB")
        } else {
            (size >> 10, "kB")
        };
        pr_info!("    {:<8}: 0x{:016x} - 0x{:016x}   ({:>6} {})", name, s, e, v, unit);
    };
    let lin_end = super::page_alloc::linear_map_end();
    pr_info!("Virtual kernel memory layout:");
    row("linear", PAGE_OFFSET, lin_end);
    row("vmalloc", VMALLOC_START, VMALLOC_END);
    row("ioremap", IOREMAP_START, IOREMAP_END);
    row("kimage", l.start as u64, l.end as u64);
    row(".text", l.text.0 as u64, l.text.1 as u64);
    row(".rodata", l.rodata.0 as u64, l.rodata.1 as u64);
    row(".data", l.data.0 as u64, l.data.1 as u64);
    row(".bss", l.bss.0 as u64, l.bss.1 as u64);
    row("stacks", STACKS_START, STACKS_START + crate::percpu::NR_CPUS as u64 * STACK_SLOT_SIZE);
}
