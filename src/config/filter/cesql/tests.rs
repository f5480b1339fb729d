//! Unit tests of the parser and the evaluator beyond the TCK (which `tests/it/cesql.rs` runs).

use super::*;
use crate::event::AttrValue;

fn event(extensions: &[(&str, AttrValue)]) -> Event {
    let mut attributes = vec![
        ("specversion".to_owned(), AttrValue::String("1.0".into())),
        ("id".to_owned(), AttrValue::String("1".into())),
        ("source".to_owned(), AttrValue::String("/shop".into())),
        (
            "type".to_owned(),
            AttrValue::String("com.example.order.created".into()),
        ),
    ];
    attributes.extend(
        extensions
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone())),
    );
    Event::from_attributes(attributes, None).unwrap()
}

#[track_caller]
fn check(expression: &str, expected: Value, errors: &[ErrorKind]) {
    let parsed =
        Expression::parse(expression).unwrap_or_else(|error| panic!("{expression}: {error}"));
    let event = event(&[
        ("priority", AttrValue::String("high".into())),
        ("count", AttrValue::Integer(7)),
    ]);
    let (value, raised) = parsed.evaluate(&event);
    assert_eq!(value, expected, "{expression}");
    let kinds: Vec<ErrorKind> = raised.iter().map(|error| error.kind).collect();
    assert_eq!(kinds, errors, "{expression}");
}

#[test]
fn precedence_follows_the_reference_grammar() {
    // AND, OR and XOR share one level and group to the right.
    check("FALSE AND FALSE OR TRUE", Value::Bool(false), &[]);
    check("TRUE OR FALSE AND FALSE", Value::Bool(true), &[]);
    check("1 + 2 * 3 = 7", Value::Bool(true), &[]);
    check("2 * 3 - 10 / 5 % 3", Value::Int(4), &[]);
    // NOT binds tighter than a comparison: (NOT 'false') = true.
    check("NOT 'false' = true", Value::Bool(true), &[]);
    check(
        "type LIKE 'com.example.%' AND priority = 'high'",
        Value::Bool(true),
        &[],
    );
    check("count > 5 AND count IN (1, 7, '9')", Value::Bool(true), &[]);
    check("priority NOT IN ('low', 'medium')", Value::Bool(true), &[]);
    check("-2147483648", Value::Int(i32::MIN), &[]);
    check("- 5 + 1", Value::Int(-4), &[]);
}

#[test]
fn errors_make_the_enclosing_operator_give_its_zero_value() {
    check(
        "missing = 2",
        Value::Bool(false),
        &[ErrorKind::MissingAttribute],
    );
    check(
        "LENGTH(missing) + 1",
        Value::Int(0),
        &[ErrorKind::MissingAttribute],
    );
    check("2147483647 + 1", Value::Int(0), &[ErrorKind::Math]);
    check(
        "NOWHERE(1)",
        Value::Bool(false),
        &[ErrorKind::MissingFunction],
    );
    check("TRUE OR missing", Value::Bool(true), &[]);
    // An operator's own cast error: it goes on with the zero value ('abc' as 0).
    check("'abc' < 1", Value::Bool(true), &[ErrorKind::Cast]);
    check(
        "IS_INT('12') AND NOT IS_BOOL('yes')",
        Value::Bool(true),
        &[],
    );
    // As a filter: only `true` without errors passes.
    let expression = Expression::parse("priority = 'high' OR missing = 1").unwrap();
    assert!(expression.matches(&event(&[("priority", AttrValue::String("high".into()))])));
    let expression = Expression::parse("missing = 1 OR priority = 'high'").unwrap();
    assert!(!expression.matches(&event(&[("priority", AttrValue::String("high".into()))])));
    assert!(!Expression::parse("'true'").unwrap().matches(&event(&[])));
}

#[test]
fn syntax_errors_say_where() {
    for (text, position) in [
        ("", 1),
        ("type =", 7),
        ("(1 + 2", 7),
        ("1 2", 3),
        ("'open", 1),
        ("a LIKE b", 8),
        ("2147483648", 1),
        ("a NOT 1", 3),
        ("type # 1", 6),
        ("x IN ()", 7),
        ("EXISTS 1", 8),
        ("AND", 1),
    ] {
        let error = Expression::parse(text).expect_err(text);
        assert_eq!(error.position, position, "{text:?}: {error}");
    }
}

#[test]
fn unknown_functions_are_found_before_any_event() {
    let expression = Expression::parse("LOWER(type) = 'x' AND NOPE(1, 2) AND CONCAT_WS()").unwrap();
    assert_eq!(
        expression.check(),
        [
            "no function NOPE with 2 argument(s)",
            "no function CONCAT_WS with 0 argument(s)"
        ]
    );
}
