//! Which CPU this is, and which CPUs are online: the lowest kernel layer every per-CPU
//! table builds on. A CPU is named by mm's [`CpuId`] (checked once against `NR_CPUS`,
//! so per-CPU arrays index without a bounds failure), and there is one way to ask for
//! the running one, [`smp_processor_id`] (Linux's name).
//!
//! Each CPU's TPIDR_EL1 points at its [`PerCpu`] block, set by `boot/src/entry.S`
//! before the CPU runs any Rust (the blocks are exported as `__per_cpu_blocks`, one
//! every `1 << PERCPU_SHIFT` bytes, CPU n at block n); reading it is a plain register
//! read and one load, with no test: MPIDR_EL1 goes through a helper under QEMU (about
//! 28 ns a read, measured, a tenth of a kmalloc+kfree pair), and a test for an unset
//! register cost every kmalloc and kfree a branch.

pub use consts::{NR_CPUS, PERCPU_SHIFT};
pub use mm::cpu::CpuId;

use core::sync::atomic::{AtomicUsize, Ordering};

/// What each CPU keeps for itself, reached through TPIDR_EL1.
#[repr(C, align(64))]
pub struct PerCpu {
    /// This CPU's number.
    pub cpu: CpuId,
}

const _: () =
    assert!(core::mem::size_of::<PerCpu>() == 1 << PERCPU_SHIFT, "entry.S strides the blocks by PERCPU_SHIFT");

/// Every CPU's block; `entry.S` loads its address (the name is its interface).
#[export_name = "__per_cpu_blocks"]
static PERCPU: [PerCpu; NR_CPUS] = {
    let mut a = [const { PerCpu { cpu: CpuId::BOOT } }; NR_CPUS];
    let mut i = 0;
    while i < NR_CPUS {
        a[i] = PerCpu { cpu: CpuId::of(i) };
        i += 1;
    }
    a
};

/// This CPU's per-CPU data (through TPIDR_EL1).
#[inline(always)]
pub fn this_cpu() -> &'static PerCpu {
    let p = boot::cpu::this_cpu_ptr();
    // SAFETY: entry.S set TPIDR_EL1 to `&PERCPU[cpu]` before this CPU ran any Rust, and
    // nothing writes it since; PERCPU is a static.
    unsafe { &*(p as *const PerCpu) }
}

/// The running CPU (Linux's `smp_processor_id()`).
#[inline(always)]
pub fn smp_processor_id() -> CpuId {
    this_cpu().cpu
}

static ONLINE: AtomicUsize = AtomicUsize::new(1);

/// Bitmask of online CPUs (bit n: CPU n).
pub fn online_mask() -> usize {
    ONLINE.load(Ordering::Acquire)
}

/// Whether `cpu` is online.
pub fn cpu_online(cpu: CpuId) -> bool {
    online_mask() & (1 << cpu.index()) != 0
}

/// Marks this CPU online (Linux's `set_cpu_online`), once it takes interrupts.
pub fn set_cpu_online(cpu: CpuId) {
    ONLINE.fetch_or(1 << cpu.index(), Ordering::AcqRel);
}
