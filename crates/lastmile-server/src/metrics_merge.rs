//! One Prometheus text out of every app's: the families merged, each
//! sample labelled with its app.

use std::collections::BTreeMap;

/// Merges `(app, text)` pairs; `# HELP`/`# TYPE` once per family, samples
/// get `app="…"` as their first label.
pub(crate) fn merge(texts: &[(String, String)]) -> String {
    // family → (header lines, samples), families in first-seen order.
    let mut order: Vec<String> = Vec::new();
    let mut families: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for (app, text) in texts {
        let mut family = String::new();
        for line in text.lines() {
            if let Some(rest) = line
                .strip_prefix("# HELP ")
                .or_else(|| line.strip_prefix("# TYPE "))
            {
                family = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let entry = families.entry(family.clone()).or_insert_with(|| {
                    order.push(family.clone());
                    (Vec::new(), Vec::new())
                });
                if !entry.0.iter().any(|header| header == line) {
                    entry.0.push(line.to_owned());
                }
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let labelled = label(line, app);
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let key = if name.starts_with(family.as_str()) && !family.is_empty() {
                family.clone()
            } else {
                name.to_owned()
            };
            let entry = families.entry(key.clone()).or_insert_with(|| {
                order.push(key.clone());
                (Vec::new(), Vec::new())
            });
            entry.1.push(labelled);
        }
    }
    let mut out = String::new();
    for name in order {
        if let Some((headers, samples)) = families.get(&name) {
            for line in headers.iter().chain(samples) {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

fn label(line: &str, app: &str) -> String {
    let app = app.replace('\\', "\\\\").replace('"', "\\\"");
    match line.find(['{', ' ']) {
        Some(at) if line.as_bytes()[at] == b'{' => {
            let (name, rest) = line.split_at(at);
            let rest = &rest[1..];
            if rest.starts_with('}') {
                format!("{name}{{app=\"{app}\"{rest}")
            } else {
                format!("{name}{{app=\"{app}\",{rest}")
            }
        }
        Some(at) => {
            let (name, rest) = line.split_at(at);
            format!("{name}{{app=\"{app}\"}}{rest}")
        }
        None => line.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn families_merge_once_and_samples_carry_the_app() {
        let one = "# HELP x_total Things.\n# TYPE x_total counter\nx_total{env=\"s\"} 1\ny 2\n";
        let two = "# HELP x_total Things.\n# TYPE x_total counter\nx_total{env=\"s\"} 3\n";
        let merged = merge(&[("a".into(), one.into()), ("b".into(), two.into())]);
        assert_eq!(merged.matches("# TYPE x_total").count(), 1, "{merged}");
        assert!(
            merged.contains("x_total{app=\"a\",env=\"s\"} 1"),
            "{merged}"
        );
        assert!(
            merged.contains("x_total{app=\"b\",env=\"s\"} 3"),
            "{merged}"
        );
        assert!(merged.contains("y{app=\"a\"} 2"), "{merged}");
    }
}
