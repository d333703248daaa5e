use std::time::Duration;

use super::{MAX_LINE_BYTES, format_duration, parse_stat, read_capped_line};

#[test]
fn stat_fields_are_counted_after_the_last_parenthesis() {
    let stat = "4242 (odd) name) S 1 4240 4240 0 -1 4194560";
    assert_eq!(parse_stat(stat), Some(('S', 4240)));
    assert_eq!(parse_stat("1 (zombie) Z 0 7 7"), Some(('Z', 7)));
    assert_eq!(parse_stat("garbage"), None);
}

#[tokio::test]
async fn lines_are_split_on_newlines_and_capped() {
    let mut input = b"first\nsecond\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 10));
    input.extend(b"\nlast without newline");
    let mut reader = tokio::io::BufReader::with_capacity(1000, input.as_slice());
    let mut line = Vec::new();
    let mut lines = Vec::new();
    while read_capped_line(&mut reader, &mut line)
        .await
        .expect("reading a slice")
    {
        lines.push(line.clone());
    }
    assert_eq!(lines[0], b"first");
    assert_eq!(
        lines[1], b"second\r",
        "the pump, not the reader, drops a CR"
    );
    assert_eq!(lines[2].len(), MAX_LINE_BYTES);
    assert_eq!(lines[3], vec![b'x'; 10]);
    assert_eq!(lines[4], b"last without newline");
    assert_eq!(lines.len(), 5);
}

#[test]
fn durations_read_like_the_spec_writes_them() {
    assert_eq!(format_duration(Duration::from_millis(300)), "300ms");
    assert_eq!(format_duration(Duration::from_millis(1234)), "1.2s");
    assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
}
