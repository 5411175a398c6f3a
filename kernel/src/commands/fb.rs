//! `fb`: the HDMI framebuffer's mode and what drawing it has cost.

use super::no_args;
use crate::console::registry::{Command, CommandError};
use crate::cprintln;

/// `fb`
pub const FB: Command = Command {
    name: "fb",
    args: "",
    help: "the HDMI framebuffer: mode, and the time spent drawing the console and the memory map",
    run: fb,
};

fn fb(args: &[&str]) -> Result<(), CommandError> {
    no_args(args)?;
    let Some(st) = crate::fb::stats() else {
        cprintln!("fb: no framebuffer (fb=off, or the firmware gave none: see dmesg)");
        return Ok(());
    };
    let ms = |ns: u64| (ns / 1_000_000, ns / 1000 % 1000);
    let (c, m) = (ms(st.console_ns), ms(st.map_ns));
    let (t, tu) = ms(st.console_ns + st.map_ns);
    let up = crate::printk::now_ns();
    cprintln!(
        "fb: console {} flushes in {}.{:03} ms, memory map {} steps in {}.{:03} ms; {}.{:03} ms drawing in {} s up ({} per mille of one CPU)",
        st.console_flushes,
        c.0,
        c.1,
        st.map_steps,
        m.0,
        m.1,
        t,
        tu,
        up / 1_000_000_000,
        (st.console_ns + st.map_ns) * 1000 / up.max(1)
    );
    Ok(())
}
