//! Handing listening sockets to a new `lastmile up` process, so a restart or
//! an in-place upgrade never refuses a connection.
//!
//! The old process starts the new one with each listener duplicated onto a
//! fixed descriptor (3, 4, …) and names them in `LASTMILE_LISTEN_FDS` as
//! `3=127.0.0.1:8080,4=…`. Both processes hold the same kernel socket, so
//! connections queue on it whichever process accepts them; the old one stops
//! accepting only after the new one says it is serving.
//!
//! The control API's listener follows the routes' (named in
//! `LASTMILE_CONTROL_FD`), so the control and dashboard address stays the
//! same, and so does the `up` lock of the state directory
//! (`LASTMILE_LOCK_FD`), so no second `lastmile up` starts in the middle of a
//! handover.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Command;

/// The environment variable naming inherited listeners.
pub const LISTEN_FDS_ENV: &str = "LASTMILE_LISTEN_FDS";

/// The environment variable naming the inherited control API listener.
pub const CONTROL_FD_ENV: &str = "LASTMILE_CONTROL_FD";

/// The environment variable naming the inherited lock of the state
/// directory.
pub const LOCK_FD_ENV: &str = "LASTMILE_LOCK_FD";

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
    /// `LASTMILE_CONTROL_FD` or `LASTMILE_LOCK_FD` is not a descriptor
    /// number this process was given.
    #[error(
        "{name} is malformed ({value:?}): expected a descriptor number from 3 on; unset it to start afresh"
    )]
    MalformedFd {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// A named descriptor is not open.
    #[error("inherited descriptor {fd} named by {name} is not open: {source}")]
    NotOpen {
        /// Descriptor number.
        fd: RawFd,
        /// The variable that named it.
        name: &'static str,
        /// Cause.
        source: std::io::Error,
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
        let owned = adopt(fd).map_err(|source| HandoverError::NotAListener { fd, addr, source })?;
        let listener = TcpListener::from(owned);
        listener
            .local_addr()
            .map_err(|source| HandoverError::NotAListener { fd, addr, source })?;
        // Keyed by the address as requested (port 0 included), which is how
        // the new process's routes ask for it.
        listeners.insert(addr, listener);
    }
    // The variable stays set (removing it needs `unsafe` in edition 2024);
    // the descriptors it names are close-on-exec now, so children that see
    // it find nothing there and `pass_listeners` overwrites it.
    Ok(listeners)
}

/// Takes the control API's listener handed over by a previous process.
pub fn take_inherited_control() -> Result<Option<TcpListener>, HandoverError> {
    let Some(owned) = take_named(CONTROL_FD_ENV)? else {
        return Ok(None);
    };
    let listener = TcpListener::from(owned);
    listener
        .local_addr()
        .map_err(|source| HandoverError::NotOpen {
            fd: listener.as_raw_fd(),
            name: CONTROL_FD_ENV,
            source,
        })?;
    Ok(Some(listener))
}

/// Takes the lock file of the state directory handed over by a previous
/// process (the lock goes with the open file, so it is held already).
pub fn take_inherited_lock() -> Result<Option<std::fs::File>, HandoverError> {
    Ok(take_named(LOCK_FD_ENV)?.map(std::fs::File::from))
}

/// Takes the descriptor a variable names, once.
fn take_named(name: &'static str) -> Result<Option<OwnedFd>, HandoverError> {
    static TAKEN: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let Some(value) = std::env::var_os(name) else {
        return Ok(None);
    };
    {
        // The variable stays set (see `take_inherited`): a second look must
        // not take ownership of the same number twice.
        let mut taken = TAKEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if taken.contains(&name) {
            return Ok(None);
        }
        taken.push(name);
    }
    let value = value.to_string_lossy().into_owned();
    let fd: RawFd = value
        .parse()
        .ok()
        .filter(|fd| *fd >= FIRST_FD)
        .ok_or_else(|| HandoverError::MalformedFd {
            name,
            value: value.clone(),
        })?;
    adopt(fd)
        .map(Some)
        .map_err(|source| HandoverError::NotOpen { fd, name, source })
}

/// Takes ownership of a descriptor a previous process placed at `fd` for
/// this one, and marks it close-on-exec so instances do not inherit it.
fn adopt(fd: RawFd) -> std::io::Result<OwnedFd> {
    // Check the descriptor is open before taking ownership of it.
    nix::fcntl::fcntl(
        unsafe_borrow(fd).map_err(|()| std::io::Error::from_raw_os_error(nix::libc::EBADF))?,
        nix::fcntl::FcntlArg::F_GETFD,
    )?;
    // SAFETY: the descriptor was placed at this number for this process
    // by the previous `lastmile up` (see `pass_listeners`), it is open
    // (checked above), and nothing else in this process refers to it: each
    // variable naming descriptors is read once.
    #[allow(unsafe_code)]
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    nix::fcntl::fcntl(
        &owned,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    Ok(owned)
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

/// What a new process is handed: the routes' listeners, the control API's
/// listener and the lock of the state directory.
#[derive(Debug, Clone, Default)]
pub struct Handed {
    /// Route listeners, by the address they were requested as.
    pub listeners: Vec<(SocketAddr, RawFd)>,
    /// The control API's listener.
    pub control: Option<RawFd>,
    /// The lock file of the state directory.
    pub lock: Option<RawFd>,
}

/// Makes `command` start with the listeners on descriptors 3, 4, … and
/// `LASTMILE_LISTEN_FDS` naming them, then the control listener and the
/// lock, named in `LASTMILE_CONTROL_FD` and `LASTMILE_LOCK_FD`. The parent's
/// own descriptors keep close-on-exec, so nothing else leaks into the child.
pub fn pass_listeners(command: &mut Command, handed: &Handed) {
    let spec: Vec<String> = handed
        .listeners
        .iter()
        .enumerate()
        .map(|(index, (addr, _))| format!("{}={addr}", FIRST_FD + index as RawFd))
        .collect();
    command.env(LISTEN_FDS_ENV, spec.join(","));
    let mut sources: Vec<RawFd> = handed.listeners.iter().map(|(_, fd)| *fd).collect();
    for (name, fd) in [(CONTROL_FD_ENV, handed.control), (LOCK_FD_ENV, handed.lock)] {
        match fd {
            Some(fd) => {
                command.env(name, (FIRST_FD + sources.len() as RawFd).to_string());
                sources.push(fd);
            }
            None => {
                command.env_remove(name);
            }
        }
    }
    // Every descriptor number is worked out here, before the fork: in the
    // child of a multi-threaded process only async-signal-safe calls are
    // allowed, and an allocation could wait forever on a lock another
    // thread held at the fork. Sources are first moved above the target
    // range, so a source equal to a later target is not overwritten before
    // it is duplicated.
    let moves: Vec<Move> = sources
        .iter()
        .enumerate()
        .map(|(index, &source)| Move {
            source,
            temp: FIRST_FD + 1000 + index as RawFd,
            target: FIRST_FD + index as RawFd,
        })
        .collect();
    // SAFETY: the closure runs in the child between fork and exec; it only
    // reads `moves` and calls dup2 and close, which are async-signal-safe.
    // It allocates nothing (tests/handover_fork.rs checks that).
    #[allow(unsafe_code)]
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(move || {
            for step in &moves {
                dup2_raw(step.source, step.temp)?;
            }
            for step in &moves {
                dup2_raw(step.temp, step.target)?;
                close_raw(step.temp);
            }
            Ok(())
        });
    }
}

/// One descriptor's way to its place in the child: `source` to `temp`,
/// then `temp` to `target`.
#[derive(Debug, Clone, Copy)]
struct Move {
    source: RawFd,
    temp: RawFd,
    target: RawFd,
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
