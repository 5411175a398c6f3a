//! Bringing up cores 1-3 and handing them long work: the layer above the memory
//! manager (each core's stack comes from the buddy allocator).
//!
//! Release follows the Raspberry Pi spin-table protocol: the firmware (or QEMU's stub)
//! keeps each secondary in a `wfe` loop reading its slot at 0xe0/0xe8/0xf0; the kernel
//! writes `_secondary_entry`'s physical address there, cleans the line to the point of
//! coherency (the core polls with its caches off), issues `dsb` and `sev`. Each core gets
//! its own stack slot with a guard page in the STACKS region, turns its MMU on with the
//! kernel's tables, finds its per-CPU data through TPIDR_EL1, unmasks its timer and IPI
//! interrupts and sleeps in its idle loop (`wfi`).
//!
//! Short work reaches another CPU as a cross-CPU function call ([`crate::smp_call`]);
//! long work (a `stress` worker) is handed over with [`run_on`] / [`wait`]: the target
//! takes it into its own slot in a function call and runs it in its idle loop, in task
//! context with interrupts enabled; when it is done, a reschedule IPI wakes the CPU
//! that waits for it (which also wakes every 10 ms to look for Ctrl-C).

use crate::idle;
use crate::ipi::{self, Ipi};
use crate::mm::page_alloc::{self, PAGE_SOURCE};
use crate::mm::vmalloc::with_kernel_pt;
use crate::percpu::{cpu_online, set_cpu_online, smp_processor_id, CpuId, NR_CPUS};
use crate::smp_call::smp_call_function_single;
use crate::{pr_err, pr_info};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use mm::gfp::GFP_KERNEL;
use mm::sync::SpinLock;
use mm::vmalloc::tables::SourceTables;

/// Spin-table slot of CPU 0; CPU n polls `SPIN_TABLE_BASE + 8 * n`.
const SPIN_TABLE_BASE: u64 = 0xd8;

/// A CPU's slot for work handed over with [`run_on`].
struct WorkSlot {
    /// Work function (0 = none) and its argument, set by another CPU.
    work: AtomicUsize,
    arg: AtomicUsize,
    /// The CPU to wake when the work is done.
    requester: AtomicUsize,
    /// Incremented when the work is done.
    done: AtomicU64,
}

static WORK: [WorkSlot; NR_CPUS] = [const {
    WorkSlot {
        work: AtomicUsize::new(0),
        arg: AtomicUsize::new(0),
        requester: AtomicUsize::new(0),
        done: AtomicU64::new(0),
    }
}; NR_CPUS];

#[repr(C)]
struct SecondaryBoot {
    ttbr1: u64,
    stack_top: [u64; NR_CPUS],
}

extern "C" {
    static mut secondary_boot: SecondaryBoot;
    fn _secondary_entry();
}

/// Releases cores 1-3 and waits (at most 100 ms each) for them to come online. The
/// boot-time wait uses `wfe` with the event stream (bounded); nothing after boot does.
pub fn smp_init() {
    boot::cpu::enable_event_stream();
    let mut brought = 1;
    for cpu in CpuId::all().skip(1) {
        match start_cpu(cpu) {
            Ok(()) => brought += 1,
            Err(why) => pr_err!("CPU{}: failed to come online: {}", cpu, why),
        }
    }
    pr_info!("smp: Brought up 1 node, {} CPUs", brought);
}

fn start_cpu(cpu: CpuId) -> Result<(), &'static str> {
    // A guarded stack slot: 15 pages from an order-4 block, mapped above an unmapped page.
    let block = page_alloc::__get_free_pages(GFP_KERNEL, 4).ok_or("no memory for its stack")?;
    let stack_pa = crate::mm::virt_to_phys(block);
    let top = with_kernel_pt(|pt| {
        let mut count = 0usize;
        let mut tables = SourceTables { pages: &PAGE_SOURCE, gfp: GFP_KERNEL, count: &mut count };
        mm::pgtable::boot::map_stack(pt, &mut tables, cpu.index() as u64, stack_pa)
    })
    .map_err(|_| "cannot map its stack")?;
    crate::stacks::register(top.as_usize() - consts::memory::STACK_SLOT_SIZE as usize);

    let sb = core::ptr::addr_of_mut!(secondary_boot);
    // SAFETY: only the boot CPU writes secondary_boot, before releasing the core that
    // reads it; raw-pointer writes, no reference to the static is formed.
    unsafe {
        (*sb).ttbr1 = boot::mmu::ttbr1();
        (*sb).stack_top[cpu.index()] = top.as_u64();
    }
    // Real hardware: the secondary reads this with its caches off.
    boot::cache::clean_dcache_range(sb as usize, core::mem::size_of::<SecondaryBoot>());

    let entry = boot::kimage_virt_to_phys(_secondary_entry as *const () as usize) as u64;
    let slot = mm::addr::PhysAddr::new(SPIN_TABLE_BASE + 8 * cpu.index() as u64).linear_va().as_mut_ptr::<u64>();
    // SAFETY: page 0 is reserved for the spin table and mapped in the linear map; the
    // slot belongs to this core, which polls it.
    unsafe { core::ptr::write_volatile(slot, entry) };
    // Real hardware: the polling core has its caches off; push the slot to memory, then
    // dsb + sev to wake it.
    boot::cache::clean_dcache_range(slot as usize, 8);
    boot::cpu::sev();

    // A real core answers within microseconds; the bound is for a core that never comes
    // (Linux waits 5 s). 100 ms proved too short for QEMU on a loaded host, where a vCPU
    // thread can wait that long to be scheduled, and a late core then runs while counted off.
    let deadline = board::timer::ticks() + board::timer::frequency();
    while !cpu_online(cpu) {
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
    let cpu = CpuId::of(cpu as usize);
    boot::mmu::disable_ttbr0();
    // entry.S chose this core's per-CPU block from the same MPIDR_EL1 field.
    assert_eq!(crate::percpu::smp_processor_id(), cpu, "TPIDR_EL1 names another CPU's block");
    boot::cpu::enable_event_stream();
    let mpidr = boot::cpu::mpidr();
    pr_info!("CPU{}: Booted secondary processor 0x{:010x} [0x{:08x}]", cpu, mpidr & 0xff_ffff, boot::cpu::midr());
    crate::irq::chip::init_this_cpu();
    boot::cpu::local_irq_enable();
    set_cpu_online(cpu);
    boot::cpu::sev();
    idle(cpu)
}

/// A secondary's idle loop: sleeps in `wfi` until work arrives, runs it with
/// interrupts enabled, and wakes the CPU waiting for it.
fn idle(cpu: CpuId) -> ! {
    let me = &WORK[cpu.index()];
    loop {
        idle::wait_until(|| me.work.load(Ordering::Acquire) != 0);
        let f = me.work.load(Ordering::Acquire);
        // SAFETY: `run_on` stores only `fn(usize)` pointers in `work`.
        let func: fn(usize) = unsafe { core::mem::transmute::<usize, fn(usize)>(f) };
        func(me.arg.load(Ordering::Acquire));
        me.work.store(0, Ordering::Release);
        me.done.fetch_add(1, Ordering::AcqRel);
        let requester = CpuId::of(me.requester.load(Ordering::Acquire));
        if requester != cpu {
            ipi::send(requester, Ipi::Reschedule);
        }
    }
}

/// A hand-off request from one CPU (indexed by the requesting CPU; it waits for the
/// answer, so nothing else touches its entry meanwhile).
struct WorkRequest {
    func: usize,
    arg: usize,
    answer: Option<Result<u64, &'static str>>,
}

static REQUESTS: [SpinLock<WorkRequest>; NR_CPUS] =
    [const { SpinLock::new(WorkRequest { func: 0, arg: 0, answer: None }) }; NR_CPUS];

/// On the target, in the function-call IPI: takes the work into this CPU's own slot,
/// which its idle loop runs once the interrupt returns.
fn accept_work(requester: usize) {
    // `run_on` passes its own CPU's number.
    let Ok(requester) = CpuId::new(requester) else { return };
    let me = &WORK[smp_processor_id().index()];
    let mut r = REQUESTS[requester.index()].lock();
    if me.work.load(Ordering::Acquire) != 0 {
        r.answer = Some(Err("CPU busy"));
        return;
    }
    let ticket = me.done.load(Ordering::Acquire) + 1;
    me.requester.store(requester.index(), Ordering::Release);
    me.arg.store(r.arg, Ordering::Release);
    me.work.store(r.func, Ordering::Release);
    r.answer = Some(Ok(ticket));
}

/// Hands `f(arg)` to `cpu` (online, idle, not this one) through
/// [`smp_call_function_single`]: the target accepts it in the IPI and runs it in its
/// idle loop, in task context. Returns a ticket for [`wait`].
pub fn run_on(cpu: CpuId, f: fn(usize), arg: usize) -> Result<u64, &'static str> {
    let me = smp_processor_id();
    if !cpu_online(cpu) || cpu == me {
        return Err("CPU not online (or is the caller)");
    }
    {
        let mut r = REQUESTS[me.index()].lock();
        r.func = f as usize;
        r.arg = arg;
        r.answer = None;
    }
    smp_call_function_single(cpu, accept_work, me.index(), true).map_err(|_| "CPU did not answer")?;
    REQUESTS[me.index()].lock().answer.take().unwrap_or(Err("CPU did not answer"))
}

/// How often [`wait`] wakes (a timer) to look for Ctrl-C.
const WAIT_POLL_US: u64 = 10_000;
/// How long [`wait`] still waits once `interrupted()` holds: the work checks for Ctrl-C
/// between its steps, so it ends within a step.
const STOP_GRACE_US: u64 = 2_000_000;

/// Sleeps (in `wfi`, woken by the CPU's reschedule IPI or every 10 ms by a timer) until
/// `cpu` has finished the work of `ticket`. Bounded by the work itself until
/// `interrupted()` (the caller's Ctrl-C check) holds, then by 2 s of the generic timer:
/// `Err` if the CPU had still not finished by then (its work still runs; the caller
/// reports it).
pub fn wait(cpu: CpuId, ticket: u64, interrupted: impl Fn() -> bool) -> Result<(), &'static str> {
    let done = || WORK[cpu.index()].done.load(Ordering::Acquire) >= ticket;
    let mut interrupted_at = None;
    loop {
        if idle::wait_until_timeout(done, crate::timer::us_to_ticks(WAIT_POLL_US)) {
            return Ok(());
        }
        if interrupted() {
            let now = crate::timer::now();
            if now - *interrupted_at.get_or_insert(now) > crate::timer::us_to_ticks(STOP_GRACE_US) {
                return Err("did not stop within 2 s of ^C");
            }
        }
    }
}
