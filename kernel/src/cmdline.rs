//! The kernel command line: where the loader put it (the device tree's `/chosen/bootargs`
//! from the Pi firmware, or the ATAGS list from QEMU's `-append` with a raw image), the
//! copy the kernel keeps, and the options it understands. Pure code over byte slices,
//! tested on the host.
//!
//! Options understood: `sweep=all|pages|kmalloc|vmalloc|fragment|off` (what the boot sweep runs),
//! `slub_debug` (slab debugging: poison, red zones, double/invalid free checks) and
//! `loglevel=N` (Linux's console log level), `panic=N` (reboot N seconds after a panic),
//! `nohugevmalloc` (vmalloc maps pages only, as Linux's option), `fb=off` (no framebuffer: the UART alone),
//! `page_owner=on` (off by default, as in Linux), `kmemleak=on` (off by default), and Linux's
//! `kfence.sample_interval=MS` (read where it is used; a `module.param` form). The Pi firmware puts about 214 bytes of its
//! own options in front of cmdline.txt's (`coherent_pool=1M 8250.nr_uarts=1 ...
//! vc_mem.mem_size=0x40000000`); those, any `module.param=` option and the usual Linux
//! cmdline.txt options (`console=`, `root=`, ...) are skipped silently, as Linux skips
//! parameters of modules it does not have. A bad line degrades: words that are not UTF-8
//! are dropped, a line longer than [`COMMAND_LINE_SIZE`] is cut at a word boundary, and
//! what was lost is reported once.
//!
//! A word starting with `#` begins a comment that runs to the end of its line, so the
//! comments in the shipped cmdline.txt never become options, whether the firmware passes
//! only the file's first line or all of it.

use core::fmt;

use crate::console::args::{parse_size, ArgError};

/// Longest command line kept, in bytes: Linux arm64's COMMAND_LINE_SIZE.
pub const COMMAND_LINE_SIZE: usize = 2048;

const ATAG_NONE: u32 = 0;
const ATAG_CORE: u32 = 0x5441_0001;
const ATAG_CMDLINE: u32 = 0x5441_0009;

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

/// The ATAG_CMDLINE tag's text area in an ATAGS list (ATAG_CORE first), if any: its
/// offset in `b` and its bytes, as long as the tag says (the line, its NUL, padding).
fn atag_cmdline_area(b: &[u8]) -> Option<(usize, &[u8])> {
    if le32(b, 4)? != ATAG_CORE {
        return None;
    }
    let mut at = 0usize;
    loop {
        let words = le32(b, at)? as usize;
        let tag = le32(b, at + 4)?;
        if tag == ATAG_NONE || words < 2 {
            return None;
        }
        if tag == ATAG_CMDLINE {
            return Some((at + 8, b.get(at + 8..at.checked_add(words.checked_mul(4)?)?)?));
        }
        at = at.checked_add(words.checked_mul(4)?)?;
    }
}

/// The command line in an ATAGS list (ATAG_CORE first), if any: its bytes up to the
/// NUL or the end of the tag.
pub fn from_atags(b: &[u8]) -> Option<&[u8]> {
    let (_, text) = atag_cmdline_area(b)?;
    Some(&text[..text.iter().position(|&c| c == 0).unwrap_or(text.len())])
}

/// Where QEMU's raspi boards put their boot code for CPUs 1-3 when they boot a raw
/// image with `-append` (and no `-dtb`): inside the ATAGS area, which starts at 0x100,
/// so a command line longer than about 460 bytes runs into it and QEMU's code
/// overwrites the rest of the line (QEMU 7.2: 44 bytes of AArch64 code at 0x300, the
/// line's NUL gone with them). The firmware of a real Pi keeps its stub below 0x100.
pub const QEMU_SMPBOOT_ADDR: u64 = 0x300;

/// A command line in the ATAGS that the loader's own code overwrote ([`atags_cmdline`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overwritten {
    /// The line's length in bytes (from the tag's length and the intact end of its
    /// text), and whether that is exact (false: the line ended inside the code, so only
    /// the tag's length, rounded to 4 bytes, is known).
    pub total: usize,
    /// See `total`.
    pub exact: bool,
    /// Where in the line the code begins.
    pub from: usize,
}

/// The command line of an ATAGS list, and what is known of damage to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AtagCmdline<'a> {
    /// The readable line: up to its NUL, or, when overwritten, the whole words before
    /// the code.
    pub text: &'a [u8],
    /// Set when loader code lies inside the line's text and the bytes there are not the
    /// line's (a control byte, or a NUL well before the end the tag gives).
    pub overwritten: Option<Overwritten>,
}

/// The command line of the ATAGS list in `b` (memory from physical address `base`),
/// checked against loader code at `code_at` ([`QEMU_SMPBOOT_ADDR`]): a line whose text
/// reaches the code and reads there as anything but text was overwritten; then only the
/// whole words before the code are kept, and how much was lost is said.
pub fn atags_cmdline(b: &[u8], base: u64, code_at: u64) -> Option<AtagCmdline<'_>> {
    let (off, area) = atag_cmdline_area(b)?;
    let nul = area.iter().position(|&c| c == 0).unwrap_or(area.len());
    let whole = AtagCmdline { text: &area[..nul], overwritten: None };
    let start = base.checked_add(off as u64)?;
    let Some(from) = code_at.checked_sub(start).map(|d| d as usize).filter(|&d| d < area.len()) else {
        return Some(whole);
    };
    if nul < from {
        return Some(whole); // the line ends before the code
    }
    let control = |c: &u8| (*c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r')) || *c == 0x7f;
    // A loader writes the line, its NUL, then at most 3 bytes of padding.
    let ends_early = nul + 4 < area.len();
    if !ends_early && !area[from..nul].iter().any(control) {
        return Some(whole); // text all the way: nothing was written over it
    }
    // The line's true end: its NUL is the last one, in the tag's last 4 bytes, when the
    // code stopped short of it.
    let last = area.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
    let exact = last > from && last + 4 >= area.len() && last < area.len();
    let total = if exact { last } else { area.len().saturating_sub(1) };
    // Whole words only: the word the code cut into is not kept.
    let kept = area[..from].iter().rposition(|c| c.is_ascii_whitespace()).unwrap_or(0);
    Some(AtagCmdline { text: &area[..kept], overwritten: Some(Overwritten { total, exact, from }) })
}

/// The command line the kernel keeps: at most [`COMMAND_LINE_SIZE`] bytes of whole,
/// readable (UTF-8) words, separators as the loader gave them (tabs and line ends
/// become spaces, so the line prints as one line).
pub struct CommandLine {
    buf: [u8; COMMAND_LINE_SIZE],
    len: usize,
}

impl CommandLine {
    /// An empty command line.
    pub const fn new() -> Self {
        Self { buf: [0; COMMAND_LINE_SIZE], len: 0 }
    }

    /// The line.
    pub fn as_str(&self) -> &str {
        // Only whole UTF-8 words and ASCII spaces are ever copied in (see `keep`).
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    fn push(&mut self, bytes: &[u8]) {
        for &c in bytes {
            self.buf[self.len] = if c.is_ascii_whitespace() { b' ' } else { c };
            self.len += 1;
        }
    }
}

impl Default for CommandLine {
    fn default() -> Self {
        Self::new()
    }
}

/// How many dropped words a [`Damage`] names.
pub const NAMED: usize = 3;

/// What [`keep`] could not keep of the loader's line.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Damage<'a> {
    /// Length of the loader's line in bytes.
    pub total: usize,
    /// The line was longer than [`COMMAND_LINE_SIZE`]: the first word not kept, and
    /// how many words were lost from it on.
    pub cut: Option<(&'a [u8], usize)>,
    /// Words dropped for bytes that are not UTF-8: the first [`NAMED`] and the count.
    pub invalid: [&'a [u8]; NAMED],
    /// How many words were dropped for bytes that are not UTF-8.
    pub invalid_count: usize,
}

impl Damage<'_> {
    /// Whether everything was kept.
    pub fn is_none(&self) -> bool {
        self.cut.is_none() && self.invalid_count == 0
    }
}

/// Words of `b` with the whitespace before each: (separator, word).
fn words(b: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut at = 0;
    core::iter::from_fn(move || {
        let ws = b[at..].iter().take_while(|c| c.is_ascii_whitespace()).count();
        let start = at + ws;
        if start >= b.len() {
            return None;
        }
        let len = b[start..].iter().take_while(|c| !c.is_ascii_whitespace()).count();
        let sep = &b[at..start];
        at = start + len;
        Some((sep, &b[start..at]))
    })
}

/// Copies the loader's line into `out`, keeping every word that can be read and that
/// fits, and says what was lost.
pub fn keep<'a>(src: &'a [u8], out: &mut CommandLine) -> Damage<'a> {
    let mut d = Damage { total: src.len(), ..Damage::default() };
    let mut comment = false;
    for (sep, word) in words(src) {
        comment = (comment && !sep.contains(&b'\n')) || word.first() == Some(&b'#');
        if comment {
            continue;
        }
        if let Some((_, lost)) = d.cut.as_mut() {
            *lost += 1;
            continue;
        }
        if core::str::from_utf8(word).is_err() {
            if d.invalid_count < NAMED {
                d.invalid[d.invalid_count] = word;
            }
            d.invalid_count += 1;
            continue;
        }
        let sep = if out.len == 0 { &[][..] } else { sep };
        if out.len + sep.len() + word.len() > COMMAND_LINE_SIZE {
            d.cut = Some((word, 1));
            continue;
        }
        out.push(sep);
        out.push(word);
    }
    d
}

/// Shows bytes the way a log line can carry them: printable ASCII as it is, anything else
/// as `\xNN`, at most `max` bytes then `...`.
pub struct Escaped<'a>(pub &'a [u8], pub usize);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &c in self.0.iter().take(self.1) {
            if c.is_ascii_graphic() || c == b' ' {
                fmt::Write::write_char(f, c as char)?;
            } else {
                write!(f, "\\x{c:02x}")?;
            }
        }
        if self.0.len() > self.1 {
            f.write_str("...")?;
        }
        Ok(())
    }
}

/// The options this kernel acts on (names, as `help`-style text for messages).
pub const KNOWN: &[&str] =
    &["sweep", "slub_debug", "loglevel", "panic", "nohugevmalloc", "cma", "fb", "records", "page_owner", "kmemleak"];

/// Options the Raspberry Pi firmware adds or a Linux cmdline.txt usually carries, which
/// this kernel has no use for and skips without a word. (Any `module.param` option is
/// skipped as well.)
const FOREIGN: &[&str] = &[
    "coherent_pool",
    "console",
    "video",
    "maxcpus",
    "root",
    "rootfstype",
    "rootwait",
    "rootdelay",
    "ro",
    "rw",
    "init",
    "quiet",
    "splash",
    "elevator",
    "earlycon",
    "earlyprintk",
    "consoleblank",
    "kgdboc",
    "cgroup_enable",
    "cgroup_memory",
];

/// What a command-line word is to this kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// One of [`KNOWN`].
    Known,
    /// The firmware's or Linux's, or a `module.param`: skipped silently.
    Foreign,
    /// Nobody's: reported once at boot.
    Unknown,
}

/// Classifies one word (`name` or `name=value`).
pub fn classify(word: &str) -> Param {
    let name = word.split_once('=').map_or(word, |(n, _)| n);
    if KNOWN.contains(&name) {
        Param::Known
    } else if FOREIGN.contains(&name) || name.contains('.') {
        Param::Foreign
    } else {
        Param::Unknown
    }
}

/// The words of a command line this kernel does not know (for the boot warning).
pub fn unknown(cmdline: &str) -> impl Iterator<Item = &str> + Clone {
    cmdline.split_ascii_whitespace().filter(|w| classify(w) == Param::Unknown)
}

/// Whether a bare flag (`slub_debug`) or `flag=...` is on the command line.
pub fn flag(cmdline: &str, name: &str) -> bool {
    cmdline.split_ascii_whitespace().any(|w| w == name || w.strip_prefix(name).is_some_and(|r| r.starts_with('=')))
}

/// The value of `key=value` in a command line; the last one wins, as in Linux.
pub fn option<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline.split_ascii_whitespace().rev().find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// The values `sweep=` takes.
pub const SWEEP_VALUES: &str = "all|pages|kmalloc|vmalloc|fragment|off";

/// `sweep=`: `Ok(None)` when absent, `Ok(Some(value))` for one of [`SWEEP_VALUES`],
/// `Err(value)` for anything else (an empty value included: it is not `off`).
pub fn sweep(cmdline: &str) -> Result<Option<&str>, &str> {
    match option(cmdline, "sweep") {
        None => Ok(None),
        Some(v) if SWEEP_VALUES.split('|').any(|known| known == v) => Ok(Some(v)),
        Some(v) => Err(v),
    }
}

/// `loglevel=`: `Ok(None)` when absent, `Ok(Some(n))` for 0..=8, `Err(value)` otherwise.
pub fn loglevel(cmdline: &str) -> Result<Option<u8>, &str> {
    match option(cmdline, "loglevel") {
        None => Ok(None),
        Some(v) => match v.parse::<u8>() {
            Ok(n @ 0..=8) => Ok(Some(n)),
            _ => Err(v),
        },
    }
}

/// `panic=`: `Ok(None)` when absent, `Ok(Some(seconds))` for an integer (0 halts, a
/// negative value reboots at once, as in Linux), `Err(value)` otherwise.
pub fn panic_timeout(cmdline: &str) -> Result<Option<i64>, &str> {
    match option(cmdline, "panic") {
        None => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| v),
    }
}

/// `cma=SIZE`: `Ok(None)` when absent, `Ok(Some(bytes))` for a size as the console reads
/// one ([`parse_size`]: decimal or `0x` hex, optional K/M/G suffix, like Linux's
/// `memparse`), `Ok(Some(0))` for `cma=0` (no area, as in Linux), `Err((value, why))`
/// otherwise.
pub fn cma(cmdline: &str) -> Result<Option<u64>, (&str, ArgError)> {
    match option(cmdline, "cma") {
        None => Ok(None),
        Some(v) => parse_size(v).map(Some).map_err(|e| (v, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The options the Raspberry Pi firmware puts in front of cmdline.txt on a 3B+.
    const FIRMWARE: &str = "coherent_pool=1M 8250.nr_uarts=1 snd_bcm2835.enable_compat_alsa=0 \
        snd_bcm2835.enable_hdmi=1 bcm2708_fb.fbwidth=656 bcm2708_fb.fbheight=416 bcm2708_fb.fbswap=1 \
        vc_mem.mem_base=0x3ec00000 vc_mem.mem_size=0x40000000 ";

    fn atags(cmdline: Option<&[u8]>) -> Vec<u8> {
        let mut v = vec![];
        let word = |v: &mut Vec<u8>, w: u32| v.extend(w.to_le_bytes());
        word(&mut v, 5);
        word(&mut v, ATAG_CORE);
        for w in [1, 4096, 0] {
            word(&mut v, w);
        }
        if let Some(c) = cmdline {
            let mut bytes = c.to_vec();
            bytes.push(0);
            while !bytes.len().is_multiple_of(4) {
                bytes.push(0);
            }
            word(&mut v, 2 + bytes.len() as u32 / 4);
            word(&mut v, ATAG_CMDLINE);
            v.extend(bytes);
        }
        word(&mut v, 0);
        word(&mut v, ATAG_NONE);
        v
    }

    #[test]
    fn atags_cmdline_text() {
        assert_eq!(from_atags(&atags(Some(b"sweep=off quiet"))), Some(&b"sweep=off quiet"[..]));
        assert_eq!(from_atags(&atags(Some(b"a\xff"))), Some(&b"a\xff"[..]), "raw bytes");
        assert_eq!(from_atags(&atags(None)), None);
        assert_eq!(from_atags(&[0u8; 16]), None);
        assert_eq!(from_atags(&atags(Some(b"x"))[..12]), None, "truncated list");
        let long = vec![b'a'; 4096];
        assert_eq!(from_atags(&atags(Some(&long))).map(<[u8]>::len), Some(4096));
    }

    /// Memory from 0x100 as QEMU 7.2 leaves it for `-append LINE` without `-dtb`: the ATAGS
    /// (CORE, MEM, CMDLINE, NONE) with its 44 bytes of boot code for CPUs 1-3 at 0x300.
    fn qemu_page0(line: &[u8]) -> Vec<u8> {
        let mut m = vec![];
        let words = [5, ATAG_CORE, 1, 4096, 0, 4, 0x5441_0002, 0x3c00_0000, 0];
        m.extend(words.iter().flat_map(|w| w.to_le_bytes()));
        // QEMU's length: (len + 1 + 8 + 3) / 4 words, the text NUL-terminated.
        m.extend((((line.len() + 12) >> 2) as u32).to_le_bytes());
        m.extend(ATAG_CMDLINE.to_le_bytes());
        m.extend(line);
        m.resize(0x1000, 0);
        let code: [u32; 11] = [
            0xd2801b05, 0xd53800a6, 0x924004c6, 0xd503205f, 0xf86678a4, 0xb4ffffc4, 0xd2800000, 0xd2800001, 0xd2800002,
            0xd2800003, 0xd61f0080,
        ];
        for (i, w) in code.iter().enumerate() {
            let at = 0x300 - 0x100 + 4 * i;
            m[at..at + 4].copy_from_slice(&w.to_le_bytes());
        }
        m
    }

    fn numbered_options(n: usize, width: usize) -> Vec<u8> {
        let words: Vec<String> = (0..n).map(|i| format!("opt{i:03}.x={}", "y".repeat(width - 9))).collect();
        words.join(" ").into_bytes()
    }

    #[test]
    fn a_long_atag_line_overwritten_by_qemus_boot_code_says_what_was_lost() {
        // 1,500 bytes: 100 options of 14 bytes plus spaces.
        let line = numbered_options(100, 14);
        assert_eq!(line.len(), 1499);
        let m = qemu_page0(&line);
        let got = atags_cmdline(&m, 0x100, QEMU_SMPBOOT_ADDR).unwrap();
        // The text starts at 0x12c (CORE 20 bytes, MEM 16, CMDLINE header 8): 468 bytes
        // before 0x300; option 31 (bytes 465..479) is cut, so 31 whole options are kept.
        let o = got.overwritten.expect("damage detected");
        assert_eq!(o, Overwritten { total: 1499, exact: true, from: 0x300 - 0x12c });
        assert_eq!(got.text, &line[..31 * 15 - 1]);
        assert!(got.text.ends_with(b"opt030.x=yyyyy"));
        // Without the check, the line would stop at a NUL inside the code, after a word
        // of code bytes that are not UTF-8 (the old report).
        let raw = from_atags(&m).unwrap();
        assert!(raw.len() < 0x300 - 0x12c + 12 && raw.contains(&0x05));
    }

    #[test]
    fn a_line_that_ends_inside_the_code_is_measured_from_the_tag() {
        // 480 bytes: the code covers the line's end and its NUL.
        let line = numbered_options(33, 14)[..480].to_vec();
        let m = qemu_page0(&line);
        let o = atags_cmdline(&m, 0x100, QEMU_SMPBOOT_ADDR).unwrap().overwritten.unwrap();
        assert!(!o.exact);
        assert!((480..=483).contains(&o.total), "{}", o.total);
    }

    #[test]
    fn lines_the_code_did_not_touch_are_whole() {
        // Short: ends before 0x300.
        let m = qemu_page0(b"sweep=off slub_debug");
        assert_eq!(
            atags_cmdline(&m, 0x100, QEMU_SMPBOOT_ADDR),
            Some(AtagCmdline { text: b"sweep=off slub_debug", overwritten: None })
        );
        // Long, but no code was written over it (a loader without QEMU's stub): text
        // through 0x300 is kept whole.
        let line = numbered_options(100, 14);
        let m = atags(Some(&line));
        assert_eq!(atags_cmdline(&m, 0x100, QEMU_SMPBOOT_ADDR), Some(AtagCmdline { text: &line, overwritten: None }));
        // Code elsewhere (the list at another address): untouched.
        assert_eq!(atags_cmdline(&m, 0x10_0000, QEMU_SMPBOOT_ADDR).unwrap().overwritten, None);
        assert_eq!(atags_cmdline(&atags(None), 0x100, QEMU_SMPBOOT_ADDR), None);
    }

    #[test]
    fn fdt_bootargs_reach_the_command_line() {
        let line = format!("{FIRMWARE} sweep=off slub_debug");
        let t = crate::fdt::tests::fdt(line.as_bytes(), 1, 1, (0, 0x3b40_0000));
        let mut c = CommandLine::new();
        let d = keep(crate::fdt::bootargs(&t).unwrap(), &mut c);
        assert!(d.is_none());
        assert_eq!(c.as_str(), line);
        assert_eq!(sweep(c.as_str()), Ok(Some("off")));
        assert!(flag(c.as_str(), "slub_debug"));
    }

    #[test]
    fn keeps_a_whole_firmware_line() {
        // The 256-byte buffer this replaces kept `s` of `sweep=off` after the prefix.
        let line = format!("{FIRMWARE} console=ttyS0,115200 console=tty1 root=PARTUUID=6c586e13-02 rootfstype=ext4 fsck.repair=yes rootwait sweep=off slub_debug loglevel=5");
        assert!(line.len() > 256);
        let mut c = CommandLine::new();
        assert!(keep(line.as_bytes(), &mut c).is_none());
        assert_eq!(c.as_str(), line, "kept whole, double spaces included");
        assert_eq!(sweep(c.as_str()), Ok(Some("off")));
        assert_eq!(loglevel(c.as_str()), Ok(Some(5)));
        assert_eq!(unknown(c.as_str()).count(), 0, "firmware and Linux options are skipped silently");
    }

    #[test]
    fn a_long_line_is_cut_at_a_word_and_says_so() {
        let mut line = String::from("sweep=off slub_debug");
        while line.len() < 4096 {
            line.push_str(" filler=0123456789");
        }
        let mut c = CommandLine::new();
        let d = keep(line.as_bytes(), &mut c);
        assert_eq!(d.total, line.len());
        let (first, lost) = d.cut.expect("cut");
        assert_eq!(first, b"filler=0123456789");
        assert!(c.as_str().len() <= COMMAND_LINE_SIZE && c.as_str().len() > COMMAND_LINE_SIZE - 20);
        assert!(c.as_str().ends_with("filler=0123456789"), "whole words only");
        let kept_words = c.as_str().split(' ').count();
        assert_eq!(kept_words + lost, line.split(' ').count(), "every word is kept or counted");
        assert_eq!(sweep(c.as_str()), Ok(Some("off")), "options before the cut still work");
        assert!(flag(c.as_str(), "slub_debug"));
    }

    #[test]
    fn words_that_are_not_utf8_are_dropped_alone() {
        let line = b"sweep=off caf\xe9 slub_debug \xff\xfe loglevel=4\ttrailing\n";
        let mut c = CommandLine::new();
        let d = keep(line, &mut c);
        assert_eq!(c.as_str(), "sweep=off slub_debug loglevel=4 trailing");
        assert_eq!(d.invalid_count, 2);
        assert_eq!(d.invalid[..2], [&b"caf\xe9"[..], &b"\xff\xfe"[..]]);
        assert_eq!(d.cut, None);
        assert_eq!(format!("{}", Escaped(d.invalid[0], 32)), "caf\\xe9");
        assert_eq!(format!("{}", Escaped(b"abcdef", 3)), "abc...");
    }

    #[test]
    fn comments_run_to_the_end_of_their_line() {
        let file = b"sweep=off loglevel=5\n# sweep=all|pages|kmalloc|vmalloc|off\n#slub_debug\nlate # not this\n";
        let mut c = CommandLine::new();
        assert!(keep(file, &mut c).is_none());
        assert_eq!(c.as_str(), "sweep=off loglevel=5 late");
        let mut c = CommandLine::new();
        keep(b"sweep=off # slub_debug sweep=all", &mut c);
        assert_eq!(c.as_str(), "sweep=off", "without a line end the comment runs to the end");
    }

    #[test]
    fn empty_and_blank_lines() {
        let mut c = CommandLine::new();
        assert!(keep(b"", &mut c).is_none());
        assert_eq!(c.as_str(), "");
        assert!(keep(b"   \n", &mut c).is_none());
        assert_eq!(c.as_str(), "");
    }

    #[test]
    fn sweep_values() {
        assert_eq!(sweep(""), Ok(None));
        assert_eq!(sweep("sweep=pages"), Ok(Some("pages")));
        assert_eq!(sweep("sweep=off"), Ok(Some("off")));
        assert_eq!(sweep("sweep=bogus"), Err("bogus"), "not taken as off");
        assert_eq!(sweep("sweep="), Err(""), "an empty value is not off");
        assert_eq!(sweep("sweep=off sweep=pages"), Ok(Some("pages")), "the last one wins");
        assert_eq!(loglevel("loglevel=9"), Err("9"));
        assert_eq!(panic_timeout("sweep=off"), Ok(None));
        assert_eq!(panic_timeout("panic=1"), Ok(Some(1)));
        assert_eq!(panic_timeout("panic=-1 x"), Ok(Some(-1)));
        assert_eq!(panic_timeout("panic=soon"), Err("soon"));
        assert_eq!(classify("panic=5"), Param::Known);
        assert_eq!(loglevel("loglevel=x"), Err("x"));
        assert_eq!(loglevel("loglevel=0"), Ok(Some(0)));
    }

    #[test]
    fn classification() {
        assert_eq!(classify("sweep=off"), Param::Known);
        assert_eq!(classify("slub_debug"), Param::Known);
        assert_eq!(classify("vc_mem.mem_base=0x3ec00000"), Param::Foreign);
        assert_eq!(classify("coherent_pool=1M"), Param::Foreign);
        assert_eq!(classify("rootwait"), Param::Foreign);
        assert_eq!(classify("frobnicate=1"), Param::Unknown);
        assert_eq!(unknown("sweep=off bogus x.y=1 other").collect::<Vec<_>>(), ["bogus", "other"]);
    }

    #[test]
    fn cma_sizes() {
        assert_eq!(cma("sweep=off"), Ok(None));
        assert_eq!(cma("cma=16M"), Ok(Some(16 << 20)));
        assert_eq!(cma("cma=64m loglevel=4"), Ok(Some(64 << 20)));
        assert_eq!(cma("cma=512K"), Ok(Some(512 << 10)));
        assert_eq!(cma("cma=1G"), Ok(Some(1 << 30)));
        assert_eq!(cma("cma=8192"), Ok(Some(8192)));
        assert_eq!(cma("cma=1M cma=2M"), Ok(Some(2 << 20)));
        // Hex, as memparse and the console take it.
        assert_eq!(cma("cma=0x1000000"), Ok(Some(16 << 20)));
        assert_eq!(cma("cma=0X800000"), Ok(Some(8 << 20)));
        // Zero is no area, not a malformed size.
        assert_eq!(cma("cma=0"), Ok(Some(0)));
        assert_eq!(cma("cma=0x0"), Ok(Some(0)));
        assert_eq!(cma("cma="), Err(("", ArgError::NotANumber)));
        assert_eq!(cma("cma=M"), Err(("M", ArgError::NotANumber)));
        assert_eq!(cma("cma=-1M"), Err(("-1M", ArgError::NotANumber)));
        assert_eq!(cma("cma=0x"), Err(("0x", ArgError::NotANumber)));
        assert_eq!(cma("cma=16X"), Err(("16X", ArgError::BadSuffix)));
        assert_eq!(cma("cma=99999999999G"), Err(("99999999999G", ArgError::Overflow)));
        assert_eq!(classify("cma=16M"), Param::Known);
    }

    #[test]
    fn options() {
        assert_eq!(option("a=1 sweep=off b", "sweep"), Some("off"));
        assert_eq!(option("sweeper=x", "sweep"), None);
        assert_eq!(option("", "sweep"), None);
        assert!(flag("quiet slub_debug", "slub_debug"));
        assert!(flag("slub_debug=FZP", "slub_debug"));
        assert!(!flag("slub_debugger", "slub_debug"));
    }
}
