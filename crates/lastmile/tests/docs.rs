//! The README and docs/*.md agree with the repository: every relative link
//! (and every path written in backticks) points at a file inside it, and at
//! a heading where it names one; the Layout table lists every crate and
//! every document, and docs/architecture.md describes every crate; the list
//! of what `scripts/test` installs is complete; the flags the tour flips
//! exist in the example it runs on.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// README.md and every docs/*.md, relative to the root.
fn documents() -> Vec<PathBuf> {
    let mut documents = vec![PathBuf::from("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "md"))
        .map(|path| Path::new("docs").join(path.file_name().expect("a name")))
        .collect();
    docs.sort();
    documents.extend(docs);
    documents
}

/// The text outside fenced code blocks, line by line with 1-based numbers.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut inside = false;
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            inside = !inside;
            continue;
        }
        if !inside {
            lines.push((index + 1, line));
        }
    }
    lines
}

/// The anchors GitHub gives the headings of a document.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    for (_, line) in prose(text) {
        let Some(title) = line.strip_prefix('#') else {
            continue;
        };
        let title = title.trim_start_matches('#').trim();
        let base: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut anchor = base.clone();
        let mut suffix = 0;
        while anchors.contains(&anchor) {
            suffix += 1;
            anchor = format!("{base}-{suffix}");
        }
        anchors.insert(anchor);
    }
    anchors
}

/// A path a document points at.
#[derive(Debug)]
struct Reference {
    target: String,
    /// A link, or a backticked `../` path: relative to the document. A
    /// backticked `docs/x.md` names a file from the repository root.
    from_document: bool,
}

/// `[text](target)` targets and backticked paths (`../x`, `docs/x.md`) on
/// one line.
fn references(line: &str) -> Vec<Reference> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let Some(end) = after.find(')') else { break };
        found.push(Reference {
            target: after[..end].trim().to_string(),
            from_document: true,
        });
        rest = &after[end..];
    }
    for (index, span) in line.split('`').enumerate() {
        if index % 2 == 0 || span.contains(' ') {
            continue;
        }
        if span.starts_with("../") {
            found.push(Reference {
                target: span.to_string(),
                from_document: true,
            });
        } else if span.starts_with("docs/") && span.ends_with(".md") {
            found.push(Reference {
                target: span.to_string(),
                from_document: false,
            });
        }
    }
    found
}

/// `path` with `.` and `..` resolved lexically; `None` when it climbs above
/// the start.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Normal(part) => parts.push(part),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

/// Why `reference`, in `document`, does not resolve; `None` when it does
/// (or is not a repository link: a URL, `mailto:`).
fn broken(document: &Path, reference: &Reference) -> Option<String> {
    let target = reference.target.as_str();
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (file, anchor) = match target.split_once('#') {
        Some((file, anchor)) => (file, Some(anchor)),
        None => (target, None),
    };
    let base = match reference.from_document {
        true => document.parent().unwrap_or(Path::new("")),
        false => Path::new(""),
    };
    let relative = if file.is_empty() {
        document.to_path_buf()
    } else {
        match normalize(&base.join(file)) {
            Some(relative) => relative,
            None => return Some("leaves the repository".to_string()),
        }
    };
    let path = root().join(&relative);
    if !path.exists() {
        return Some(format!("{} does not exist", relative.display()));
    }
    let anchor = anchor?;
    if path.extension().is_some_and(|extension| extension == "md")
        && !anchors(&read(&path)).contains(anchor)
    {
        return Some(format!("{} has no heading #{anchor}", relative.display()));
    }
    None
}

#[test]
fn every_link_in_the_readme_and_docs_points_inside_the_repository() {
    let cases = [
        ("README.md", "[a](docs/spec.md)", None),
        ("README.md", "[a](docs/spec.md#flags)", None),
        ("docs/flags.md", "[a](spec.md#flags)", None),
        ("docs/spec.md", "[a](#pipeline)", None),
        ("docs/architecture.md", "the table in `docs/spec.md`", None),
        (
            "docs/architecture.md",
            "see `docs/gone.md`",
            Some("docs/gone.md does not exist"),
        ),
        ("README.md", "[a](https://example.com/x)", None),
        (
            "README.md",
            "the map is in `../shared/DESIGN.md`",
            Some("leaves the repository"),
        ),
        (
            "README.md",
            "[a](docs/missing.md)",
            Some("docs/missing.md does not exist"),
        ),
        (
            "docs/flags.md",
            "[a](spec.md#no-such-heading)",
            Some("docs/spec.md has no heading #no-such-heading"),
        ),
    ];
    for (document, line, expected) in cases {
        let problems: Vec<String> = references(line)
            .iter()
            .filter_map(|reference| broken(Path::new(document), reference))
            .collect();
        assert_eq!(
            problems.first().map(String::as_str),
            expected,
            "{document}: {line}"
        );
    }

    let mut problems = Vec::new();
    for document in documents() {
        for (number, line) in prose(&read(&root().join(&document))) {
            for reference in references(line) {
                if let Some(why) = broken(&document, &reference) {
                    problems.push(format!(
                        "{}:{number}: {}: {why}",
                        document.display(),
                        reference.target
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

/// The paths in the first column of the README's Layout table.
fn layout_paths(readme: &str) -> Vec<String> {
    let section = readme
        .split("\n## Layout\n")
        .nth(1)
        .expect("the README has a Layout section");
    section
        .lines()
        .take_while(|line| !line.starts_with("## "))
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|line| line.split_once('`'))
        .map(|(path, _)| path.trim_end_matches('/').to_string())
        .collect()
}

fn names_in(dir: &str, keep: impl Fn(&Path) -> bool) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|error| panic!("{dir}: {error}"))
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| keep(path))
        .map(|path| {
            format!(
                "{dir}/{}",
                path.file_name().expect("a name").to_string_lossy()
            )
        })
        .collect();
    names.sort();
    names
}

#[test]
fn the_layout_table_lists_every_crate_and_document_and_nothing_else() {
    let readme = read(&root().join("README.md"));
    let listed = layout_paths(&readme);
    let expected = [
        names_in("crates", |path| path.join("Cargo.toml").is_file()),
        names_in("docs", |path| {
            path.extension().is_some_and(|extension| extension == "md")
        }),
    ];
    let mut missing = Vec::new();
    for path in expected.iter().flatten() {
        if !listed.contains(path) {
            missing.push(path.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "README.md's Layout table lacks {missing:?}"
    );
    let gone: Vec<&String> = listed
        .iter()
        .filter(|path| !root().join(path).exists())
        .collect();
    assert!(
        gone.is_empty(),
        "README.md's Layout table names what does not exist: {gone:?}"
    );
}

#[test]
fn the_architecture_document_describes_every_crate() {
    let architecture = read(&root().join("docs/architecture.md"));
    let missing: Vec<String> = names_in("crates", |path| path.join("Cargo.toml").is_file())
        .into_iter()
        .map(|path| path.trim_start_matches("crates/").to_string())
        .filter(|name| !architecture.contains(&format!("| `{name}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/architecture.md's crate table lacks {missing:?}"
    );
}

/// What `scripts/test` installs: the Debian packages of its `packages+=(…)`
/// and `apt-get install` lines, and the PyPI packages it passes to
/// `pip_install` (the schemathesis pin comes from its requirements file).
fn installed_by_scripts_test() -> BTreeSet<String> {
    let script = read(&root().join("scripts/test"));
    let mut packages = BTreeSet::new();
    for line in script.lines() {
        let line = line.trim();
        if let Some(at) = line.find("packages+=(") {
            let inner = &line[at + "packages+=(".len()..];
            let inner = inner.split(')').next().unwrap_or_default();
            packages.extend(inner.split_whitespace().map(str::to_string));
        }
        if line.contains("apt-get install") && !line.contains("\"${packages[@]}\"") {
            let words = line.split("apt-get install").nth(1).unwrap_or_default();
            packages.extend(
                words
                    .split_whitespace()
                    .filter(|word| !word.starts_with('-') && !word.contains(['>', '/', '$']))
                    .map(str::to_string),
            );
        }
        if line.starts_with("pip_install \"") {
            for word in line.split('"').skip(1).step_by(2) {
                let name = word.split(['=', '<', '>', '~']).next().unwrap_or_default();
                if !name.starts_with('$') && !name.is_empty() {
                    packages.insert(name.to_string());
                }
            }
        }
    }
    let pin = read(&root().join("crates/lastmile/tests/schemathesis/requirements.txt"));
    packages.extend(
        pin.lines()
            .filter_map(|line| line.split("==").next())
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty()),
    );
    packages
}

#[test]
fn the_readme_names_everything_scripts_test_installs() {
    let packages = installed_by_scripts_test();
    for expected in [
        "git",
        "chromium",
        "chromium-driver",
        "prometheus",
        "pebble",
        "python3-pip",
        "openfeature-sdk",
        "schemathesis",
    ] {
        assert!(
            packages.contains(expected),
            "the reading of scripts/test finds {expected}: {packages:?}"
        );
    }
    let readme = read(&root().join("README.md"));
    let section = readme
        .split("scripts/test\n```")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the README explains scripts/test after its command");
    let missing: Vec<&String> = packages
        .iter()
        .filter(|package| !section.contains(&format!("`{package}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md does not name what scripts/test installs: {missing:?}"
    );
}

#[test]
fn the_flags_the_readme_flips_exist_in_the_example() {
    let loaded = lastmile_spec::load(&root().join("examples/hello")).expect("a valid example");
    assert!(
        loaded.warnings.is_empty(),
        "examples/hello/lastmile.yaml has warnings"
    );
    let declared: BTreeSet<&str> = loaded
        .spec
        .flags
        .iter()
        .map(|flag| flag.key.as_str())
        .collect();
    let readme = read(&root().join("README.md"));
    let mut flipped = BTreeSet::new();
    for line in readme.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["lastmile", "flag", verb, key, ..] = words.as_slice()
            && *verb != "list"
        {
            flipped.insert(*key);
        }
    }
    assert!(!flipped.is_empty(), "the README's tour flips a flag");
    let unknown: Vec<&&str> = flipped
        .iter()
        .filter(|key| !declared.contains(**key))
        .collect();
    assert!(
        unknown.is_empty(),
        "the README flips {unknown:?}, which examples/hello/lastmile.yaml does not declare ({declared:?})"
    );
}
