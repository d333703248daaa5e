use super::*;

fn answer() -> Value {
    json!({
        "stopping": true,
        "pid": 4242,
        "instances": [
            { "instance_id": "production.1a2b3c4d.0", "leader_pid": 4300, "main_pid": 4300 },
            { "instance_id": "production.1a2b3c4d.1", "leader_pid": 4310, "main_pid": 4311 },
        ],
        "listeners": ["127.0.0.1:8080", "127.0.0.1:8443"],
        "stop_within_ms": 45_000,
    })
}

#[test]
fn the_shutdown_answer_says_what_to_wait_for() {
    let stopping = Stopping::from_answer(&answer(), Some(1));
    assert_eq!(stopping.up_pid, Some(4242), "the pid that answered wins");
    assert_eq!(stopping.instances.len(), 2);
    assert_eq!(stopping.instances[1].main_pid, Some(4311));
    assert_eq!(stopping.listeners.len(), 2);
    assert_eq!(stopping.bound, Duration::from_secs(45));

    let old = Stopping::from_answer(&json!({ "stopping": true }), Some(77));
    assert_eq!(old.up_pid, Some(77));
    assert!(old.instances.is_empty());
    assert_eq!(old.bound, DEFAULT_BOUND);

    let server = Stopping::from_answer(&answer(), None);
    assert_eq!(server.up_pid, None, "a server's processes are not watched");
}

/// What `lastmile down` prints: done, requested (--no-wait), progress, and a
/// stop that did not finish in time.
#[test]
fn down_messages() {
    let stopping = Stopping::from_answer(&answer(), Some(1));
    let one = Stopping {
        instances: stopping.instances[..1].to_vec(),
        listeners: stopping.listeners[..1].to_vec(),
        ..stopping.clone()
    };
    let still = [
        Still::Up(4242),
        Still::Instance {
            instance_id: "production.1a2b3c4d.1".to_string(),
            pid: 4310,
            group: true,
        },
        Still::Instance {
            instance_id: "production.1a2b3c4d.0".to_string(),
            pid: 4300,
            group: false,
        },
        Still::Port("127.0.0.1:8080".parse().expect("an address")),
    ];
    let text = [
        stopping.stopped(Duration::from_millis(1_300)),
        one.stopped(Duration::from_millis(420)),
        Stopping {
            instances: Vec::new(),
            listeners: Vec::new(),
            ..stopping.clone()
        }
        .stopped(Duration::from_millis(80)),
        stopping.requested(),
        progress(Duration::from_secs(4), &still[1..2]),
        not_stopped(Duration::from_secs(50), &still),
    ]
    .join("\n");
    insta::assert_snapshot!(text);
}

/// Processes are looked up for real: this test's own process runs, a pid
/// that does not exist does not, and a port nobody holds is free.
#[test]
fn what_still_runs_is_read_from_the_system() {
    let free = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let free_addr = free.local_addr().expect("its address");
    drop(free);
    let held = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let held_addr = held.local_addr().expect("its address");
    let me = std::process::id();
    let gone = Stopping {
        up_pid: Some(u32::MAX - 1),
        instances: vec![Instance {
            instance_id: "gone".to_string(),
            leader_pid: Some(u32::MAX - 2),
            main_pid: None,
        }],
        listeners: vec![free_addr],
        bound: Duration::from_secs(1),
    };
    assert_eq!(gone.still_running(), Vec::new());

    let running = Stopping {
        up_pid: Some(me),
        ..gone.clone()
    };
    assert_eq!(running.still_running(), vec![Still::Up(me)]);

    let port_held = Stopping {
        listeners: vec![free_addr, held_addr],
        ..gone
    };
    assert_eq!(port_held.still_running(), vec![Still::Port(held_addr)]);
    drop(held);
}
