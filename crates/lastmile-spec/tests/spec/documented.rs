//! docs/spec.md documents every key the parser accepts, in the section of
//! the map that holds it: the keys come from the parser itself (the valid
//! keys its unknown-key errors list), so a key added to the parser and not
//! to the docs fails here.

use std::collections::BTreeMap;

use lastmile_spec::parse;

const EVERY_KEY: &str = include_str!("every_key.yaml");
const SPEC_DOCS: &str = include_str!("../../../../docs/spec.md");

/// A heading's anchor as GitHub makes it: lowercase, punctuation dropped,
/// spaces to hyphens (`### \`route.tls\`` → `routetls`).
fn anchor(heading: &str) -> String {
    heading
        .trim_start_matches('#')
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|character| match character {
            ' ' => Some('-'),
            '-' | '_' => Some(character),
            _ if character.is_alphanumeric() => Some(character),
            _ => None,
        })
        .collect()
}

/// The table rows of each section of docs/spec.md, by the anchor of its
/// heading; a section ends at the next heading of any level. The text
/// before the first `##` is `top-level`'s intro, and `## Top level` is
/// the root map's table.
fn table_rows_by_section() -> BTreeMap<String, Vec<&'static str>> {
    let mut sections: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut current = String::new();
    let mut in_code = false;
    for line in SPEC_DOCS.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if in_code {
        } else if line.starts_with('#') {
            current = anchor(line);
        } else if line.starts_with('|') {
            sections.entry(current.clone()).or_default().push(line);
        }
    }
    sections
}

#[test]
fn every_key_the_parser_accepts_is_in_the_docs_table_of_its_map() {
    let errors = parse("lastmile.yaml", EVERY_KEY).expect_err("the fixture has unknown keys");
    let sections = table_rows_by_section();
    let mut maps_seen = 0;
    let mut missing = Vec::new();
    for diagnostic in errors.diagnostics() {
        assert_eq!(
            diagnostic.code, "spec::unknown-key",
            "the fixture has only unknown-key errors: {diagnostic:?}"
        );
        let section = diagnostic
            .message
            .strip_prefix("unknown key `docs-")
            .and_then(|rest| rest.split_once('`'))
            .map(|(section, _)| section)
            .unwrap_or_else(|| panic!("not a docs- key: {}", diagnostic.message));
        let hint = diagnostic.hint.as_deref().unwrap_or_default();
        let (_, valid) = hint
            .split_once("valid keys: ")
            .or_else(|| hint.split_once("valid keys here: "))
            .unwrap_or_else(|| panic!("the hint lists no valid keys: {hint}"));
        let rows = sections
            .get(section)
            .unwrap_or_else(|| panic!("docs/spec.md has no section with anchor #{section}"));
        maps_seen += 1;
        for key in valid.split(", ") {
            let written = format!("`{key}`");
            if !rows.iter().any(|row| row.contains(&written)) {
                missing.push(format!(
                    "`{key}` (in {}) under #{section}",
                    diagnostic.message
                ));
            }
        }
    }
    let annotated = EVERY_KEY.matches("docs-").count() - 1;
    assert_eq!(
        maps_seen, annotated,
        "every `docs-` key of the fixture is reported as unknown, so every map was read"
    );
    assert!(
        missing.is_empty(),
        "keys the parser accepts but docs/spec.md's tables do not list:\n{}",
        missing.join("\n")
    );
}
