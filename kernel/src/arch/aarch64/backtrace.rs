//! Call traces from AArch64 frame records.
//!
//! The kernel is built with frame pointers: every function stores a record
//! `{previous x29, return address}` at x29. Walking the chain from a trap frame's x29
//! gives the callers. The walker reads memory through a caller-supplied function that
//! refuses addresses outside the kernel's stacks, so a corrupt chain ends the trace
//! instead of faulting inside the fault handler.

/// Most frames printed in one trace.
pub const MAX_FRAMES: usize = 32;

/// Return addresses found by walking frame records from `fp`.
///
/// `read_u64(addr)` returns the word at `addr`, or `None` if `addr` is not part of a
/// stack (ends the walk). Frames must move strictly upwards and be 16-byte aligned.
pub fn walk(fp: u64, read_u64: impl Fn(u64) -> Option<u64>, mut emit: impl FnMut(u64)) {
    let mut fp = fp;
    for _ in 0..MAX_FRAMES {
        if fp == 0 || !fp.is_multiple_of(16) {
            return;
        }
        let (Some(next), Some(lr)) = (read_u64(fp), read_u64(fp.wrapping_add(8))) else {
            return;
        };
        if lr == 0 {
            return;
        }
        // The return address points after the call; report the call instruction itself.
        emit(lr.wrapping_sub(4));
        if next <= fp {
            return;
        }
        fp = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn walks_chain_and_stops_at_zero() {
        let mut mem = HashMap::new();
        // fp 0x1000 -> {0x1040, 0xaaa4}; 0x1040 -> {0x1080, 0xbbb4}; 0x1080 -> {0, 0xccc4}
        mem.insert(0x1000u64, 0x1040u64);
        mem.insert(0x1008, 0xaaa4);
        mem.insert(0x1040, 0x1080);
        mem.insert(0x1048, 0xbbb4);
        mem.insert(0x1080, 0);
        mem.insert(0x1088, 0xccc4);
        let mut out = vec![];
        walk(0x1000, |a| mem.get(&a).copied(), |pc| out.push(pc));
        assert_eq!(out, vec![0xaaa0, 0xbbb0, 0xccc0]);
    }

    #[test]
    fn refuses_loops_misalignment_and_unreadable() {
        let mut mem = HashMap::new();
        mem.insert(0x2000u64, 0x2000u64); // points at itself
        mem.insert(0x2008, 0x1234);
        let mut out = vec![];
        walk(0x2000, |a| mem.get(&a).copied(), |pc| out.push(pc));
        assert_eq!(out, vec![0x1230]);
        out.clear();
        walk(0x2008, |a| mem.get(&a).copied(), |pc| out.push(pc));
        assert!(out.is_empty());
        walk(0x3000, |a| mem.get(&a).copied(), |pc| out.push(pc));
        assert!(out.is_empty());
    }
}
