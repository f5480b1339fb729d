//! The CloudEvents SQL TCK (`tests/it/cesql_tck/*.yaml`, from the cloudevents/spec repository)
//! run against fanout's CESQL engine: every case's value and error kind.

use std::path::Path;

use fanout::config::filter::cesql::Expression;
use fanout::event::{AttrValue, Event};

/// Cases whose expectation in the shipped copy contradicts the spec, each with the reason. The
/// test checks that each of them still differs, so the list cannot hide a real failure.
const STALE: &[(&str, &str, &str)] = &[
    (
        "context_attributes_access.yaml",
        "Absent optional attribute",
        "expects \"\" without error: this copy predates CESQL 1.0's rule that a missing \
         attribute evaluates to false and raises missingAttribute, which the other files test",
    ),
    (
        "subscriptions_api_recreations.yaml",
        "Conjunctive Normal Form (4)",
        "expects true, but for id=myId, source http://..., type ...success none of the second \
         clause's terms (id = 'notmyId', source LIKE 'https://%', type LIKE '%.warning') holds",
    ),
    (
        "subscriptions_api_recreations.yaml",
        "Conjunctive Normal Form (5)",
        "the same event and clauses as (4): the second clause is false, so AND short-circuits \
         and `myext` is never read, hence no missingAttribute error",
    ),
];

fn attribute(value: &serde_yaml::Value) -> AttrValue {
    match value {
        serde_yaml::Value::Bool(flag) => AttrValue::Boolean(*flag),
        serde_yaml::Value::Number(number) => AttrValue::Integer(number.as_i64().unwrap()),
        serde_yaml::Value::String(text) => AttrValue::String(text.clone()),
        other => panic!("unexpected attribute value {other:?}"),
    }
}

fn event(case: &serde_yaml::Value) -> Event {
    let mut attributes: Vec<(String, AttrValue)> = Vec::new();
    if let Some(event) = case.get("event").and_then(|event| event.as_mapping()) {
        for (name, value) in event {
            attributes.push((name.as_str().unwrap().to_owned(), attribute(value)));
        }
    } else {
        for (name, value) in [
            ("specversion", "1.0"),
            ("id", "tck-id"),
            ("source", "/tck"),
            ("type", "tck.type"),
        ] {
            attributes.push((name.to_owned(), AttrValue::String(value.to_owned())));
        }
    }
    if let Some(overrides) = case
        .get("eventOverrides")
        .and_then(|event| event.as_mapping())
    {
        for (name, value) in overrides {
            let name = name.as_str().unwrap().to_owned();
            attributes.retain(|(existing, _)| *existing != name);
            attributes.push((name, attribute(value)));
        }
    }
    Event::from_attributes(attributes, None).unwrap()
}

/// The case's verdict: `None` when it passes, or what differed.
fn run(case: &serde_yaml::Value) -> Option<String> {
    // Four cases of the TCK spell the key `expresion`; YAML reads `TRUE` or `-10` as scalars.
    let expression = match case.get("expression").or_else(|| case.get("expresion")) {
        Some(serde_yaml::Value::String(text)) => text.clone(),
        Some(serde_yaml::Value::Bool(flag)) => flag.to_string(),
        Some(serde_yaml::Value::Number(number)) => number.to_string(),
        other => panic!("no expression: {other:?}"),
    };
    let expression = expression.as_str();
    let expected_error = case.get("error").and_then(|error| error.as_str());
    let parsed = match Expression::parse(expression) {
        Ok(parsed) => parsed,
        Err(error) => {
            return (expected_error != Some("parse"))
                .then(|| format!("{expression}: parse error {error}"));
        }
    };
    if expected_error == Some("parse") {
        return Some(format!(
            "{expression}: parsed, but a parse error was expected"
        ));
    }
    let (value, errors) = parsed.evaluate(&event(case));
    let kinds: Vec<&str> = errors.iter().map(|error| error.kind.name()).collect();
    match expected_error {
        Some(kind) if !kinds.contains(&kind) => {
            return Some(format!(
                "{expression}: expected a {kind} error, got {kinds:?}"
            ))
        }
        None if !kinds.is_empty() => {
            return Some(format!("{expression}: expected no error, got {errors:?}"))
        }
        _ => {}
    }
    use fanout::config::filter::cesql::Value;
    let expected = match case.get("result") {
        None => return None,
        Some(serde_yaml::Value::Bool(flag)) => Value::Bool(*flag),
        Some(serde_yaml::Value::Number(number)) => Value::Int(number.as_i64().unwrap() as i32),
        Some(serde_yaml::Value::String(text)) => Value::Str(text.clone()),
        Some(other) => panic!("unexpected result {other:?}"),
    };
    (value != expected).then(|| format!("{expression}: gave {value}, expected {expected}"))
}

#[test]
fn the_cesql_tck_passes() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/cesql_tck");
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml")
        })
        .collect();
    files.sort();
    assert_eq!(files.len(), 14, "the TCK has 14 files");
    let (mut passed, mut failures, mut stale_seen) = (0, Vec::new(), 0);
    for file in &files {
        let file_name = file.file_name().unwrap().to_str().unwrap();
        let suite: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        for case in suite["tests"].as_sequence().unwrap() {
            let name = case["name"].as_str().unwrap();
            let stale = STALE
                .iter()
                .any(|(stale_file, stale_name, _)| *stale_file == file_name && *stale_name == name);
            match (run(case), stale) {
                (None, false) => passed += 1,
                (Some(_), true) => stale_seen += 1,
                (None, true) => {
                    failures.push(format!("{file_name}: {name}: listed as stale but passes"))
                }
                (Some(why), false) => failures.push(format!("{file_name}: {name}: {why}")),
            }
        }
    }
    println!("CESQL TCK: {passed} passed, {stale_seen} stale expectation(s) differ as documented");
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(stale_seen, STALE.len());
    assert_eq!(passed + stale_seen, 241, "the TCK's 241 cases all ran");
}
