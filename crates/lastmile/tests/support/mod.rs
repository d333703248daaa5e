//! What the CLI's test binaries share: how they start `lastmile`, the
//! hello example's binary, a free port. Not every binary uses every part.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// `lastmile ARGS` in `dir` as a user starts it from a fresh shell: none of
/// the `LASTMILE_*` variables of the shell the tests run in (a state
/// directory, a server and its token, or what a restarting `up` hands its
/// successor), no colour, stdin closed, and `$XDG_DATA_HOME` at `data_home`
/// so that the secrets key `up` makes stays out of the user's
/// `~/.local/share`.
pub(crate) fn lastmile(dir: &Path, data_home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lastmile"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("LASTMILE_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .current_dir(dir)
        .env("XDG_DATA_HOME", data_home)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    command
}

/// examples/hello, built once per test binary (in its own target directory,
/// whatever the workspace uses), and the path of its binary.
pub(crate) fn hello_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let root = example_dir();
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--locked", "--quiet"])
            .env("CARGO_TARGET_DIR", root.join("target"))
            .current_dir(&root)
            .status()
            .expect("cargo builds hello");
        assert!(status.success(), "examples/hello builds");
        root.join("target/release/hello")
            .canonicalize()
            .expect("hello binary")
    })
}

/// The bundled example's directory.
pub(crate) fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello")
}

/// A port on 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("bound address")
        .port()
}
