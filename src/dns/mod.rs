//! The DNS intake's protocol layer (SPEC 14): messages on the wire, TSIG and
//! keys. Pure: no sockets, no store; the listener and the UPDATE rules build on it.

pub mod key;
pub mod name;
pub mod tsig;
pub mod wire;

#[cfg(test)]
mod captured;
#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod interop;
