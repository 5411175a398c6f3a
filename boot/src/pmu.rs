//! This core's Performance Monitors Unit (PMUv3): the cycle counter and one event counter
//! counting retired instructions (event 0x08, `INST_RETIRED`), as Linux's
//! `arch/arm64/kernel/perf_event.c` programs them.
//!
//! `aarch64-cpu` has no PMU registers, so each one used here is a typed register of its own
//! (the crate's pattern: `tock-registers` bitfields, `Readable`/`Writeable` through
//! `mrs`/`msr`). The kernel runs at EL1, and EL1 sees the counters only as EL2 left them:
//! `entry.S` gives EL1 every counter (MDCR_EL2.HPMN = PMCR_EL0.N) and no traps before it
//! drops from EL2, and at EL3 (no firmware stub) clears MDCR_EL3 first. On a real Pi the
//! firmware's armstub8 runs at EL3 first and leaves the PMU to the non-secure side.
//!
//! The counts are this core's only (Real hardware: each Cortex-A53 has its own PMU); they
//! include whatever runs at EL1 and EL0 in between, interrupt handlers too. Event counters
//! are 32 bits wide on ARMv8.0 (no PMCR_EL0.LP): [`InstCounter`] extends the count to 64
//! bits in software, exact while it is polled at least once per 2^32 instructions.

use aarch64_cpu::registers::ID_AA64DFR0_EL1;
use core::arch::asm;
use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};
use tock_registers::register_bitfields;

/// The architected event number of instructions architecturally executed.
pub const INST_RETIRED: u64 = 0x08;

register_bitfields! {u64,
    /// Performance Monitors Control Register.
    pub PMCR_EL0 [
        /// Event counters available at this EL (from EL1: MDCR_EL2.HPMN).
        N OFFSET(11) NUMBITS(5) [],
        /// Cycle counter overflow at bit 63 rather than 31.
        LC OFFSET(6) NUMBITS(1) [],
        /// Cycle counter counts every 64th cycle.
        D OFFSET(3) NUMBITS(1) [],
        /// Write 1: reset the cycle counter.
        C OFFSET(2) NUMBITS(1) [],
        /// Write 1: reset every event counter.
        P OFFSET(1) NUMBITS(1) [],
        /// Enable: every counter enabled in PMCNTENSET_EL0 counts.
        E OFFSET(0) NUMBITS(1) []
    ],
    /// Counter enable set (writes of 1 enable; reads show what is enabled).
    pub PMCNTENSET_EL0 [
        /// The cycle counter.
        C OFFSET(31) NUMBITS(1) [],
        /// Event counter 0.
        P0 OFFSET(0) NUMBITS(1) []
    ],
    /// Overflow interrupt enable clear (writes of 1 disable), PMCNTENSET_EL0's layout.
    pub PMINTENCLR_EL1 [
        /// The cycle counter.
        C OFFSET(31) NUMBITS(1) [],
        /// Event counter 0.
        P0 OFFSET(0) NUMBITS(1) []
    ],
    /// Common event identification: bit n set if event n is implemented (events 0-31).
    pub PMCEID0_EL0 [
        /// INST_RETIRED (0x08).
        INST_RETIRED OFFSET(8) NUMBITS(1) []
    ],
    /// Event type of one event counter (also the cycle counter's filter, PMCCFILTR_EL0,
    /// whose event field is zero).
    pub PMEVTYPER_EL0 [
        /// Do not count at EL1.
        P OFFSET(31) NUMBITS(1) [],
        /// Do not count at EL0.
        U OFFSET(30) NUMBITS(1) [],
        /// Non-secure EL1: counted only when equal to P.
        NSK OFFSET(29) NUMBITS(1) [],
        /// Non-secure EL0: counted only when equal to U.
        NSU OFFSET(28) NUMBITS(1) [],
        /// Count at EL2 too.
        NSH OFFSET(27) NUMBITS(1) [],
        /// The event number.
        evtCount OFFSET(0) NUMBITS(10) []
    ]
}

/// A system register read with `mrs` and written with `msr`.
macro_rules! sysreg {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $fields:ty, rw) => {
        sysreg!($(#[$doc])* $ty, $name, $fields, ro);
        impl Writeable for $ty {
            type T = u64;
            type R = $fields;
            fn set(&self, value: u64) {
                // SAFETY: a PMU register of this core; EL1 may write it (MDCR_EL2 does not
                // trap it, see the module comment); the counters change nothing else.
                unsafe { asm!(concat!("msr ", $name, ", {}"), in(reg) value, options(nomem, nostack, preserves_flags)) };
            }
        }
    };
    ($(#[$doc:meta])* $ty:ident, $name:literal, $fields:ty, ro) => {
        $(#[$doc])*
        pub struct $ty;
        impl Readable for $ty {
            type T = u64;
            type R = $fields;
            fn get(&self) -> u64 {
                let v: u64;
                // SAFETY: reads a PMU register of this core, which EL1 may read.
                unsafe { asm!(concat!("mrs {}, ", $name), out(reg) v, options(nomem, nostack, preserves_flags)) };
                v
            }
        }
    };
}

sysreg!(
    /// PMCR_EL0.
    Pmcr, "pmcr_el0", PMCR_EL0::Register, rw
);
sysreg!(
    /// PMCNTENSET_EL0.
    Pmcntenset, "pmcntenset_el0", PMCNTENSET_EL0::Register, rw
);
sysreg!(
    /// PMINTENCLR_EL1.
    Pmintenclr, "pmintenclr_el1", PMINTENCLR_EL1::Register, rw
);
sysreg!(
    /// PMCEID0_EL0.
    Pmceid0, "pmceid0_el0", PMCEID0_EL0::Register, ro
);
sysreg!(
    /// PMCCFILTR_EL0: which exception levels the cycle counter counts.
    Pmccfiltr, "pmccfiltr_el0", PMEVTYPER_EL0::Register, rw
);
sysreg!(
    /// PMEVTYPER0_EL0: event counter 0's event and filter (the instruction counter's: nothing
    /// else in the kernel programs event counters).
    Pmevtyper0, "pmevtyper0_el0", PMEVTYPER_EL0::Register, rw
);
sysreg!(
    /// PMEVCNTR0_EL0: event counter 0 (32 bits on ARMv8.0).
    Pmevcntr0, "pmevcntr0_el0", (), rw
);

/// PMCR_EL0.
pub const PMCR: Pmcr = Pmcr;
/// PMCNTENSET_EL0.
pub const PMCNTENSET: Pmcntenset = Pmcntenset;
/// PMCEID0_EL0.
pub const PMCEID0: Pmceid0 = Pmceid0;

/// Whether the core has a PMU (ID_AA64DFR0_EL1.PMUVer neither 0 nor IMPLEMENTATION
/// DEFINED).
pub fn present() -> bool {
    let ver = ID_AA64DFR0_EL1.read(ID_AA64DFR0_EL1::PMUVer);
    ver != 0 && ver != 0xf
}

/// Starts this core's cycle counter (PMCR_EL0.E, PMCNTENSET_EL0.C), counting every
/// cycle (PMCR_EL0.D clear) at EL0 and EL1 (PMCCFILTR_EL0 clear: its reset value is
/// UNKNOWN on real hardware). Only on a core where [`present`] says so.
pub fn cycle_counter_enable() {
    Pmccfiltr.set(0);
    // Real hardware: PMINTENSET_EL1 resets to an UNKNOWN value; no overflow interrupt is
    // wanted (the BCM2837 routes none by default either). Linux's PMU reset does the same.
    Pmintenclr.write(PMINTENCLR_EL1::C::SET);
    PMCR.modify(PMCR_EL0::D::CLEAR + PMCR_EL0::E::SET);
    PMCNTENSET.write(PMCNTENSET_EL0::C::SET);
    crate::cpu::isb();
}

/// This core's cycle counter (PMCCNTR_EL0; started by [`cycle_counter_enable`]); the
/// `isb` first keeps earlier instructions from being counted after the read.
pub fn cycles() -> u64 {
    let c: u64;
    // SAFETY: reads PMCCNTR_EL0, which EL1 may read.
    unsafe { asm!("isb", "mrs {}, pmccntr_el0", out(reg) c, options(nostack, preserves_flags)) };
    c
}

/// Why this core cannot count instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoInstCounter {
    /// No PMU at all.
    NoPmu,
    /// No event counter at EL1 (PMCR_EL0.N is 0: none implemented, or MDCR_EL2.HPMN
    /// reserved them all for EL2).
    NoEventCounter,
    /// The core does not implement event 0x08 (PMCEID0_EL0 bit 8 clear; QEMU counts it
    /// only with `-icount`).
    NotImplemented,
}

impl NoInstCounter {
    /// Why, in a few words (a report's rows).
    pub fn reason(self) -> &'static str {
        match self {
            NoInstCounter::NoPmu => "no PMU",
            NoInstCounter::NoEventCounter => "no event counter",
            NoInstCounter::NotImplemented => "no INST_RETIRED",
        }
    }

    /// Why, with the register that says so (a report's header).
    pub fn detail(self) -> &'static str {
        match self {
            NoInstCounter::NoPmu => "absent: no PMU (ID_AA64DFR0_EL1.PMUVer)",
            NoInstCounter::NoEventCounter => "absent: no event counter at EL1 (PMCR_EL0.N = 0)",
            NoInstCounter::NotImplemented => {
                "absent: INST_RETIRED not implemented (PMCEID0_EL0 bit 8 clear; QEMU counts it only with -icount)"
            }
        }
    }
}

/// This core's retired-instruction count, 64 bits wide in software: `start` programs
/// event counter 0 with [`INST_RETIRED`] and starts it; [`poll`](Self::poll) adds what
/// the 32-bit hardware counter moved since the last poll (modulo 2^32), so the total is
/// exact while polls are less than 2^32 instructions apart. One per core, used on that
/// core.
pub struct InstCounter {
    last: u32,
    total: u64,
}

impl InstCounter {
    /// Programs and starts the counter, or says why this core has none. Counts EL0 and
    /// EL1 (non-secure too: NSK = P = 0, NSU = U = 0), not EL2.
    pub fn start() -> Result<InstCounter, NoInstCounter> {
        if !present() {
            return Err(NoInstCounter::NoPmu);
        }
        if PMCR.read(PMCR_EL0::N) == 0 {
            return Err(NoInstCounter::NoEventCounter);
        }
        if !PMCEID0.is_set(PMCEID0_EL0::INST_RETIRED) {
            return Err(NoInstCounter::NotImplemented);
        }
        Pmevtyper0.write(PMEVTYPER_EL0::evtCount.val(INST_RETIRED));
        // No overflow interrupt (see `cycle_counter_enable`): the counter wraps every 2^32
        // instructions, and `poll` accounts for that.
        Pmintenclr.write(PMINTENCLR_EL1::P0::SET);
        PMCR.modify(PMCR_EL0::E::SET);
        PMCNTENSET.write(PMCNTENSET_EL0::P0::SET);
        crate::cpu::isb();
        Ok(InstCounter { last: read_inst(), total: 0 })
    }

    /// Instructions counted since [`start`](Self::start) (this poll included).
    #[inline]
    pub fn poll(&mut self) -> u64 {
        let now = read_inst();
        self.total += extend32(self.last, now);
        self.last = now;
        self.total
    }
}

/// Event counter 0 (the instruction counter), after an `isb` as [`cycles`].
#[inline]
fn read_inst() -> u32 {
    crate::cpu::isb();
    Pmevcntr0.get() as u32
}

/// How far a 32-bit counter moved from `last` to `now`: exact if it moved less than 2^32.
#[inline]
pub const fn extend32(last: u32, now: u32) -> u64 {
    now.wrapping_sub(last) as u64
}
