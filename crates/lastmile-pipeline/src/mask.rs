//! Secret masking for every log line lastmile prints or stores.
//!
//! A secret leaks not only as its raw text: programs print it JSON-escaped,
//! base64-encoded (basic auth headers, Kubernetes manifests, JWT payloads),
//! or one line at a time when it spans several. [`Masker`] knows all of these
//! forms up front and replaces each occurrence with `***` in one pass.

use std::borrow::Cow;
use std::collections::BTreeSet;

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

#[cfg(test)]
mod tests;

/// What every masked occurrence becomes.
const REPLACEMENT: &str = "***";

/// Derived forms (base64 fragments, single lines of a multi-line secret)
/// shorter than this are not masked: a two-character fragment would blank
/// out ordinary text all over the log while hiding almost nothing.
const MIN_DERIVED_LENGTH: usize = 4;

/// Replaces secret values, and the forms they are commonly printed in, with `***`.
#[derive(Debug, Clone)]
pub struct Masker {
    matcher: Matcher,
}

#[derive(Debug, Clone)]
enum Matcher {
    /// No secrets: every line passes through untouched.
    Nothing,
    /// Leftmost-longest search over every form of every secret.
    Forms(AhoCorasick),
    /// The automaton could not be built (patterns beyond its size limits);
    /// failing closed means hiding every line rather than leaking one.
    EveryLine,
}

impl Masker {
    /// A masker for these secret values; empty values are ignored.
    pub fn new<'a>(secret_values: impl IntoIterator<Item = &'a str>) -> Masker {
        let mut forms = BTreeSet::new();
        for value in secret_values {
            if !value.is_empty() {
                add_forms(value, &mut forms);
            }
        }
        if forms.is_empty() {
            return Masker {
                matcher: Matcher::Nothing,
            };
        }
        let matcher = match AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&forms)
        {
            Ok(automaton) => Matcher::Forms(automaton),
            Err(_) => Matcher::EveryLine,
        };
        Masker { matcher }
    }

    /// The line with every occurrence of a secret form replaced by `***`;
    /// borrowed when nothing matched.
    pub fn mask<'b>(&self, line: &'b str) -> Cow<'b, str> {
        let automaton = match &self.matcher {
            Matcher::Nothing => return Cow::Borrowed(line),
            Matcher::EveryLine => return Cow::Borrowed(REPLACEMENT),
            Matcher::Forms(automaton) => automaton,
        };
        let mut matches = automaton.find_iter(line).peekable();
        if matches.peek().is_none() {
            return Cow::Borrowed(line);
        }
        let mut masked = String::with_capacity(line.len());
        let mut copied_up_to = 0;
        for found in matches {
            masked.push_str(&line[copied_up_to..found.start()]);
            masked.push_str(REPLACEMENT);
            copied_up_to = found.end();
        }
        masked.push_str(&line[copied_up_to..]);
        Cow::Owned(masked)
    }

    /// True when there is nothing to mask (no non-empty secret values).
    pub fn is_empty(&self) -> bool {
        matches!(self.matcher, Matcher::Nothing)
    }
}

/// Every form of `value` worth masking.
fn add_forms(value: &str, forms: &mut BTreeSet<String>) {
    forms.insert(value.to_owned());
    add_json_forms(value, forms);
    add_base64_forms(value.as_bytes(), forms);

    // Logs are read line by line, so a multi-line secret (a PEM key) never
    // appears whole in one line: mask each of its lines on its own.
    if value.contains('\n') {
        for line in value.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().len() >= MIN_DERIVED_LENGTH {
                forms.insert(line.to_owned());
                add_json_forms(line, forms);
                add_base64_forms(line.as_bytes(), forms);
            }
        }
    }
}

/// The value as it appears inside a JSON string, in the escapings encoders use.
fn add_json_forms(value: &str, forms: &mut BTreeSet<String>) {
    let standard = serde_json::to_string(value).expect("serializing a str cannot fail");
    let standard = standard[1..standard.len() - 1].to_owned();

    // Some encoders (PHP, older Java) escape `/` as `\/`.
    forms.insert(standard.replace('/', "\\/"));
    // Python's `ensure_ascii` and JavaScript's `JSON.stringify` of some
    // inputs write control and non-ASCII characters as `\uXXXX`.
    forms.insert(json_escape_with_unicode(value, false, false));
    forms.insert(json_escape_with_unicode(value, true, false));
    forms.insert(json_escape_with_unicode(value, false, true));
    forms.insert(json_escape_with_unicode(value, true, true));
    forms.insert(standard);
}

/// JSON escaping where control characters (and, if asked, every non-ASCII
/// character) are written as `\uXXXX` in lower or upper case hex.
fn json_escape_with_unicode(value: &str, uppercase: bool, escape_non_ascii: bool) -> String {
    let mut escaped = String::with_capacity(value.len() + 8);
    let push_unit = |escaped: &mut String, unit: u16| {
        if uppercase {
            escaped.push_str(&format!("\\u{unit:04X}"));
        } else {
            escaped.push_str(&format!("\\u{unit:04x}"));
        }
    };
    for character in value.chars() {
        match character {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => push_unit(&mut escaped, c as u16),
            c if escape_non_ascii && !c.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    push_unit(&mut escaped, *unit);
                }
            }
            c => escaped.push(c),
        }
    }
    escaped
}

/// Base64 fragments that appear whenever `bytes` is encoded, alone or inside
/// longer data, in the standard and URL-safe alphabets.
///
/// Inside longer data the secret starts at byte offset 0, 1 or 2 of a 3-byte
/// group; at each offset only the characters whose 6 bits all come from the
/// secret are the same whatever surrounds it (the approach GitHub Actions
/// takes). Those characters are the fragment to mask.
fn add_base64_forms(bytes: &[u8], forms: &mut BTreeSet<String>) {
    for (padded, unpadded) in [(&STANDARD, &STANDARD_NO_PAD), (&URL_SAFE, &URL_SAFE_NO_PAD)] {
        // The value encoded on its own, with and without padding, so the
        // whole token including its last partial character disappears.
        for whole in [padded.encode(bytes), unpadded.encode(bytes)] {
            if whole.len() >= MIN_DERIVED_LENGTH {
                forms.insert(whole);
            }
        }
        for offset in 0..3usize {
            let mut shifted = vec![0u8; offset];
            shifted.extend_from_slice(bytes);
            let encoded = unpadded.encode(&shifted);
            let first_bit = offset * 8;
            let end_bit = (offset + bytes.len()) * 8;
            let first_character = first_bit.div_ceil(6);
            let end_character = end_bit / 6;
            if end_character >= first_character + MIN_DERIVED_LENGTH {
                forms.insert(encoded[first_character..end_character].to_owned());
            }
        }
    }
}
