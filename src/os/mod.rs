//! Everything that talks to the operating system below std: every `unsafe` block
//! and `libc` call of the crate (sockets, poll, limits, signals, process groups) and the clock.

pub mod clock;
pub mod signals;
pub mod sys;
