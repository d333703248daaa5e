use proptest::prelude::*;

use super::*;

#[test]
fn simple_commands_are_execed_and_the_rest_run_as_written() {
    let cases = [
        ("./hello", "exec ./hello"),
        ("  ./hello --port $PORT  ", "exec ./hello --port $PORT"),
        ("python3 app.py 'a b'", "exec python3 app.py 'a b'"),
        ("gunicorn -w 3 app:app", "exec gunicorn -w 3 app:app"),
        ("exec ./hello", "exec ./hello"),
        ("./a; ./b", "./a; ./b"),
        ("./a && ./b", "./a && ./b"),
        ("./a | tee log", "./a | tee log"),
        ("./a > log", "./a > log"),
        ("./a &", "./a &"),
        ("./a\n./b", "./a\n./b"),
        ("PORT=1 ./a", "PORT=1 ./a"),
        ("cd app", "cd app"),
        ("if true", "if true"),
        ("./a $(cat x)", "./a $(cat x)"),
        ("./a *.py", "./a *.py"),
        ("$APP", "$APP"),
        ("'./my app'", "'./my app'"),
        ("", ""),
        ("   ", "   "),
    ];
    for (command, expected) in cases {
        assert_eq!(shell_command(command), expected, "{command:?}");
    }
}

#[test]
fn stat_lines_give_state_parent_and_group() {
    let cases = [
        (
            "42 (hello) S 7 42 42 0 -1",
            Some(ProcessEntry {
                pid: 42,
                parent: 7,
                group: 42,
                state: 'S',
            }),
        ),
        (
            "43 (a) b (c)) Z 1 40 40",
            Some(ProcessEntry {
                pid: 43,
                parent: 1,
                group: 40,
                state: 'Z',
            }),
        ),
        ("44 (x) R", None),
        ("44 (x) R one 2", None),
        ("no parenthesis", None),
        ("", None),
    ];
    for (stat, expected) in cases {
        let pid = stat
            .split_whitespace()
            .next()
            .and_then(|pid| pid.parse().ok())
            .unwrap_or(0);
        assert_eq!(parse_stat(pid, stat), expected, "{stat:?}");
    }
}

#[test]
fn listening_sockets_are_found_by_port_and_state() {
    let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:A112 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 100 0 0 10 0
   1: 0100007F:A112 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 654321 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
   3: garbage
";
    assert_eq!(listening_inodes(table, 0xA112), vec![123_456]);
    assert_eq!(listening_inodes(table, 8080), vec![777]);
    assert!(listening_inodes(table, 9).is_empty());
}

#[test]
fn main_pid_of_an_execed_command_is_the_leader() {
    // This test process is no `sh -c` shell: it is its own main process.
    let me = std::process::id();
    assert_eq!(main_pid(me, "exec ./hello", 1), Some(me));
    assert_eq!(
        main_pid(u32::MAX - 1, "exec ./hello", 1),
        None,
        "no such process"
    );
}

proptest! {
    #[test]
    fn parsers_of_proc_text_never_panic(text in "\\PC{0,200}", port in any::<u16>()) {
        let _ = parse_stat(1, &text);
        let _ = listening_inodes(&text, port);
        let _ = shell_command(&text);
    }

    #[test]
    fn an_execed_command_is_the_command_with_exec_in_front(command in "[a-z./]{1,10}( [a-z$]{1,5}){0,3}") {
        let run = shell_command(&command);
        let execed = format!("exec {}", command.trim());
        prop_assert!(run == command || run == execed, "{run:?}");
    }
}

#[test]
fn probing_counts_the_streak_of_the_last_failure() {
    let mut probing = Probing::default();
    for result in [
        Err(ProbeFailure::Refused),
        Err(ProbeFailure::Status(503)),
        Err(ProbeFailure::Status(503)),
        Ok(()),
        Err(ProbeFailure::Status(503)),
    ] {
        probing.record(result);
    }
    assert_eq!(probing.probes, 5);
    assert_eq!(probing.last_failure, Some(ProbeFailure::Status(503)));
    assert_eq!(probing.failure_streak, 1, "a pass ends a streak");
    assert_eq!(probing.passes, 0);
    probing.record(Ok(()));
    assert_eq!((probing.passes, probing.failure_streak), (1, 0));
}
