//! The raw-memory edge: the only place where slab memory is read and written through
//! pointers. Everything else works on addresses (`usize`) and calls in here.

/// Reads a word.
///
/// # Safety
/// `addr` must be 8-aligned and point to 8 readable bytes that the caller owns (a slab
/// header or a free object in a slab page held by the cache).
#[inline(always)]
pub(crate) unsafe fn read_word(addr: usize) -> usize {
    // SAFETY: the caller guarantees that the word is valid and owned.
    unsafe { (addr as *const usize).read() }
}

/// Writes a word.
///
/// # Safety
/// As for [`read_word`], with write access.
#[inline(always)]
pub(crate) unsafe fn write_word(addr: usize, value: usize) {
    // SAFETY: the caller guarantees that the word is valid and owned.
    unsafe { (addr as *mut usize).write(value) }
}

/// Fills `len` bytes with `byte`.
///
/// # Safety
/// `[addr, addr + len)` must be writable memory owned by the caller.
#[inline]
pub(crate) unsafe fn fill(addr: usize, len: usize, byte: u8) {
    // SAFETY: the caller guarantees that the range is valid and owned.
    unsafe { core::ptr::write_bytes(addr as *mut u8, byte, len) }
}

/// Offset and value of the first byte of `[addr, addr + len)` that is not `byte`.
///
/// # Safety
/// `[addr, addr + len)` must be readable memory owned by the caller.
pub(crate) unsafe fn first_mismatch(addr: usize, len: usize, byte: u8) -> Option<(usize, u8)> {
    // SAFETY: the caller guarantees that the range is valid and owned; nobody writes it
    // while it is borrowed here.
    let s = unsafe { core::slice::from_raw_parts(addr as *const u8, len) };
    s.iter().position(|&b| b != byte).map(|i| (i, s[i]))
}

/// Reads one byte.
///
/// # Safety
/// `addr` must be readable memory owned by the caller.
pub(crate) unsafe fn read_byte(addr: usize) -> u8 {
    // SAFETY: the caller guarantees that the byte is valid and owned.
    unsafe { (addr as *const u8).read() }
}

/// Copies `len` bytes between non-overlapping ranges.
///
/// # Safety
/// Both ranges must be valid, owned by the caller and disjoint.
pub(crate) unsafe fn copy(src: usize, dst: usize, len: usize) {
    // SAFETY: the caller guarantees validity and disjointness.
    unsafe { core::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, len) }
}

/// Moves `words` 8-byte words from `src` to `dst`; the ranges may overlap (`memmove`).
///
/// # Safety
/// Both ranges must be valid, 8-aligned and owned by the caller.
#[inline]
pub(crate) unsafe fn move_words(src: usize, dst: usize, words: usize) {
    // SAFETY: the caller guarantees validity and alignment; `copy` allows overlap.
    unsafe { core::ptr::copy(src as *const usize, dst as *mut usize, words) }
}
