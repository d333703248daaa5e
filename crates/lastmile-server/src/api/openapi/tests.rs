use proptest::prelude::*;
use serde_json::Value;

use super::*;

fn check(
    method: &str,
    template: &str,
    path: &[(&str, &str)],
    query: &[(&str, &str)],
) -> Result<(), String> {
    let query: Vec<(String, String)> = query
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    check_parameters(method, template, path, &query).map_err(|error| error.message().to_owned())
}

#[test]
fn every_route_has_an_answer_schema() {
    for route in ROUTES {
        if route.answers.contains(&"application/json") {
            assert!(
                answers::answer(route.method, route.path).is_some(),
                "{} {} has no answer schema in answers.rs",
                route.method,
                route.path
            );
        }
    }
}

/// Every `$ref` names a component, every record's required fields are its
/// properties, and every link names an operation and parameters it has.
#[test]
fn the_document_is_consistent() {
    let document = openapi_document();
    let schemas = &document["components"]["schemas"];
    let text = document.to_string();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap_or_default();
        assert!(schemas[name].is_object(), "no component {name}");
    }
    fn records(value: &Value, found: &mut Vec<Value>) {
        match value {
            Value::Object(map) => {
                if map.contains_key("required") && map.contains_key("properties") {
                    found.push(value.clone());
                }
                map.values().for_each(|value| records(value, found));
            }
            Value::Array(items) => items.iter().for_each(|value| records(value, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    records(&document, &mut found);
    for record in &found {
        for name in record["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            assert!(
                record["properties"][name].is_object(),
                "{name} required but not described: {record}"
            );
        }
    }
    let mut operations = std::collections::HashMap::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            operations.insert(
                operation["operationId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                (path.clone(), method.clone(), operation.clone()),
            );
        }
    }
    let mut links = 0;
    for (_, _, operation) in operations.values() {
        for (name, link) in operation["responses"]["200"]["links"]
            .as_object()
            .into_iter()
            .flatten()
        {
            links += 1;
            let target = link["operationId"].as_str().unwrap_or_default();
            let (_, _, target) = operations
                .get(target)
                .unwrap_or_else(|| panic!("link {name} names no operation"));
            for parameter in link["parameters"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, _)| name)
            {
                assert!(
                    target["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|p| p["name"] == parameter.as_str()),
                    "link {name} fills `{parameter}`, which its target does not take"
                );
            }
        }
    }
    assert!(links >= 20, "only {links} links");
}

#[test]
fn every_pattern_compiles() {
    let document = openapi_document().to_string();
    for pattern in document.split("\"pattern\":\"").skip(1) {
        let pattern = pattern
            .split('"')
            .next()
            .unwrap_or_default()
            .replace("\\\\", "\\");
        assert!(regex::Regex::new(&pattern).is_ok(), "{pattern}");
    }
}

#[test]
fn parameters_are_checked_as_documented() {
    /// Method, route, path parameters, query parameters, the refusal.
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a [(&'a str, &'a str)],
        Option<&'a str>,
    );
    let cases: &[Case<'_>] = &[
        (
            "GET",
            "/api/v1/apps/{app}/runs",
            &[("app", "hello")],
            &[("limit", "5")],
            None,
        ),
        (
            "HEAD",
            "/api/v1/apps/{app}/runs",
            &[("app", "hello")],
            &[],
            None,
        ),
        (
            "GET",
            "/api/v1/apps/{app}/runs",
            &[("app", "Hello")],
            &[],
            Some("`app` must be a string matching `^[a-z][a-z0-9-]{0,62}$`; got `Hello`"),
        ),
        (
            "GET",
            "/api/v1/apps/{app}/runs",
            &[("app", "hello")],
            &[("limit", "0")],
            Some("`limit` must be a whole number from 1 to 1000 (default 50); got `0`"),
        ),
        (
            "GET",
            "/api/v1/apps/{app}/runs",
            &[("app", "hello")],
            &[("page", "2")],
            Some("unknown query parameter `page`: GET /api/v1/apps/{app}/runs takes limit"),
        ),
        (
            "GET",
            "/api/v1/apps/{app}/drift",
            &[("app", "hello")],
            &[("x", "")],
            Some("unknown query parameter `x`: GET /api/v1/apps/{app}/drift takes none"),
        ),
        (
            "GET",
            "/api/v1/apps/{app}/runs/{run}",
            &[("app", "hello"), ("run", "x")],
            &[],
            Some("`run` must be a whole number of at least 1; got `x`"),
        ),
        (
            "GET",
            "/api/v1/apps/{app}/runs/{run}/logs",
            &[("app", "hello"), ("run", "1")],
            &[("step", "build")],
            None,
        ),
        (
            "GET",
            "/api/v1/apps/{app}/runs/{run}/logs",
            &[("app", "hello"), ("run", "1")],
            &[("step", "a b")],
            Some("`step` must be a string matching `^[A-Za-z0-9_.-]+$`; got `a b`"),
        ),
        (
            "PUT",
            "/api/v1/apps/{app}/secrets/{name}",
            &[("app", "hello"), ("name", "API_KEY")],
            &[],
            None,
        ),
        (
            "PUT",
            "/api/v1/apps/{app}/secrets/{name}",
            &[("app", "hello"), ("name", "api_key")],
            &[],
            Some("`name` must be a string matching `^[A-Z_][A-Z0-9_]*$`; got `api_key`"),
        ),
        (
            "DELETE",
            "/api/v1/tokens/{name}",
            &[("name", "ci@example.com")],
            &[],
            None,
        ),
        (
            "DELETE",
            "/api/v1/tokens/{name}",
            &[("name", "a/b")],
            &[],
            Some("`name` must be a string matching `^[A-Za-z0-9_.@-]{1,64}$`; got `a/b`"),
        ),
        (
            "POST",
            "/api/v1/apps/{app}/environments/{env}/approve",
            &[("app", "hello"), ("env", "")],
            &[],
            Some("`env` must be a string matching `^[A-Za-z0-9_.-]+$`; got ``"),
        ),
        // Routes the table does not know are not its business.
        ("GET", "/api/v1/status", &[], &[("anything", "goes")], None),
    ];
    for (method, template, path, query, refusal) in cases {
        let result = check(method, template, path, query);
        assert_eq!(
            result.err().as_deref(),
            *refusal,
            "{method} {template} {path:?} {query:?}"
        );
    }
}

#[test]
fn text_fields_refuse_blank_strings() {
    assert!(FieldType::Text.check("to", "v1").is_ok());
    for blank in ["", " ", "\t\n"] {
        assert!(FieldType::Text.check("to", blank).is_err(), "{blank:?}");
    }
    assert!(FieldType::AnyText.check("value", "").is_ok());
    assert!(FieldType::OneOf(ROLES).check("role", "admin").is_ok());
    assert!(FieldType::OneOf(ROLES).check("role", "root").is_err());
}

proptest! {
    #[test]
    fn checking_parameters_never_panics(
        route in 0..ROUTES.len(),
        values in proptest::collection::vec(".*", 0..3),
        query in proptest::collection::vec(("[a-z]{1,6}", ".*"), 0..3),
    ) {
        let route = &ROUTES[route];
        let names: Vec<&str> = route
            .path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        let path: Vec<(&str, &str)> = names.iter().copied().zip(values.iter().map(String::as_str)).collect();
        let _ = check_parameters(route.method, route.path, &path, &query);
    }
}
