//! Kernel stacks: 64 KiB slots whose lowest 4 KiB are an unmapped guard page.
//!
//! The exception vectors recognise an overflow by the stack pointer's position in its
//! slot (`consts::memory::STACK_GUARD_SIZE`), so every kernel stack must be such a slot. Stacks
//! outside the kernel image (per-CPU stacks in the STACKS region) are registered here
//! so the unwinder may read them.

use core::sync::atomic::{AtomicUsize, Ordering};

/// A stack slot's size and its guard, as addresses are handled here (`usize`).
const SLOT: usize = consts::memory::STACK_SLOT_SIZE as usize;
const GUARD: usize = consts::memory::STACK_GUARD_SIZE as usize;

const MAX_STACKS: usize = 8;
static REGISTERED: [AtomicUsize; MAX_STACKS] = [const { AtomicUsize::new(0) }; MAX_STACKS];

/// Usable range [bottom, top) of the slot containing `sp` (guard excluded).
pub const fn slot_of(sp: usize) -> (usize, usize) {
    let base = sp & !(SLOT - 1);
    (base + GUARD, base + SLOT)
}

/// Records a stack slot (its base) so call traces may walk it.
pub fn register(slot_base: usize) -> bool {
    REGISTERED.iter().any(|s| s.compare_exchange(0, slot_base, Ordering::AcqRel, Ordering::Relaxed).is_ok())
}

/// Usable ranges [bottom, top) of the registered stacks (kmemleak's roots).
pub fn registered() -> impl Iterator<Item = (usize, usize)> {
    REGISTERED.iter().map(|s| s.load(Ordering::Acquire)).filter(|&b| b != 0).map(|b| (b + GUARD, b + SLOT))
}

/// Bytes of kernel stack as Linux's `KernelStack` counts them (each CPU's stack, the
/// usable part of its slot, guard page excluded): the boot CPU's stack, one slot in the
/// image (`boot_stack_bottom..boot_stack_top` in entry.S), and every registered per-CPU
/// stack. The emergency (overflow) stacks are not counted, as Linux's per-CPU overflow
/// and IRQ stacks are not.
pub fn kernel_stack_bytes() -> usize {
    let registered = REGISTERED.iter().filter(|s| s.load(Ordering::Acquire) != 0).count();
    (1 + registered) * (SLOT - GUARD)
}

/// Whether `addr` is inside the usable part of a registered stack slot.
pub fn contains(addr: usize) -> bool {
    REGISTERED.iter().any(|s| {
        let base = s.load(Ordering::Acquire);
        base != 0 && addr >= base + GUARD && addr < base + SLOT
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_guards() {
        let usable = SLOT - GUARD;
        let before = kernel_stack_bytes();
        assert!(before >= usable && before.is_multiple_of(usable), "the boot stack at least");
        assert_eq!(slot_of(0xffff_0000_0001_8000), (0xffff_0000_0001_1000, 0xffff_0000_0002_0000));
        assert!(register(0x4_0000));
        assert_eq!(kernel_stack_bytes(), before + usable, "a registered stack counts");
        assert!(contains(0x4_1000));
        assert!(!contains(0x4_0ff8), "guard page is not stack");
        assert!(!contains(0x5_0000));
    }
}
