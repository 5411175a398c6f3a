//! The BCM2836/7 ARM-local interrupt controller at 0x4000_0000: per-core routing of the
//! generic-timer interrupts, the four mailboxes of each core (used for IPIs), the
//! per-core IRQ source register and the routing of the GPU (BCM2835 controller)
//! interrupt to one core. Linux's driver is `drivers/irqchip/irq-bcm2836.c`.
//!
//! Source of every register used here: "BCM2836 ARM-local peripherals" (Raspberry Pi
//! document QA7_rev3.4), sections 4.3 (GPU interrupt routing, 0x0C), the PMU interrupt routing
//! set/clear registers (0x10/0x14), 4.6 (core timers interrupt control, 0x40), 4.7 (core
//! mailboxes interrupt control, 0x50), 4.10 (core interrupt sources, 0x60) and 4.11
//! (mailbox write-set 0x80 and read/write-clear 0xC0), and the AXI-outstanding
//! interrupt (0x30, bit 20 its enable) and local timer (0x34, bit 29 its interrupt
//! enable) registers, which are only ever turned off here. Only these documented
//! registers are touched. QEMU implements the routing and mailboxes
//! (`hw/intc/bcm2836_control.c`).
//!
//! A source this kernel has no handler for (the PMU, the AXI counter, the local timer,
//! another core timer) would stay raised and re-enter the IRQ vector for ever, so the
//! interrupt code masks it where it is routed: [`mask_source`], whose register logic is
//! tested on the host over a simulated block.
//!
//! The block is not inside the BCM2835 peripheral window, so it has its own virtual
//! base ([`set_base`]): the identity-mapped physical address until the kernel has
//! ioremapped it.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {
    u32,
    /// Core timers interrupt control (QA7 4.6): which timer raises this core's IRQ.
    pub TIMER_CNTRL [
        /// Secure physical timer (CNTPS) IRQ.
        CNTPS_IRQ OFFSET(0) NUMBITS(1) [],
        /// Non-secure physical timer (CNTPNS) IRQ.
        CNTPNS_IRQ OFFSET(1) NUMBITS(1) [],
        /// Hypervisor timer (CNTHP) IRQ.
        CNTHP_IRQ OFFSET(2) NUMBITS(1) [],
        /// Virtual timer (CNTV) IRQ.
        CNTV_IRQ OFFSET(3) NUMBITS(1) []
    ],
    /// GPU interrupts routing (QA7 4.3).
    pub GPU_ROUTING [
        /// Core that receives the GPU IRQ.
        IRQ_CORE OFFSET(0) NUMBITS(2) [],
        /// Core that receives the GPU FIQ.
        FIQ_CORE OFFSET(2) NUMBITS(2) []
    ],
    /// AXI-outstanding interrupt (0x30): the time-out and its enable.
    pub AXI_IRQ [
        /// AXI-outstanding time-out, most significant 20 bits.
        TIMEOUT OFFSET(0) NUMBITS(20) [],
        /// AXI-outstanding interrupt enable (routed to core 0 only).
        INT_ENABLE OFFSET(20) NUMBITS(1) []
    ],
    /// Local timer control and status (0x34).
    pub LOCAL_TIMER_CTL [
        /// Reload value.
        RELOAD OFFSET(0) NUMBITS(28) [],
        /// Timer enable.
        ENABLE OFFSET(28) NUMBITS(1) [],
        /// Interrupt enable.
        INT_ENABLE OFFSET(29) NUMBITS(1) [],
        /// Interrupt flag (read only).
        INT_FLAG OFFSET(31) NUMBITS(1) []
    ]
}

register_structs! {
    /// The ARM-local registers this kernel uses (QA7 section 4).
    pub LocalRegisters {
        (0x00 => _control),
        (0x0c => gpu_int_routing: ReadWrite<u32, GPU_ROUTING::Register>),
        (0x10 => pmu_routing_set: WriteOnly<u32>),
        (0x14 => pmu_routing_clear: WriteOnly<u32>),
        (0x18 => _reserved0),
        (0x30 => axi_irq: ReadWrite<u32, AXI_IRQ::Register>),
        (0x34 => local_timer_ctl: ReadWrite<u32, LOCAL_TIMER_CTL::Register>),
        (0x38 => _local_timer_flags),
        (0x40 => timer_int_ctrl: [ReadWrite<u32, TIMER_CNTRL::Register>; 4]),
        (0x50 => mailbox_int_ctrl: [ReadWrite<u32>; 4]),
        (0x60 => irq_source: [ReadOnly<u32>; 4]),
        (0x70 => _fiq_source),
        (0x80 => mailbox_set: [WriteOnly<u32>; 16]),
        (0xc0 => mailbox_rdclr: [ReadWrite<u32>; 16]),
        (0x100 => @END),
    }
}

/// Bits of a core's IRQ source register (QA7 4.10).
pub mod source {
    /// Secure physical timer.
    pub const CNTPS: u32 = 1 << 0;
    /// Non-secure physical timer.
    pub const CNTPNS: u32 = 1 << 1;
    /// Hypervisor timer.
    pub const CNTHP: u32 = 1 << 2;
    /// Virtual timer.
    pub const CNTV: u32 = 1 << 3;
    /// Mailbox `m` (0..=3) is `MAILBOX0 << m`.
    pub const MAILBOX0: u32 = 1 << 4;
    /// The GPU interrupt (the BCM2835 controller has something pending).
    pub const GPU: u32 = 1 << 8;
    /// Performance monitors.
    pub const PMU: u32 = 1 << 9;
    /// AXI-outstanding counter (core 0 only).
    pub const AXI: u32 = 1 << 10;
    /// Local timer.
    pub const LOCAL_TIMER: u32 = 1 << 11;
}

/// What [`mask_source`] did about one pending source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Masked {
    /// Turned off at its routing or enable register in this block, by this name.
    Off(&'static str),
    /// Nothing here masks it: the GPU input (mask its sources at the BCM2835
    /// controller) or a bit the document reserves.
    NotHere,
}

/// Stops source `bit` (a bit number of the IRQ source register, [`source`]) from
/// interrupting `core`, where the block routes or enables it: a core timer or mailbox
/// loses its IRQ and FIQ enable for this core, the PMU its routing to this core, the
/// AXI counter and the local timer their interrupt enable. Everything else in `regs` is
/// left as it was.
pub fn mask_source(regs: &LocalRegisters, core: usize, bit: u32) -> Masked {
    let core = core & 3;
    match bit {
        0..=3 => {
            let ctl = &regs.timer_int_ctrl[core];
            ctl.set(ctl.get() & !((1 << bit) | (1 << (bit + 4))));
            Masked::Off(["CNTPS timer", "CNTPNS timer", "CNTHP timer", "CNTV timer"][bit as usize])
        }
        4..=7 => {
            let m = bit - 4;
            let ctl = &regs.mailbox_int_ctrl[core];
            ctl.set(ctl.get() & !((1 << m) | (1 << (m + 4))));
            Masked::Off(["mailbox 0", "mailbox 1", "mailbox 2", "mailbox 3"][m as usize])
        }
        9 => {
            // Write-1-to-clear: IRQ routing bit `core`, FIQ routing bit `core + 4`.
            regs.pmu_routing_clear.set((1 << core) | (1 << (core + 4)));
            Masked::Off("PMU")
        }
        10 => {
            regs.axi_irq.write(AXI_IRQ::INT_ENABLE::CLEAR + AXI_IRQ::TIMEOUT.val(regs.axi_irq.read(AXI_IRQ::TIMEOUT)));
            Masked::Off("AXI-outstanding counter")
        }
        11 => {
            let ctl = &regs.local_timer_ctl;
            ctl.set(ctl.get() & !(LOCAL_TIMER_CTL::INT_ENABLE::SET.value | LOCAL_TIMER_CTL::INT_FLAG::SET.value));
            Masked::Off("local timer")
        }
        _ => Masked::NotHere,
    }
}

/// Masks every source this block routes to `core` (its core timers, its mailboxes, the
/// PMU): what a CPU that halts for good does, so that nothing stays pending to wake its
/// `wfi` over and over. The GPU input, the AXI counter and the local timer are shared
/// and left alone.
pub fn mask_core(regs: &LocalRegisters, core: usize) {
    let core = core & 3;
    regs.timer_int_ctrl[core].set(0);
    regs.mailbox_int_ctrl[core].set(0);
    regs.pmu_routing_clear.set((1 << core) | (1 << (core + 4)));
}

#[cfg(target_os = "none")]
pub use hw::*;

#[cfg(target_os = "none")]
mod hw {
    use super::*;
    use core::sync::atomic::{AtomicUsize, Ordering};

    /// Physical address of the block.
    pub const PHYS: usize = crate::mmio::LOCAL_PHYS;

    static BASE: AtomicUsize = AtomicUsize::new(PHYS);

    /// Moves the driver to the block's virtual address (after ioremap).
    pub fn set_base(virt: usize) {
        BASE.store(virt, Ordering::Release);
    }

    fn regs() -> &'static LocalRegisters {
        // SAFETY: BASE is the block's identity-mapped physical address or its ioremapped
        // (Device memory) address; LocalRegisters covers documented registers only and
        // allows only volatile access.
        unsafe { &*(BASE.load(Ordering::Acquire) as *const LocalRegisters) }
    }

    /// Routes the GPU IRQ (the BCM2835 controller's output) to `core` (QA7 4.3).
    pub fn route_gpu_irq(core: usize) {
        regs().gpu_int_routing.write(GPU_ROUTING::IRQ_CORE.val(core as u32 & 3) + GPU_ROUTING::FIQ_CORE.val(0));
    }

    /// Lets `core`'s virtual timer (CNTV) raise its IRQ (QA7 4.6); no other timer, no FIQ.
    pub fn enable_virtual_timer_irq(core: usize) {
        regs().timer_int_ctrl[core & 3].write(TIMER_CNTRL::CNTV_IRQ::SET);
    }

    /// Lets mailbox `mailbox` of `core` raise its IRQ (QA7 4.7); the others stay off.
    pub fn enable_mailbox_irq(core: usize, mailbox: usize) {
        regs().mailbox_int_ctrl[core & 3].set(1 << (mailbox & 3));
    }

    /// `core`'s pending IRQ sources ([`source`] bits).
    pub fn irq_source(core: usize) -> u32 {
        regs().irq_source[core & 3].get()
    }

    /// Sets `bits` in mailbox `mailbox` of `core` (write-set register, QA7 4.11): the
    /// mailbox's interrupt stays raised until every bit is cleared.
    pub fn mailbox_set(core: usize, mailbox: usize, bits: u32) {
        regs().mailbox_set[(core & 3) * 4 + (mailbox & 3)].set(bits);
    }

    /// Reads mailbox `mailbox` of `core`.
    pub fn mailbox_read(core: usize, mailbox: usize) -> u32 {
        regs().mailbox_rdclr[(core & 3) * 4 + (mailbox & 3)].get()
    }

    /// Clears `bits` of mailbox `mailbox` of `core` (write-high-to-clear, QA7 4.11).
    pub fn mailbox_clear(core: usize, mailbox: usize, bits: u32) {
        regs().mailbox_rdclr[(core & 3) * 4 + (mailbox & 3)].set(bits);
    }

    /// Masks source `bit` of `core` where this block routes it ([`mask_source`]).
    pub fn mask(core: usize, bit: u32) -> Masked {
        mask_source(regs(), core, bit)
    }

    /// Masks every source this block routes to `core` ([`mask_core`]).
    pub fn mask_all(core: usize) {
        mask_core(regs(), core)
    }

    /// The core the GPU IRQ is routed to (QA7 4.3).
    pub fn gpu_irq_core() -> usize {
        regs().gpu_int_routing.read(GPU_ROUTING::IRQ_CORE) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The block in ordinary memory, as the device would show it.
    #[repr(C, align(4))]
    struct Simulated([u32; 0x100 / 4]);

    impl Simulated {
        fn regs(&self) -> &LocalRegisters {
            // SAFETY: the register block is 0x100 bytes of u32 cells with interior
            // mutability (UnsafeCell inside), the same size and alignment as `Simulated`.
            unsafe { &*(self as *const Simulated as *const LocalRegisters) }
        }
    }

    const PMU_CLEAR: usize = 0x14 / 4;
    const AXI: usize = 0x30 / 4;
    const LOCAL_TIMER: usize = 0x34 / 4;
    const TIMERS: usize = 0x40 / 4;
    const MAILBOXES: usize = 0x50 / 4;
    const GPU_ROUTE: usize = 0x0c / 4;

    /// Every enable this kernel could find on: all timer and mailbox IRQ/FIQ bits of
    /// every core, the AXI and local timer interrupts with their settings.
    fn all_on() -> Simulated {
        let mut sim = Simulated([0; 0x100 / 4]);
        for c in 0..4 {
            sim.0[TIMERS + c] = 0xff;
            sim.0[MAILBOXES + c] = 0xff;
        }
        sim.0[AXI] = (1 << 20) | 0x1234;
        sim.0[LOCAL_TIMER] = (1 << 29) | (1 << 28) | 0x0ab_cdef;
        sim.0[GPU_ROUTE] = 2;
        sim
    }

    /// Runs `mask_source` on a fresh block and returns the words that changed.
    fn changes(core: usize, bit: u32) -> (Masked, Vec<(usize, u32)>) {
        let sim = all_on();
        let before = all_on();
        let m = mask_source(sim.regs(), core, bit);
        let changed = (0..0x40).filter(|&i| sim.0[i] != before.0[i]).map(|i| (i * 4, sim.0[i])).collect();
        (m, changed)
    }

    #[test]
    fn each_unhandled_source_is_masked_where_it_is_routed() {
        // Core timers: the IRQ and FIQ enable of that timer, on that core only.
        assert_eq!(changes(2, 1), (Masked::Off("CNTPNS timer"), vec![(0x48, 0xff & !0x22)]));
        assert_eq!(changes(0, 0), (Masked::Off("CNTPS timer"), vec![(0x40, 0xee)]));
        // Mailbox 3 of core 1.
        assert_eq!(changes(1, 7), (Masked::Off("mailbox 3"), vec![(0x54, 0x77)]));
        // PMU: core 3's IRQ and FIQ routing, written to the write-1-to-clear register.
        assert_eq!(changes(3, 9), (Masked::Off("PMU"), vec![(0x14, 0x88)]));
        // AXI: the enable goes, the time-out stays.
        assert_eq!(changes(0, 10), (Masked::Off("AXI-outstanding counter"), vec![(0x30, 0x1234)]));
        // Local timer: the interrupt enable goes, the timer and its reload stay.
        assert_eq!(changes(0, 11), (Masked::Off("local timer"), vec![(0x34, (1 << 28) | 0x0ab_cdef)]));
    }

    #[test]
    fn the_gpu_input_and_reserved_bits_are_not_masked_here() {
        for bit in [8, 12, 17, 31] {
            assert_eq!(changes(0, bit), (Masked::NotHere, vec![]), "bit {bit}");
        }
    }

    #[test]
    fn a_halting_core_masks_only_its_own_sources() {
        let sim = all_on();
        mask_core(sim.regs(), 1);
        assert_eq!((sim.0[TIMERS + 1], sim.0[MAILBOXES + 1], sim.0[PMU_CLEAR]), (0, 0, 0x22));
        for c in [0, 2, 3] {
            assert_eq!((sim.0[TIMERS + c], sim.0[MAILBOXES + c]), (0xff, 0xff), "core {c} untouched");
        }
        assert_eq!(sim.0[AXI], (1 << 20) | 0x1234, "shared sources untouched");
        assert_eq!(sim.0[GPU_ROUTE], 2);
    }
}
