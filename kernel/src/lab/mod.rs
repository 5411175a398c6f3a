//! The labs: workloads that exercise the memory manager and print what they measured,
//! started at boot (the sweep) or from the console (`sweep`, `stress`, `bench`,
//! `irqtest`). They sit on top of everything else; nothing below calls them.

pub mod bench;
pub mod frag_lab;
pub mod irqtest;
pub mod stress;
pub mod sweep;
