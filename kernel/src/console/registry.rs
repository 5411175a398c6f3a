//! The command registry: every console command is a [`Command`] in one table, so `help`
//! lists them all and dispatch is one lookup.
//!
//! Nothing here allocates: the words of a line are kept in a fixed array and error
//! messages in a fixed buffer, so the console works when memory is exhausted.

use super::line::Complete;
use crate::printk::StackString;
use core::fmt;
use core::ops::Deref;

/// A console command.
pub struct Command {
    /// What the user types.
    pub name: &'static str,
    /// Argument synopsis for help and usage lines, e.g. `ORDER [GFP]`.
    pub args: &'static str,
    /// One-line description.
    pub help: &'static str,
    /// Runs the command with the words after the name.
    pub run: fn(&[&str]) -> Result<(), CommandError>,
}

/// Tab completion of a command's arguments: called with the words between the name and
/// the one being completed, it gives every word that may stand there.
pub type ArgCompletion = fn(&[&str], &mut dyn FnMut(&'static str));

/// Why a command did not run.
#[derive(Debug, PartialEq, Eq)]
pub enum CommandError {
    /// Wrong arguments: the usage line is printed.
    Usage,
    /// Wrong arguments with an explanation, followed by the usage line.
    BadArgument(Message),
}

/// An error message in a fixed buffer (cut short if longer).
pub type Message = StackString<104>;

impl CommandError {
    /// `BadArgument` with a formatted message: `CommandError::bad(format_args!(...))`.
    pub fn bad(args: fmt::Arguments<'_>) -> Self {
        CommandError::BadArgument(Message::from_fmt(args))
    }
}

/// Most words a line can have (a 128-character line has at most 64).
pub const MAX_WORDS: usize = 64;

/// The words after the command name, in a fixed array; derefs to `&[&str]`.
pub struct Words<'a> {
    words: [&'a str; MAX_WORDS],
    len: usize,
}

impl<'a> Deref for Words<'a> {
    type Target = [&'a str];
    fn deref(&self) -> &[&'a str] {
        &self.words[..self.len]
    }
}

/// The result of looking up a line.
// `Found` carries the words in place (1 KiB on the stack, once per line): boxing them
// would allocate, which the console must not.
#[allow(clippy::large_enum_variant)]
pub enum Dispatch<'a> {
    /// An empty line.
    Empty,
    /// No such command (the first word).
    Unknown(&'a str),
    /// The command and its arguments.
    /// (Words beyond [`MAX_WORDS`] are dropped: no command takes that many, so the
    /// command still refuses the line with its usage.)
    Found(&'static Command, Words<'a>),
}

/// Splits `line` into words and finds the command among `table`.
pub fn dispatch<'a>(table: &'static [Command], line: &'a str) -> Dispatch<'a> {
    let mut words = line.split_whitespace();
    let Some(name) = words.next() else {
        return Dispatch::Empty;
    };
    match table.iter().find(|c| c.name == name) {
        Some(cmd) => {
            let mut w = Words { words: [""; MAX_WORDS], len: 0 };
            for word in words.take(MAX_WORDS) {
                w.words[w.len] = word;
                w.len += 1;
            }
            Dispatch::Found(cmd, w)
        }
        None => Dispatch::Unknown(name),
    }
}

/// `usage: alloc pages ORDER [GFP]`
pub struct Usage<'a>(pub &'a Command);

impl fmt::Display for Usage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.args.is_empty() {
            write!(f, "usage: {}", self.0.name)
        } else {
            write!(f, "usage: {} {}", self.0.name, self.0.args)
        }
    }
}

/// Tab completion from a command table: the command names for the first word; for the
/// arguments, the command's own [`ArgCompletion`] from the second table if it has one
/// (`crash ` -> the crash types, `cat ` -> the /proc files), else for the first argument
/// the lower-case words of its synopsis (`alloc p` -> `pages`).
pub struct Completer(pub &'static [Command], pub &'static [(&'static str, ArgCompletion)]);

impl Complete for Completer {
    fn candidates(&self, before: &str, each: &mut dyn FnMut(&'static str)) {
        let mut words = before.split_whitespace();
        let Some(name) = words.next() else {
            return self.0.iter().for_each(|c| each(c.name));
        };
        let Some(cmd) = self.0.iter().find(|c| c.name == name) else { return };
        // The words between the name and the one being completed, in a fixed array.
        let mut w = Words { words: [""; MAX_WORDS], len: 0 };
        for word in words.take(MAX_WORDS) {
            w.words[w.len] = word;
            w.len += 1;
        }
        match self.1.iter().find(|(n, _)| *n == name) {
            Some((_, f)) => f(&w, each),
            None if w.len == 0 => synopsis_words(cmd.args).for_each(each),
            None => {}
        }
    }
}

/// The distance between two words: insertions, deletions, substitutions and swaps of
/// two neighbours (optimal string alignment), as shells' and git's "did you mean" use.
/// Words longer than 32 bytes are compared on their first 32 (nothing allocated).
pub fn edit_distance(a: &str, b: &str) -> usize {
    const N: usize = 33;
    let (a, b) = (&a.as_bytes()[..a.len().min(N - 1)], &b.as_bytes()[..b.len().min(N - 1)]);
    // Three rows of the table, row i in rows[i % 3]: two back (for swaps), the previous,
    // the current.
    let mut rows = [[0usize; N]; 3];
    for (j, v) in rows[0].iter_mut().enumerate().take(b.len() + 1) {
        *v = j;
    }
    for i in 1..=a.len() {
        let (cur, prev, prev2) = (i % 3, (i + 2) % 3, (i + 1) % 3);
        rows[cur][0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[prev][j] + 1).min(rows[cur][j - 1] + 1).min(rows[prev][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[prev2][j - 2] + 1);
            }
            rows[cur][j] = d;
        }
    }
    rows[a.len() % 3][b.len()]
}

/// "Did you mean": the command nearest to `name` (1 edit for a word of 3-4 letters, 2
/// for longer ones, none for shorter, so `x` suggests nothing), else the first command
/// that `name` (3 letters or more) begins (`mem` -> `meminfo`); ties go to the first in
/// the table.
pub fn suggest(table: &'static [Command], name: &str) -> Option<&'static str> {
    let limit = match name.len() {
        0..=2 => 0,
        3..=4 => 1,
        _ => 2,
    };
    let near = table
        .iter()
        .map(|c| (edit_distance(name, c.name), c.name))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, n)| n);
    near.or_else(|| {
        (name.len() >= 3).then(|| table.iter().find(|c| c.name.starts_with(name)).map(|c| c.name)).flatten()
    })
}

/// The literal words of a synopsis: runs of lower-case letters, digits and `_` that
/// start with a letter (the upper-case words are placeholders).
pub fn synopsis_words(args: &'static str) -> impl Iterator<Item = &'static str> {
    args.split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
        .filter(|w| w.starts_with(|c: char| c.is_ascii_lowercase()))
}

/// The column (after the two-space indent) past which `help` does not push the
/// descriptions.
const HELP_COLUMN: usize = 40;

/// Writes the help table: one line per command (two for a synopsis past [`HELP_COLUMN`]).
pub fn write_help(w: &mut dyn fmt::Write, table: &[Command]) -> fmt::Result {
    let synopsis_len = |c: &Command| if c.args.is_empty() { c.name.len() } else { c.name.len() + 1 + c.args.len() };
    // The descriptions start after the longest synopsis, but no further than
    // HELP_COLUMN: a longer synopsis gets a line of its own (as `--help` pages do).
    let width = table.iter().map(synopsis_len).filter(|&n| n <= HELP_COLUMN).max().unwrap_or(0);
    for c in table {
        if c.args.is_empty() {
            write!(w, "  {}", c.name)?;
        } else {
            write!(w, "  {} {}", c.name, c.args)?;
        }
        let len = synopsis_len(c);
        if len > width {
            writeln!(w)?;
            writeln!(w, "  {:pad$}  {}", "", c.help, pad = width)?;
        } else {
            writeln!(w, "{:pad$}  {}", "", c.help, pad = width - len)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(_: &[&str]) -> Result<(), CommandError> {
        Ok(())
    }

    fn gfp_names(before: &[&str], each: &mut dyn FnMut(&'static str)) {
        if before.len() == 2 {
            ["GFP_KERNEL", "GFP_ATOMIC"].into_iter().for_each(each);
        } else if before.is_empty() {
            each("pages");
        }
    }

    static TABLE: [Command; 3] = [
        Command { name: "help", args: "", help: "list commands", run: ok },
        Command { name: "alloc", args: "pages ORDER [GFP]", help: "allocate", run: ok },
        Command { name: "meminfo", args: "", help: "memory", run: ok },
    ];

    #[test]
    fn dispatch_words() {
        assert!(matches!(dispatch(&TABLE, "   "), Dispatch::Empty));
        assert!(matches!(dispatch(&TABLE, "bogus x"), Dispatch::Unknown("bogus")));
        match dispatch(&TABLE, " alloc  pages 3 ") {
            Dispatch::Found(c, args) => {
                assert_eq!(c.name, "alloc");
                assert_eq!(&*args, ["pages", "3"]);
            }
            _ => panic!("alloc not found"),
        }
        let many = "alloc ".to_string() + &"x ".repeat(MAX_WORDS);
        assert!(matches!(dispatch(&TABLE, &many), Dispatch::Found(_, w) if w.len() == MAX_WORDS));
        let too_many = many + "y";
        assert!(matches!(dispatch(&TABLE, &too_many), Dispatch::Found(_, w) if w.len() == MAX_WORDS));
        let e = CommandError::bad(format_args!("SIZE: {}", "x".repeat(300)));
        match e {
            CommandError::BadArgument(m) => assert_eq!(m.as_str().len(), 104, "cut short"),
            CommandError::Usage => panic!(),
        }
    }

    #[test]
    fn completion_words() {
        static TABLE: [Command; 3] = [
            Command { name: "help", args: "", help: "list commands", run: ok },
            Command { name: "alloc", args: "pages ORDER [GFP]", help: "allocate", run: ok },
            Command { name: "meminfo", args: "", help: "memory", run: ok },
        ];
        let names = |before: &str| {
            let mut v = vec![];
            Completer(&TABLE, &[("alloc", gfp_names)]).candidates(before, &mut |w| v.push(w));
            v
        };
        assert_eq!(names(""), ["help", "alloc", "meminfo"]);
        assert_eq!(names("help "), Vec::<&str>::new(), "help's own completion is the table's business");
        assert_eq!(names("alloc "), ["pages"]);
        assert_eq!(names("alloc pages "), Vec::<&str>::new());
        assert_eq!(names("alloc pages 3 "), ["GFP_KERNEL", "GFP_ATOMIC"]);
        assert_eq!(names("meminfo "), Vec::<&str>::new());
        assert_eq!(names("bogus "), Vec::<&str>::new());
        let w: Vec<_> =
            synopsis_words("pages ORDER [GFP] | kmalloc SIZE | off | probability=P ignore_gfp_wait=Y|N").collect();
        assert_eq!(w, ["pages", "kmalloc", "off", "probability", "ignore_gfp_wait"]);
    }

    #[test]
    fn edit_distances() {
        for (a, b, d) in [
            ("", "", 0),
            ("", "abc", 3),
            ("abc", "", 3),
            ("meminfo", "meminfo", 0),
            ("meminf", "meminfo", 1),
            ("memnifo", "meminfo", 1),
            ("mmeinfo", "meminfo", 1),
            ("slabtpo", "slabtop", 1),
            ("kitten", "sitting", 3),
            ("ab", "ba", 1),
            ("ca", "abc", 3),
        ] {
            assert_eq!(edit_distance(a, b), d, "{a} -> {b}");
            assert_eq!(edit_distance(b, a), d, "{b} -> {a}");
        }
        // An independent model: the full Damerau (OSA) table with Vecs.
        fn model(a: &[u8], b: &[u8]) -> usize {
            let mut t = vec![vec![0usize; b.len() + 1]; a.len() + 1];
            for (i, row) in t.iter_mut().enumerate() {
                row[0] = i;
            }
            for (j, v) in t[0].iter_mut().enumerate() {
                *v = j;
            }
            for i in 1..=a.len() {
                for j in 1..=b.len() {
                    let c = usize::from(a[i - 1] != b[j - 1]);
                    t[i][j] = (t[i - 1][j] + 1).min(t[i][j - 1] + 1).min(t[i - 1][j - 1] + c);
                    if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                        t[i][j] = t[i][j].min(t[i - 2][j - 2] + 1);
                    }
                }
            }
            t[a.len()][b.len()]
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let word = |x: &mut u64| -> String {
            let n = (crate::prng::xorshift64(x) % 9) as usize;
            (0..n).map(|_| (b'a' + (crate::prng::xorshift64(x) % 4) as u8) as char).collect()
        };
        for _ in 0..5000 {
            let (a, b) = (word(&mut x), word(&mut x));
            assert_eq!(edit_distance(&a, &b), model(a.as_bytes(), b.as_bytes()), "{a} {b}");
        }
    }

    #[test]
    fn did_you_mean() {
        assert_eq!(suggest(&TABLE, "memnifo"), Some("meminfo"));
        assert_eq!(suggest(&TABLE, "hlep"), Some("help"));
        assert_eq!(suggest(&TABLE, "alocc"), Some("alloc"));
        assert_eq!(suggest(&TABLE, "mem"), Some("meminfo"), "a prefix");
        assert_eq!(suggest(&TABLE, "x"), None);
        assert_eq!(suggest(&TABLE, "he"), None, "two letters are too short for 2 edits");
        assert_eq!(suggest(&TABLE, "bogus"), None);
    }

    #[test]
    fn help_and_usage() {
        let mut s = String::new();
        write_help(&mut s, &TABLE).unwrap();
        assert_eq!(
            s,
            "  help                     list commands\n  alloc pages ORDER [GFP]  allocate\n  meminfo                  memory\n"
        );
        const LONG: &str = "[NTH | off | probability=P interval=I times=T]";
        assert!(LONG.len() > HELP_COLUMN);
        let table = [
            Command { name: "help", args: "", help: "list commands", run: ok },
            Command { name: "fail", args: LONG, help: "inject", run: ok },
        ];
        let mut s = String::new();
        write_help(&mut s, &table).unwrap();
        assert_eq!(s, format!("  help  list commands\n  fail {LONG}\n        inject\n"));
        assert_eq!(Usage(&TABLE[1]).to_string(), "usage: alloc pages ORDER [GFP]");
        assert_eq!(Usage(&TABLE[0]).to_string(), "usage: help");
    }
}
