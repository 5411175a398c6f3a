//! The interrupt controllers' setup: the BCM2836 local controller mapped with
//! `ioremap` and both controllers put in a known state at boot ([`init`]), and each
//! CPU's own sources unmasked as it comes up ([`init_this_cpu`]).

use crate::percpu::smp_processor_id;
use board::bcm2835_intc as armctrl;
use board::bcm2836_local as local;
use core::sync::atomic::Ordering::Relaxed;

/// Boot CPU: maps the local controller, puts both controllers in a known state (every
/// GPU source off, the GPU interrupt routed to core 0, as Linux's bcm2836 driver does),
/// then this CPU's local sources. Interrupts are unmasked by the caller once handlers
/// exist.
pub fn init() {
    let pa = mm::addr::PhysAddr::new(local::PHYS as u64);
    match crate::mm::vmalloc::ioremap(pa, board::mmio::LOCAL_SIZE, "bcm2836_local_intc") {
        Ok(va) => {
            local::set_base(va.as_usize());
            super::MAPPED.store(true, Relaxed);
        }
        Err(e) => panic!("ioremap of the local interrupt controller failed: {e}"),
    }
    armctrl::init();
    local::route_gpu_irq(0);
    init_this_cpu();
}

/// Unmasks this CPU's local sources: its virtual timer and mailbox 0 (IPIs).
pub fn init_this_cpu() {
    let cpu = smp_processor_id().index();
    board::arch_timer::shutdown();
    // Whatever the firmware left in this core's IPI mailbox is not an IPI of ours.
    local::mailbox_clear(cpu, 0, u32::MAX);
    local::enable_virtual_timer_irq(cpu);
    local::enable_mailbox_irq(cpu, 0);
}
