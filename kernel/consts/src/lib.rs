//! The kernel's build-time facts, each defined once.
//!
//! Linux keeps these in a layer of headers every other part includes: `asm/page-def.h`
//! (page size), `asm/memory.h` (the virtual address layout, the image and stack
//! placement, the memory types), `asm/pgtable-hwdef.h` (descriptor bits) and
//! `CONFIG_NR_CPUS`. This crate is that layer: no dependencies and no code beyond
//! `const fn` arithmetic, so the assembly entry (`boot`), the drivers (`board`), the
//! chainloader, the memory-management core (`mm`, which re-exports them under its old
//! paths) and the kernel all take the same values, and the compile-time asserts below
//! tie together the facts that depend on each other. `linker/kernel.ld` and
//! `boot/src/entry.S` keep no copies of their own: entry.S gets its values as
//! `global_asm!` operands and exports the ones the linker script asserts against.
#![no_std]

pub mod memory;
pub mod page_def;
pub mod pgtable_hwdef;

/// Number of CPUs the kernel supports (the BCM2837's four Cortex-A53 cores): the size of
/// every per-CPU array, in `mm`, the kernel and `boot`'s emergency stacks.
pub const NR_CPUS: usize = 4;

/// log2 of the size of a CPU's per-CPU block (the kernel's `percpu::PerCpu`, 64 bytes: a
/// cache line): `entry.S` points each core's TPIDR_EL1 at block `cpu << PERCPU_SHIFT`
/// of the kernel's `__per_cpu_blocks` before any Rust runs.
pub const PERCPU_SHIFT: u32 = 6;

const _: () = {
    assert!(NR_CPUS > 0 && NR_CPUS.is_power_of_two(), "vectors.S finds a CPU's emergency stack with a mask");
    assert!(NR_CPUS <= usize::BITS as usize, "CPU masks are one bit per CPU in a usize");
};
