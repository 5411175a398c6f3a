//! Terminal input decoding: turns the bytes a terminal sends (VT100/xterm escape
//! sequences for the arrow, Home, End and Delete keys, control characters) into keys.
//!
//! A small state machine over single bytes with no buffer beyond one numeric parameter,
//! so it can sit behind any byte source (polling or an interrupt-fed ring) and is tested
//! on the host. Sequences it does not know are swallowed whole, never typed into the line.

/// A key as the line editor sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// A printable byte: ASCII or part of a UTF-8 character.
    Byte(u8),
    /// Enter (`\r` or `\n`).
    Enter,
    /// Backspace (0x7f or Ctrl-H).
    Backspace,
    /// Delete (`ESC [ 3 ~`).
    Delete,
    /// Tab.
    Tab,
    /// Cursor keys.
    Up,
    /// Down arrow.
    Down,
    /// Left arrow.
    Left,
    /// Right arrow.
    Right,
    /// Home (`ESC [ H`, `ESC [ 1 ~`, `ESC O H`, ...).
    Home,
    /// End.
    End,
    /// Another control character: `Ctrl(b'a')` for Ctrl-A (0x01), and so on.
    Ctrl(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Ground,
    /// After ESC.
    Escape,
    /// After `ESC [`, with the numeric parameter so far.
    Csi(u16),
    /// After `ESC O` (SS3: application cursor keys).
    Ss3,
}

/// The decoder.
#[derive(Debug)]
pub struct Decoder {
    state: State,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder in its ground state.
    pub const fn new() -> Self {
        Self { state: State::Ground }
    }

    /// Feeds one byte; returns a key when one is complete.
    pub fn feed(&mut self, b: u8) -> Option<Key> {
        match self.state {
            State::Ground => match b {
                0x1b => {
                    self.state = State::Escape;
                    None
                }
                b'\r' | b'\n' => Some(Key::Enter),
                0x7f | 0x08 => Some(Key::Backspace),
                b'\t' => Some(Key::Tab),
                0x00..=0x1f => Some(Key::Ctrl(b + b'a' - 1)),
                _ => Some(Key::Byte(b)),
            },
            State::Escape => {
                self.state = match b {
                    b'[' => State::Csi(0),
                    b'O' => State::Ss3,
                    _ => State::Ground, // Alt-x and the like: ignored
                };
                None
            }
            State::Ss3 => {
                self.state = State::Ground;
                Self::final_key(b, 0)
            }
            State::Csi(n) => match b {
                b'0'..=b'9' => {
                    self.state = State::Csi(n.saturating_mul(10).saturating_add((b - b'0') as u16));
                    None
                }
                // Further parameters and intermediates (`ESC [ 1 ; 5 C`): keep the first.
                b';' | 0x20..=0x2f => None,
                0x40..=0x7e => {
                    self.state = State::Ground;
                    Self::final_key(b, n)
                }
                _ => {
                    // Not a valid sequence: abandon it.
                    self.state = State::Ground;
                    None
                }
            },
        }
    }

    fn final_key(b: u8, n: u16) -> Option<Key> {
        match (b, n) {
            (b'A', _) => Some(Key::Up),
            (b'B', _) => Some(Key::Down),
            (b'C', _) => Some(Key::Right),
            (b'D', _) => Some(Key::Left),
            (b'H', _) | (b'~', 1) | (b'~', 7) => Some(Key::Home),
            (b'F', _) | (b'~', 4) | (b'~', 8) => Some(Key::End),
            (b'~', 3) => Some(Key::Delete),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &[u8]) -> Vec<Key> {
        let mut d = Decoder::new();
        s.iter().filter_map(|&b| d.feed(b)).collect()
    }

    #[test]
    fn arrows_home_end_delete() {
        assert_eq!(keys(b"\x1b[A\x1b[B\x1b[C\x1b[D"), [Key::Up, Key::Down, Key::Right, Key::Left]);
        assert_eq!(keys(b"\x1bOA\x1bOD\x1bOH\x1bOF"), [Key::Up, Key::Left, Key::Home, Key::End]);
        assert_eq!(
            keys(b"\x1b[H\x1b[F\x1b[1~\x1b[4~\x1b[7~\x1b[8~"),
            [Key::Home, Key::End, Key::Home, Key::End, Key::Home, Key::End]
        );
        assert_eq!(keys(b"\x1b[3~"), [Key::Delete]);
        assert_eq!(keys(b"\x1b[1;5C"), [Key::Right], "Ctrl-Right is still right");
    }

    #[test]
    fn unknown_sequences_are_swallowed() {
        assert_eq!(keys(b"\x1b[2~x"), [Key::Byte(b'x')], "Insert");
        assert_eq!(keys(b"\x1b[15~y"), [Key::Byte(b'y')], "F5");
        assert_eq!(keys(b"\x1bbz"), [Key::Byte(b'z')], "Alt-b");
        assert_eq!(keys(b"\x1b[99999999999Az"), [Key::Up, Key::Byte(b'z')], "a huge parameter saturates");
        assert_eq!(keys(b"\x1b[\x01q"), [Key::Byte(b'q')], "a broken sequence is abandoned");
    }

    #[test]
    fn controls_and_bytes() {
        assert_eq!(keys(b"\r\n\t\x7f\x08"), [Key::Enter, Key::Enter, Key::Tab, Key::Backspace, Key::Backspace]);
        assert_eq!(keys(b"\x01\x05\x15\x17\x0b\x0c\x03"), [b'a', b'e', b'u', b'w', b'k', b'l', b'c'].map(Key::Ctrl));
        assert_eq!(keys("é".as_bytes()), [Key::Byte(0xc3), Key::Byte(0xa9)]);
    }
}
