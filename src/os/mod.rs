//! Everything that talks to the operating system below std: every `unsafe` block
//! and `libc` call of the crate (sockets, poll, limits, signals, process groups), the clock,
//! and the private directory the internal socket lives in.

pub mod clock;
pub mod private_dir;
pub mod signals;
pub mod sys;
