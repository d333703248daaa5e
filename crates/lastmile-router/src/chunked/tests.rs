use proptest::prelude::*;

use super::{Chunked, Invalid, MAX_META};

/// Feeds `body` in pieces of `split` bytes; returns (bytes used, decoded data, done).
fn run(body: &[u8], split: usize) -> Result<(usize, Vec<u8>, bool), Invalid> {
    let mut c = Chunked::new();
    let mut decoded = Vec::new();
    let mut used = 0;
    for part in body.chunks(split.max(1)) {
        if c.is_done() {
            break;
        }
        used += c.feed(part, |a, b| decoded.extend_from_slice(&part[a..b]))?;
    }
    assert_eq!(c.data_len(), decoded.len() as u64);
    Ok((used, decoded, c.is_done()))
}

fn accepts(body: &[u8]) -> bool {
    matches!(run(body, body.len()), Ok((_, _, true)))
}

#[test]
fn finds_the_end_across_splits_and_decodes() {
    let body = b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\nNEXT";
    for split in 1..body.len() {
        let (used, decoded, done) = run(body, split).unwrap();
        assert!(done);
        assert_eq!(used, body.len() - 4, "split {split}");
        assert_eq!(decoded, b"helloabcdefghijklmnopqrstuvwxyz");
    }
    assert!(Chunked::new().feed(b"zz\r\n", |_, _| {}).is_err());
    assert!(Chunked::new().feed(b"3\r\nabcX", |_, _| {}).is_err());
}

#[test]
fn extensions_follow_the_rfc_grammar() {
    for ok in [
        &b"1;a\r\nx\r\n0\r\n\r\n"[..],
        b"1;a=b\r\nx\r\n0\r\n\r\n",
        b"1 ; a = b ; c\r\nx\r\n0\r\n\r\n",
        b"1;a=\"q \\\" ;=\"\r\nx\r\n0\r\n\r\n",
        b"1;a=\"q\" ;b\r\nx\r\n0;last\r\n\r\n",
        b"0000000000000000000001\r\nx\r\n0\r\n\r\n",
    ] {
        assert!(accepts(ok), "{:?}", String::from_utf8_lossy(ok));
    }
    for bad in [
        &b"1;a\nx\r\n0\r\n\r\n"[..],
        b"1\nx\r\n0\r\n\r\n",
        b"1 \r\nx\r\n0\r\n\r\n",
        b"1;\r\nx\r\n0\r\n\r\n",
        b"1;a=\r\nx\r\n0\r\n\r\n",
        b"1;a=\"open\r\nx\r\n0\r\n\r\n",
        b"1;a\x00\r\nx\r\n0\r\n\r\n",
        b"1;a=b c\r\nx\r\n0\r\n\r\n",
        b"1;a\rb\r\nx\r\n0\r\n\r\n",
        b"1\r\nx\n0\r\n\r\n",
        b"1\r\nx\r\n0\r\n\n",
        b"ffffffffffffffffff\r\n",
        b"-1\r\n",
        b"0x1\r\n",
        b"\r\n",
    ] {
        assert!(!accepts(bad), "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn trailers_are_field_lines_with_crlf() {
    assert!(accepts(b"0\r\na: 1\r\nb:\r\nc:  x y \r\n\r\n"));
    for bad in [
        &b"0\r\na: 1\n\r\n"[..],
        b"0\r\na: 1\r\n\n",
        b"0\r\na : 1\r\n\r\n",
        b"0\r\n a: 1\r\n\r\n",
        b"0\r\na: \x0b\r\n\r\n",
        b"0\r\na: 1\rb\r\n\r\n",
        b"0\r\nno-colon\r\n\r\n",
        b"0\r\nContent-Length: 5\r\n\r\n",
        b"0\r\ntransfer-encoding: chunked\r\n\r\n",
        b"0\r\nHost: evil\r\n\r\n",
    ] {
        assert!(!accepts(bad), "{:?}", String::from_utf8_lossy(bad));
    }
    // A long name that starts like a forbidden one is fine.
    assert!(accepts(b"0\r\ncontent-length-of-something: 1\r\n\r\n"));
}

#[test]
fn metadata_is_bounded() {
    let mut body = b"1;".to_vec();
    body.extend(std::iter::repeat_n(b'a', MAX_META as usize));
    assert!(Chunked::new().feed(&body, |_, _| {}).is_err());
    assert!(Chunked::response().feed(&body, |_, _| {}).is_err());
}

#[test]
fn a_response_may_stream_any_number_of_chunks() {
    // Far more chunk framing than MAX_META in total, as a long event stream sends.
    let event = b"1\r\nx\r\n";
    let count = MAX_META as usize / event.len() * 2;
    let mut body = event.repeat(count);
    assert!(
        Chunked::new().feed(&body, |_, _| {}).is_err(),
        "a request body is bounded"
    );
    body.extend_from_slice(b"0\r\n\r\n");
    let mut response = Chunked::response();
    assert_eq!(response.feed(&body, |_, _| {}).ok(), Some(body.len()));
    assert!(response.is_done());
    assert_eq!(response.data_len(), count as u64);
}

#[test]
fn a_request_may_upload_in_many_chunks_that_carry_data() {
    // 20,000 chunks of 64 bytes: 100 KiB of framing in all, far beyond MAX_META, but less
    // than the data it frames.
    let mut chunk = b"40\r\n".to_vec();
    chunk.extend(std::iter::repeat_n(b'd', 64));
    chunk.extend_from_slice(b"\r\n");
    let mut body = chunk.repeat(20_000);
    body.extend_from_slice(b"0\r\n\r\n");
    let mut request = Chunked::new();
    assert_eq!(request.feed(&body, |_, _| {}).ok(), Some(body.len()));
    assert!(request.is_done());
    assert_eq!(request.data_len(), 64 * 20_000);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary bytes, split anywhere: no panic, and the verdict does not depend on the split.
    #[test]
    fn arbitrary_bytes_give_one_verdict(data in proptest::collection::vec(any::<u8>(), 0..200), split in 1usize..64) {
        let whole = run(&data, data.len().max(1)).ok();
        let pieces = run(&data, split).ok();
        prop_assert_eq!(whole, pieces);
    }

    /// Valid bodies (random chunks, extensions, trailers) decode to their data at any split.
    #[test]
    fn valid_bodies_decode_at_any_split(
        parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..6),
        ext in proptest::option::of("[a-z]{1,5}(=[a-z0-9]{1,4})?"),
        trailer in proptest::option::of("x-[a-z]{1,6}: [ -~]{0,10}"),
        split in 1usize..50,
    ) {
        let mut body = Vec::new();
        for p in &parts {
            body.extend_from_slice(format!("{:x}", p.len()).as_bytes());
            if let Some(e) = &ext {
                body.extend_from_slice(format!(";{e}").as_bytes());
            }
            body.extend_from_slice(b"\r\n");
            body.extend_from_slice(p);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\n");
        if let Some(t) = &trailer {
            body.extend_from_slice(t.trim_end().as_bytes());
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"\r\nEXTRA");
        let (used, decoded, done) = run(&body, split).unwrap();
        prop_assert!(done);
        prop_assert_eq!(used, body.len() - 5);
        prop_assert_eq!(decoded, parts.concat());
    }
}
