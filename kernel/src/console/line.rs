//! Line editing for a serial terminal: echo, backspace, a bounded buffer.
//!
//! Input that does not fit is refused (the bytes are dropped, the terminal bell rings)
//! and the line is reported as too long at Enter, so nothing ever overflows. The refused
//! bytes were never echoed, so a backspace edits what the terminal shows: after it the
//! line is whatever is left on the screen, and it is taken as it is.

/// What the terminal should see and whether a line is complete.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Echo these bytes back.
    Echo(&'a [u8]),
    /// A complete line (without the line ending).
    Line(&'a str),
    /// Enter on a line that was too long: it was discarded.
    TooLong { max: usize },
    /// Ctrl-C: the line was discarded.
    Cancelled,
    /// Nothing to do.
    None,
}

/// A line editor with room for `N` bytes.
pub struct LineEditor<const N: usize> {
    buf: [u8; N],
    len: usize,
    overflowed: bool,
    last_was_cr: bool,
    ready: bool,
}

impl<const N: usize> Default for LineEditor<N> {
    fn default() -> Self {
        Self::new()
    }
}

const BACKSPACE_ECHO: &[u8] = b"\x08 \x08";
const BELL: &[u8] = b"\x07";

impl<const N: usize> LineEditor<N> {
    /// An empty editor.
    pub const fn new() -> Self {
        Self { buf: [0; N], len: 0, overflowed: false, last_was_cr: false, ready: false }
    }

    /// Longest line accepted.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Feeds one received byte.
    pub fn feed(&mut self, b: u8) -> Event<'_> {
        if self.ready {
            // The previous line was handed out; start afresh.
            self.ready = false;
            self.len = 0;
            self.overflowed = false;
        }
        let after_cr = core::mem::replace(&mut self.last_was_cr, b == b'\r');
        match b {
            b'\r' | b'\n' => {
                if b == b'\n' && after_cr {
                    return Event::None; // the \n of a \r\n pair
                }
                self.ready = true;
                if self.overflowed {
                    return Event::TooLong { max: N };
                }
                match core::str::from_utf8(&self.buf[..self.len]) {
                    Ok(s) => Event::Line(s),
                    Err(_) => Event::Line(""),
                }
            }
            0x08 | 0x7f => {
                // The refused bytes are not on the screen: editing starts from what is.
                self.overflowed = false;
                if self.len > 0 {
                    self.len -= 1;
                    Event::Echo(BACKSPACE_ECHO)
                } else {
                    Event::None
                }
            }
            0x03 => {
                self.ready = true;
                Event::Cancelled
            }
            0x20..=0x7e => {
                if self.len == N {
                    self.overflowed = true;
                    return Event::Echo(BELL);
                }
                self.buf[self.len] = b;
                self.len += 1;
                Event::Echo(&self.buf[self.len - 1..self.len])
            }
            // Other control bytes and non-ASCII are ignored (no escape sequences).
            _ => Event::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all<const N: usize>(e: &mut LineEditor<N>, s: &[u8]) -> Vec<String> {
        let mut out = vec![];
        for &b in s {
            match e.feed(b) {
                Event::Line(l) => out.push(format!("line:{l}")),
                Event::TooLong { max } => out.push(format!("toolong:{max}")),
                Event::Cancelled => out.push("cancel".into()),
                Event::Echo(_) | Event::None => {}
            }
        }
        out
    }

    #[test]
    fn echo_and_enter() {
        let mut e = LineEditor::<16>::new();
        assert_eq!(e.feed(b'h'), Event::Echo(b"h"));
        assert_eq!(e.feed(b'i'), Event::Echo(b"i"));
        assert_eq!(e.feed(b'\r'), Event::Line("hi"));
        assert_eq!(e.feed(b'\n'), Event::None, "\\r\\n is one line end");
        assert_eq!(feed_all(&mut e, b"help\n"), vec!["line:help"]);
        assert_eq!(feed_all(&mut e, b"\r\r"), vec!["line:", "line:"]);
    }

    #[test]
    fn backspace_edits() {
        let mut e = LineEditor::<16>::new();
        assert_eq!(e.feed(0x7f), Event::None, "nothing to erase");
        feed_all(&mut e, b"helx");
        assert_eq!(e.feed(0x7f), Event::Echo(b"\x08 \x08"));
        assert_eq!(feed_all(&mut e, b"p\r"), vec!["line:help"]);
        assert_eq!(feed_all(&mut e, b"ab\x08\x08c\r"), vec!["line:c"]);
    }

    #[test]
    fn overlong_is_refused_not_overflowed() {
        let mut e = LineEditor::<4>::new();
        assert_eq!(feed_all(&mut e, b"abcd"), Vec::<String>::new());
        assert_eq!(e.feed(b'e'), Event::Echo(b"\x07"));
        assert_eq!(feed_all(&mut e, b"fgh\r"), vec!["toolong:4"]);
        assert_eq!(feed_all(&mut e, b"ok\r"), vec!["line:ok"], "next line is clean");
    }

    #[test]
    fn backspacing_an_overlong_line_makes_it_usable() {
        let mut e = LineEditor::<8>::new();
        assert_eq!(feed_all(&mut e, b"helpxxxxyyyy"), Vec::<String>::new());
        assert_eq!(feed_all(&mut e, b"\x7f\x7f\x7f\x7f\r"), vec!["line:help"], "what the screen shows runs");
        assert_eq!(feed_all(&mut e, b"abcdefghij\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7fk\r"), vec!["line:k"]);
        assert_eq!(feed_all(&mut e, b"abcdefghij\r"), vec!["toolong:8"], "still refused without editing");
    }

    #[test]
    fn ctrl_c_and_garbage() {
        let mut e = LineEditor::<8>::new();
        assert_eq!(feed_all(&mut e, b"abc\x03"), vec!["cancel"]);
        assert_eq!(feed_all(&mut e, b"\x1b[Ax\xff\r"), vec!["line:[Ax"]);
    }
}
