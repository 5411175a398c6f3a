//! The chainloader: on the SD card in place of the kernel, it asks over the UART for a
//! kernel image (see the protocol in `lib.rs`), receives it at 0x80000, checks its size
//! and CRC-32 and starts it with the firmware's x0-x3, so each rebuild reaches the Pi
//! without moving the card (`make chainboot`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the chainloader runs on aarch64-unknown-none-softfloat: use `make chainloader`");
}

#[cfg(target_os = "none")]
mod loader {
    use board::uart;
    use chainloader::{check_size, crc32_update, HeaderParser, REQUEST};
    use core::fmt::Write;

    core::arch::global_asm!(include_str!("start.S"));

    /// Where kernels run: where the firmware would have loaded them.
    const KERNEL_ADDR: u64 = consts::memory::TEXT_OFFSET;
    /// The UART clock config.txt sets (init_uart_clock); the mailbox is not used, so the
    /// loader stays small and needs no MMU.
    const UART_CLOCK: u32 = 48_000_000;
    /// How long a silent line is waited for during the image before starting again.
    const BYTE_TIMEOUT_US: u64 = 5_000_000;

    extern "C" {
        static __stack_bottom: u8;
    }

    struct Uart;
    impl Write for Uart {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            uart::puts(s);
            Ok(())
        }
    }

    fn getb_timeout(us: u64) -> Option<u8> {
        let mut got = None;
        let _ = board::timer::poll_us(
            || {
                got = uart::try_getb();
                got.is_some()
            },
            us,
        );
        got
    }

    /// Entered from start.S on core 0 with the firmware's registers.
    #[no_mangle]
    extern "C" fn loader_main(x0: u64, x1: u64, x2: u64, x3: u64) -> ! {
        // Bytes received before the loader ran are not part of any exchange: dropped.
        let _ = uart::init(UART_CLOCK, |_| {});
        // The kernel may reach up to the loader's stack.
        let limit = core::ptr::addr_of!(__stack_bottom) as u64;
        let _ = writeln!(Uart, "\nmm-chainloader: x0 = {x0:#x}; send a kernel (tools/chainboot.py)");
        loop {
            let _ = writeln!(Uart, "{REQUEST}");
            let mut parser = HeaderParser::new();
            let header = loop {
                match getb_timeout(1_000_000) {
                    Some(b) => {
                        if let Some(h) = parser.feed(b) {
                            break Some(h);
                        }
                    }
                    None => break None, // a second of silence: ask again
                }
            };
            let Some(h) = header else { continue };
            if let Err(why) = check_size(h.size, KERNEL_ADDR, limit, x0) {
                let _ = writeln!(Uart, "ERR {why} ({} bytes, room for {})", h.size, limit - KERNEL_ADDR);
                continue;
            }
            let _ = writeln!(Uart, "OK");
            let mut crc = 0;
            let mut complete = true;
            for i in 0..h.size as u64 {
                let Some(b) = getb_timeout(BYTE_TIMEOUT_US) else {
                    let _ = writeln!(Uart, "ERR timeout after {i} of {} bytes", h.size);
                    complete = false;
                    break;
                };
                crc = crc32_update(crc, &[b]);
                // SAFETY: check_size put [KERNEL_ADDR, KERNEL_ADDR + size) below the
                // loader's stack and off the device tree; nothing else lives there (the
                // loader moved itself to LOADER_ADDR), and the MMU is off.
                unsafe { core::ptr::write_volatile((KERNEL_ADDR + i) as *mut u8, b) };
            }
            if !complete {
                continue;
            }
            if crc != h.crc32 {
                let _ =
                    writeln!(Uart, "mm-chainloader: crc32 mismatch: received {crc:#010x}, expected {:#010x}", h.crc32);
                continue;
            }
            let _ = writeln!(
                Uart,
                "mm-chainloader: {} bytes, crc32 OK ({crc:#010x}); starting the kernel at {KERNEL_ADDR:#x} with x0 = {x0:#x}",
                h.size
            );
            uart::flush();
            // SAFETY: a whole, checked image is at KERNEL_ADDR, written with the MMU and
            // caches off; it starts as the firmware would start it (same exception level,
            // x0-x3 as given to us).
            unsafe { boot::cpu::start_image(KERNEL_ADDR, x0, x1, x2, x3) }
        }
    }

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
        uart::puts("mm-chainloader: panic\n");
        loop {
            core::hint::spin_loop();
        }
    }
}
