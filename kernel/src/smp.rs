//! Bringing up cores 1-3, giving them work, and cross-CPU function calls.
//!
//! Release follows the Raspberry Pi spin-table protocol: the firmware (or QEMU's stub)
//! keeps each secondary in a `wfe` loop reading its slot at 0xe0/0xe8/0xf0; the kernel
//! writes `_secondary_entry`'s physical address there, cleans the line to the point of
//! coherency (the core polls with its caches off), issues `dsb` and `sev`. Each core gets
//! its own stack slot with a guard page in the STACKS region, turns its MMU on with the
//! kernel's tables, finds its per-CPU data through TPIDR_EL1, unmasks its timer and IPI
//! interrupts and sleeps in its idle loop (`wfi`).
//!
//! Two ways to make another CPU do something, both announced by an IPI
//! ([`crate::ipi`]), neither polled:
//! - [`smp_call_function_single`] / [`smp_call_function_many`] (Linux's names): a short
//!   function runs in interrupt context on the target (draining its per-CPU lists,
//!   arming its timer); the caller may wait for completion.
//! - [`run_on`] / [`wait`]: long work (a `stress` worker) is handed over with
//!   [`smp_call_function_single`] (the target takes it into its own slot in the IPI)
//!   and runs in the target's idle loop, in task context with interrupts enabled; when
//!   it is done, a reschedule IPI wakes the CPU that waits for it (which also wakes
//!   every 10 ms to look for Ctrl-C).

use crate::idle;
use crate::ipi::{self, Ipi};
use crate::mm::mmu::with_kernel_pt;
use crate::mm::page_alloc::{self, PAGE_SOURCE};
use crate::{pr_err, pr_info};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use mm::gfp::GFP_KERNEL;
use mm::sync::SpinLock;
use mm::vmalloc::tables::SourceTables;

/// CPUs on a BCM2837 (defined once, in the `consts` crate).
pub use consts::NR_CPUS;
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
    /// The CPU to wake when the work is done.
    requester: AtomicUsize,
    /// Incremented when the work is done.
    done: AtomicU64,
}

impl PerCpu {
    const fn new(cpu: usize) -> Self {
        Self {
            cpu,
            work: AtomicUsize::new(0),
            arg: AtomicUsize::new(0),
            requester: AtomicUsize::new(0),
            done: AtomicU64::new(0),
        }
    }
}

static PERCPU: [PerCpu; NR_CPUS] = {
    let mut a = [const { PerCpu::new(0) }; NR_CPUS];
    let mut i = 0;
    while i < NR_CPUS {
        a[i] = PerCpu::new(i);
        i += 1;
    }
    a
};

static ONLINE: AtomicUsize = AtomicUsize::new(1);

/// Bitmask of online CPUs.
pub fn online_mask() -> usize {
    ONLINE.load(Ordering::Acquire)
}

fn set_tpidr(cpu: usize) {
    boot::cpu::set_this_cpu_ptr(&PERCPU[cpu] as *const PerCpu as usize);
}

/// This CPU's per-CPU data (through TPIDR_EL1).
pub fn this_cpu() -> &'static PerCpu {
    let p = boot::cpu::this_cpu_ptr();
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

/// Releases cores 1-3 and waits (at most 100 ms each) for them to come online. The
/// boot-time wait uses `wfe` with the event stream (bounded); nothing after boot does.
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
    let stack_pa = crate::mm::virt_to_phys(block);
    let top = with_kernel_pt(|pt| {
        let mut count = 0usize;
        let mut tables = SourceTables { pages: &PAGE_SOURCE, gfp: GFP_KERNEL, count: &mut count };
        mm::pgtable::boot::map_stack(pt, &mut tables, cpu as u64, stack_pa)
    })
    .map_err(|_| "cannot map its stack")?;
    crate::stacks::register(top.as_usize() - consts::memory::STACK_SLOT_SIZE as usize);

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
    let slot = crate::mm::phys_to_virt(mm::addr::PhysAddr::new(SPIN_TABLE_BASE + 8 * cpu as u64)).as_mut_ptr::<u64>();
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
    let mpidr = boot::cpu::mpidr();
    pr_info!("CPU{}: Booted secondary processor 0x{:010x} [0x{:08x}]", cpu, mpidr & 0xff_ffff, boot::cpu::midr());
    crate::irq::init_this_cpu();
    boot::cpu::local_irq_enable();
    ONLINE.fetch_or(1 << cpu, Ordering::AcqRel);
    boot::cpu::sev();
    idle(cpu)
}

/// A secondary's idle loop: sleeps in `wfi` until work arrives, runs it with
/// interrupts enabled, and wakes the CPU waiting for it.
fn idle(cpu: usize) -> ! {
    let me = &PERCPU[cpu];
    loop {
        idle::wait_until(|| me.work.load(Ordering::Acquire) != 0);
        let f = me.work.load(Ordering::Acquire);
        // SAFETY: `run_on` stores only `fn(usize)` pointers in `work`.
        let func: fn(usize) = unsafe { core::mem::transmute::<usize, fn(usize)>(f) };
        func(me.arg.load(Ordering::Acquire));
        me.work.store(0, Ordering::Release);
        me.done.fetch_add(1, Ordering::AcqRel);
        let requester = me.requester.load(Ordering::Acquire);
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
    let me = this_cpu();
    let mut r = REQUESTS[requester % NR_CPUS].lock();
    if me.work.load(Ordering::Acquire) != 0 {
        r.answer = Some(Err("CPU busy"));
        return;
    }
    let ticket = me.done.load(Ordering::Acquire) + 1;
    me.requester.store(requester, Ordering::Release);
    me.arg.store(r.arg, Ordering::Release);
    me.work.store(r.func, Ordering::Release);
    r.answer = Some(Ok(ticket));
}

/// Hands `f(arg)` to `cpu` (online, idle, not this one) through
/// [`smp_call_function_single`]: the target accepts it in the IPI and runs it in its
/// idle loop, in task context. Returns a ticket for [`wait`].
pub fn run_on(cpu: usize, f: fn(usize), arg: usize) -> Result<u64, &'static str> {
    let me = boot::cpu::cpu_id();
    if cpu >= NR_CPUS || online_mask() & (1 << cpu) == 0 || cpu == me {
        return Err("CPU not online (or is the caller)");
    }
    {
        let mut r = REQUESTS[me].lock();
        r.func = f as usize;
        r.arg = arg;
        r.answer = None;
    }
    smp_call_function_single(cpu, accept_work, me, true).map_err(|_| "CPU did not answer")?;
    REQUESTS[me].lock().answer.take().unwrap_or(Err("CPU did not answer"))
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
pub fn wait(cpu: usize, ticket: u64, interrupted: impl Fn() -> bool) -> Result<(), &'static str> {
    let done = || PERCPU[cpu].done.load(Ordering::Acquire) >= ticket;
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

/// Cross-CPU calls one CPU can have queued.
const CALL_QUEUE_LEN: usize = 8;
/// No CPU waits for this call.
const NO_WAITER: usize = usize::MAX;

#[derive(Clone, Copy)]
struct Call {
    func: fn(usize),
    arg: usize,
    ticket: u64,
    waiter: usize,
}

struct CallQueue {
    calls: [Option<Call>; CALL_QUEUE_LEN],
    queued: u64,
}

static CALL_QUEUES: [SpinLock<CallQueue>; NR_CPUS] =
    [const { SpinLock::new(CallQueue { calls: [None; CALL_QUEUE_LEN], queued: 0 }) }; NR_CPUS];
/// Ticket of the last call each CPU completed (calls run in ticket order).
static CALLS_DONE: [AtomicU64; NR_CPUS] = [const { AtomicU64::new(0) }; NR_CPUS];

/// Why a cross-CPU call did not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The CPU is not online.
    Offline,
    /// Its call queue is full.
    Busy,
    /// Waiting needs interrupts enabled (the target may be waiting for this CPU).
    IrqsDisabled,
    /// The CPU did not answer within a second.
    Timeout,
}

/// How long a caller waits for a cross-CPU call before giving up.
const CALL_TIMEOUT_US: u64 = 1_000_000;

fn queue_call(cpu: usize, func: fn(usize), arg: usize, wait: bool) -> Result<u64, CallError> {
    if cpu >= NR_CPUS || online_mask() & (1 << cpu) == 0 {
        return Err(CallError::Offline);
    }
    let ticket = {
        let mut q = CALL_QUEUES[cpu].lock();
        let ticket = q.queued + 1;
        let waiter = if wait { boot::cpu::cpu_id() } else { NO_WAITER };
        let slot = q.calls.iter_mut().find(|c| c.is_none()).ok_or(CallError::Busy)?;
        *slot = Some(Call { func, arg, ticket, waiter });
        q.queued = ticket;
        ticket
    };
    ipi::send(cpu, Ipi::CallFunc);
    Ok(ticket)
}

fn wait_call(cpu: usize, ticket: u64) -> Result<(), CallError> {
    let done = || CALLS_DONE[cpu].load(Ordering::Acquire) >= ticket;
    if idle::wait_until_timeout(done, crate::timer::us_to_ticks(CALL_TIMEOUT_US)) {
        Ok(())
    } else {
        pr_err!("smp: CPU{} did not run a function call within 1 s", cpu);
        Err(CallError::Timeout)
    }
}

/// Linux's `smp_call_function_single`: runs `func(arg)` on `cpu` in interrupt context
/// (on this CPU directly, with interrupts masked, if `cpu` is this one); with `wait`,
/// returns once it has run. Waiting needs interrupts enabled.
pub fn smp_call_function_single(cpu: usize, func: fn(usize), arg: usize, wait: bool) -> Result<(), CallError> {
    if cpu == boot::cpu::cpu_id() {
        let _irq = mm::sync::IrqGuard::new();
        func(arg);
        return Ok(());
    }
    if wait && mm::sync::irqs_disabled() {
        return Err(CallError::IrqsDisabled);
    }
    let ticket = queue_call(cpu, func, arg, wait)?;
    if wait {
        wait_call(cpu, ticket)?;
    }
    Ok(())
}

/// Linux's `smp_call_function_many`: runs `func(arg)` on every online CPU of `mask`
/// except this one, in interrupt context, all at once; with `wait`, returns once all
/// have run. Returns the mask of CPUs that ran it.
pub fn smp_call_function_many(mask: usize, func: fn(usize), arg: usize, wait: bool) -> usize {
    let me = boot::cpu::cpu_id();
    if wait && mm::sync::irqs_disabled() {
        return 0;
    }
    let mut tickets = [None; NR_CPUS];
    for (cpu, t) in tickets.iter_mut().enumerate() {
        if cpu != me && mask & (1 << cpu) != 0 {
            *t = queue_call(cpu, func, arg, wait).ok();
        }
    }
    let mut ran = 0;
    for (cpu, t) in tickets.iter().enumerate() {
        if let Some(t) = t {
            if !wait || wait_call(cpu, *t).is_ok() {
                ran |= 1 << cpu;
            }
        }
    }
    ran
}

/// Runs this CPU's queued calls (the function-call IPI), in ticket order, and wakes
/// the CPUs waiting for them.
pub fn generic_smp_call_function_interrupt(cpu: usize) {
    loop {
        let call = {
            let mut q = CALL_QUEUES[cpu].lock();
            let next = q.calls.iter_mut().filter(|c| c.is_some()).min_by_key(|c| c.map_or(u64::MAX, |c| c.ticket));
            match next {
                Some(slot) => slot.take(),
                None => return,
            }
        };
        let Some(c) = call else { return };
        (c.func)(c.arg);
        CALLS_DONE[cpu].fetch_max(c.ticket, Ordering::AcqRel);
        if c.waiter != NO_WAITER && c.waiter != cpu {
            ipi::send(c.waiter, Ipi::Reschedule);
        }
    }
}

/// Parks every other CPU (a panic): the CPU-stop IPI.
pub fn stop_other_cpus() {
    let me = boot::cpu::cpu_id();
    for cpu in 0..NR_CPUS {
        if cpu != me && online_mask() & (1 << cpu) != 0 {
            ipi::send(cpu, Ipi::CpuStop);
        }
    }
}
