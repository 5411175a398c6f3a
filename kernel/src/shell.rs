//! The interactive console on the UART: prompt, line editing, dispatch through the
//! command registry. Never returns. Input comes from the interrupt-fed ring of
//! [`crate::tty`]; with nothing to read the CPU sleeps in `wfi`.

use crate::commands::{COMMANDS, COMPLETIONS};
use crate::console::line::{Event, LineEditor};
use crate::console::registry::{dispatch, suggest, CommandError, Completer, Dispatch, Usage};
use crate::console::PROMPT;
use crate::printk::print_raw;
use crate::{cprint, cprintln};

/// Longest command line accepted.
pub const LINE_MAX: usize = 128;

/// Sends the editor's answer as it is: whole UTF-8 runs, so a cut character cannot
/// hide the rest.
fn print_bytes(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match core::str::from_utf8(bytes) {
            Ok(s) => {
                print_raw(s);
                return;
            }
            Err(e) => {
                let (good, rest) = bytes.split_at(e.valid_up_to());
                print_raw(core::str::from_utf8(good).unwrap_or(""));
                bytes = &rest[e.error_len().unwrap_or(rest.len()).min(rest.len())..];
            }
        }
    }
}

/// Runs one command line as the foreground command (Ctrl-C interrupts it). Never
/// inlined: call traces of a command show it, as they did before the wrapper.
#[inline(never)]
pub fn execute(line: &str) {
    // A command that polls for Ctrl-C says itself that it was interrupted.
    let ((), _interrupted) = crate::tty::run_foreground(|| execute_now(line));
}

fn execute_now(line: &str) {
    match dispatch(COMMANDS, line) {
        Dispatch::Empty => {}
        Dispatch::Unknown(name) => match suggest(COMMANDS, name) {
            Some(s) => cprintln!("unknown command '{}'; did you mean '{}'? (type help)", name, s),
            None => cprintln!("unknown command '{}' (type help)", name),
        },
        Dispatch::Found(cmd, args) => match (cmd.run)(&args) {
            Ok(()) => {}
            Err(CommandError::Usage) => cprintln!("{}", Usage(cmd)),
            Err(CommandError::BadArgument(why)) => {
                cprintln!("{}: {}", cmd.name, why);
                cprintln!("{}", Usage(cmd));
            }
        },
    }
}

/// Says how much input was lost since the last look (never silently).
fn report_lost_input() {
    let (full, overrun) = crate::tty::take_lost_input();
    if full != 0 || overrun != 0 {
        crate::pr_warn!("console: input lost: {} bytes (ring full), {} (UART overrun)", full, overrun);
    }
}

/// The console's line editor (with its history: about 10 KiB, so not on the stack).
static EDITOR: spin::Mutex<LineEditor<LINE_MAX>> = spin::Mutex::new(LineEditor::new());

/// The read-eval loop.
pub fn run() -> ! {
    crate::commands::init();
    let mut editor = EDITOR.lock();
    let completer = Completer(COMMANDS, COMPLETIONS);
    print_raw(PROMPT);
    loop {
        report_lost_input();
        let Some(b) = crate::tty::getb() else {
            crate::tty::wait_for_input();
            continue;
        };
        match editor.feed(b, &completer) {
            Event::Echo(bytes) => print_bytes(bytes),
            Event::Line(line) => {
                print_raw("\n");
                // Copy out: commands may take long and the editor is reused after.
                let mut buf = [0u8; LINE_MAX];
                let n = line.len();
                buf[..n].copy_from_slice(line.as_bytes());
                execute(core::str::from_utf8(&buf[..n]).unwrap_or(""));
                report_lost_input();
                print_raw(PROMPT);
            }
            Event::TooLong { max } => {
                print_raw("\n");
                cprintln!("line too long (at most {} characters): ignored", max);
                print_raw(PROMPT);
            }
            Event::Cancelled => {
                cprint!("^C\n");
                print_raw(PROMPT);
            }
            Event::None => {}
        }
    }
}
