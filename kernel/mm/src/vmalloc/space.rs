//! [`VmSpace`]: the vmalloc state and the page table it maps into, each behind its own
//! lock, with the lock order written as types rather than as a comment.
//!
//! The areas lock is the outer one: [`VmSpace::lock`] gives a [`VmGuard`], and only a
//! `VmGuard` can reach the page-table lock ([`VmGuard::with_pt`]), so the page table is
//! never locked first and never locked without the areas. Code that only needs the page
//! table (mapping a CPU's stack, a fault report) goes through the same guard.

use core::ops::{Deref, DerefMut};

use crate::pgtable::{PageTable, PhysMemory, TlbMaint};
use crate::sync::{SpinLock, SpinLockGuard};

use super::state::Vmalloc;

/// The vmalloc/ioremap state and its page table. Put it in a `static`.
pub struct VmSpace<M, T> {
    vm: SpinLock<Vmalloc>,
    pt: SpinLock<Option<PageTable<M, T>>>,
}

/// The areas lock held; the way to the page-table lock. Derefs to the [`Vmalloc`] state.
pub struct VmGuard<'a, M, T> {
    vm: SpinLockGuard<'a, Vmalloc>,
    pt: &'a SpinLock<Option<PageTable<M, T>>>,
}

impl<M, T> VmSpace<M, T> {
    /// `vm` over no page table yet ([`Self::install`] gives it one).
    pub const fn new(vm: Vmalloc) -> Self {
        Self { vm: SpinLock::new(vm), pt: SpinLock::new(None) }
    }
}

impl<M: PhysMemory, T: TlbMaint> VmSpace<M, T> {
    /// Takes the areas lock.
    pub fn lock(&self) -> VmGuard<'_, M, T> {
        VmGuard { vm: self.vm.lock(), pt: &self.pt }
    }

    /// Takes the areas lock if it is free (fault reports: the fault may have hit with it
    /// held).
    pub fn try_lock(&self) -> Option<VmGuard<'_, M, T>> {
        Some(VmGuard { vm: self.vm.try_lock()?, pt: &self.pt })
    }

    /// Hands over the page table (once, at paging_init); returns the one it replaces.
    pub fn install(&self, pt: PageTable<M, T>) -> Option<PageTable<M, T>> {
        let g = self.lock();
        let old = g.pt.lock().replace(pt);
        drop(g);
        old
    }
}

impl<M: PhysMemory, T: TlbMaint> VmGuard<'_, M, T> {
    /// Runs `f` with the state and the page table, taking the page-table lock inside the
    /// areas lock; `None` before a page table was installed.
    pub fn with_pt<R>(&mut self, f: impl FnOnce(&mut Vmalloc, &mut PageTable<M, T>) -> R) -> Option<R> {
        let mut g = self.pt.lock();
        let pt = g.as_mut()?;
        Some(f(&mut self.vm, pt))
    }

    /// [`Self::with_pt`] if the page-table lock is free (`None` if held or not installed).
    pub fn try_with_pt<R>(&mut self, f: impl FnOnce(&mut Vmalloc, &mut PageTable<M, T>) -> R) -> Option<R> {
        let mut g = self.pt.try_lock()?;
        let pt = g.as_mut()?;
        Some(f(&mut self.vm, pt))
    }
}

impl<M, T> Deref for VmGuard<'_, M, T> {
    type Target = Vmalloc;
    fn deref(&self) -> &Vmalloc {
        &self.vm
    }
}

impl<M, T> DerefMut for VmGuard<'_, M, T> {
    fn deref_mut(&mut self) -> &mut Vmalloc {
        &mut self.vm
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{PhysAddr, VirtAddr};
    use crate::pgtable::{LinearPhysMemory, PtConfig};

    struct NoTlb;
    impl TlbMaint for NoTlb {
        fn flush_va(&self, _: VirtAddr) {}
        fn flush_all(&self) {}
        fn sync(&self) {}
    }

    static SPACE: VmSpace<LinearPhysMemory, NoTlb> = VmSpace::new(Vmalloc::new());

    #[test]
    fn the_page_table_is_reached_through_the_areas_guard() {
        assert_eq!(SPACE.lock().with_pt(|_, _| ()), None, "nothing installed yet");
        let root = vec![0u64; 512 + 512];
        let at = (root.as_ptr() as u64 + 4095) & !4095;
        // SAFETY: a host buffer standing in for one table page at PA 0x1000.
        let mem = unsafe { LinearPhysMemory::new(at.wrapping_sub(0x1000)) };
        let pt = PageTable::new(PhysAddr::new(0x1000), PtConfig::KERNEL_39, mem, NoTlb);
        assert!(SPACE.install(pt).is_none());
        let mut g = SPACE.lock();
        assert!(SPACE.try_lock().is_none(), "areas lock held");
        assert_eq!(g.with_pt(|vm, pt| (vm.nr_table_pages(), pt.root().as_u64())), Some((0, 0x1000)));
        assert_eq!(g.try_with_pt(|_, pt| pt.root().as_u64()), Some(0x1000), "page-table lock free");
        let held = SPACE.pt.lock();
        assert_eq!(g.try_with_pt(|_, _| ()), None, "page-table lock held");
        drop(held);
        drop(g);
        assert!(SPACE.try_lock().is_some());
    }
}
