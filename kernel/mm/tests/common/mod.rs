//! Simulated RAM for the host tests: page frames in one host allocation, a frame pool that
//! serves both as `PageSource` and `TableAlloc` (with fault injection), and a trace of
//! descriptor writes, barriers and TLB invalidations.
#![allow(dead_code)]

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use mm::addr::{PhysAddr, VirtAddr, PAGE_SIZE};
use mm::gfp::Gfp;
use mm::page_source::PageSource;
use mm::pgtable::{LinearPhysMemory, PageTable, PhysMemory, PtConfig, TableAlloc, TlbMaint};

/// One recorded event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ev {
    Write { table: u64, idx: usize, val: u64 },
    Sync,
    FlushVa(u64),
    FlushAll,
}

pub struct Sim {
    base: *mut u8,
    layout: Layout,
    pub base_pa: u64,
    pub nframes: usize,
    mem: LinearPhysMemory,
    free: RefCell<Vec<u64>>,
    in_use: RefCell<Vec<bool>>,
    /// Allocation attempts so far (pages and tables alike).
    pub attempts: Cell<usize>,
    /// Fail the attempt with this number (1-based, counted from `attempts` = 0) and all later.
    pub fail_from: Cell<Option<usize>>,
    pub tracing: Cell<bool>,
    /// Fill frames with 0xa5 when allocated (off for timing).
    pub dirty: Cell<bool>,
    pub log: RefCell<Vec<Ev>>,
    owners: RefCell<HashMap<u64, u64>>,
}

impl Sim {
    pub fn new(nframes: usize) -> Sim {
        let layout = Layout::from_size_align(nframes * PAGE_SIZE, PAGE_SIZE).unwrap();
        // SAFETY: non-zero size.
        let base = unsafe { alloc_zeroed(layout) };
        assert!(!base.is_null());
        let base_pa = 0x8000_0000u64;
        // SAFETY: frames [base_pa, base_pa + size) live at `base` until drop; only raw
        // pointers ever touch them.
        let mem = unsafe { LinearPhysMemory::new((base as u64).wrapping_sub(base_pa)) };
        let free = (0..nframes).rev().map(|i| base_pa + (i * PAGE_SIZE) as u64).collect();
        Sim {
            base,
            layout,
            base_pa,
            nframes,
            mem,
            free: RefCell::new(free),
            in_use: RefCell::new(vec![false; nframes]),
            attempts: Cell::new(0),
            fail_from: Cell::new(None),
            tracing: Cell::new(false),
            dirty: Cell::new(true),
            log: RefCell::new(Vec::new()),
            owners: RefCell::new(HashMap::new()),
        }
    }

    pub fn nr_free(&self) -> usize {
        self.free.borrow().len()
    }

    /// Fail the `n`-th allocation from now on (1-based) and every one after it.
    pub fn fail_after(&self, n: usize) {
        self.attempts.set(0);
        self.fail_from.set(Some(n));
    }

    pub fn no_fail(&self) {
        self.fail_from.set(None);
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

    pub fn alloc_frame(&self) -> Option<u64> {
        let n = self.attempts.get() + 1;
        self.attempts.set(n);
        if matches!(self.fail_from.get(), Some(f) if n >= f) {
            return None;
        }
        let pa = self.free.borrow_mut().pop()?;
        let i = self.frame(pa);
        assert!(!self.in_use.borrow()[i]);
        self.in_use.borrow_mut()[i] = true;
        // Dirty it, so that code relying on zeroed frames is caught.
        if self.dirty.get() {
            // SAFETY: the frame is inside the host allocation.
            unsafe { std::ptr::write_bytes(self.host(pa), 0xa5, PAGE_SIZE) };
        }
        Some(pa)
    }

    pub fn free_frame(&self, pa: u64) {
        let i = self.frame(pa);
        assert!(self.in_use.borrow()[i], "double free of {pa:#x}");
        self.in_use.borrow_mut()[i] = false;
        self.owners.borrow_mut().remove(&pa);
        self.free.borrow_mut().push(pa);
    }

    pub fn host(&self, pa: u64) -> *mut u8 {
        let i = self.frame(pa & !(PAGE_SIZE as u64 - 1));
        // SAFETY: in bounds of the allocation.
        unsafe { self.base.add(i * PAGE_SIZE + (pa as usize & (PAGE_SIZE - 1))) }
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

impl Drop for Sim {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.base, self.layout) }
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
    fn alloc_pages(&self, _gfp: Gfp, order: u32) -> Option<PhysAddr> {
        if order != 0 {
            return None;
        }
        self.alloc_frame().map(PhysAddr::new)
    }
    fn free_pages(&self, pa: PhysAddr, order: u32) {
        assert_eq!(order, 0);
        self.free_frame(pa.as_u64())
    }
    fn phys_to_virt(&self, pa: PhysAddr) -> VirtAddr {
        VirtAddr::new(self.host(pa.as_u64()) as u64)
    }
    fn virt_to_phys(&self, va: VirtAddr) -> Option<PhysAddr> {
        let off = va.as_u64().checked_sub(self.base as u64)?;
        (off < (self.nframes * PAGE_SIZE) as u64).then(|| PhysAddr::new(self.base_pa + off))
    }
    fn set_page_owner(&self, pa: PhysAddr, word: u64) {
        self.owners.borrow_mut().insert(pa.as_u64() & !0xfff, word);
    }
    fn page_owner(&self, pa: PhysAddr) -> u64 {
        self.owners.borrow().get(&(pa.as_u64() & !0xfff)).copied().unwrap_or(0)
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
