//! The console's input ring: bytes received by the UART interrupt wait here until the
//! shell reads them, so input typed during a long command is kept (the PL011's own
//! FIFO holds only 16). A full ring refuses a byte and counts it; nothing is lost
//! silently. Pure data structure: the caller provides the locking.

/// A FIFO of at most `N` bytes.
pub struct ByteRing<const N: usize> {
    buf: [u8; N],
    head: usize,
    len: usize,
    dropped: u64,
}

impl<const N: usize> Default for ByteRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ByteRing<N> {
    /// An empty ring.
    pub const fn new() -> Self {
        Self { buf: [0; N], head: 0, len: 0, dropped: 0 }
    }

    /// Appends `b`; false (and one more dropped byte) if the ring is full.
    pub fn push(&mut self, b: u8) -> bool {
        if self.len == N {
            self.dropped += 1;
            return false;
        }
        self.buf[(self.head + self.len) % N] = b;
        self.len += 1;
        true
    }

    /// The oldest byte.
    pub fn pop(&mut self) -> Option<u8> {
        if self.len == 0 {
            return None;
        }
        let b = self.buf[self.head];
        self.head = (self.head + 1) % N;
        self.len -= 1;
        Some(b)
    }

    /// Discards everything waiting (the terminal's flush on ^C); returns how many.
    pub fn clear(&mut self) -> usize {
        let n = self.len;
        self.len = 0;
        self.head = 0;
        n
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Capacity.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Bytes refused because the ring was full, since it was made.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order_across_wrap() {
        let mut r = ByteRing::<4>::new();
        for round in 0..5u8 {
            assert!(r.push(round) && r.push(round + 100));
            assert_eq!(r.pop(), Some(round));
            assert_eq!(r.pop(), Some(round + 100));
        }
        assert!(r.is_empty());
        assert_eq!(r.pop(), None);
    }

    #[test]
    fn full_ring_counts_drops_and_keeps_old_bytes() {
        let mut r = ByteRing::<3>::new();
        assert!(r.push(1) && r.push(2) && r.push(3));
        assert!(!r.push(4));
        assert!(!r.push(5));
        assert_eq!(r.dropped(), 2);
        assert_eq!((r.pop(), r.pop(), r.pop(), r.pop()), (Some(1), Some(2), Some(3), None));
        assert!(r.push(6));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn clear_discards_waiting_bytes() {
        let mut r = ByteRing::<8>::new();
        for b in b"abc" {
            r.push(*b);
        }
        assert_eq!(r.clear(), 3);
        assert!(r.is_empty());
        r.push(b'x');
        assert_eq!(r.pop(), Some(b'x'));
        assert_eq!(r.capacity(), 8);
    }
}
