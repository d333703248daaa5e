//! Handing listening sockets to a new `lastmile up` process, so a restart or
//! an in-place upgrade never refuses a connection.
//!
//! The old process starts the new one with each listener duplicated onto a
//! fixed descriptor (3, 4, …) and names them in `LASTMILE_LISTEN_FDS` as
//! `3=127.0.0.1:8080,4=…`. Both processes hold the same kernel socket, so
//! connections queue on it whichever process accepts them; the old one stops
//! accepting only after the new one says it is serving.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Command;

/// The environment variable naming inherited listeners.
pub const LISTEN_FDS_ENV: &str = "LASTMILE_LISTEN_FDS";

/// First descriptor number used for handed-over listeners.
const FIRST_FD: RawFd = 3;

/// Errors reading inherited listeners.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// `LASTMILE_LISTEN_FDS` is not `FD=ADDR,…`.
    #[error(
        "{LISTEN_FDS_ENV} is malformed ({value:?}): expected `3=127.0.0.1:8080,4=…`; unset it to bind afresh"
    )]
    Malformed {
        /// The variable's value.
        value: String,
    },
    /// A named descriptor is not an open TCP listener.
    #[error("inherited descriptor {fd} for {addr} is not a listening socket: {source}")]
    NotAListener {
        /// Descriptor number.
        fd: RawFd,
        /// Address it was said to listen on.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// Takes the listeners handed over by a previous process, keyed by the
/// address they were bound for.
pub fn take_inherited() -> Result<BTreeMap<SocketAddr, TcpListener>, HandoverError> {
    let Some(value) = std::env::var_os(LISTEN_FDS_ENV) else {
        return Ok(BTreeMap::new());
    };
    let value = value.to_string_lossy().into_owned();
    let mut listeners = BTreeMap::new();
    for item in value.split(',').filter(|item| !item.is_empty()) {
        let malformed = || HandoverError::Malformed {
            value: value.clone(),
        };
        let (fd, addr) = item.split_once('=').ok_or_else(malformed)?;
        let fd: RawFd = fd.parse().map_err(|_| malformed())?;
        let addr: SocketAddr = addr.parse().map_err(|_| malformed())?;
        if fd < FIRST_FD {
            return Err(malformed());
        }
        // Check the descriptor is open before taking ownership of it.
        nix::fcntl::fcntl(
            unsafe_borrow(fd).as_ref().map_err(|_| malformed())?,
            nix::fcntl::FcntlArg::F_GETFD,
        )
        .map_err(|errno| HandoverError::NotAListener {
            fd,
            addr,
            source: errno.into(),
        })?;
        // SAFETY: the descriptor was placed at this number for this process
        // by the previous `lastmile up` (see `spawn_with_listeners`), it is
        // open (checked above), and nothing else in this process refers to
        // it: the variable is read once, here, and cleared below.
        #[allow(unsafe_code)]
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let listener = TcpListener::from(owned);
        listener
            .local_addr()
            .map_err(|source| HandoverError::NotAListener { fd, addr, source })?;
        nix::fcntl::fcntl(
            &listener,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .map_err(|errno| HandoverError::NotAListener {
            fd,
            addr,
            source: errno.into(),
        })?;
        // Keyed by the address as requested (port 0 included), which is how
        // the new process's routes ask for it.
        listeners.insert(addr, listener);
    }
    // The variable stays set (removing it needs `unsafe` in edition 2024);
    // the descriptors it names are close-on-exec now, so children that see
    // it find nothing there and `pass_listeners` overwrites it.
    Ok(listeners)
}

/// Borrows a raw descriptor for one `fcntl` check without taking it.
fn unsafe_borrow(fd: RawFd) -> Result<std::os::fd::BorrowedFd<'static>, ()> {
    if fd < 0 {
        return Err(());
    }
    // SAFETY: only used for an immediate F_GETFD, which fails cleanly with
    // EBADF when the number is not open.
    #[allow(unsafe_code)]
    Ok(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })
}

/// Makes `command` start with `listeners` on descriptors 3, 4, … and
/// `LASTMILE_LISTEN_FDS` naming them. The parent's own descriptors keep
/// close-on-exec, so nothing else leaks into the child.
pub fn pass_listeners(command: &mut Command, listeners: &[(SocketAddr, RawFd)]) {
    let spec: Vec<String> = listeners
        .iter()
        .enumerate()
        .map(|(index, (addr, _))| format!("{}={addr}", FIRST_FD + index as RawFd))
        .collect();
    command.env(LISTEN_FDS_ENV, spec.join(","));
    let sources: Vec<RawFd> = listeners.iter().map(|(_, fd)| *fd).collect();
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls dup2 and fcntl, which are async-signal-safe. Sources are first
    // moved above the target range so a source equal to a later target is
    // not overwritten before it is duplicated.
    #[allow(unsafe_code)]
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(move || {
            let high = FIRST_FD + 1000;
            let mut moved = Vec::with_capacity(sources.len());
            for (index, fd) in sources.iter().enumerate() {
                let temp = high + index as RawFd;
                dup2_raw(*fd, temp)?;
                moved.push(temp);
            }
            for (index, temp) in moved.iter().enumerate() {
                dup2_raw(*temp, FIRST_FD + index as RawFd)?;
                close_raw(*temp);
            }
            Ok(())
        });
    }
}

fn dup2_raw(from: RawFd, to: RawFd) -> std::io::Result<()> {
    // nix's dup2 takes owned/borrowed fds in 0.31; go through the raw call.
    // SAFETY: dup2 on valid descriptor numbers; errors are returned.
    #[allow(unsafe_code)]
    let result = unsafe { nix::libc::dup2(from, to) };
    if result < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn close_raw(fd: RawFd) {
    // SAFETY: closing a temporary descriptor this child created above.
    #[allow(unsafe_code)]
    unsafe {
        nix::libc::close(fd);
    }
}

/// The raw descriptor of a listener, for `pass_listeners`.
pub fn raw_fd(listener: &TcpListener) -> RawFd {
    listener.as_raw_fd()
}
