use proptest::prelude::*;

use super::*;

#[test]
fn access_log_lines_of_probes_are_told_from_the_apps_own_words() {
    let probe = "GET /healthz";
    let cases = [
        (
            r#"127.0.0.1 - - [02/Dec/2026 10:00:01] "GET /healthz HTTP/1.0" 404 -"#,
            true,
        ),
        (
            r#"[2026-12-02 10:00:01 +0000] [41] [INFO] 127.0.0.1 "GET /healthz HTTP/1.0" 503 0 "-" "lastmile-health-check""#,
            true,
        ),
        ("GET /healthz 200 0.3ms", true),
        ("GET /healthz", true),
        ("GET /healthz?verbose=1 200", true),
        ("request from lastmile-health-check", true),
        ("GET /healthz/deep 200", false),
        ("GET /healthz: database is down", false),
        ("POST /healthz 405", false),
        ("Listening at: http://127.0.0.1:41234", false),
        ("", false),
    ];
    for (line, expected) in cases {
        assert_eq!(logs_probe(line, probe), expected, "{line:?}");
    }
}

#[test]
fn recent_output_keeps_the_last_lines_of_the_current_process_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sink = LogSink::open(dir.path().join("a.log"), 1 << 20, 1, "healthz").expect("log opens");
    sink.remember(b"old process\n");
    sink.begin_process();
    for n in 0..30 {
        sink.remember(format!("line {n}\r\n").as_bytes());
        sink.remember(b"\"GET /healthz HTTP/1.0\" 503\n");
    }
    let recent = sink.recent();
    assert_eq!(recent.probe_lines, 30);
    assert_eq!(recent.lines.len(), RECENT_LINES);
    assert_eq!(recent.lines.front().map(String::as_str), Some("line 10"));
    assert_eq!(recent.lines.back().map(String::as_str), Some("line 29"));
}

proptest! {
    #[test]
    fn telling_probe_lines_never_panics(line in "\\PC{0,120}", path in "/\\PC{0,10}") {
        let _ = logs_probe(&line, &format!("GET {path}"));
    }
}
