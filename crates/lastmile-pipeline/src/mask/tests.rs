#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::borrow::Cow;

use base64::Engine;
use base64::alphabet;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use proptest::prelude::*;

use super::Masker;

fn json_inner(value: &str) -> String {
    let quoted = serde_json::to_string(value).unwrap();
    quoted[1..quoted.len() - 1].to_owned()
}

/// Decodes every run of base64 characters in `text`, at every alignment, in
/// both alphabets, and reports whether any decoding contains `secret`.
fn any_base64_run_decodes_to(text: &str, secret: &[u8]) -> bool {
    let config = GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let engines = [
        GeneralPurpose::new(&alphabet::STANDARD, config),
        GeneralPurpose::new(&alphabet::URL_SAFE, config),
    ];
    let runs = text.split(|c: char| !(c.is_ascii_alphanumeric() || "+/-_".contains(c)));
    for run in runs {
        for start in 0..4.min(run.len()) {
            let mut piece = &run[start..];
            if piece.len() % 4 == 1 {
                piece = &piece[..piece.len() - 1];
            }
            for engine in &engines {
                if let Ok(decoded) = engine.decode(piece)
                    && decoded.windows(secret.len()).any(|window| window == secret)
                {
                    return true;
                }
            }
        }
    }
    false
}

#[test]
fn raw_value_is_replaced_everywhere() {
    let masker = Masker::new(["hunter22"]);
    assert_eq!(
        masker.mask("password=hunter22 again hunter22"),
        "password=*** again ***"
    );
}

#[test]
fn line_without_secret_is_borrowed_unchanged() {
    let masker = Masker::new(["hunter22"]);
    let line = "nothing to see here";
    assert!(matches!(masker.mask(line), Cow::Borrowed(text) if text == line));
}

#[test]
fn empty_values_are_ignored() {
    let masker = Masker::new(["", ""]);
    assert!(masker.is_empty());
    assert!(matches!(masker.mask("anything"), Cow::Borrowed("anything")));
    assert!(!Masker::new(["", "value"]).is_empty());
}

#[test]
fn json_escaped_value_is_replaced() {
    let secret = "pa\"ss\\wo\nrd\tÄ€/é";
    let masker = Masker::new([secret]);
    let document = serde_json::json!({ "token": secret }).to_string();
    let masked = masker.mask(&document);
    assert_eq!(masked, "{\"token\":\"***\"}");
}

#[test]
fn json_with_unicode_escapes_and_escaped_slash_is_replaced() {
    let secret = "a/b\u{1}cé€😀";
    let masker = Masker::new([secret]);
    for escaped in [
        "a\\/b\\u0001cé€😀",
        "a/b\\u0001c\\u00e9\\u20ac\\ud83d\\ude00",
        "a/b\\u0001c\\u00E9\\u20AC\\uD83D\\uDE00",
    ] {
        let line = format!("{{\"v\":\"{escaped}\"}}");
        assert_eq!(masker.mask(&line), "{\"v\":\"***\"}", "form {escaped}");
    }
}

#[test]
fn base64_inside_longer_text_is_masked_at_every_offset() {
    let secret = "s3cr3t-v@lue";
    let masker = Masker::new([secret]);
    for prefix in ["", "a", "ab", "abc", "user:", "xy:"] {
        let plain = format!("{prefix}{secret}!trailing");
        for engine in [&STANDARD, &URL_SAFE] {
            let encoded = engine.encode(plain.as_bytes());
            assert!(any_base64_run_decodes_to(&encoded, secret.as_bytes()));
            let masked = masker.mask(&encoded);
            assert!(masked.contains("***"), "prefix {prefix:?}: {masked}");
            assert!(
                !any_base64_run_decodes_to(&masked, secret.as_bytes()),
                "prefix {prefix:?}: {masked}"
            );
        }
    }
}

#[test]
fn whole_base64_value_is_masked_with_its_padding() {
    let secret = "abcdefg";
    let masker = Masker::new([secret]);
    let encoded = STANDARD.encode(secret);
    assert!(encoded.ends_with('='));
    assert_eq!(
        masker.mask(&format!("Authorization: Basic {encoded}")),
        "Authorization: Basic ***"
    );
}

#[test]
fn url_safe_base64_is_masked() {
    // Bytes chosen so the two alphabets differ (`+/` against `-_`).
    let secret = "\u{fb}\u{ff}\u{fe}secret\u{fb}\u{ff}";
    let encoded = URL_SAFE_NO_PAD.encode(secret.as_bytes());
    assert!(encoded.contains('-') || encoded.contains('_'), "{encoded}");
    let masker = Masker::new([secret]);
    assert_eq!(masker.mask(&format!("token={encoded}")), "token=***");
}

#[test]
fn multi_line_secret_is_masked_line_by_line() {
    let key = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----\n";
    let masker = Masker::new([key]);
    for line in key.lines() {
        assert_eq!(masker.mask(&format!("> {line}")), "> ***");
    }
}

#[test]
fn short_lines_of_a_multi_line_secret_are_not_masked_alone() {
    let masker = Masker::new(["ab\nlonger-line"]);
    assert_eq!(masker.mask("ab cd"), "ab cd");
    assert_eq!(masker.mask("x longer-line y"), "x *** y");
}

#[test]
fn overlapping_secrets_are_masked_by_the_longest() {
    let masker = Masker::new(["secret", "secret-extended", "tended-more"]);
    assert_eq!(masker.mask("a secret-extended-more b"), "a ***-more b");
    assert_eq!(masker.mask("secret and tended-more"), "*** and ***");
    // Where two secrets overlap, no part of either survives whole.
    let masked = masker.mask("xsecret-extended-morex");
    assert!(
        !masked.contains("secret") && !masked.contains("tended-more"),
        "{masked}"
    );
}

#[test]
fn short_raw_secrets_are_still_masked() {
    let masker = Masker::new(["pw"]);
    assert_eq!(masker.mask("the pw is pw"), "the *** is ***");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    // `*` is excluded: a secret made of the replacement's own character could
    // be rebuilt from `***` and its neighbours, which says nothing about leaks.
    #[test]
    fn no_form_of_the_secret_survives(
        secret in "[^*]{4,24}",
        prefix in "[^*]{0,12}",
        suffix in "[^*]{0,12}",
    ) {
        let masker = Masker::new([secret.as_str()]);
        let plain = format!("{prefix}{secret}{suffix}");
        let json_secret = json_inner(&secret);

        // Lines, as the runner sees them.
        for line in plain.split('\n') {
            let masked = masker.mask(line);
            prop_assert!(!masked.contains(secret.as_str()), "raw: {masked}");
        }
        let masked_json = masker.mask(&json_inner(&plain)).into_owned();
        prop_assert!(!masked_json.contains(&json_secret), "json: {masked_json}");
        prop_assert!(!masked_json.contains(secret.as_str()), "json raw: {masked_json}");

        for engine in [&STANDARD, &URL_SAFE] {
            let encoded = engine.encode(plain.as_bytes());
            let masked = masker.mask(&encoded);
            prop_assert!(
                !any_base64_run_decodes_to(&masked, secret.as_bytes()),
                "base64: {encoded} -> {masked}"
            );
        }
    }
}
