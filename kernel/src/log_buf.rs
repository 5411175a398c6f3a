//! The kernel log buffer behind `dmesg`: every printk line, with its level and
//! timestamp, in a fixed ring of bytes (Linux's `__log_buf`). When it is full the oldest
//! lines are dropped, whole, and counted. Lines are numbered (sequence numbers), so a
//! reader that copies one line at a time ([`LogBuf::read`]) notices lines dropped under it.
//!
//! Pure and fixed-size (no allocation), tested on the host; `printk` owns the instance.

use crate::kern_levels::Level;

/// Longest line kept; the rest of a longer line is cut (Linux's 1024-byte records).
pub const LINE_MAX: usize = 1024;

/// Bytes in front of each line in the ring: length (2), level (1), timestamp (8).
const HEADER: usize = 11;

/// Where a reader is: the next line's sequence number and its offset in the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    seq: u64,
    off: usize,
}

/// A line copied out of the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Its sequence number.
    pub seq: u64,
    /// Its level.
    pub level: Level,
    /// When it was logged, in nanoseconds since boot.
    pub ts_ns: u64,
    /// Bytes of text.
    pub len: usize,
}

/// A ring of `N` bytes of log lines.
pub struct LogBuf<const N: usize> {
    ring: [u8; N],
    /// Offset of the oldest line, and where the next one goes.
    head: usize,
    tail: usize,
    /// Bytes in use.
    used: usize,
    /// Sequence numbers of the oldest line held and of the next line.
    first_seq: u64,
    next_seq: u64,
    /// Lines dropped to make room since boot.
    dropped: u64,
    /// The line being written.
    line: [u8; LINE_MAX],
    line_len: usize,
    line_level: Level,
    line_ts: u64,
    line_open: bool,
}

impl<const N: usize> Default for LogBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LogBuf<N> {
    /// An empty log.
    pub const fn new() -> Self {
        Self {
            ring: [0; N],
            head: 0,
            tail: 0,
            used: 0,
            first_seq: 0,
            next_seq: 0,
            dropped: 0,
            line: [0; LINE_MAX],
            line_len: 0,
            line_level: Level::Emerg, // zero: the buffer stays in .bss
            line_ts: 0,
            line_open: false,
        }
    }

    /// Capacity in bytes.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Lines dropped to make room since boot.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Lines held.
    pub fn lines(&self) -> u64 {
        self.next_seq - self.first_seq
    }

    /// Starts a line (ends an open one first).
    pub fn begin(&mut self, level: Level, ts_ns: u64) {
        if self.line_open {
            self.end();
        }
        self.line_open = true;
        self.line_level = level;
        self.line_ts = ts_ns;
        self.line_len = 0;
    }

    /// Adds text to the open line (what does not fit in [`LINE_MAX`] is cut).
    pub fn append(&mut self, text: &[u8]) {
        if !self.line_open {
            return;
        }
        let n = text.len().min(LINE_MAX - self.line_len);
        self.line[self.line_len..self.line_len + n].copy_from_slice(&text[..n]);
        self.line_len += n;
    }

    /// Ends the open line and puts it into the ring, dropping the oldest lines to make
    /// room.
    pub fn end(&mut self) {
        if !self.line_open {
            return;
        }
        self.line_open = false;
        let mut len = self.line_len.min(N - HEADER);
        if let Err(e) = core::str::from_utf8(&self.line[..len]) {
            if e.error_len().is_none() {
                len = e.valid_up_to(); // never keep half a character where a line was cut
            }
        }
        let need = HEADER + len;
        while N - self.used < need {
            self.drop_oldest();
        }
        let mut header = [0u8; HEADER];
        header[..2].copy_from_slice(&(len as u16).to_le_bytes());
        header[2] = self.line_level as u8;
        header[3..].copy_from_slice(&self.line_ts.to_le_bytes());
        self.put(&header);
        let line = self.line;
        self.put(&line[..len]);
        self.used += need;
        self.next_seq += 1;
    }

    fn put(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.ring[self.tail] = b;
            self.tail = (self.tail + 1) % N;
        }
    }

    fn get(&self, off: usize, out: &mut [u8]) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.ring[(off + i) % N];
        }
    }

    fn header_at(&self, off: usize) -> (usize, Level, u64) {
        let mut h = [0u8; HEADER];
        self.get(off, &mut h);
        let len = u16::from_le_bytes([h[0], h[1]]) as usize;
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&h[3..]);
        (len, Level::from_u8(h[2]), u64::from_le_bytes(ts))
    }

    fn drop_oldest(&mut self) {
        let (len, _, _) = self.header_at(self.head);
        self.head = (self.head + HEADER + len) % N;
        self.used -= HEADER + len;
        self.first_seq += 1;
        self.dropped += 1;
    }

    /// Forgets every line held (`dmesg -C`); they do not count as dropped.
    pub fn clear(&mut self) {
        self.head = self.tail;
        self.used = 0;
        self.first_seq = self.next_seq;
    }

    /// A cursor at the oldest line held.
    pub fn oldest(&self) -> Cursor {
        Cursor { seq: self.first_seq, off: self.head }
    }

    /// Copies the line at `at` into `out` (cut to its length) and moves `at` past it;
    /// `None` at the end. A cursor whose line was dropped meanwhile moves to the oldest
    /// line held.
    pub fn read(&self, at: &mut Cursor, out: &mut [u8]) -> Option<Header> {
        if at.seq < self.first_seq {
            *at = self.oldest();
        }
        if at.seq >= self.next_seq {
            return None;
        }
        let (len, level, ts_ns) = self.header_at(at.off);
        let n = len.min(out.len());
        self.get((at.off + HEADER) % N, &mut out[..n]);
        let h = Header { seq: at.seq, level, ts_ns, len: n };
        at.seq += 1;
        at.off = (at.off + HEADER + len) % N;
        Some(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log<const N: usize>(l: &mut LogBuf<N>, level: Level, ts: u64, text: &str) {
        l.begin(level, ts);
        l.append(text.as_bytes());
        l.end();
    }

    fn all<const N: usize>(l: &LogBuf<N>) -> Vec<(u64, Level, u64, String)> {
        let mut at = l.oldest();
        let mut out = [0u8; LINE_MAX];
        let mut v = vec![];
        while let Some(h) = l.read(&mut at, &mut out) {
            v.push((h.seq, h.level, h.ts_ns, String::from_utf8(out[..h.len].to_vec()).unwrap()));
        }
        v
    }

    #[test]
    fn keeps_lines_in_order() {
        let mut l = LogBuf::<256>::new();
        log(&mut l, Level::Info, 5, "Booting mm-kernel");
        l.begin(Level::Warning, 7);
        l.append(b"two ");
        l.append(b"parts");
        l.end();
        log(&mut l, Level::Debug, 9, "");
        assert_eq!(
            all(&l),
            [
                (0, Level::Info, 5, "Booting mm-kernel".to_string()),
                (1, Level::Warning, 7, "two parts".to_string()),
                (2, Level::Debug, 9, String::new()),
            ]
        );
        assert_eq!(l.dropped(), 0);
    }

    #[test]
    fn drops_the_oldest_whole_and_counts_them() {
        let mut l = LogBuf::<100>::new();
        for i in 0..50u64 {
            log(&mut l, Level::Info, i, &format!("line {i:02}"));
        }
        let lines = all(&l);
        // 11 + 7 bytes a line: 5 fit in 100 bytes.
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0].3, "line 45");
        assert_eq!(lines[4].3, "line 49");
        assert_eq!(lines[0].0, 45, "sequence numbers go on");
        assert_eq!(l.dropped(), 45);
        assert_eq!(l.dropped() + l.lines(), 50, "every line is held or counted");
    }

    #[test]
    fn a_reader_overtaken_moves_to_the_oldest() {
        let mut l = LogBuf::<100>::new();
        log(&mut l, Level::Info, 0, "first");
        let mut at = l.oldest();
        for i in 0..20 {
            log(&mut l, Level::Info, i, "filler");
        }
        let mut out = [0u8; 16];
        let h = l.read(&mut at, &mut out).unwrap();
        assert_eq!(&out[..h.len], b"filler");
        assert!(h.seq > 1);
    }

    #[test]
    fn long_lines_are_cut_and_clear_forgets() {
        let mut l = LogBuf::<4096>::new();
        log(&mut l, Level::Info, 0, &"x".repeat(3000));
        assert_eq!(all(&l)[0].3.len(), LINE_MAX);
        log(&mut l, Level::Info, 0, &"\u{e9}".repeat(600));
        assert_eq!(all(&l)[1].3, "\u{e9}".repeat(512), "cut at a character");
        l.clear();
        assert!(all(&l).is_empty());
        assert_eq!(l.dropped(), 0);
        log(&mut l, Level::Err, 1, "after");
        assert_eq!(all(&l)[0].3, "after");
        let mut small = LogBuf::<64>::new();
        log(&mut small, Level::Info, 0, &"y".repeat(100));
        assert_eq!(all(&small)[0].3.len(), 64 - HEADER, "a line longer than the ring is cut to it");
    }
}
