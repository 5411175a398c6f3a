//! The command registry: every console command is a [`Command`] in one table, so `help`
//! lists them all and dispatch is one lookup.

use core::fmt;

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
    BadArgument(alloc::string::String),
}

/// The result of looking up a line.
pub enum Dispatch<'a> {
    /// An empty line.
    Empty,
    /// No such command (the first word).
    Unknown(&'a str),
    /// The command and its arguments.
    Found(&'static Command, alloc::vec::Vec<&'a str>),
}

/// Splits `line` into words and finds the command among `table`.
pub fn dispatch<'a>(table: &'static [Command], line: &'a str) -> Dispatch<'a> {
    let mut words = line.split_whitespace();
    let Some(name) = words.next() else {
        return Dispatch::Empty;
    };
    match table.iter().find(|c| c.name == name) {
        Some(cmd) => Dispatch::Found(cmd, words.collect()),
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

/// Writes the help table: one line per command.
pub fn write_help(w: &mut dyn fmt::Write, table: &[Command]) -> fmt::Result {
    let width = table.iter().map(|c| c.name.len() + 1 + c.args.len()).max().unwrap_or(0);
    for c in table {
        let mut synopsis = alloc::string::String::from(c.name);
        if !c.args.is_empty() {
            synopsis.push(' ');
            synopsis.push_str(c.args);
        }
        writeln!(w, "  {synopsis:<width$}  {}", c.help)?;
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
                assert_eq!(args, vec!["pages", "3"]);
            }
            _ => panic!("alloc not found"),
        }
    }

    #[test]
    fn help_and_usage() {
        let mut s = String::new();
        write_help(&mut s, &TABLE).unwrap();
        assert_eq!(s, "  help                     list commands\n  alloc pages ORDER [GFP]  allocate\n");
        assert_eq!(Usage(&TABLE[1]).to_string(), "usage: alloc pages ORDER [GFP]");
        assert_eq!(Usage(&TABLE[0]).to_string(), "usage: help");
    }
}
