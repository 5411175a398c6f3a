//! Generic kernel: logging, console, reports and the allocation sweep.
#![cfg_attr(not(test), no_std)]
