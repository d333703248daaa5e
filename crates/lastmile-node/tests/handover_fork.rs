//! The socket handover's `pre_exec` runs in the child between fork and exec
//! of a multi-threaded process, where an allocation can deadlock on the
//! allocator's lock. This binary's allocator ends any forked child that
//! allocates with exit code 99, so a child that reaches `exec` proves the
//! closure allocated nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};

use lastmile_node::handover::{Handed, pass_listeners, raw_fd};

/// The test process's pid; 0 until the test sets it.
static PARENT: AtomicI32 = AtomicI32::new(0);

/// The system allocator, except in a forked child (another pid than
/// `PARENT`), where any allocation ends the child with exit code 99.
struct ChildMustNotAllocate;

// SAFETY: every call goes to the system allocator, or ends the process.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for ChildMustNotAllocate {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        refuse_in_child();
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        refuse_in_child();
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn refuse_in_child() {
    let parent = PARENT.load(Ordering::Relaxed);
    if parent != 0 && nix::unistd::getpid().as_raw() != parent {
        // SAFETY: _exit is async-signal-safe and ends only the child.
        #[allow(unsafe_code)]
        unsafe {
            nix::libc::_exit(99)
        }
    }
}

#[global_allocator]
static ALLOCATOR: ChildMustNotAllocate = ChildMustNotAllocate;

#[test]
fn the_handover_child_allocates_nothing_before_exec() {
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let control = TcpListener::bind("127.0.0.1:0").expect("bind");
    let handed = Handed {
        listeners: listeners
            .iter()
            .map(|listener| (listener.local_addr().expect("addr"), raw_fd(listener)))
            .collect(),
        control: Some(raw_fd(&control)),
        lock: None,
    };
    // The child checks that descriptors 3..=6 are the sockets handed over.
    let mut command = Command::new("sh");
    command
        .args([
            "-c",
            "for fd in 3 4 5 6; do [ -S /proc/self/fd/$fd ] || exit 7; done",
        ])
        .stdin(Stdio::null());
    pass_listeners(&mut command, &handed);
    PARENT.store(nix::unistd::getpid().as_raw(), Ordering::Relaxed);
    let status = command.status();
    PARENT.store(0, Ordering::Relaxed);
    let code = status.expect("sh starts").code();
    assert_ne!(code, Some(99), "the child allocated between fork and exec");
    assert_eq!(
        code,
        Some(0),
        "descriptors 3..=6 are not the handed sockets"
    );
}
