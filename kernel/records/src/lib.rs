//! The kernel's results as data.
//!
//! With `records=on` on the command line, every result the kernel prints as a summary (each
//! sweep step and phase, the fragmentation lab, the CMA part, the leak check, buddyinfo and
//! the memory maps, `stress` and `bench` rows, the boot's memory layout) is also printed as
//! one line of JSON behind a fixed prefix:
//!
//! ```text
//! @rec {"v":1,"kind":"sweep.step","data":{"api":"gfp","order":3,"pages":8,"bytes":32768,"ok":true,"ns":2100}}
//! ```
//!
//! `v` is the schema version ([`VERSION`]), `kind` names the record (one of [`KINDS`]) and
//! `data` holds its fields. The schema is written down in `docs/records.md`; the host side is
//! `tools/report/records.py`, tested against [`samples`] (every kind, through
//! `cargo run -p records --example samples`). Records are written with `serde-json-core`
//! into a caller's buffer: no allocation, so they can be printed with memory exhausted.
#![no_std]

use serde::ser::{Serialize, SerializeStruct, Serializer};

/// What starts a record line (after printk's timestamp, if any).
pub const PREFIX: &str = "@rec ";
/// The schema version every record carries; the host parser refuses any other.
pub const VERSION: u32 = 1;
/// The longest record line this crate writes, prefix excluded (a memory map of 480 cells
/// and its frame are the largest).
pub const MAX_LEN: usize = 1024;

macro_rules! records {
    ($( $(#[$doc:meta])* $kind:literal => $name:ident $(<$lt:lifetime>)? {
        $( $(#[$fdoc:meta])* $field:ident : $ty:ty ),* $(,)?
    } )*) => {
        $(
            $(#[$doc])*
            #[derive(serde::Serialize, Debug, Clone, Copy, PartialEq)]
            pub struct $name $(<$lt>)? { $( $(#[$fdoc])* pub $field: $ty ),* }
        )*

        /// One record: a kind and its fields.
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub enum Record<'a> {
            $( $name($name $(<$lt>)?), )*
        }

        $(
            impl<'a> From<$name $(<$lt>)?> for Record<'a> {
                fn from(r: $name $(<$lt>)?) -> Self { Record::$name(r) }
            }
        )*

        /// Every kind's name, in schema order.
        pub const KINDS: &[&str] = &[$( $kind ),*];

        impl Record<'_> {
            /// The record's kind, as it appears in the `kind` field.
            pub fn kind(&self) -> &'static str {
                match self { $( Record::$name(_) => $kind, )* }
            }
        }

        impl Serialize for Record<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut st = s.serialize_struct("rec", 3)?;
                st.serialize_field("v", &VERSION)?;
                st.serialize_field("kind", self.kind())?;
                match self { $( Record::$name(d) => st.serialize_field("data", d)?, )* }
                st.end()
            }
        }
    };
}

records! {
    /// Which kernel ran, on what, with which command line (cut to 256 bytes).
    "boot.info" => BootInfo<'a> {
        version: &'a str,
        board: &'a str,
        cmdline: &'a str,
    }
    /// The machine's memory as the page allocator sees it after boot.
    "boot.memory" => BootMemory {
        /// RAM the ARM side owns, in bytes.
        ram_bytes: u64,
        /// Pages the zone spans.
        present_pages: u64,
        /// Pages given to the buddy allocator.
        managed_pages: u64,
        /// Free pages at the end of boot.
        free_pages: u64,
        /// The largest block order (MAX_PAGE_ORDER).
        max_order: u32,
        /// The CMA area's size in bytes (0 without `cma=`).
        cma_bytes: u64,
    }
    /// One step of the sweep: `__get_free_pages`/`kmalloc` of one order, or one vmalloc size.
    "sweep.step" => SweepStep<'a> {
        /// `gfp` (`__get_free_pages`), `kmalloc` or `vmalloc`.
        api: &'a str,
        /// The order asked for (`gfp`, `kmalloc`); absent for vmalloc.
        order: Option<u32>,
        pages: u64,
        bytes: u64,
        ok: bool,
        /// Time the call took, in nanoseconds.
        ns: u64,
    }
    /// The bisection that finds the largest vmalloc.
    "sweep.bisect" => SweepBisect {
        /// The largest size that succeeded, in pages (0: none).
        pages: u64,
        bytes: u64,
        /// The smallest size that failed, in pages.
        fail_pages: u64,
        ns: u64,
    }
    /// The largest block one API gave (`order`/`bytes` absent: it failed at the smallest).
    "sweep.max" => SweepMax<'a> {
        api: &'a str,
        order: Option<u32>,
        bytes: Option<u64>,
        /// Free memory when the API's largest was sought (vmalloc), in bytes.
        free_bytes: Option<u64>,
    }
    /// How many vmallocs used 2 MiB block mappings.
    "sweep.huge" => SweepHuge {
        areas: u64,
        huge_areas: u64,
        blocks: u64,
        pages: u64,
    }
    /// One phase of the sweep and its time.
    "sweep.phase" => SweepPhase<'a> {
        phase: &'a str,
        ns: u64,
    }
    /// The sweep's leak check: free pages before and after.
    "sweep.leak" => SweepLeak {
        before: u64,
        after: u64,
        ok: bool,
    }
    /// The sweep (or a lab) stopped early by Ctrl-C: its figures are not results.
    "sweep.interrupted" => SweepInterrupted<'a> {
        phase: &'a str,
    }
    /// `/proc/buddyinfo`'s line at one moment: free blocks per order.
    "buddyinfo" => BuddyInfo<'a> {
        /// When it was taken (`boot`, `lab.movable.before`, ...).
        when: &'a str,
        counts: &'a [u64],
    }
    /// A memory map: one character per cell (see docs/records.md for the letters).
    "memmap" => MemMap<'a> {
        when: &'a str,
        /// Physical address of the first cell.
        start: u64,
        cell_bytes: u64,
        cells: &'a str,
    }
    /// One part of the fragmentation lab: the largest order before and after compaction.
    "lab.fragment" => LabFragment<'a> {
        /// `movable` or `vmalloc`.
        part: &'a str,
        order_before: Option<u32>,
        order_after: Option<u32>,
        migrated: u64,
        /// Time compaction took, in nanoseconds.
        ns: u64,
        /// Filler pages held, and how many had their contents changed (must be 0).
        held: u64,
        corrupt: u64,
    }
    /// The lab's CMA part.
    "lab.cma" => LabCma {
        region_bytes: u64,
        /// Whether cma_alloc of the whole area succeeded with all of it borrowed.
        ok: bool,
        migrated: u64,
        failed: u64,
        corrupt: u64,
        ns: u64,
    }
    /// A `stress` run's result.
    "stress" => Stress {
        cpus: u32,
        ops: u64,
        seed: u64,
        compact: bool,
        ops_per_s: u64,
        /// Free pages before and after (equal: nothing leaked).
        free_before: u64,
        free_after: u64,
        ok: bool,
    }
    /// One `bench` row: ours against a peer, time per operation.
    "bench" => Bench<'a> {
        name: &'a str,
        ours_ns: u64,
        peer: &'a str,
        peer_ns: u64,
    }
}

/// Writes `rec` as JSON (no prefix, no newline) into `buf`; returns the length.
pub fn encode(rec: &Record, buf: &mut [u8]) -> Result<usize, serde_json_core::ser::Error> {
    serde_json_core::to_slice(rec, buf)
}

/// One record of every kind, with distinct values: what the host parser is tested against.
pub fn samples() -> [Record<'static>; 15] {
    [
        BootInfo {
            version: "0.1.0 (a2f51cb)",
            board: "Raspberry Pi 3 Model B rev 1.2",
            cmdline: "sweep=all records=on",
        }
        .into(),
        BootMemory {
            ram_bytes: 1006632960,
            present_pages: 245760,
            managed_pages: 244463,
            free_pages: 244402,
            max_order: 16,
            cma_bytes: 0,
        }
        .into(),
        SweepStep { api: "gfp", order: Some(3), pages: 8, bytes: 32768, ok: true, ns: 2100 }.into(),
        SweepBisect { pages: 243165, bytes: 996003840, fail_pages: 243166, ns: 100_000_000 }.into(),
        SweepMax { api: "vmalloc", order: None, bytes: Some(996003840), free_bytes: Some(1001070592) }.into(),
        SweepHuge { areas: 244, huge_areas: 244, blocks: 59724, pages: 2977 }.into(),
        SweepPhase { phase: "vmalloc", ns: 595_146_000 }.into(),
        SweepLeak { before: 244402, after: 244402, ok: true }.into(),
        SweepInterrupted { phase: "fragment" }.into(),
        BuddyInfo { when: "boot", counts: &[0, 1, 0, 0, 2, 1, 3, 1, 0, 0, 2, 2, 2, 2, 1, 2, 2] }.into(),
        MemMap { when: "lab.movable.before", start: 0, cell_bytes: 2 << 20, cells: "RRM.CC" }.into(),
        LabFragment {
            part: "movable",
            order_before: Some(0),
            order_after: Some(16),
            migrated: 69216,
            ns: 588_000_000,
            held: 122074,
            corrupt: 0,
        }
        .into(),
        LabCma { region_bytes: 16 << 20, ok: true, migrated: 4096, failed: 0, corrupt: 0, ns: 12_000_000 }.into(),
        Stress {
            cpus: 3,
            ops: 900,
            seed: 1,
            compact: true,
            ops_per_s: 41000,
            free_before: 244402,
            free_after: 244402,
            ok: true,
        }
        .into(),
        Bench { name: "kmalloc-64", ours_ns: 21, peer: "linked_list_allocator", peer_ns: 63 }.into(),
    ]
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    fn json(rec: &Record) -> serde_json::Value {
        let mut buf = [0u8; MAX_LEN];
        let n = encode(rec, &mut buf).expect("fits");
        serde_json::from_slice(&buf[..n]).expect("valid JSON")
    }

    #[test]
    fn samples_cover_every_kind_once() {
        let kinds: Vec<&str> = samples().iter().map(|r| r.kind()).collect();
        assert_eq!(kinds, KINDS);
    }

    #[test]
    fn envelope_has_version_kind_and_data() {
        for rec in samples() {
            let v = json(&rec);
            let obj = v.as_object().unwrap();
            assert_eq!(obj.len(), 3, "{v}");
            assert_eq!(obj["v"], VERSION);
            assert_eq!(obj["kind"], rec.kind());
            assert!(obj["data"].is_object());
        }
    }

    #[test]
    fn fields_round_trip() {
        let v = json(&SweepStep { api: "kmalloc", order: None, pages: 1, bytes: 4096, ok: false, ns: 48_000 }.into());
        assert_eq!(v["data"]["api"], "kmalloc");
        assert!(v["data"]["order"].is_null());
        assert_eq!(v["data"]["bytes"], 4096);
        assert_eq!(v["data"]["ok"], false);
        let v = json(&BuddyInfo { when: "x\"y", counts: &[u64::MAX, 0] }.into());
        assert_eq!(v["data"]["when"], "x\"y", "strings are escaped");
        assert_eq!(v["data"]["counts"][0], u64::MAX);
    }

    #[test]
    fn a_full_map_fits_and_a_small_buffer_is_an_error() {
        let cells: String = "M".repeat(480);
        let rec: Record = MemMap { when: "lab.vmalloc.after", start: 0, cell_bytes: 2 << 20, cells: &cells }.into();
        let mut buf = [0u8; MAX_LEN];
        assert!(encode(&rec, &mut buf).is_ok());
        assert!(encode(&rec, &mut buf[..100]).is_err());
    }
}
