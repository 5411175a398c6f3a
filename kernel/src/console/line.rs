//! Line editing for a serial terminal, with a Linux shell's habits: cursor movement
//! (arrows, Home/End, Ctrl-A/E/B/F), Backspace/Delete/Ctrl-D, Ctrl-U/K/W to cut, Ctrl-L
//! to redraw, a history of [`HISTORY`] lines (up/down, Ctrl-P/N) and Tab completion
//! through a [`Complete`] source.
//!
//! Hand-written rather than the `noline` crate: the editor must not allocate (the console
//! works with memory exhausted), must keep this console's overflow rule (below), and
//! completes sub-arguments from the command registry; what it needs is about 400 lines
//! over fixed arrays plus the escape decoder in [`super::escape`], both host-tested, where
//! noline brings its own I/O traits and a dependency to vet for a fraction of its
//! features.
//!
//! The editor is a pure state machine: it consumes one received byte at a time and
//! answers with the bytes to send back to the terminal or a finished line, so it fits
//! any byte source (polling, an interrupt-fed ring).
//!
//! The line is UTF-8: a multi-byte character enters the line only when complete, and
//! every movement and deletion steps over whole characters (one column each; wide
//! characters are not measured). Input that does not fit is refused (the bytes are
//! dropped, the terminal bell rings) and the line is reported as too long at Enter, so
//! nothing ever overflows. The refused bytes were never echoed, so any deletion edits
//! what the terminal shows: after it the line is whatever is left on the screen, and it
//! is taken as it is.

use super::escape::{Decoder, Key};
use super::PROMPT;

/// How many lines the history keeps.
pub const HISTORY: usize = 32;

/// Room for what one byte of input can make the editor send (a redraw, a completion list).
const OUT: usize = 2048;

/// What the terminal should see and whether a line is complete.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Send these bytes to the terminal (echo, cursor movement, redraw).
    Echo(&'a [u8]),
    /// A complete line (without the line ending).
    Line(&'a str),
    /// Enter on a line that was too long: it was discarded.
    TooLong {
        /// The longest line accepted.
        max: usize,
    },
    /// Ctrl-C: the line was discarded.
    Cancelled,
    /// Nothing to do.
    None,
}

/// Where Tab completion finds its words.
pub trait Complete {
    /// Calls `each` with every word that may stand where the word being completed
    /// starts, after `before` (the line up to that word); the editor keeps those that
    /// begin with what was typed.
    fn candidates(&self, before: &str, each: &mut dyn FnMut(&'static str));
}

/// No completion.
pub struct NoCompletion;

impl Complete for NoCompletion {
    fn candidates(&self, _: &str, _: &mut dyn FnMut(&'static str)) {}
}

/// A line editor with room for `N` bytes.
pub struct LineEditor<const N: usize> {
    buf: [u8; N],
    len: usize,
    /// Byte offset of the cursor (always on a character boundary).
    cursor: usize,
    overflowed: bool,
    last_was_cr: bool,
    ready: bool,
    decoder: Decoder,
    /// A UTF-8 character being received: its bytes so far and how many it has.
    partial: [u8; 4],
    partial_len: usize,
    partial_need: usize,
    history: [[u8; N]; HISTORY],
    history_len: [usize; HISTORY],
    /// Lines in the history, and the slot the next one goes to.
    history_count: usize,
    history_next: usize,
    /// 0 while editing a new line; k while showing the k-th newest history line.
    browsing: usize,
    /// The new line, kept while browsing the history.
    draft: [u8; N],
    draft_len: usize,
    out: [u8; OUT],
    out_len: usize,
}

impl<const N: usize> Default for LineEditor<N> {
    fn default() -> Self {
        Self::new()
    }
}

const BACKSPACE_ECHO: &[u8] = b"\x08 \x08";
const BELL: &[u8] = b"\x07";

fn is_continuation(b: u8) -> bool {
    b & 0xc0 == 0x80
}

impl<const N: usize> LineEditor<N> {
    /// An empty editor (its redraws start with the console's [`PROMPT`]).
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
            cursor: 0,
            overflowed: false,
            last_was_cr: false,
            ready: false,
            decoder: Decoder::new(),
            partial: [0; 4],
            partial_len: 0,
            partial_need: 0,
            history: [[0; N]; HISTORY],
            history_len: [0; HISTORY],
            history_count: 0,
            history_next: 0,
            browsing: 0,
            draft: [0; N],
            draft_len: 0,
            out: [0; OUT],
            out_len: 0,
        }
    }

    /// Longest line accepted.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The line as it stands.
    pub fn line(&self) -> &str {
        // Only whole UTF-8 characters are ever inserted.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// The history, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &str> {
        (1..=self.history_count).rev().map(|k| self.history_entry(k))
    }

    fn history_entry(&self, k: usize) -> &str {
        let slot = (self.history_next + HISTORY - k) % HISTORY;
        core::str::from_utf8(&self.history[slot][..self.history_len[slot]]).unwrap_or("")
    }

    /// Feeds one received byte.
    pub fn feed(&mut self, b: u8, complete: &dyn Complete) -> Event<'_> {
        if self.ready {
            // The previous line was handed out; start afresh.
            self.ready = false;
            self.len = 0;
            self.cursor = 0;
            self.overflowed = false;
            self.browsing = 0;
        }
        self.out_len = 0;
        let after_cr = core::mem::replace(&mut self.last_was_cr, b == b'\r');
        if b == b'\n' && after_cr {
            return Event::None; // the \n of a \r\n pair
        }
        let Some(key) = self.decoder.feed(b) else { return Event::None };
        if !matches!(key, Key::Byte(_)) {
            self.partial_need = 0; // a character cut short by another key is dropped
        }
        match key {
            Key::Enter => {
                self.ready = true;
                if self.overflowed {
                    return Event::TooLong { max: N };
                }
                self.remember();
                return Event::Line(self.line());
            }
            Key::Ctrl(b'c') => {
                self.ready = true;
                return Event::Cancelled;
            }
            Key::Byte(b) => self.byte(b),
            Key::Backspace => {
                self.overflowed = false;
                if self.cursor > 0 {
                    let at = self.prev_boundary(self.cursor);
                    let tail = self.cursor == self.len;
                    self.remove(at, self.cursor);
                    if tail {
                        self.emit(BACKSPACE_ECHO);
                    } else {
                        self.refresh();
                    }
                }
            }
            Key::Delete | Key::Ctrl(b'd') => {
                self.overflowed = false;
                if self.cursor < self.len {
                    let end = self.next_boundary(self.cursor);
                    self.remove(self.cursor, end);
                    self.refresh();
                }
            }
            Key::Left | Key::Ctrl(b'b') => {
                if self.cursor > 0 {
                    self.cursor = self.prev_boundary(self.cursor);
                    self.emit(b"\x08");
                }
            }
            Key::Right | Key::Ctrl(b'f') => {
                if self.cursor < self.len {
                    let end = self.next_boundary(self.cursor);
                    let (from, to) = (self.cursor, end);
                    self.cursor = end;
                    self.emit_buf(from, to);
                }
            }
            Key::Home | Key::Ctrl(b'a') => {
                self.cursor = 0;
                self.refresh();
            }
            Key::End | Key::Ctrl(b'e') => {
                self.cursor = self.len;
                self.refresh();
            }
            Key::Ctrl(b'u') => {
                self.overflowed = false;
                self.remove(0, self.cursor);
                self.refresh();
            }
            Key::Ctrl(b'k') => {
                self.overflowed = false;
                self.len = self.cursor;
                self.refresh();
            }
            Key::Ctrl(b'w') => {
                self.overflowed = false;
                let mut at = self.cursor;
                while at > 0 && self.buf[at - 1] == b' ' {
                    at -= 1;
                }
                while at > 0 && self.buf[at - 1] != b' ' {
                    at -= 1;
                }
                self.remove(at, self.cursor);
                self.refresh();
            }
            Key::Ctrl(b'l') => {
                self.emit(b"\x1b[H\x1b[2J");
                self.refresh();
            }
            Key::Up | Key::Ctrl(b'p') => self.older(),
            Key::Down | Key::Ctrl(b'n') => self.newer(),
            Key::Tab => self.complete(complete),
            Key::Ctrl(_) => {}
        }
        if self.out_len == 0 {
            Event::None
        } else {
            Event::Echo(&self.out[..self.out_len])
        }
    }

    /// A printable byte: ASCII goes in at once, UTF-8 once its character is complete;
    /// anything that cannot be UTF-8 is refused with the bell.
    fn byte(&mut self, b: u8) {
        if b < 0x80 {
            self.insert(&[b]);
            return;
        }
        if is_continuation(b) {
            if self.partial_need == 0 {
                self.emit(BELL);
                return;
            }
            self.partial[self.partial_len] = b;
            self.partial_len += 1;
            if self.partial_len == self.partial_need {
                self.partial_need = 0;
                let ch = self.partial;
                let n = self.partial_len;
                if core::str::from_utf8(&ch[..n]).is_ok() {
                    self.insert(&ch[..n]);
                } else {
                    self.emit(BELL); // overlong or surrogate encodings
                }
            }
            return;
        }
        self.partial_need = match b {
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => {
                self.emit(BELL);
                0
            }
        };
        self.partial[0] = b;
        self.partial_len = 1;
    }

    /// Inserts whole characters at the cursor, or refuses them (bell) if they do not fit.
    fn insert(&mut self, bytes: &[u8]) -> bool {
        let n = bytes.len();
        if self.len + n > N {
            self.overflowed = true;
            self.emit(BELL);
            return false;
        }
        self.buf.copy_within(self.cursor..self.len, self.cursor + n);
        self.buf[self.cursor..self.cursor + n].copy_from_slice(bytes);
        self.len += n;
        self.cursor += n;
        if self.cursor == self.len {
            self.emit_buf(self.cursor - n, self.cursor);
        } else {
            self.refresh();
        }
        true
    }

    fn remove(&mut self, from: usize, to: usize) {
        self.buf.copy_within(to..self.len, from);
        self.len -= to - from;
        self.cursor = from;
    }

    fn prev_boundary(&self, mut at: usize) -> usize {
        at -= 1;
        while at > 0 && is_continuation(self.buf[at]) {
            at -= 1;
        }
        at
    }

    fn next_boundary(&self, mut at: usize) -> usize {
        at += 1;
        while at < self.len && is_continuation(self.buf[at]) {
            at += 1;
        }
        at
    }

    fn chars(&self, from: usize, to: usize) -> usize {
        self.buf[from..to].iter().filter(|&&b| !is_continuation(b)).count()
    }

    fn emit(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(OUT - self.out_len);
        self.out[self.out_len..self.out_len + n].copy_from_slice(&bytes[..n]);
        self.out_len += n;
    }

    fn emit_buf(&mut self, from: usize, to: usize) {
        let n = (to - from).min(OUT - self.out_len);
        self.out[self.out_len..self.out_len + n].copy_from_slice(&self.buf[from..from + n]);
        self.out_len += n;
    }

    fn emit_number(&mut self, mut n: usize) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.emit(&digits[i..]);
    }

    /// Redraws the whole line: start of the row, prompt, line, erase to the end, and the
    /// cursor back to where it is in the line.
    fn refresh(&mut self) {
        self.emit(b"\r");
        self.emit(PROMPT.as_bytes());
        self.emit_buf(0, self.len);
        self.emit(b"\x1b[K");
        let back = self.chars(self.cursor, self.len);
        if back > 0 {
            self.emit(b"\x1b[");
            self.emit_number(back);
            self.emit(b"D");
        }
    }

    /// Puts a finished, non-empty line into the history unless it repeats the last one.
    fn remember(&mut self) {
        if self.line().trim().is_empty() || (self.history_count > 0 && self.history_entry(1) == self.line()) {
            return;
        }
        let slot = self.history_next;
        self.history[slot][..self.len].copy_from_slice(&self.buf[..self.len]);
        self.history_len[slot] = self.len;
        self.history_next = (slot + 1) % HISTORY;
        self.history_count = (self.history_count + 1).min(HISTORY);
    }

    fn load(&mut self, from_history: Option<usize>) {
        match from_history {
            Some(k) => {
                let slot = (self.history_next + HISTORY - k) % HISTORY;
                self.len = self.history_len[slot];
                self.buf[..self.len].copy_from_slice(&self.history[slot][..self.len]);
            }
            None => {
                self.len = self.draft_len;
                self.buf[..self.len].copy_from_slice(&self.draft[..self.len]);
            }
        }
        self.cursor = self.len;
        self.overflowed = false;
        self.refresh();
    }

    fn older(&mut self) {
        if self.browsing == self.history_count {
            self.emit(BELL);
            return;
        }
        if self.browsing == 0 {
            self.draft[..self.len].copy_from_slice(&self.buf[..self.len]);
            self.draft_len = self.len;
        }
        self.browsing += 1;
        self.load(Some(self.browsing));
    }

    fn newer(&mut self) {
        if self.browsing == 0 {
            return;
        }
        self.browsing -= 1;
        self.load(if self.browsing == 0 { None } else { Some(self.browsing) });
    }

    /// Tab: one match is completed (with a space after it), several are completed as far
    /// as they agree, and listed when they agree no further; no match rings the bell.
    fn complete(&mut self, source: &dyn Complete) {
        // A copy of the line up to the cursor, so the sources can be asked while the
        // editor writes its answer.
        let mut line = [0u8; N];
        let cursor = self.cursor;
        line[..cursor].copy_from_slice(&self.buf[..cursor]);
        let start = line[..cursor].iter().rposition(|&b| b == b' ').map_or(0, |i| i + 1);
        let (Ok(before), Ok(word)) = (core::str::from_utf8(&line[..start]), core::str::from_utf8(&line[start..cursor]))
        else {
            return;
        };
        let mut first: Option<&'static str> = None;
        let mut count = 0usize;
        let mut common = 0usize;
        source.candidates(before, &mut |c| {
            if !c.starts_with(word) {
                return;
            }
            count += 1;
            match first {
                None => {
                    first = Some(c);
                    common = c.len();
                }
                Some(f) => {
                    common = f.bytes().zip(c.bytes()).take(common).take_while(|(a, b)| a == b).count();
                    while !f.is_char_boundary(common) {
                        common -= 1;
                    }
                }
            }
        });
        let Some(first) = first else {
            self.emit(BELL);
            return;
        };
        let extension = &first.as_bytes()[word.len()..common];
        if count == 1 {
            if self.insert(extension) && self.buf[..self.len].get(self.cursor) != Some(&b' ') {
                self.insert(b" ");
            }
        } else if !extension.is_empty() {
            self.insert(extension);
        } else {
            // Several matches that agree no further: list them under the line.
            self.emit(b"\r\n");
            let mut n = 0;
            source.candidates(before, &mut |c| {
                if c.starts_with(word) {
                    if n > 0 {
                        self.emit(b"  ");
                    }
                    self.emit(c.as_bytes());
                    n += 1;
                }
            });
            self.emit(b"\r\n");
            self.refresh();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Words(&'static [&'static str]);
    impl Complete for Words {
        fn candidates(&self, before: &str, each: &mut dyn FnMut(&'static str)) {
            if before.is_empty() {
                self.0.iter().for_each(|w| each(w));
            } else if before == "alloc " {
                ["pages", "kmalloc", "vmalloc"].iter().for_each(|w| each(w));
            }
        }
    }
    const CMDS: Words = Words(&["meminfo", "help", "slabinfo", "sweep", "stress", "alloc", "allocs"]);

    fn feed_all<const N: usize>(e: &mut LineEditor<N>, s: &[u8]) -> Vec<String> {
        let mut out = vec![];
        for &b in s {
            match e.feed(b, &CMDS) {
                Event::Line(l) => out.push(format!("line:{l}")),
                Event::TooLong { max } => out.push(format!("toolong:{max}")),
                Event::Cancelled => out.push("cancel".into()),
                Event::Echo(_) | Event::None => {}
            }
        }
        out
    }

    /// The bytes sent back for `s` (all of them, concatenated).
    fn screen<const N: usize>(e: &mut LineEditor<N>, s: &[u8]) -> String {
        let mut out = vec![];
        for &b in s {
            if let Event::Echo(bytes) = e.feed(b, &CMDS) {
                out.extend_from_slice(bytes);
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn echo_and_enter() {
        let mut e = LineEditor::<16>::new();
        assert_eq!(e.feed(b'h', &NoCompletion), Event::Echo(b"h"));
        assert_eq!(e.feed(b'i', &NoCompletion), Event::Echo(b"i"));
        assert_eq!(e.feed(b'\r', &NoCompletion), Event::Line("hi"));
        assert_eq!(e.feed(b'\n', &NoCompletion), Event::None, "\\r\\n is one line end");
        assert_eq!(feed_all(&mut e, b"help\n"), vec!["line:help"]);
        assert_eq!(feed_all(&mut e, b"\r\r"), vec!["line:", "line:"]);
    }

    #[test]
    fn backspace_edits() {
        let mut e = LineEditor::<16>::new();
        assert_eq!(e.feed(0x7f, &CMDS), Event::None, "nothing to erase");
        feed_all(&mut e, b"helx");
        assert_eq!(e.feed(0x7f, &CMDS), Event::Echo(b"\x08 \x08"));
        assert_eq!(feed_all(&mut e, b"p\r"), vec!["line:help"]);
        assert_eq!(feed_all(&mut e, b"ab\x08\x08c\r"), vec!["line:c"]);
    }

    #[test]
    fn overlong_is_refused_not_overflowed() {
        let mut e = LineEditor::<4>::new();
        assert_eq!(feed_all(&mut e, b"abcd"), Vec::<String>::new());
        assert_eq!(e.feed(b'e', &CMDS), Event::Echo(b"\x07"));
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
    fn ctrl_c_and_escape_sequences() {
        let mut e = LineEditor::<8>::new();
        assert_eq!(feed_all(&mut e, b"abc\x03"), vec!["cancel"]);
        assert_eq!(feed_all(&mut e, b"\x1b[Ax\xff\x1b[2~\r"), vec!["line:x"], "keys and junk never typed in");
    }

    #[test]
    fn cursor_movement_and_deletion() {
        let mut e = LineEditor::<32>::new();
        assert_eq!(feed_all(&mut e, b"hlp\x1b[D\x1b[De\r"), vec!["line:help"]);
        assert_eq!(feed_all(&mut e, b"elp\x01h\x05!\r"), vec!["line:help!"], "Ctrl-A, Ctrl-E");
        assert_eq!(feed_all(&mut e, b"xhelp\x1b[H\x1b[3~\x1b[F\r"), vec!["line:help"], "Home, Delete, End");
        assert_eq!(feed_all(&mut e, b"abc\x1b[D\x1b[D\x04\r"), vec!["line:ac"], "Ctrl-D deletes under the cursor");
        assert_eq!(feed_all(&mut e, b"ab\x1b[D\x1b[D\x1b[D\x1b[C\x7f\r"), vec!["line:b"], "left stops at 0");
        assert_eq!(feed_all(&mut e, b"garbage\x15meminfo\r"), vec!["line:meminfo"], "Ctrl-U");
        assert_eq!(feed_all(&mut e, b"alloc pages 3\x17\x179\r"), vec!["line:alloc 9"], "Ctrl-W twice");
        assert_eq!(feed_all(&mut e, b"help xyz\x1b[D\x1b[D\x1b[D\x1b[D\x0b\r"), vec!["line:help"], "Ctrl-K");
        assert_eq!(feed_all(&mut e, b"abc\x1b[D\x15\r"), vec!["line:c"], "Ctrl-U cuts before the cursor");
    }

    #[test]
    fn redraws_show_the_line() {
        let mut e = LineEditor::<32>::new();
        screen(&mut e, b"helo");
        assert_eq!(screen(&mut e, b"\x1b[D"), "\x08");
        assert_eq!(screen(&mut e, b"l"), "\rmm> hello\x1b[K\x1b[1D", "insert in the middle redraws");
        assert_eq!(screen(&mut e, b"\x15"), "\rmm> o\x1b[K\x1b[1D");
        assert_eq!(screen(&mut e, b"\x0c"), "\x1b[H\x1b[2J\rmm> o\x1b[K\x1b[1D", "Ctrl-L clears and redraws");
    }

    #[test]
    fn history_up_down() {
        let mut e = LineEditor::<32>::new();
        feed_all(&mut e, b"meminfo\rbuddyinfo\rbuddyinfo\r\r  \r");
        assert_eq!(e.history().collect::<Vec<_>>(), ["meminfo", "buddyinfo"], "no repeats, no blanks");
        assert_eq!(feed_all(&mut e, b"\x1b[A\r"), vec!["line:buddyinfo"]);
        assert_eq!(feed_all(&mut e, b"\x1b[A\x1b[A\r"), vec!["line:meminfo"]);
        assert_eq!(e.history().collect::<Vec<_>>(), ["meminfo", "buddyinfo", "meminfo"]);
        assert_eq!(
            screen(&mut e, b"\x1b[A\x1b[A\x1b[A\x1b[A"),
            "\rmm> meminfo\x1b[K\rmm> buddyinfo\x1b[K\rmm> meminfo\x1b[K\x07",
            "past the oldest rings"
        );
        assert_eq!(feed_all(&mut e, b"\x1b[B\r"), vec!["line:buddyinfo"]);
        assert_eq!(feed_all(&mut e, b"draft\x1b[A\x1b[A\x1b[B\x1b[B\r"), vec!["line:draft"], "down to the line typed");
        assert_eq!(feed_all(&mut e, b"\x10x\r"), vec!["line:draftx"], "Ctrl-P, edited");
    }

    #[test]
    fn history_keeps_the_newest() {
        let mut e = LineEditor::<8>::new();
        for i in 0..HISTORY + 5 {
            feed_all(&mut e, format!("c{i}\r").as_bytes());
        }
        let h: Vec<_> = e.history().collect();
        assert_eq!(h.len(), HISTORY);
        assert_eq!(h[0], "c5");
        assert_eq!(h[HISTORY - 1], format!("c{}", HISTORY + 4));
        let up = "\x1b[A".repeat(HISTORY + 3) + "\r";
        assert_eq!(feed_all(&mut e, up.as_bytes()), vec!["line:c5"]);
    }

    #[test]
    fn tab_completion() {
        let mut e = LineEditor::<32>::new();
        assert_eq!(feed_all(&mut e, b"mem\t\r"), vec!["line:meminfo "]);
        assert_eq!(feed_all(&mut e, b"alloc p\t3\r"), vec!["line:alloc pages 3"]);
        assert_eq!(feed_all(&mut e, b"s\t\r"), vec!["line:s"], "ambiguous, nothing to add");
        assert_eq!(screen(&mut e, b"s\t"), "s\r\nslabinfo  sweep  stress\r\n\rmm> s\x1b[K", "listed");
        assert_eq!(feed_all(&mut e, b"\x15all\t\r"), vec!["line:alloc"], "alloc/allocs agree up to alloc");
        assert_eq!(screen(&mut e, b"zz\t"), "zz\x07", "no match rings");
    }

    #[test]
    fn utf8_is_whole_characters() {
        let mut e = LineEditor::<16>::new();
        assert_eq!(feed_all(&mut e, "caf\u{e9}\r".as_bytes()), vec!["line:caf\u{e9}"]);
        assert_eq!(
            feed_all(&mut e, "\u{e9}\u{20ac}x\x7f\x7f\r".as_bytes()),
            vec!["line:\u{e9}"],
            "backspace takes a character"
        );
        assert_eq!(feed_all(&mut e, "a\u{1f600}b\x1b[D\x7f\r".as_bytes()), vec!["line:ab"]);
        assert_eq!(feed_all(&mut e, b"\x80a\xc3b\xc0\xafc\r"), vec!["line:abc"], "stray and overlong bytes dropped");
        let mut small = LineEditor::<4>::new();
        assert_eq!(feed_all(&mut small, "abc\u{e9}\r".as_bytes()), vec!["toolong:4"], "a character never half fits");
    }
}
