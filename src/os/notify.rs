//! systemd's readiness protocol (`Type=notify`): `READY=1` to the datagram socket
//! named by `$NOTIFY_SOCKET`, once the service answers requests. Without the
//! variable (not started by systemd) nothing is sent. No libsystemd: the
//! protocol is one datagram.

use std::io;
use std::os::unix::net::UnixDatagram;

/// Tell the service manager that start-up is complete; a no-op outside systemd.
pub fn ready() -> io::Result<()> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let socket = UnixDatagram::unbound()?;
    let bytes = target.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket (Linux): the name without the '@'.
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(b"READY=1", &addr)?;
    } else {
        socket.send_to(b"READY=1", &target)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_ready_to_the_named_socket_and_nothing_without_one() {
        let dir = std::env::temp_dir().join(format!("dedyn-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let manager = UnixDatagram::bind(&path).unwrap();
        // The environment is process-wide: one test sets it, and only here.
        std::env::set_var("NOTIFY_SOCKET", &path);
        ready().unwrap();
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 64];
        let n = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        ready().unwrap(); // no variable: nothing sent, no error
        manager.set_nonblocking(true).unwrap();
        let e = manager.recv(&mut buf).expect_err("nothing more was sent");
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
