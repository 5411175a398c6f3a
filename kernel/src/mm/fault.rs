//! What an oops says about a faulting address: the page-table walk, and for the vmalloc
//! range which area, guard page or freed area it hit.

use super::vmalloc::VMALLOC;
use core::fmt::{self, Write};
use mm::addr::VirtAddr;

/// Writes the description; uses `try_lock` because the fault may have happened with a
/// lock held (then the walk is skipped rather than deadlocking the report).
fn describe(w: &mut dyn Write, far: u64) -> fmt::Result {
    let busy = |w: &mut dyn Write| writeln!(w, "[{far:016x}] (page tables busy: walk skipped)");
    let Some(mut vm) = VMALLOC.try_lock() else {
        return busy(w);
    };
    vm.try_with_pt(|vm, pt| describe_locked(w, far, vm, pt)).unwrap_or_else(|| busy(w))
}

fn describe_locked(
    w: &mut dyn Write,
    far: u64,
    vm: &mm::vmalloc::Vmalloc,
    pt: &super::mmu::KernelPageTable,
) -> fmt::Result {
    let va = VirtAddr::new(far);
    if far < mm::pgtable::layout::KERNEL_VA_BASE {
        writeln!(w, "[{far:016x}] user address but the kernel has no user mappings (TTBR0 off)")?;
    } else {
        writeln!(w, "[{far:016x}] {}", pt.fault_info(va))?;
    }
    if let Some(hit) = vm.lookup(va) {
        writeln!(w, "{hit}")?;
    }
    Ok(())
}

/// Hooks [`describe`] into the oops reports.
pub fn init() {
    crate::arch::aarch64::traps::set_address_describer(describe);
    crate::arch::aarch64::traps::set_kfence_fault(super::kfence::handle_fault);
}
