//! Simulated RAM for the host tests: page frames from the host page source
//! (`mm::slab::host::HostPages`: the real buddy allocator over a host arena), served both
//! as `PageSource` and `TableAlloc` with fault injection, and a trace of descriptor
//! writes, barriers and TLB invalidations.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};

use mm::addr::{PhysAddr, VirtAddr, PAGE_SIZE};
use mm::gfp::{Gfp, GFP_KERNEL};
use mm::page_source::PageSource;
use mm::pgtable::{LinearPhysMemory, PageTable, PhysMemory, PtConfig, TableAlloc, TlbMaint};
use mm::slab::host::{HostPages, HOST_PHYS_BASE};

/// The `PageSource` methods that a wrapper over another source (`self.$inner`) passes
/// through unchanged: the address translation and the owner words.
#[macro_export]
macro_rules! page_source_passthrough {
    ($inner:ident) => {
        fn phys_to_virt(&self, pa: mm::addr::PhysAddr) -> mm::addr::VirtAddr {
            self.$inner.phys_to_virt(pa)
        }
        fn virt_to_phys(&self, va: mm::addr::VirtAddr) -> Option<mm::addr::PhysAddr> {
            self.$inner.virt_to_phys(va)
        }
        fn set_page_owner(&self, pa: mm::addr::PhysAddr, word: u64) {
            self.$inner.set_page_owner(pa, word)
        }
        fn page_owner(&self, pa: mm::addr::PhysAddr) -> u64 {
            self.$inner.page_owner(pa)
        }
    };
}

/// One recorded event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ev {
    Write { table: u64, idx: usize, val: u64 },
    Sync,
    FlushVa(u64),
    FlushAll,
}

pub struct Sim {
    pages: HostPages,
    pub base_pa: u64,
    pub nframes: usize,
    mem: LinearPhysMemory,
    pub tracing: Cell<bool>,
    /// Fill frames with 0xa5 when allocated (off for timing).
    pub dirty: Cell<bool>,
    pub log: RefCell<Vec<Ev>>,
}

impl Sim {
    pub fn new(nframes: usize) -> Sim {
        let pages = HostPages::with_pages(nframes);
        let base_pa = HOST_PHYS_BASE;
        let host_base = pages.phys_to_virt(PhysAddr::new(base_pa)).as_u64();
        // SAFETY: frames [base_pa, base_pa + size) live at `host_base` as long as `pages`,
        // which this Sim owns; only raw pointers ever touch them.
        let mem = unsafe { LinearPhysMemory::new(host_base.wrapping_sub(base_pa)) };
        Sim {
            pages,
            base_pa,
            nframes,
            mem,
            tracing: Cell::new(false),
            dirty: Cell::new(true),
            log: RefCell::new(Vec::new()),
        }
    }

    /// Frames not allocated.
    pub fn nr_free(&self) -> usize {
        self.nframes - self.pages.pages_in_use()
    }

    /// Fail the `n`-th allocation from now on (1-based; pages and tables alike) and every
    /// one after it (the host page source's fault injection).
    pub fn fail_after(&self, n: usize) {
        assert!(n >= 1, "allocations are counted from 1");
        self.pages.fail_after(Some(n - 1));
    }

    pub fn no_fail(&self) {
        self.pages.fail_after(None);
    }

    pub fn take_log(&self) -> Vec<Ev> {
        std::mem::take(&mut *self.log.borrow_mut())
    }

    fn frame(&self, pa: u64) -> usize {
        assert!(pa >= self.base_pa && pa.is_multiple_of(PAGE_SIZE as u64), "bad frame {pa:#x}");
        let i = ((pa - self.base_pa) / PAGE_SIZE as u64) as usize;
        assert!(i < self.nframes, "frame {pa:#x} outside RAM");
        i
    }

    /// A block of `2^order` pages (any order: the `PageSource` impl below serves order 0
    /// only).
    pub fn alloc_block(&self, gfp: Gfp, order: u32) -> Option<u64> {
        let pa = self.pages.alloc_pages(gfp, order)?.as_u64();
        // Dirty it, so that code relying on zeroed frames is caught.
        if self.dirty.get() && !gfp.contains(Gfp::GFP_ZERO) {
            // SAFETY: the block is inside the host arena.
            unsafe { std::ptr::write_bytes(self.host(pa), 0xa5, PAGE_SIZE << order) };
        }
        Some(pa)
    }

    pub fn alloc_frame(&self) -> Option<u64> {
        self.alloc_block(GFP_KERNEL, 0)
    }

    pub fn free_frame(&self, pa: u64) {
        self.frame(pa);
        self.pages.free_pages(PhysAddr::new(pa), 0)
    }

    pub fn host(&self, pa: u64) -> *mut u8 {
        self.frame(pa & !(PAGE_SIZE as u64 - 1));
        self.pages.phys_to_virt(PhysAddr::new(pa)).as_mut_ptr()
    }

    pub fn read_byte(&self, pa: u64) -> u8 {
        // SAFETY: in bounds.
        unsafe { self.host(pa).read() }
    }

    pub fn tables(&self) -> SimTables<'_> {
        SimTables { sim: self, allocated: 0, freed: 0 }
    }

    /// A kernel (TTBR1, 39-bit) page table over this RAM.
    pub fn kernel_pt(&self) -> PageTable<&Sim, &Sim> {
        let mut t = self.tables();
        PageTable::create(&mut t, PtConfig::KERNEL_39, self, self).unwrap()
    }
}

impl PhysMemory for Sim {
    fn read_entry(&self, table: PhysAddr, index: usize) -> u64 {
        assert!(index < 512);
        self.frame(table.as_u64());
        self.mem.read_entry(table, index)
    }
    fn write_entry(&self, table: PhysAddr, index: usize, val: u64) {
        assert!(index < 512);
        self.frame(table.as_u64());
        if self.tracing.get() {
            self.log.borrow_mut().push(Ev::Write { table: table.as_u64(), idx: index, val });
        }
        self.mem.write_entry(table, index, val)
    }
}

impl TlbMaint for Sim {
    fn flush_va(&self, va: VirtAddr) {
        if self.tracing.get() {
            self.log.borrow_mut().push(Ev::FlushVa(va.as_u64()));
        }
    }
    fn flush_all(&self) {
        if self.tracing.get() {
            self.log.borrow_mut().push(Ev::FlushAll);
        }
    }
    fn sync(&self) {
        if self.tracing.get() {
            self.log.borrow_mut().push(Ev::Sync);
        }
    }
}

impl PageSource for Sim {
    /// Single frames only, as the tests of the layers above expect (a vmalloc over this
    /// RAM maps 4 KiB pages, never blocks).
    fn alloc_pages(&self, gfp: Gfp, order: u32) -> Option<PhysAddr> {
        if order != 0 {
            return None;
        }
        self.alloc_block(gfp, order).map(PhysAddr::new)
    }
    fn free_pages(&self, pa: PhysAddr, order: u32) {
        self.frame(pa.as_u64());
        self.pages.free_pages(pa, order)
    }
    page_source_passthrough!(pages);
    fn virt_page_owner(&self, va: VirtAddr) -> Option<u64> {
        self.pages.virt_page_owner(va)
    }
}

/// Table pages from the same frame pool, counted.
pub struct SimTables<'a> {
    pub sim: &'a Sim,
    pub allocated: usize,
    pub freed: usize,
}

impl TableAlloc for SimTables<'_> {
    fn alloc_table(&mut self) -> Option<PhysAddr> {
        let pa = self.sim.alloc_frame()?;
        self.allocated += 1;
        Some(PhysAddr::new(pa))
    }
    fn free_table(&mut self, pa: PhysAddr) {
        self.freed += 1;
        self.sim.free_frame(pa.as_u64())
    }
}
