//! `cohort` and `pins`: which side of a canary a request goes to.

use crate::model::{Cohort, CohortKey, Pin, PinTarget};
use crate::node::{Node, Place};
use crate::reader::{Fields, Problem, Reader};
use crate::scalar;

pub(super) fn read_cohort(
    reader: &mut Reader<'_>,
    node: &Node,
    environment: &str,
) -> Option<Cohort> {
    let context = format!("the cohort of environment `{environment}`");
    let fields = reader.fields(node, &context, &["header", "cookie", "set_cookie"], &[])?;
    let key = cohort_key(reader, node, &fields, &context, "header: x-user-id");
    let set_cookie = match fields.get("set_cookie") {
        Some(value) => cookie_name(reader, value, "cohort.set_cookie").map(Some),
        None => Some(None),
    };
    Some(Cohort {
        key: key?,
        set_cookie: set_cookie?,
    })
}

pub(super) fn read_pins(
    reader: &mut Reader<'_>,
    node: &Node,
    environment: &str,
) -> Option<Vec<Pin>> {
    let items = reader.list(
        node,
        "`pins` must be a list of pins",
        "write e.g. `pins: [{ header: x-canary, value: \"1\", to: canary }]`",
    )?;
    let context = format!("a pin of environment `{environment}`");
    let mut pins: Vec<(Pin, Place)> = Vec::with_capacity(items.len());
    let mut complete = true;
    for item in items {
        let Some(fields) = reader.fields(
            item,
            &context,
            &["header", "cookie", "value", "to"],
            &[("value", "value: \"1\""), ("to", "to: canary")],
        ) else {
            complete = false;
            continue;
        };
        let key = cohort_key(reader, item, &fields, &context, "header: x-canary");
        let value_node = fields.get("value");
        let value = value_node.and_then(|value| {
            reader.non_empty_text(
                value,
                "pins.value",
                "write the exact value that pins a request, e.g. `value: \"1\"`",
            )
        });
        let to = fields.get("to").and_then(|value| {
            reader
                .keyword(
                    value,
                    "pin target",
                    "spec::unknown-value",
                    &["canary", "stable"],
                )
                .map(|to| match to {
                    "canary" => PinTarget::Canary,
                    _ => PinTarget::Stable,
                })
        });
        let (Some(key), Some(value), Some(to)) = (key, value, to) else {
            complete = false;
            continue;
        };
        let pin = Pin { key, value, to };
        if let Some((_, first)) = pins
            .iter()
            .find(|(other, _)| other.key == pin.key && other.value == pin.value)
        {
            complete = false;
            let (kind, name) = describe(&pin.key);
            reader.error(
                value_node.map_or(item.place, |value| value.place),
                Problem::new(
                    "spec::duplicate-key",
                    format!(
                        "a pin on {kind} `{name}` = `{}` is listed twice (first on line {})",
                        pin.value, first.line
                    ),
                    "pinned again",
                )
                .hint("keep one pin per header or cookie value"),
            );
            continue;
        }
        pins.push((pin, item.place));
    }
    complete.then(|| pins.into_iter().map(|(pin, _)| pin).collect())
}

/// `header: name` or `cookie: name`, exactly one.
fn cohort_key(
    reader: &mut Reader<'_>,
    node: &Node,
    fields: &Fields<'_>,
    context: &str,
    example: &str,
) -> Option<CohortKey> {
    let (kind, value) = reader.one_of(node, fields, context, ["header", "cookie"], example)?;
    if kind == "header" {
        header_name(reader, value).map(CohortKey::Header)
    } else {
        cookie_name(reader, value, "cookie").map(CohortKey::Cookie)
    }
}

/// A header name, lowercased (HTTP header names ignore case).
fn header_name(reader: &mut Reader<'_>, node: &Node) -> Option<String> {
    let name = reader.text(node, "header")?;
    if scalar::is_http_token(&name) {
        return Some(name.to_ascii_lowercase());
    }
    reader.error(
        node.place,
        Problem::new(
            "spec::invalid-name",
            format!("`{name}` is not a valid header name"),
            "invalid header name",
        )
        .hint("header names are letters, digits and `-` (no spaces or `:`), e.g. `x-user-id`"),
    );
    None
}

fn cookie_name(reader: &mut Reader<'_>, node: &Node, what: &str) -> Option<String> {
    let name = reader.text(node, what)?;
    if scalar::is_http_token(&name) {
        return Some(name);
    }
    reader.error(
        node.place,
        Problem::new(
            "spec::invalid-name",
            format!("`{name}` in `{what}` is not a valid cookie name"),
            "invalid cookie name",
        )
        .hint("cookie names are letters, digits, `-` and `_` (no spaces, `=` or `;`), e.g. `uid`"),
    );
    None
}

/// "header" or "cookie", and the name.
fn describe(key: &CohortKey) -> (&'static str, &str) {
    match key {
        CohortKey::Header(name) => ("header", name),
        CohortKey::Cookie(name) => ("cookie", name),
    }
}
