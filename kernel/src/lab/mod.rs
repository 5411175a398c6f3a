//! The labs: workloads that exercise the memory manager and print what they measured,
//! started at boot (the sweep) or from the console (`sweep`, `stress`, `bench`,
//! `irqtest`). They sit on top of everything else; nothing below calls them. Only their
//! pure parts build on the host (`bench_row`).

#[cfg(target_os = "none")]
pub mod bench;
pub mod bench_row;
#[cfg(target_os = "none")]
pub mod frag_lab;
#[cfg(target_os = "none")]
pub mod irqtest;
#[cfg(target_os = "none")]
pub mod stress;
#[cfg(target_os = "none")]
pub mod sweep;
