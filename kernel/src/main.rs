//! The kernel binary for the Raspberry Pi 3: `boot/` enters [`kernel_main`] on core 0
//! in EL1 with the MMU on; this brings up the console, the memory manager and the
//! shell.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the kernel runs on aarch64-unknown-none-softfloat: use `make` or `make qemu`");
}

#[cfg(target_os = "none")]
mod kmain {
    use board::baud::{uart_clock, ClockFallback};
    use board::mailbox;
    use kernel::{platform, pr_info, pr_notice, pr_warn};

    /// Called by `boot/entry.S` with the loader's x0 and the exception level at entry.
    #[no_mangle]
    pub extern "C" fn kernel_main(dtb: u64, entry_el: u64) -> ! {
        // A silent mailbox or an unusable answer (0 Hz: no divisor, no console) gives
        // config.txt's 48 MHz, said once the console works.
        let (uart_hz, uart_fallback) = uart_clock(mailbox::clock_rate(mailbox::clock::UART).ok(), board::uart::BAUD);
        // Input typed before boot is kept: the tty queues what the receiver holds.
        let drained = kernel::tty::uart_init(uart_hz);
        platform::init_console();
        if let Some(ClockFallback::Unusable(hz)) = uart_fallback {
            pr_warn!(
                "uart: the firmware reports a UART clock of {} Hz, too slow for {} baud (no divisor); assuming {} Hz (config.txt's init_uart_clock)",
                hz,
                board::uart::BAUD,
                uart_hz
            );
        }

        let revision = mailbox::board_revision().unwrap_or(0);
        platform::set_revision(revision);
        let rev = platform::revision();
        pr_info!("Booting mm-kernel {} on {} (revision {:#08x})", kernel::oops::VERSION, rev, revision);
        if !rev.is_pi3() {
            pr_warn!("board is not a Raspberry Pi 3B/3B+/3A+: continuing anyway");
        }
        pr_info!(
            "CPU: {} x Cortex-A53 ({}), MIDR {:#010x}, booted on CPU{} at EL{} (x0 = {:#x})",
            if rev.processor() == "BCM2837" { 4 } else { 1 },
            rev.processor(),
            boot::cpu::midr(),
            kernel::percpu::smp_processor_id(),
            entry_el,
            dtb
        );
        if entry_el == 3 {
            pr_info!(
                "CPU: entered at EL3 without the firmware's stub: set up as armstub8 does (CNTFRQ {} Hz, L2CTLR, CPUECTLR.SMPEN, CPTR_EL3, MDCR_EL3, ACTLR_EL3, SCR_EL3, SCTLR_EL2); CPUs 1-3 wait on the spin table",
                board::timer::frequency()
            );
        }
        platform::arm_clock_max();
        if drained.is_err() {
            pr_warn!(
                "uart: transmitter still busy {} ms after hand-over; taken over anyway",
                board::uart::DRAIN_TIMEOUT_US / 1000
            );
        }
        match mailbox::arm_memory() {
            Ok((base, size)) => {
                pr_info!("Memory: ARM {:#010x}-{:#010x} ({} MiB)", base, base as u64 + size as u64 - 1, size >> 20)
            }
            Err(e) => pr_warn!("Memory: mailbox did not report ARM memory: {:?}", e),
        }
        if let Ok((base, size)) = mailbox::vc_memory() {
            pr_info!("Memory: VideoCore {:#010x}-{:#010x} ({} MiB)", base, base as u64 + size as u64 - 1, size >> 20);
        }
        let l = platform::image_layout();
        pr_info!("Kernel image: {:#x}-{:#x} ({} KiB)", l.start, l.end, (l.end - l.start) >> 10);
        pr_info!("  .text   {:#x}-{:#x} ({} KiB)", l.text.0, l.text.1, (l.text.1 - l.text.0) >> 10);
        pr_info!("  .rodata {:#x}-{:#x} ({} KiB)", l.rodata.0, l.rodata.1, (l.rodata.1 - l.rodata.0) >> 10);
        pr_info!("  .data   {:#x}-{:#x} ({} KiB)", l.data.0, l.data.1, (l.data.1 - l.data.0) >> 10);
        pr_info!("  .bss    {:#x}-{:#x} ({} KiB)", l.bss.0, l.bss.1, (l.bss.1 - l.bss.0) >> 10);
        pr_info!(
            "Timer: CNTFRQ {} Hz; UART0 (PL011) 115200 8N1, clock {} Hz{}",
            board::timer::frequency(),
            uart_hz,
            match uart_fallback {
                None => "",
                Some(ClockFallback::Silent) => " (mailbox silent: assumed)",
                Some(ClockFallback::Unusable(_)) => " (the firmware's answer unusable: assumed)",
            }
        );
        match platform::symbols() {
            Some(t) => pr_info!("ksyms: {} symbols for call traces", t.len()),
            None => pr_warn!("ksyms: no symbol table in the image; call traces show raw addresses"),
        }
        let ram_size = mailbox::arm_memory().map_or(0, |(b, s)| b as u64 + s as u64);
        platform::init_cmdline(dtb, ram_size);
        kernel::mm::init(dtb);
        kernel::irq::chip::init();
        kernel::timer::init();
        kernel::mm::kfence::start_sampling();
        kernel::tty::init();
        boot::cpu::local_irq_enable();
        kernel::fb::init(platform::cmdline());
        pr_info!(
            "irq: BCM2836 local controller with the BCM2835 controller chained; timer, IPIs and UART RX by interrupt"
        );
        kernel::smp::smp_init();
        kernel::record::init(platform::cmdline());
        kernel::record::boot(platform::revision().model(), platform::cmdline());
        // The boot sweep is a foreground command: Ctrl-C interrupts it. A bad sweep= was
        // reported with the command line; the default (all) runs then.
        let _ = kernel::tty::run_foreground(|| match kernel::cmdline::sweep(platform::cmdline()) {
            Ok(Some("off")) => {
                pr_notice!("sweep: skipped (sweep=off on the command line; type 'sweep' to run it)")
            }
            Ok(Some(p)) => {
                kernel::lab::sweep::run(kernel::lab::sweep::Phases::parse(p).unwrap_or(kernel::lab::sweep::Phases::All))
            }
            Ok(None) | Err(_) => kernel::lab::sweep::run(kernel::lab::sweep::Phases::All),
        });
        kernel::shell::run()
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        kernel::arch::aarch64::exception::panic_report(info)
    }
}
