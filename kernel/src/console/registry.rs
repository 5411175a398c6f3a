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

/// Tab completion from a command table: the command names for the first word (and for
/// the word after `help`), then for the second word the lower-case words of the
/// command's synopsis (`alloc p` -> `pages`, `sweep v` -> `vmalloc`).
pub struct Completer(pub &'static [Command]);

impl Complete for Completer {
    fn candidates(&self, before: &str, each: &mut dyn FnMut(&'static str)) {
        let mut words = before.split_whitespace();
        match (words.next(), words.next()) {
            (None, _) | (Some("help"), None) => self.0.iter().for_each(|c| each(c.name)),
            (Some(name), None) => {
                if let Some(cmd) = self.0.iter().find(|c| c.name == name) {
                    synopsis_words(cmd.args).for_each(each);
                }
            }
            _ => {}
        }
    }
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

    static TABLE: [Command; 2] = [
        Command { name: "help", args: "", help: "list commands", run: ok },
        Command { name: "alloc", args: "pages ORDER [GFP]", help: "allocate", run: ok },
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
        let names = |before: &str| {
            let mut v = vec![];
            Completer(&TABLE).candidates(before, &mut |w| v.push(w));
            v
        };
        assert_eq!(names(""), ["help", "alloc"]);
        assert_eq!(names("help "), ["help", "alloc"]);
        assert_eq!(names("alloc "), ["pages"]);
        assert_eq!(names("alloc pages "), Vec::<&str>::new());
        assert_eq!(names("bogus "), Vec::<&str>::new());
        let w: Vec<_> =
            synopsis_words("pages ORDER [GFP] | kmalloc SIZE | off | probability=P ignore_gfp_wait=Y|N").collect();
        assert_eq!(w, ["pages", "kmalloc", "off", "probability", "ignore_gfp_wait"]);
    }

    #[test]
    fn help_and_usage() {
        let mut s = String::new();
        write_help(&mut s, &TABLE).unwrap();
        assert_eq!(s, "  help                     list commands\n  alloc pages ORDER [GFP]  allocate\n");
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
