//! Signals as messages: SIGTERM/SIGINT/SIGHUP are blocked in every thread and
//! received by `wait` in the main thread (sigwait), so no handler runs in a worker.

/// What the operator asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT: stop gracefully.
    Terminate,
    /// SIGHUP: reload certificate and key.
    Reload,
}

fn set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local sigset_t.
    unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut s);
        libc::sigaddset(&mut s, libc::SIGTERM);
        libc::sigaddset(&mut s, libc::SIGINT);
        libc::sigaddset(&mut s, libc::SIGHUP);
        s
    }
}

/// Block the signals in this thread; threads spawned afterwards inherit the mask.
/// Call before starting any thread.
pub fn block() {
    let s = set();
    // SAFETY: changes only this thread's signal mask.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &s, std::ptr::null_mut());
    }
}

/// Wait for the next signal of the set.
pub fn wait() -> Signal {
    let s = set();
    loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: sigwait writes the received signal number into `sig`.
        let rc = unsafe { libc::sigwait(&s, &mut sig) };
        if rc != 0 {
            continue;
        }
        return if sig == libc::SIGHUP {
            Signal::Reload
        } else {
            Signal::Terminate
        };
    }
}
