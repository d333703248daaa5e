//! `gates`: approval, verify checks and webhooks.

use std::time::Duration;

use crate::model::{Gates, VerifyCheck, Webhook, Webhooks};
use crate::node::{Node, Value};
use crate::reader::service::http_path;
use crate::reader::{Problem, Reader};

/// Default time a verify check or a webhook may take.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A URL to show in hints.
const WEBHOOK_EXAMPLE: &str = "https://ci.example.com/hooks/deploy";

pub(super) fn read_gates(reader: &mut Reader<'_>, node: &Node, environment: &str) -> Option<Gates> {
    let fields = reader.fields(
        node,
        &format!("the gates of environment `{environment}`"),
        &["approval", "verify", "webhooks"],
        &[],
    )?;
    let approval_required = match fields.get("approval") {
        Some(value) => reader
            .keyword(
                value,
                "approval gate",
                "spec::unknown-value",
                &["required", "none"],
            )
            .map(|approval| approval == "required"),
        None => Some(false),
    };
    let verify = match fields.get("verify") {
        Some(value) => read_verify(reader, value),
        None => Some(Vec::new()),
    };
    let webhooks = match fields.get("webhooks") {
        Some(value) => read_webhooks(reader, value),
        None => Some(Webhooks::default()),
    };
    Some(Gates {
        approval_required: approval_required?,
        verify: verify?,
        webhooks: webhooks?,
    })
}

fn read_verify(reader: &mut Reader<'_>, node: &Node) -> Option<Vec<VerifyCheck>> {
    let items = reader.list(
        node,
        "`verify` must be a list of checks",
        "write e.g. `verify: [{ path: /healthz, status: 200 }]`",
    )?;
    let mut checks = Vec::with_capacity(items.len());
    let mut complete = true;
    for item in items {
        match read_check(reader, item) {
            Some(check) => checks.push(check),
            None => complete = false,
        }
    }
    complete.then_some(checks)
}

fn read_check(reader: &mut Reader<'_>, node: &Node) -> Option<VerifyCheck> {
    let context = "a `verify` check";
    let fields = reader.fields(
        node,
        context,
        &["path", "run", "status", "body_contains", "timeout"],
        &[],
    )?;
    let target = reader.one_of(node, &fields, context, ["path", "run"], "path: /healthz");
    let (path, run) = match target {
        Some(("path", value)) => (
            http_path(reader, value, "verify.path").map(Some),
            Some(None),
        ),
        Some((_, value)) => (Some(None), reader.command(value, "verify.run").map(Some)),
        None => (None, None),
    };
    let mut complete = true;
    if matches!(target, Some(("run", _))) {
        // A command only has an exit status; these would never be checked.
        for key in ["status", "body_contains"] {
            if let Some(key_node) = fields.key(key) {
                complete = false;
                reader.error(
                    key_node.place,
                    Problem::new(
                        "spec::conflicting-keys",
                        format!("`{key}` checks an HTTP answer, but this check runs a command"),
                        "not for a command",
                    )
                    .hint(format!(
                        "remove `{key}` (a command passes when it exits 0), or check a `path` instead"
                    )),
                );
            }
        }
    }
    let status = match fields.get("status") {
        Some(value) => reader
            .integer(value, "verify.status", 100, 599)
            .and_then(|status| u16::try_from(status).ok()),
        None => Some(200),
    };
    let body_contains = match fields.get("body_contains") {
        Some(value) => reader.text(value, "verify.body_contains").map(Some),
        None => Some(None),
    };
    let timeout = match fields.get("timeout") {
        Some(value) => reader.positive_duration(value, "verify.timeout"),
        None => Some(DEFAULT_TIMEOUT),
    };
    let check = VerifyCheck {
        path: path?,
        run: run?,
        status: status?,
        body_contains: body_contains?,
        timeout: timeout?,
    };
    complete.then_some(check)
}

fn read_webhooks(reader: &mut Reader<'_>, node: &Node) -> Option<Webhooks> {
    let fields = reader.fields(
        node,
        "`gates.webhooks`",
        &["before", "after", "rollback"],
        &[],
    )?;
    let mut read = |key: &str| match fields.get(key) {
        Some(value) => read_webhook(reader, value, key).map(Some),
        None => Some(None),
    };
    let (before, after, rollback) = (read("before"), read("after"), read("rollback"));
    Some(Webhooks {
        before: before?,
        after: after?,
        rollback: rollback?,
    })
}

/// A webhook written as a bare URL or as `{ url, timeout }`.
fn read_webhook(reader: &mut Reader<'_>, node: &Node, key: &str) -> Option<Webhook> {
    let what = format!("webhooks.{key}");
    if !matches!(node.value, Value::Map(_)) {
        let url = reader.http_url(node, &what, WEBHOOK_EXAMPLE)?;
        return Some(Webhook {
            url,
            timeout: DEFAULT_TIMEOUT,
        });
    }
    let fields = reader.fields(
        node,
        &format!("`gates.{what}`"),
        &["url", "timeout"],
        &[("url", "url: \"https://hooks.example.com/deploy\"")],
    )?;
    let url = fields
        .get("url")
        .and_then(|value| reader.http_url(value, &format!("{what}.url"), WEBHOOK_EXAMPLE));
    let timeout = match fields.get("timeout") {
        Some(value) => reader.positive_duration(value, &format!("{what}.timeout")),
        None => Some(DEFAULT_TIMEOUT),
    };
    Some(Webhook {
        url: url?,
        timeout: timeout?,
    })
}
