//! `pipeline:` and its steps, with the checks that span steps: unique names,
//! known `needs`, no cycles.

use std::collections::{BTreeMap, BTreeSet};

use super::{Problem, Reader};
use crate::model::{Pipeline, Step};
use crate::node::{Node, Place, Value};
use crate::scalar::{self, did_you_mean};

const STEP_KEYS: &[&str] = &[
    "name", "run", "needs", "env", "timeout", "retries", "inputs", "outputs", "secrets", "workdir",
];

/// A step and the places later checks point at.
#[derive(Debug)]
struct ReadStep {
    name: Option<(String, Place)>,
    needs: Vec<(String, Place)>,
    step: Option<Step>,
}

pub(super) fn read_pipeline(reader: &mut Reader<'_>, node: &Node) -> Option<Pipeline> {
    let example = "steps: [{ name: build, run: make }]";
    let fields = reader.fields(node, "`pipeline`", &["steps"], &[("steps", example)])?;
    let steps_node = fields.get("steps")?;
    let items = reader.list(
        steps_node,
        "`pipeline.steps` must be a list of steps",
        "write each step as `- name: build` followed by `run: make` on the next line",
    )?;
    if items.is_empty() {
        reader.error(
            steps_node.place,
            Problem::new("spec::empty", "`pipeline.steps` is empty", "no steps")
                .hint("add at least one step, e.g. `- { name: build, run: make }`"),
        );
        return None;
    }
    let read: Vec<ReadStep> = items
        .iter()
        .enumerate()
        .map(|(index, item)| read_step(reader, item, index))
        .collect();
    let names_ok = check_unique_names(reader, &read);
    check_needs(reader, &read);
    // Cycles are checked over the `needs` that are valid, so one run reports
    // a typo and a cycle elsewhere together.
    if names_ok {
        check_cycles(reader, &read);
    }
    let steps: Option<Vec<Step>> = read.into_iter().map(|read| read.step).collect();
    Some(Pipeline { steps: steps? })
}

fn read_step(reader: &mut Reader<'_>, node: &Node, index: usize) -> ReadStep {
    let mut read = ReadStep {
        name: None,
        needs: Vec::new(),
        step: None,
    };
    let peeked_name = match &node.value {
        Value::Map(pairs) => {
            pairs
                .iter()
                .find_map(|(key, value)| match (&key.value, &value.value) {
                    (Value::Text(key), Value::Text(name)) if key == "name" => Some(name.clone()),
                    _ => None,
                })
        }
        _ => None,
    };
    let context = match &peeked_name {
        Some(name) => format!("step `{name}`"),
        None => format!("step #{}", index + 1),
    };
    let Some(fields) = reader.fields(
        node,
        &context,
        STEP_KEYS,
        &[("name", "name: build"), ("run", "run: cargo build")],
    ) else {
        return read;
    };
    let name = fields.get("name").and_then(|name_node| {
        let name = reader.text(name_node, "name")?;
        if scalar::is_step_name(&name) {
            return Some((name, name_node.place));
        }
        reader.error(
            name_node.place,
            Problem::new(
                "spec::invalid-name",
                format!("`{name}` is not a valid step name"),
                "invalid name",
            )
            .hint("step names use letters, digits, `-`, `_` and `.` only, e.g. `unit-tests`"),
        );
        None
    });
    read.name = name.clone();
    let run = fields
        .get("run")
        .and_then(|run_node| reader.command(run_node, "run"));
    let mut complete = name.is_some() && run.is_some();

    let needs = match fields.get("needs") {
        Some(needs_node) => reader.string_list(needs_node, "needs", "needs: [build]"),
        None => Some(Vec::new()),
    };
    let needs = needs.unwrap_or_else(|| {
        complete = false;
        Vec::new()
    });
    read.needs = needs.clone();

    let env = optional(
        &mut complete,
        fields.get("env").map(|value| reader.env_map(value, "env")),
        BTreeMap::new(),
    );
    let timeout = optional(
        &mut complete,
        fields
            .get("timeout")
            .map(|value| reader.positive_duration(value, "timeout").map(Some)),
        None,
    );
    let retries = optional(
        &mut complete,
        fields
            .get("retries")
            .map(|value| reader.count(value, "retries", 0, 10)),
        0,
    );
    let inputs = optional(
        &mut complete,
        fields
            .get("inputs")
            .map(|value| globs(reader, value, "inputs")),
        Vec::new(),
    );
    let outputs = optional(
        &mut complete,
        fields
            .get("outputs")
            .map(|value| globs(reader, value, "outputs")),
        Vec::new(),
    );
    let secrets = optional(
        &mut complete,
        fields
            .get("secrets")
            .map(|value| reader.env_names(value, "secrets")),
        Vec::new(),
    );
    let workdir = optional(
        &mut complete,
        fields
            .get("workdir")
            .map(|value| relative_path(reader, value, "workdir").map(Some)),
        None,
    );

    if complete && let (Some((name, _)), Some(run)) = (name, run) {
        read.step = Some(Step {
            name,
            run,
            needs: needs.into_iter().map(|(need, _)| need).collect(),
            env,
            timeout,
            retries,
            inputs,
            outputs,
            secrets,
            workdir,
        });
    }
    read
}

/// The value of an optional key: its default when absent, and `complete`
/// cleared when present but invalid.
fn optional<T>(complete: &mut bool, value: Option<Option<T>>, default: T) -> T {
    match value {
        Some(Some(value)) => value,
        Some(None) => {
            *complete = false;
            default
        }
        None => default,
    }
}

fn globs(reader: &mut Reader<'_>, node: &Node, what: &str) -> Option<Vec<String>> {
    let patterns = reader.string_list(node, what, &format!("{what}: [src/**, Cargo.toml]"))?;
    let mut valid = Vec::with_capacity(patterns.len());
    for (pattern, place) in patterns {
        if pattern.starts_with('/') || pattern.split('/').any(|part| part == "..") {
            reader.error(
                place,
                Problem::new(
                    "spec::invalid-path",
                    format!("`{pattern}` in `{what}` leaves the workspace"),
                    "outside the workspace",
                )
                .hint("write a path relative to the workspace, without a leading `/` or `..`"),
            );
            continue;
        }
        valid.push(pattern);
    }
    Some(valid)
}

fn relative_path(reader: &mut Reader<'_>, node: &Node, what: &str) -> Option<String> {
    let path = reader.non_empty_text(
        node,
        what,
        "write a directory relative to the workspace, e.g. `workdir: web`",
    )?;
    if path.starts_with('/') || path.split('/').any(|part| part == "..") {
        reader.error(
            node.place,
            Problem::new(
                "spec::invalid-path",
                format!("`{what}` `{path}` leaves the workspace"),
                "outside the workspace",
            )
            .hint("write a directory relative to the workspace, without a leading `/` or `..`"),
        );
        return None;
    }
    Some(path)
}

/// Reports a second step with a name already used; true if all are unique.
fn check_unique_names(reader: &mut Reader<'_>, steps: &[ReadStep]) -> bool {
    let mut first_lines: BTreeMap<&str, usize> = BTreeMap::new();
    let mut unique = true;
    for (name, place) in steps.iter().filter_map(|step| step.name.as_ref()) {
        if let Some(first_line) = first_lines.get(name.as_str()) {
            unique = false;
            reader.error(
                *place,
                Problem::new(
                    "spec::duplicate-step",
                    format!("step name `{name}` is used twice (first on line {first_line})"),
                    "used again here",
                )
                .hint("give each step its own name; `needs` refers to steps by name"),
            );
        } else {
            first_lines.insert(name, place.line);
        }
    }
    unique
}

/// Reports `needs` that name no step, the step itself, or a step twice.
fn check_needs(reader: &mut Reader<'_>, steps: &[ReadStep]) {
    let names: Vec<&str> = steps
        .iter()
        .filter_map(|step| step.name.as_ref().map(|(name, _)| name.as_str()))
        .collect();
    for step in steps {
        let own = step.name.as_ref().map(|(name, _)| name.as_str());
        let subject = own.map_or_else(|| "this step".to_owned(), |name| format!("step `{name}`"));
        let mut seen = BTreeSet::new();
        for (need, place) in &step.needs {
            if Some(need.as_str()) == own {
                reader.error(
                    *place,
                    Problem::new(
                        "spec::self-need",
                        format!("{subject} needs itself"),
                        "the step's own name",
                    )
                    .hint(format!(
                        "remove `{need}` from its own `needs`; a step cannot wait for itself"
                    )),
                );
            } else if !names.contains(&need.as_str()) {
                let others: Vec<&str> = names
                    .iter()
                    .copied()
                    .filter(|name| Some(*name) != own)
                    .collect();
                let listed = others
                    .iter()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let hint = match did_you_mean(need, others.iter().copied()) {
                    Some(suggestion) => {
                        format!("did you mean `{suggestion}`? steps in this pipeline: {listed}")
                    }
                    None if others.is_empty() => "this is the only step; remove `needs`".to_owned(),
                    None => format!("steps in this pipeline: {listed}"),
                };
                reader.error(
                    *place,
                    Problem::new(
                        "spec::unknown-need",
                        format!("{subject} needs `{need}`, but no step has that name"),
                        "unknown step",
                    )
                    .hint(hint),
                );
            } else if !seen.insert(need.as_str()) {
                reader.error(
                    *place,
                    Problem::new(
                        "spec::duplicate-need",
                        format!("{subject} lists `{need}` twice in `needs`"),
                        "listed again",
                    )
                    .hint("list each step once"),
                );
            }
        }
    }
}

/// Reports each dependency cycle once, at the `needs` entry that closes it.
fn check_cycles(reader: &mut Reader<'_>, steps: &[ReadStep]) {
    let index_of: BTreeMap<&str, usize> = steps
        .iter()
        .enumerate()
        .filter_map(|(index, step)| step.name.as_ref().map(|(name, _)| (name.as_str(), index)))
        .collect();
    let edges: Vec<Vec<(usize, Place)>> = steps
        .iter()
        .map(|step| {
            let own = step.name.as_ref().map(|(name, _)| name);
            // A step needing itself is already its own error; not a cycle too.
            step.needs
                .iter()
                .filter(|(need, _)| Some(need) != own)
                .filter_map(|(need, place)| {
                    index_of.get(need.as_str()).map(|index| (*index, *place))
                })
                .collect()
        })
        .collect();
    let mut state = vec![Visit::New; steps.len()];
    let mut reported: BTreeSet<Vec<usize>> = BTreeSet::new();
    for start in 0..steps.len() {
        if state[start] != Visit::New {
            continue;
        }
        // An explicit stack keeps deep pipelines from overflowing the call stack.
        let mut path: Vec<usize> = vec![start];
        let mut next_edge: Vec<usize> = vec![0];
        state[start] = Visit::OnPath;
        while let Some(&current) = path.last() {
            let edge_index = next_edge.last().copied().unwrap_or(0);
            let Some(&(target, place)) = edges[current].get(edge_index) else {
                state[current] = Visit::Done;
                path.pop();
                next_edge.pop();
                continue;
            };
            if let Some(last) = next_edge.last_mut() {
                *last += 1;
            }
            match state[target] {
                Visit::New => {
                    state[target] = Visit::OnPath;
                    path.push(target);
                    next_edge.push(0);
                }
                Visit::OnPath => {
                    let from = path.iter().position(|index| *index == target).unwrap_or(0);
                    let cycle: Vec<usize> = path[from..].to_vec();
                    let mut key = cycle.clone();
                    key.sort_unstable();
                    if reported.insert(key) {
                        report_cycle(reader, steps, &cycle, place);
                    }
                }
                Visit::Done => {}
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visit {
    New,
    OnPath,
    Done,
}

fn report_cycle(reader: &mut Reader<'_>, steps: &[ReadStep], cycle: &[usize], place: Place) {
    let name = |index: usize| {
        steps[index]
            .name
            .as_ref()
            .map_or("?", |(name, _)| name.as_str())
    };
    let mut names: Vec<&str> = cycle.iter().map(|index| name(*index)).collect();
    names.push(name(cycle[0]));
    let path = names.join(" → ");
    reader.error(
        place,
        Problem::new("spec::cycle", format!("steps wait for each other in a cycle: {path}"), "closes the cycle")
            .hint("`a → b` means `a` needs `b`; none of these steps can start, so remove one of these `needs`"),
    );
}
