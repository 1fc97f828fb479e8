//! The two kinds of public socket the edge serves: TCP, and `unix:` listeners
//! for a reverse proxy on the same machine (SPEC 17), with what the connection
//! code needs of a client socket whichever kind it is.
//!
//! A `unix:` listener is created in a private directory next to its path, given
//! `unix_mode` and `unix_group` there, and only then renamed into place: no
//! client can connect while it still has the default mode.

use crate::os::sys;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use super::peer::Peer;

/// A client connection.
pub(crate) enum ClientStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl ClientStream {
    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            ClientStream::Tcp(s) => s.shutdown(how),
            ClientStream::Unix(s) => s.shutdown(how),
        }
    }

    pub(crate) fn set_write_timeout(&self, t: Option<std::time::Duration>) -> io::Result<()> {
        match self {
            ClientStream::Tcp(s) => s.set_write_timeout(t),
            ClientStream::Unix(s) => s.set_write_timeout(t),
        }
    }

    /// Small answers go out at once (TCP only: a Unix socket has no Nagle).
    pub(crate) fn set_nodelay(&self) {
        if let ClientStream::Tcp(s) = self {
            let _ = s.set_nodelay(true);
        }
    }
}

impl AsRawFd for ClientStream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            ClientStream::Tcp(s) => s.as_raw_fd(),
            ClientStream::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl Read for &ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientStream::Tcp(s) => (&*s).read(buf),
            ClientStream::Unix(s) => (&*s).read(buf),
        }
    }
}

impl Write for &ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ClientStream::Tcp(s) => (&*s).write(buf),
            ClientStream::Unix(s) => (&*s).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A bound listening socket.
pub(crate) enum ListenSocket {
    Tcp(TcpListener),
    /// The path, and the socket file's inode (to remove only our own file).
    Unix(UnixListener, PathBuf, u64),
}

impl ListenSocket {
    pub(crate) fn accept(&self) -> io::Result<(ClientStream, Peer)> {
        match self {
            ListenSocket::Tcp(l) => l
                .accept()
                .map(|(s, peer)| (ClientStream::Tcp(s), Peer::Tcp(peer))),
            ListenSocket::Unix(l, path, _) => l
                .accept()
                .map(|(s, _)| (ClientStream::Unix(s), Peer::Unix(path.clone()))),
        }
    }

    /// Where it listens, as `http_listen` names it.
    pub(crate) fn name(&self) -> String {
        match self {
            ListenSocket::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "?".into(), |a: SocketAddr| a.to_string()),
            ListenSocket::Unix(_, path, _) => format!("unix:{}", path.display()),
        }
    }

    /// Removes a `unix:` listener's socket file if it is still ours (a new
    /// start may already have replaced it).
    pub(crate) fn remove_file(&self) {
        if let ListenSocket::Unix(_, path, ino) = self {
            if fs::symlink_metadata(path).is_ok_and(|m| m.ino() == *ino) {
                let _ = fs::remove_file(path);
            }
        }
    }
}

impl AsRawFd for ListenSocket {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            ListenSocket::Tcp(l) => l.as_raw_fd(),
            ListenSocket::Unix(l, _, _) => l.as_raw_fd(),
        }
    }
}

/// Binds the `unix:` listener `path` with `mode` and `group` (`""`: the
/// service's own). A socket file left by an earlier run is replaced; one that
/// another process listens on, or a file that is not a socket, is not.
pub(crate) fn bind_unix(path: &Path, mode: u32, group: &str) -> io::Result<ListenSocket> {
    let named = |e: io::Error, what: &str| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot listen on unix:{} (http_listen): {what}{e}",
                path.display()
            ),
        )
    };
    let gid = match group {
        "" => None,
        g => Some(sys::group_id(g).map_err(|e| named(e, "server.unix_group: "))?),
    };
    match fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => {
            return Err(named(
                io::Error::new(io::ErrorKind::AlreadyExists, "exists and is not a socket"),
                "",
            ))
        }
        Ok(_) if UnixStream::connect(path).is_ok() => {
            return Err(named(
                io::Error::new(io::ErrorKind::AddrInUse, "another process listens on it"),
                "",
            ))
        }
        _ => {}
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    let file_name = path.file_name().unwrap_or_default();
    // Private (0700) until mode and group are set: nobody can connect early.
    let staging = dir.join(format!(".dedyn-update-bind.{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(|e| named(e, "creating a staging directory: "))?;
    let staged = staging.join(file_name);
    let bound = (|| {
        let listener = UnixListener::bind(&staged)?;
        fs::set_permissions(&staged, fs::Permissions::from_mode(mode))?;
        if let Some(gid) = gid {
            std::os::unix::fs::chown(&staged, None, Some(gid)).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot give it to server.unix_group '{group}': {e} (the service must be \
                         a member, SupplementaryGroups=, and may chown, SystemCallFilter=@chown)"
                    ),
                )
            })?;
        }
        let ino = fs::symlink_metadata(&staged)?.ino();
        fs::rename(&staged, path)?;
        Ok(ListenSocket::Unix(listener, path.to_path_buf(), ino))
    })();
    let _ = fs::remove_dir_all(&staging);
    bound.map_err(|e| named(e, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dedyn-stream-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn unix_listener_gets_its_mode_and_replaces_only_a_stale_socket() {
        let dir = scratch("mode");
        let path = dir.join("http.sock");
        let l = bind_unix(&path, 0o640, "").expect("bind");
        let meta = fs::symlink_metadata(&path).expect("socket file");
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.mode() & 0o7777, 0o640);
        // A live listener is not stolen.
        let e = bind_unix(&path, 0o660, "").err().expect("refused");
        assert!(e.to_string().contains("another process listens"), "{e}");
        // A stale one (its listener gone) is replaced.
        drop(l);
        let again = bind_unix(&path, 0o660, "").expect("rebind over a stale socket");
        assert_eq!(
            fs::symlink_metadata(&path).expect("file").mode() & 0o7777,
            0o660
        );
        again.remove_file();
        assert!(!path.exists());
        // Not a socket: left alone.
        fs::write(&path, "x").expect("file");
        let e = bind_unix(&path, 0o660, "").err().expect("refused");
        assert!(e.to_string().contains("not a socket"), "{e}");
        assert_eq!(fs::read_to_string(&path).expect("kept"), "x");
        let e = bind_unix(&dir.join("x.sock"), 0o660, "no-such-group-here")
            .err()
            .expect("unknown group");
        assert!(e.to_string().contains("server.unix_group"), "{e}");
        let _ = fs::remove_dir_all(&dir);
    }
}
