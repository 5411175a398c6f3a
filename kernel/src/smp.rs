//! Bringing up cores 1-3 and giving them work.
//!
//! Release follows the Raspberry Pi spin-table protocol: the firmware (or QEMU's stub)
//! keeps each secondary in a `wfe` loop reading its slot at 0xe0/0xe8/0xf0; the kernel
//! writes `_secondary_entry`'s physical address there, cleans the line to the point of
//! coherency (the core polls with its caches off), issues `dsb` and `sev`. Each core gets
//! its own stack slot with a guard page in the STACKS region, turns its MMU on with the
//! kernel's tables, finds its per-CPU data through TPIDR_EL1, and waits for work in
//! `wfe` (not a busy loop).

use crate::mm::mmu::with_kernel_pt;
use crate::mm::page_alloc::{self, PAGE_SOURCE};
use crate::{pr_err, pr_info};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use mm::gfp::GFP_KERNEL;
use mm::vmalloc::tables::SourceTables;

/// CPUs on a BCM2837.
pub const NR_CPUS: usize = 4;
/// Spin-table slot of CPU 0; CPU n polls `SPIN_TABLE_BASE + 8 * n`.
const SPIN_TABLE_BASE: u64 = 0xd8;

/// What each CPU keeps for itself, reached through TPIDR_EL1.
#[repr(C, align(64))]
pub struct PerCpu {
    /// This CPU's number.
    pub cpu: usize,
    /// Work function (0 = none) and its argument, set by another CPU.
    work: AtomicUsize,
    arg: AtomicUsize,
    /// Incremented when the work is done.
    done: AtomicU64,
}

impl PerCpu {
    const fn new(cpu: usize) -> Self {
        Self { cpu, work: AtomicUsize::new(0), arg: AtomicUsize::new(0), done: AtomicU64::new(0) }
    }
}

static PERCPU: [PerCpu; NR_CPUS] = [PerCpu::new(0), PerCpu::new(1), PerCpu::new(2), PerCpu::new(3)];

static ONLINE: AtomicUsize = AtomicUsize::new(1);

/// Bitmask of online CPUs.
pub fn online_mask() -> usize {
    ONLINE.load(Ordering::Acquire)
}

fn set_tpidr(cpu: usize) {
    let p = &PERCPU[cpu] as *const PerCpu as u64;
    // SAFETY: TPIDR_EL1 is the kernel's own per-CPU pointer register; nothing else uses it.
    unsafe { core::arch::asm!("msr tpidr_el1, {}", in(reg) p, options(nostack, preserves_flags)) };
}

/// This CPU's per-CPU data (through TPIDR_EL1).
pub fn this_cpu() -> &'static PerCpu {
    let p: u64;
    // SAFETY: reads TPIDR_EL1.
    unsafe { core::arch::asm!("mrs {}, tpidr_el1", out(reg) p, options(nomem, nostack, preserves_flags)) };
    if p == 0 {
        return &PERCPU[boot::cpu::cpu_id()];
    }
    // SAFETY: set_tpidr stored a pointer into PERCPU, a static.
    unsafe { &*(p as *const PerCpu) }
}

#[repr(C)]
struct SecondaryBoot {
    ttbr1: u64,
    stack_top: [u64; NR_CPUS],
}

extern "C" {
    static mut secondary_boot: SecondaryBoot;
    fn _secondary_entry();
}

/// Releases cores 1-3 and waits (at most 100 ms each) for them to come online.
pub fn smp_init() {
    set_tpidr(0);
    boot::cpu::enable_event_stream();
    let mut brought = 1;
    for cpu in 1..NR_CPUS {
        match start_cpu(cpu) {
            Ok(()) => brought += 1,
            Err(why) => pr_err!("CPU{}: failed to come online: {}", cpu, why),
        }
    }
    pr_info!("smp: Brought up 1 node, {} CPUs", brought);
}

fn start_cpu(cpu: usize) -> Result<(), &'static str> {
    // A guarded stack slot: 15 pages from an order-4 block, mapped above an unmapped page.
    let block = page_alloc::__get_free_pages(GFP_KERNEL, 4).ok_or("no memory for its stack")?;
    let stack_pa = mm::addr::PhysAddr::new(block.as_u64() - mm::pgtable::layout::PAGE_OFFSET);
    let top = with_kernel_pt(|pt| {
        let mut count = 0usize;
        let mut tables = SourceTables { pages: &PAGE_SOURCE, gfp: GFP_KERNEL, count: &mut count };
        mm::pgtable::boot::map_stack(pt, &mut tables, cpu as u64, stack_pa)
    })
    .map_err(|_| "cannot map its stack")?;
    crate::stacks::register(top.as_usize() - boot::STACK_SLOT_SIZE);

    let sb = core::ptr::addr_of_mut!(secondary_boot);
    // SAFETY: only the boot CPU writes secondary_boot, before releasing the core that
    // reads it; raw-pointer writes, no reference to the static is formed.
    unsafe {
        (*sb).ttbr1 = boot::mmu::ttbr1();
        (*sb).stack_top[cpu] = top.as_u64();
    }
    // Real hardware: the secondary reads this with its caches off.
    boot::cache::clean_dcache_range(sb as usize, core::mem::size_of::<SecondaryBoot>());

    let entry = boot::kimage_virt_to_phys(_secondary_entry as *const () as usize) as u64;
    let slot = mm::pgtable::layout::phys_to_linear(SPIN_TABLE_BASE + 8 * cpu as u64) as *mut u64;
    // SAFETY: page 0 is reserved for the spin table and mapped in the linear map; the
    // slot belongs to this core, which polls it.
    unsafe { core::ptr::write_volatile(slot, entry) };
    // Real hardware: the polling core has its caches off; push the slot to memory, then
    // dsb + sev to wake it.
    boot::cache::clean_dcache_range(slot as usize, 8);
    boot::cpu::sev();

    let deadline = board::timer::ticks() + board::timer::frequency() / 10;
    while online_mask() & (1 << cpu) == 0 {
        if board::timer::ticks() > deadline {
            return Err("timed out");
        }
        // Woken by the core's sev or by the event stream.
        boot::cpu::wfe();
    }
    Ok(())
}

/// Entered by `entry.S` on a secondary core, in EL1 with the MMU on, on its own stack.
#[no_mangle]
extern "C" fn secondary_main(cpu: u64) -> ! {
    let cpu = cpu as usize;
    boot::mmu::disable_ttbr0();
    set_tpidr(cpu);
    boot::cpu::enable_event_stream();
    let mpidr: u64;
    // SAFETY: reads MPIDR_EL1.
    unsafe { core::arch::asm!("mrs {}, mpidr_el1", out(reg) mpidr, options(nomem, nostack, preserves_flags)) };
    pr_info!("CPU{}: Booted secondary processor 0x{:010x} [0x{:08x}]", cpu, mpidr & 0xff_ffff, boot::cpu::midr());
    ONLINE.fetch_or(1 << cpu, Ordering::AcqRel);
    boot::cpu::sev();
    idle(cpu)
}

fn idle(cpu: usize) -> ! {
    let me = &PERCPU[cpu];
    loop {
        let f = me.work.load(Ordering::Acquire);
        if f == 0 {
            boot::cpu::wfe();
            continue;
        }
        // SAFETY: `run_on` stores only `fn(usize)` pointers in `work`.
        let func: fn(usize) = unsafe { core::mem::transmute::<usize, fn(usize)>(f) };
        func(me.arg.load(Ordering::Acquire));
        me.work.store(0, Ordering::Release);
        me.done.fetch_add(1, Ordering::AcqRel);
        boot::cpu::sev();
    }
}

/// Starts `f(arg)` on `cpu` (which must be online and idle); returns a ticket for [`wait`].
pub fn run_on(cpu: usize, f: fn(usize), arg: usize) -> Result<u64, &'static str> {
    if cpu >= NR_CPUS || online_mask() & (1 << cpu) == 0 || cpu == boot::cpu::cpu_id() {
        return Err("CPU not online (or is the caller)");
    }
    let pc = &PERCPU[cpu];
    if pc.work.load(Ordering::Acquire) != 0 {
        return Err("CPU busy");
    }
    let ticket = pc.done.load(Ordering::Acquire) + 1;
    pc.arg.store(arg, Ordering::Release);
    pc.work.store(f as usize, Ordering::Release);
    boot::cpu::sev();
    Ok(ticket)
}

/// Waits (in `wfe`) until `cpu` has finished the work of `ticket`.
pub fn wait(cpu: usize, ticket: u64) {
    while PERCPU[cpu].done.load(Ordering::Acquire) < ticket {
        boot::cpu::wfe();
    }
}
