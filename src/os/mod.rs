//! Everything that talks to the operating system below std: every `unsafe` block
//! and `libc` call of the crate (sockets, poll, limits, signals, process groups), the clock,
//! the private directory the internal socket lives in, and systemd's readiness message.

pub mod clock;
pub mod notify;
pub mod private_dir;
pub mod serve_lock;
pub mod signals;
pub mod sys;
