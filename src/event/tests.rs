use super::*;

fn string(value: &str) -> AttrValue {
    AttrValue::String(value.to_owned())
}

fn base() -> Vec<(String, AttrValue)> {
    vec![
        ("specversion".into(), string("1.0")),
        ("id".into(), string("A-1")),
        ("source".into(), string("/shop")),
        ("type".into(), string("com.shop.order.created")),
    ]
}

#[track_caller]
fn check_invalid(extra: Vec<(&str, AttrValue)>, remove: &[&str], attribute: &str) {
    let mut attributes = base();
    attributes.retain(|(name, _)| !remove.contains(&name.as_str()));
    attributes.extend(
        extra
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value)),
    );
    let errors = Event::from_attributes(attributes, None).expect_err("should be invalid");
    assert!(
        errors.iter().any(|error| error.attribute == attribute),
        "expected an error naming {attribute}, got {errors:?}"
    );
}

#[test]
fn accepts_a_minimal_event() {
    let event = Event::from_attributes(base(), None).unwrap();
    assert_eq!(event.ty, "com.shop.order.created");
    assert_eq!(event.attribute("specversion").as_deref(), Some("1.0"));
    assert_eq!(event.attribute("subject"), None);
}

#[test]
fn rejects_what_the_core_spec_forbids() {
    check_invalid(vec![], &["id"], "id");
    check_invalid(vec![], &["source"], "source");
    check_invalid(vec![], &["type"], "type");
    check_invalid(vec![], &["specversion"], "specversion");
    check_invalid(vec![("id", string(""))], &["id"], "id");
    check_invalid(
        vec![("specversion", string("0.3"))],
        &["specversion"],
        "specversion",
    );
    check_invalid(vec![("time", string("yesterday"))], &[], "time");
    check_invalid(vec![("time", string("2026-11-24 10:00:00"))], &[], "time");
    check_invalid(vec![("subject", string(""))], &[], "subject");
    check_invalid(
        vec![("datacontenttype", string(""))],
        &[],
        "datacontenttype",
    );
    check_invalid(vec![("dataschema", string("not a uri"))], &[], "dataschema");
    check_invalid(vec![("Region", string("eu"))], &[], "Region");
    check_invalid(vec![("my_ext", string("eu"))], &[], "my_ext");
    check_invalid(vec![("big", AttrValue::Integer(1 << 40))], &[], "big");
    check_invalid(vec![("type", AttrValue::Integer(1))], &["type"], "type");
    check_invalid(vec![("id", string("again"))], &[], "id");
    check_invalid(
        vec![("region", string("eu")), ("region", string("us"))],
        &[],
        "region",
    );
}

#[test]
fn a_required_attribute_of_the_wrong_type_is_named_once() {
    let mut attributes = base();
    attributes.retain(|(name, _)| name != "id");
    attributes.push(("id".into(), AttrValue::Integer(1)));
    let errors = Event::from_attributes(attributes, None).unwrap_err();
    let about_id: Vec<&str> = errors
        .iter()
        .filter(|error| error.attribute == "id")
        .map(|error| error.detail.as_str())
        .collect();
    assert_eq!(about_id, ["must be a string"]);
}

#[test]
fn reports_every_problem_at_once() {
    let errors = Event::from_attributes(vec![("time".into(), string("soon"))], None).unwrap_err();
    let named: Vec<&str> = errors
        .iter()
        .map(|error| error.attribute.as_str())
        .collect();
    for attribute in ["id", "source", "specversion", "type", "time"] {
        assert!(
            named.contains(&attribute),
            "{attribute} missing from {named:?}"
        );
    }
}

#[test]
fn extensions_are_sorted_and_readable_as_strings() {
    let mut attributes = base();
    attributes.push(("priority".into(), AttrValue::Integer(5)));
    attributes.push(("express".into(), AttrValue::Boolean(true)));
    attributes.push(("region".into(), string("eu")));
    let event = Event::from_attributes(attributes, None).unwrap();
    let names: Vec<&str> = event
        .extensions
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(names, ["express", "priority", "region"]);
    assert_eq!(event.attribute("priority").as_deref(), Some("5"));
    assert_eq!(event.attribute("express").as_deref(), Some("true"));
    assert_eq!(event.attribute("missing"), None);
}

#[test]
fn structured_json_keeps_data_bytes_and_types() {
    let mut attributes = base();
    attributes.push(("priority".into(), AttrValue::Integer(5)));
    attributes.push(("time".into(), string("2026-11-24T10:00:00+01:00")));
    let data = Some(Data::Json(br#"{"b": 1,  "a": [2]}"#.to_vec()));
    let event = Event::from_attributes(attributes, data).unwrap();
    let json = String::from_utf8(event.to_structured_json()).unwrap();
    assert!(json.ends_with(r#","data":{"b": 1,  "a": [2]}}"#), "{json}");
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["priority"], 5);
    assert_eq!(value["time"], "2026-11-24T10:00:00+01:00");
    assert_eq!(value["specversion"], "1.0");

    let binary = Event {
        data: Some(Data::Binary(vec![0, 1, 2])),
        ..event.clone()
    };
    let value: serde_json::Value = serde_json::from_slice(&binary.to_structured_json()).unwrap();
    assert_eq!(value["data_base64"], "AAEC");
}

#[test]
fn recognises_json_media_types() {
    for (media_type, expected) in [
        ("application/json", true),
        ("application/json; charset=utf-8", true),
        ("Application/JSON", true),
        ("application/vnd.shop+json", true),
        ("text/json", true),
        ("text/plain", false),
        ("application/octet-stream", false),
    ] {
        assert_eq!(is_json_media_type(media_type), expected, "{media_type}");
    }
}
