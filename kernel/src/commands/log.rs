//! dmesg: the kernel log buffer, like Linux's `dmesg` (`-c`, `-C`, `-l LEVELS`).

use crate::console::registry::{Command, CommandError};
use crate::log_buf::LINE_MAX;
use crate::printk::{print_raw, Level, Timestamp, LOG, LOG_BUF_LEN};
use crate::{cprint, cprintln};

/// `dmesg`
pub const DMESG: Command = Command {
    name: "dmesg",
    args: "[-c | -C] [-l LEVEL[,LEVEL...]]",
    help: "the kernel log buffer (-c print then clear, -C clear, -l only these levels)",
    run: dmesg,
};

fn dmesg(args: &[&str]) -> Result<(), CommandError> {
    let (mut print, mut clear) = (true, false);
    let mut levels = [true; 8];
    let mut words = args.iter();
    while let Some(&w) = words.next() {
        match w {
            "-c" | "--read-clear" => clear = true,
            "-C" | "--clear" => (print, clear) = (false, true),
            "-l" | "--level" => {
                let Some(list) = words.next() else { return Err(CommandError::Usage) };
                levels = [false; 8];
                for name in list.split(',') {
                    let Some(l) = Level::parse(name) else {
                        return Err(CommandError::bad(format_args!(
                            "unknown level '{}' (emerg alert crit err warn notice info debug, or 0-7)",
                            name
                        )));
                    };
                    levels[l as usize] = true;
                }
            }
            _ => return Err(CommandError::Usage),
        }
    }
    if print {
        let (mut at, end, dropped) = {
            let log = LOG.lock();
            let at = log.oldest();
            (at, log.lines(), log.dropped())
        };
        if dropped > 0 {
            cprintln!("dmesg: {} older lines were dropped ({} KiB log buffer)", dropped, LOG_BUF_LEN >> 10);
        }
        // One line at a time: the log is not held while the UART prints.
        let mut line = [0u8; LINE_MAX];
        for _ in 0..end {
            let Some(h) = LOG.lock().read(&mut at, &mut line) else { break };
            if levels[h.level as usize] {
                cprint!("{}", Timestamp(h.ts_ns));
                print_raw(core::str::from_utf8(&line[..h.len]).unwrap_or("?"));
                print_raw("\n");
            }
        }
    }
    if clear {
        LOG.lock().clear();
    }
    Ok(())
}
