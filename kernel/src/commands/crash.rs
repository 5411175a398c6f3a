//! `crash TYPE`: deliberate faults and misuse, like Linux's LKDTM, to show the kernel's
//! reports. Some types are fatal (an oops, then the CPU halts); the allocator-misuse
//! types are detected, refused and reported, and the kernel carries on.
//!
//! The only command module allowed `unsafe`: a deliberate NULL dereference, write to
//! rodata or jump into data cannot be written without it.
#![allow(unsafe_code)]

use crate::console::registry::{Command, CommandError};
use crate::cprintln;
use crate::mm::{page_alloc, slab, vmalloc};
use mm::gfp::GFP_KERNEL;

/// `crash`
pub const CRASH: Command = Command {
    name: "crash",
    args: "TYPE",
    help: "provoke a fault or misuse to see its report (crash alone lists the types)",
    run: crash,
};

struct CrashType {
    name: &'static str,
    what: &'static str,
    run: fn(),
}

static TYPES: &[CrashType] = &[
    CrashType { name: "null", what: "read through a NULL pointer (oops)", run: crash_null },
    CrashType { name: "write-rodata", what: "write to read-only data (oops)", run: crash_write_rodata },
    CrashType { name: "exec-data", what: "execute from a data page (oops)", run: crash_exec_data },
    CrashType { name: "stack-overflow", what: "recurse into the stack guard page (oops)", run: crash_stack_overflow },
    CrashType {
        name: "vmalloc-guard",
        what: "read the guard page after a vmalloc area (oops)",
        run: crash_vmalloc_guard,
    },
    CrashType {
        name: "vmalloc-after-free",
        what: "read a vmalloc area after vfree (oops)",
        run: crash_vmalloc_after_free,
    },
    CrashType { name: "panic", what: "call panic!()", run: crash_panic },
    CrashType { name: "brk", what: "execute a BRK instruction, like BUG() (oops)", run: crash_brk },
    CrashType {
        name: "double-free",
        what: "kfree an object twice (slab report with slub_debug, survived)",
        run: crash_double_free,
    },
    CrashType {
        name: "use-after-free",
        what: "write to a kfree'd object (slab report with slub_debug, survived)",
        run: crash_use_after_free,
    },
    CrashType {
        name: "bad-page-free",
        what: "free pages wrongly five ways (refused, survived)",
        run: crash_bad_page_free,
    },
    CrashType {
        name: "kfence-oob",
        what: "read past a KFENCE-sampled object (KFENCE report, survived)",
        run: crash_kfence_oob,
    },
    CrashType {
        name: "leak",
        what: "kmalloc an object and lose its address (kmemleak scan finds it)",
        run: crash_leak,
    },
    CrashType {
        name: "kfence-uaf",
        what: "read a KFENCE-sampled object after kfree (KFENCE report, survived)",
        run: crash_kfence_uaf,
    },
];

/// The crash types, for Tab.
pub fn complete_types(before: &[&str], each: &mut dyn FnMut(&'static str)) {
    if before.is_empty() {
        TYPES.iter().for_each(|t| each(t.name));
    }
}

/// A crash type as LKDTM names it: `use-after-free` -> `USE_AFTER_FREE`.
struct LkdtmName(&'static str);

impl core::fmt::Display for LkdtmName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use core::fmt::Write;
        for c in self.0.chars() {
            f.write_char(if c == '-' { '_' } else { c.to_ascii_uppercase() })?;
        }
        Ok(())
    }
}

fn crash(args: &[&str]) -> Result<(), CommandError> {
    match args {
        [] => {
            cprintln!("crash types:");
            for t in TYPES {
                cprintln!("  {:<20} {}", t.name, t.what);
            }
            Ok(())
        }
        [name] => match TYPES.iter().find(|t| t.name == *name) {
            Some(t) => {
                crate::pr_emerg!("lkdtm: Performing direct entry {}", LkdtmName(t.name));
                (t.run)();
                Ok(())
            }
            None => Err(CommandError::bad(format_args!("unknown crash type '{name}' (crash lists them)"))),
        },
        _ => Err(CommandError::Usage),
    }
}

#[inline(never)]
fn crash_null() {
    let p = core::hint::black_box(core::ptr::null::<u64>());
    // SAFETY: deliberately unsound: the point is the fault report.
    let v = unsafe { core::ptr::read_volatile(p) };
    core::hint::black_box(v);
}

static RODATA_TARGET: u64 = 0x5a5a_5a5a;

#[inline(never)]
fn crash_write_rodata() {
    let p = core::hint::black_box(core::ptr::addr_of!(RODATA_TARGET) as *mut u64);
    // SAFETY: deliberately unsound: rodata is mapped read-only, the write faults.
    unsafe { core::ptr::write_volatile(p, 0) };
}

/// A `ret` instruction placed in .data, which is mapped never-executable.
static mut DATA_CODE: [u32; 2] = [0xd65f_03c0, 0xd65f_03c0];

#[inline(never)]
fn crash_exec_data() {
    let addr = core::hint::black_box(core::ptr::addr_of!(DATA_CODE) as usize);
    // SAFETY: deliberately unsound: the page is PXN, the instruction fetch faults.
    let f: extern "C" fn() = unsafe { core::mem::transmute(addr) };
    f();
}

/// Recurses until the stack runs into its guard page (the bound is far beyond any
/// stack, it only keeps the compiler from calling this infinite).
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 512];
    frame[(depth % 512) as usize] = depth as u8;
    core::hint::black_box(&mut frame);
    if depth > 1 << 40 {
        return 0;
    }
    recurse(depth + 1) + frame[0] as u64
}

#[inline(never)]
fn crash_stack_overflow() {
    core::hint::black_box(recurse(0));
}

#[inline(never)]
fn crash_vmalloc_guard() {
    let Ok(va) = vmalloc::vmalloc(8192, "crash_vmalloc_guard") else {
        cprintln!("crash: vmalloc failed");
        return;
    };
    let guard = core::hint::black_box(va.as_u64() + 8192) as *const u64;
    // SAFETY: deliberately unsound: the page after the area is its unmapped guard.
    core::hint::black_box(unsafe { core::ptr::read_volatile(guard) });
}

#[inline(never)]
fn crash_vmalloc_after_free() {
    let Ok(va) = vmalloc::vmalloc(8192, "crash_vmalloc_after_free") else {
        cprintln!("crash: vmalloc failed");
        return;
    };
    let _ = vmalloc::vfree(va);
    let p = core::hint::black_box(va.as_u64()) as *const u64;
    // SAFETY: deliberately unsound: the area was unmapped by vfree.
    core::hint::black_box(unsafe { core::ptr::read_volatile(p) });
}

#[inline(never)]
fn crash_panic() {
    panic!("crash: deliberate panic");
}

#[inline(never)]
fn crash_brk() {
    boot::cpu::bug_brk();
}

/// A kmalloc object from the slab itself, never KFENCE's sample (the types that show
/// slab debugging would otherwise get KFENCE's report whenever a sample was due).
fn slab_object() -> Option<core::ptr::NonNull<u8>> {
    slab::SLAB.kmalloc(64, GFP_KERNEL, crate::percpu::smp_processor_id())
}

/// Without slab debugging a double free or a write after free is real corruption, as
/// in Linux: refuse to do it.
fn needs_slub_debug() -> bool {
    if !slab::slab_debug() {
        cprintln!("crash: this type needs slab debugging: boot with slub_debug on the command line");
        return true;
    }
    false
}

#[inline(never)]
fn crash_double_free() {
    if needs_slub_debug() {
        return;
    }
    let Some(p) = slab_object() else {
        cprintln!("crash: kmalloc failed: nothing to misuse");
        return;
    };
    // SAFETY: deliberately wrong: the second kfree is the bug the slab debug checks catch
    // (and refuse) in this build.
    unsafe {
        slab::kfree(p.as_ptr());
        slab::kfree(p.as_ptr());
    }
    report_survived();
}

#[inline(never)]
fn crash_use_after_free() {
    if needs_slub_debug() {
        return;
    }
    let Some(p) = slab_object() else {
        cprintln!("crash: kmalloc failed: nothing to misuse");
        return;
    };
    // SAFETY: deliberately wrong: writes into a freed object; the poison check reports it
    // when the cache is validated.
    unsafe {
        slab::kfree(p.as_ptr());
        core::ptr::write_volatile(p.as_ptr().add(8), 0x42);
    }
    slab::SLAB.validate_all();
    report_survived();
}

#[inline(never)]
fn crash_bad_page_free() {
    let before = page_alloc::PAGES.snapshot().nr_free_pages();
    if let Some(va) = page_alloc::__get_free_pages(GFP_KERNEL, 1) {
        let _ = page_alloc::free_pages(va, 0); // wrong order
        let _ = page_alloc::free_pages(va.add(4096), 0); // a tail page
        let _ = page_alloc::free_pages(va.add(8), 1); // unaligned
        let _ = page_alloc::free_pages(va, 1); // right
        let _ = page_alloc::free_pages(va, 1); // double free
    }
    let _ = page_alloc::free_pages(mm::addr::VirtAddr::new(0xffff_ff80_0000_0000), 0); // reserved page 0
                                                                                       // Aligned addresses outside the linear map, below it and at its end: the page
                                                                                       // allocator's bounds check refuses them, and the warning names the address.
    let _ = page_alloc::free_pages(mm::addr::VirtAddr::new(0xffff_ff7f_ffff_f000), 0);
    let _ = page_alloc::free_pages(mm::addr::VirtAddr::new(page_alloc::linear_map_end()), 0);
    let after = page_alloc::PAGES.snapshot().nr_free_pages();
    cprintln!(
        "crash: free pages before {before}, after {after}: {}",
        if before == after { "allocator intact" } else { "MISMATCH" }
    );
    report_survived();
}

fn report_survived() {
    cprintln!("crash: the kernel detected the misuse, refused it and carries on");
}

/// A sampled object now (not waiting for the interval), or why there is none.
fn kfence_object(size: usize) -> Option<core::ptr::NonNull<u8>> {
    let p = crate::mm::kfence::alloc_sampled(size, GFP_KERNEL);
    if p.is_none() {
        cprintln!("crash: no KFENCE object (kfence.sample_interval=0, or the pool is full)");
    }
    p
}

#[inline(never)]
fn crash_kfence_oob() {
    const SIZE: usize = 32;
    let Some(p) = kfence_object(SIZE) else { return };
    let a = p.as_ptr() as usize;
    // The object sits against one guard page: read the byte just past it on that side.
    let bad = if (a + SIZE).is_multiple_of(mm::addr::PAGE_SIZE) { a + SIZE } else { a - 1 };
    // SAFETY: deliberately out of bounds: the guard page faults, KFENCE reports and
    // skips the read.
    core::hint::black_box(unsafe { core::ptr::read_volatile(core::hint::black_box(bad) as *const u8) });
    // SAFETY: `p` came from kmalloc's sampled path and is freed once.
    unsafe { slab::kfree(p.as_ptr()) };
    cprintln!("crash: KFENCE caught the out-of-bounds read; the kernel carries on");
}

#[inline(never)]
fn crash_kfence_uaf() {
    let Some(p) = kfence_object(64) else { return };
    // SAFETY: deliberately wrong: the object's page is unmapped by kfree, the read
    // faults, KFENCE reports and skips it.
    unsafe {
        slab::kfree(p.as_ptr());
        core::hint::black_box(core::ptr::read_volatile(core::hint::black_box(p.as_ptr().add(8))));
    }
    cprintln!("crash: KFENCE caught the use-after-free read; the kernel carries on");
}

/// The object is written through and dropped: nothing refers to it any more.
#[inline(never)]
fn leak_one() -> Option<usize> {
    let p = slab::kmalloc(48, GFP_KERNEL)?;
    // SAFETY: a fresh 48-byte object; filled so the report's hex dump shows it.
    unsafe { core::ptr::write_bytes(p.as_ptr(), 0x6b, 48) };
    Some(core::hint::black_box(p.as_ptr() as usize))
}

/// Overwrites the dead stack below the caller, where the lost address may linger.
#[inline(never)]
fn scrub_stack() {
    let mut junk = [0u64; 512];
    core::hint::black_box(&mut junk);
}

#[inline(never)]
fn crash_leak() {
    match leak_one() {
        Some(a) => {
            scrub_stack();
            cprintln!("crash: leaked a 48-byte kmalloc object at {a:#018x}; kmemleak scan reports it");
            if !crate::mm::kmemleak::enabled() {
                cprintln!("crash: kmemleak is off: boot with kmemleak=on to find it");
            }
        }
        None => cprintln!("crash: kmalloc failed: nothing to leak"),
    }
}
