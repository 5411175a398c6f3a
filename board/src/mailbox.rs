//! VideoCore mailbox property interface (channel 8): board revision, memory split,
//! clock rates, throttling flags, and lists of tags (the framebuffer's, `framebuffer.rs`).
//!
//! The VideoCore does not see the ARM caches. The property buffer lives in ordinary
//! cacheable kernel memory, so it is cleaned to the point of coherency before the
//! request and invalidated before the answer is read; without this a real Pi answers
//! garbage once the caches are on (QEMU has no caches and never shows the bug).
//!
//! Every wait on the mailbox is bounded ([`TIMEOUT_US`], Linux's firmware driver allows
//! the VideoCore one second too): a firmware that does not answer gives
//! [`MailboxError::Timeout`], never a hang.

use crate::mmio::{offset, Mmio};
use crate::poll::{poll_timeout, us_to_ticks};
use crate::timer::ticks;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {u32,
    /// A mailbox word: a channel number and the top 28 bits of a 16-byte aligned address.
    MBOX_DATA [
        CHANNEL OFFSET(0) NUMBITS(4) [],
        DATA OFFSET(4) NUMBITS(28) []
    ],
    /// Mailbox status.
    MBOX_STATUS [
        EMPTY OFFSET(30) NUMBITS(1) [],
        FULL OFFSET(31) NUMBITS(1) []
    ]
}

register_structs! {
    /// Mailbox 0 (VC -> ARM, read side) and mailbox 1 (ARM -> VC, write side).
    pub MailboxRegisters {
        (0x00 => read: ReadOnly<u32, MBOX_DATA::Register>),
        (0x04 => _reserved0),
        (0x18 => status: ReadOnly<u32, MBOX_STATUS::Register>),
        (0x1c => _reserved1),
        (0x20 => write: WriteOnly<u32, MBOX_DATA::Register>),
        (0x24 => _reserved2),
        (0x38 => write_status: ReadOnly<u32, MBOX_STATUS::Register>),
        (0x3c => @END),
    }
}

static MBOX: Mmio<MailboxRegisters, { offset::MAILBOX }> = Mmio::INSTANCE;

const CHANNEL_PROPERTY: u32 = 8;
const REQUEST: u32 = 0;
const RESPONSE_OK: u32 = 0x8000_0000;
const TAG_RESPONSE: u32 = 1 << 31;

/// Property tags used by the kernel.
pub mod tag {
    /// Board revision code.
    pub const BOARD_REVISION: u32 = 0x0001_0002;
    /// ARM memory: base, size.
    pub const ARM_MEMORY: u32 = 0x0001_0005;
    /// VideoCore memory: base, size.
    pub const VC_MEMORY: u32 = 0x0001_0006;
    /// Clock rate of a clock id.
    pub const GET_CLOCK_RATE: u32 = 0x0003_0002;
    /// Highest rate the firmware allows for a clock id (config.txt's arm_freq for the ARM).
    pub const GET_MAX_CLOCK_RATE: u32 = 0x0003_0004;
    /// Set a clock's rate: clock id, rate in Hz, skip-turbo flag; answers the rate set.
    pub const SET_CLOCK_RATE: u32 = 0x0003_8002;
    /// The throttling flags (`vcgencmd get_throttled`, Linux's raspberrypi-hwmon);
    /// the request word says which sticky bits to clear after the read.
    pub const GET_THROTTLED: u32 = 0x0003_0046;
    /// A clock's rate as the firmware measures it (not the rate it was asked for).
    pub const GET_CLOCK_MEASURED: u32 = 0x0003_0047;
}

/// Clock ids for [`tag::GET_CLOCK_RATE`].
pub mod clock {
    /// UART clock.
    pub const UART: u32 = 2;
    /// ARM core clock.
    pub const ARM: u32 = 3;
}

/// Why a property call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailboxError {
    /// The firmware did not mark the buffer as answered successfully.
    RequestFailed(u32),
    /// The tag was not answered (not implemented by this firmware or emulator).
    TagNotAnswered(u32),
    /// The mailbox stayed full, or no answer came, within [`TIMEOUT_US`].
    Timeout,
}

/// Longest wait for room in the mailbox and for the firmware's answer.
pub const TIMEOUT_US: u64 = 1_000_000;

/// The property buffer: 16-byte alignment is required (the low 4 bits of the written
/// word carry the channel); whole cache lines avoid sharing it with other data.
#[repr(C, align(64))]
struct PropertyBuffer([u32; PROPERTY_WORDS]);

/// Words of the property buffer (room for the framebuffer's list of tags).
const PROPERTY_WORDS: usize = 48;

static BUFFER: spin::Mutex<PropertyBuffer> = spin::Mutex::new(PropertyBuffer([0; PROPERTY_WORDS]));

/// Sends one tag with `request` values (up to three words) and returns up to two
/// answer words.
fn property(tag: u32, request: &[u32], answer_words: usize) -> Result<[u32; 2], MailboxError> {
    let value_words = request.len().max(answer_words).max(2);
    let mut tags = [0u32; 8];
    tags[0] = tag;
    tags[1] = (value_words * 4) as u32;
    tags[3..3 + request.len()].copy_from_slice(request);
    let tags = &mut tags[..3 + value_words];
    property_list(tags)?;
    // An answer shorter than asked for is no answer: QEMU marks a tag it does not
    // know as answered with length 0, and the words read back would be our request.
    if tags[2] & TAG_RESPONSE == 0 || ((tags[2] & !TAG_RESPONSE) as usize) < answer_words * 4 {
        return Err(MailboxError::TagNotAnswered(tag));
    }
    Ok([tags[3], tags[4]])
}

/// Sends a list of tags (each: tag id, value buffer size in bytes, request/response
/// word 0, then the value buffer) in one property message and copies the answer back
/// into `tags`. The caller checks each tag's response bit (`1 << 31` in its third word).
/// Fails without sending if the list does not fit the buffer.
pub fn property_list(tags: &mut [u32]) -> Result<(), MailboxError> {
    if tags.len() + 3 > PROPERTY_WORDS {
        return Err(MailboxError::RequestFailed(0));
    }
    let mut buf = BUFFER.lock();
    let b = &mut buf.0;
    b.fill(0);
    b[0] = ((tags.len() + 3) * 4) as u32;
    b[1] = REQUEST;
    b[2..2 + tags.len()].copy_from_slice(tags);
    b[2 + tags.len()] = 0; // end tag

    let va = b.as_ptr() as usize;
    // Real hardware: write the request out of the data cache before the VideoCore
    // reads it, and drop stale lines before we read its answer.
    boot::cache::clean_inval_dcache_range(va, core::mem::size_of::<PropertyBuffer>());
    // Bus address: the 0xC0000000 alias is the VideoCore's uncached view of SDRAM.
    let bus = (boot::kimage_virt_to_phys(va) as u32) | 0xC000_0000;

    let freq = crate::timer::frequency();
    poll_timeout(|| !MBOX.write_status.is_set(MBOX_STATUS::FULL), ticks, us_to_ticks(TIMEOUT_US, freq))
        .map_err(|_| MailboxError::Timeout)?;
    boot::cpu::dsb_sy();
    MBOX.write.write(MBOX_DATA::DATA.val(bus >> 4) + MBOX_DATA::CHANNEL.val(CHANNEL_PROPERTY));
    // Answers for other channels are read and dropped; all within the one deadline.
    let mut ours = false;
    poll_timeout(
        || {
            if !MBOX.status.is_set(MBOX_STATUS::EMPTY) {
                let answer = MBOX.read.extract();
                ours = answer.read(MBOX_DATA::CHANNEL) == CHANNEL_PROPERTY && answer.read(MBOX_DATA::DATA) == bus >> 4;
            }
            ours
        },
        ticks,
        us_to_ticks(TIMEOUT_US, freq),
    )
    .map_err(|_| MailboxError::Timeout)?;
    boot::cpu::dsb_sy();
    boot::cache::inval_dcache_range(va, core::mem::size_of::<PropertyBuffer>());

    // SAFETY: volatile reads of our own buffer, which the VideoCore just wrote behind
    // the compiler's back.
    let word = |i: usize| unsafe { core::ptr::read_volatile(&b[i]) };
    if word(1) != RESPONSE_OK {
        return Err(MailboxError::RequestFailed(word(1)));
    }
    for (i, t) in tags.iter_mut().enumerate() {
        *t = word(2 + i);
    }
    Ok(())
}

/// The board revision code.
pub fn board_revision() -> Result<u32, MailboxError> {
    property(tag::BOARD_REVISION, &[], 1).map(|v| v[0])
}

/// ARM memory as (base, size).
pub fn arm_memory() -> Result<(u32, u32), MailboxError> {
    property(tag::ARM_MEMORY, &[], 2).map(|v| (v[0], v[1]))
}

/// VideoCore memory as (base, size).
pub fn vc_memory() -> Result<(u32, u32), MailboxError> {
    property(tag::VC_MEMORY, &[], 2).map(|v| (v[0], v[1]))
}

/// The rate of a clock in Hz.
pub fn clock_rate(clock_id: u32) -> Result<u32, MailboxError> {
    property(tag::GET_CLOCK_RATE, &[clock_id], 2).map(|v| v[1])
}

/// The highest rate the firmware allows for a clock, in Hz.
pub fn max_clock_rate(clock_id: u32) -> Result<u32, MailboxError> {
    property(tag::GET_MAX_CLOCK_RATE, &[clock_id], 2).map(|v| v[1])
}

/// Asks the firmware to run a clock at `hz` (turbo allowed, as Linux's cpufreq driver
/// asks); returns the rate the firmware says it set.
pub fn set_clock_rate(clock_id: u32, hz: u32) -> Result<u32, MailboxError> {
    property(tag::SET_CLOCK_RATE, &[clock_id, hz, 0], 2).map(|v| v[1])
}

/// The firmware's throttling flags ([`crate::throttle::Throttled`]); the sticky "has
/// occurred" bits are cleared after the read, as Linux's raspberrypi-hwmon asks, so the
/// next read reports what occurred since this one.
pub fn throttled() -> Result<u32, MailboxError> {
    property(tag::GET_THROTTLED, &[0xffff], 1).map(|v| v[0])
}

/// A clock's rate in Hz as the firmware measures it.
pub fn clock_measured(clock_id: u32) -> Result<u32, MailboxError> {
    property(tag::GET_CLOCK_MEASURED, &[clock_id], 2).map(|v| v[1])
}
