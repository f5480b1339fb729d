//! CloudEvents JSON format: one event (structured mode) or an array of them (batched mode).
//! The `data` member is kept as the exact bytes the producer sent.
//!
//! An event is read in one pass ([`Members`]): member names are borrowed from the body, `data`
//! and `data_base64` are kept as borrowed raw JSON, and every other member is read straight
//! into an attribute value. Ingest parses every event this way, so it allocates little beyond
//! what the event keeps (BENCHMARKS.md, the tried table near midnight of 2026-12-07).

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::event::{is_json_media_type, AttrValue, Data, Event};

use super::problem::FieldError;

/// Parses a structured-mode body.
///
/// # Errors
/// Every problem, naming the attribute.
pub fn parse_one(body: &[u8]) -> Result<Event, Vec<FieldError>> {
    let members: Members = serde_json::from_slice(body)
        .map_err(|error| vec![body_error(None, format!("not a JSON object: {error}"))])?;
    from_members(members, None)
}

/// Parses a batched-mode body: all events valid, or every problem with its index.
///
/// # Errors
/// Every problem, naming the attribute and the batch index.
pub fn parse_batch(body: &[u8], max_events: usize) -> Result<Vec<Event>, Vec<FieldError>> {
    let items: Vec<Box<RawValue>> = serde_json::from_slice(body).map_err(|error| {
        vec![body_error(
            None,
            format!("not a JSON array of events: {error}"),
        )]
    })?;
    if items.len() > max_events {
        return Err(vec![body_error(
            None,
            format!(
                "the batch holds {} events; at most {max_events} are accepted in one request (server.max_batch_events)",
                items.len()
            ),
        )]);
    }
    let mut events = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let parsed = serde_json::from_str::<Members>(item.get())
            .map_err(|error| {
                vec![body_error(
                    Some(index),
                    format!("not a JSON object: {error}"),
                )]
            })
            .and_then(|members| from_members(members, Some(index)));
        match parsed {
            Ok(event) => events.push(event),
            Err(mut problems) => errors.append(&mut problems),
        }
    }
    if errors.is_empty() {
        Ok(events)
    } else {
        Err(errors)
    }
}

/// A member's value as read: raw JSON for `data` and `data_base64`, an attribute for the rest.
enum Value<'a> {
    Raw(&'a RawValue),
    /// `None` for `null`, which is as if the attribute were not given.
    Attribute(Option<AttrValue>),
    /// Not a string, a boolean or an integer.
    Mistyped,
}

/// An event object's members in name order; of a name given twice, the last (as a map would).
struct Members<'a>(Vec<(Cow<'a, str>, Value<'a>)>);

/// A member name, borrowed from the body unless it has escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, name: &'de str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(name)))
            }
            fn visit_str<E>(self, name: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(name.to_owned())))
            }
            fn visit_string<E>(self, name: String) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(name)))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// An attribute's value: a string, a boolean, an integer or null, or else mistyped.
struct Attribute(Value<'static>);

impl<'de> de::Deserialize<'de> for Attribute {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AttributeVisitor;
        impl<'de> Visitor<'de> for AttributeVisitor {
            type Value = Attribute;
            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Attribute(Value::Attribute(None)))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Attribute(Value::Attribute(None)))
            }
            fn visit_bool<E>(self, flag: bool) -> Result<Self::Value, E> {
                Ok(Attribute(Value::Attribute(Some(AttrValue::Boolean(flag)))))
            }
            fn visit_i64<E>(self, number: i64) -> Result<Self::Value, E> {
                Ok(Attribute(Value::Attribute(Some(AttrValue::Integer(
                    number,
                )))))
            }
            fn visit_u64<E>(self, number: u64) -> Result<Self::Value, E> {
                Ok(Attribute(match i64::try_from(number) {
                    Ok(number) => Value::Attribute(Some(AttrValue::Integer(number))),
                    Err(_) => Value::Mistyped,
                }))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Attribute(Value::Mistyped))
            }
            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Attribute(Value::Attribute(Some(AttrValue::String(
                    text.to_owned(),
                )))))
            }
            fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
                Ok(Attribute(Value::Attribute(Some(AttrValue::String(text)))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Self::Value, A::Error> {
                while items.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Attribute(Value::Mistyped))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Attribute(Value::Mistyped))
            }
        }
        deserializer.deserialize_any(AttributeVisitor)
    }
}

impl<'de> de::Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(12));
                while let Some(Name(name)) = map.next_key()? {
                    let value = match &*name {
                        "data" | "data_base64" => Value::Raw(map.next_value()?),
                        _ => map.next_value::<Attribute>()?.0,
                    };
                    members.push((name, value));
                }
                // Name order, the last of a name given twice kept: what a map would hold.
                members.reverse();
                members.sort_by(|(a, _), (b, _)| a.cmp(b));
                members.dedup_by(|(later, _), (earlier, _)| later == earlier);
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

fn from_members(members: Members, index: Option<usize>) -> Result<Event, Vec<FieldError>> {
    let error = |attribute: &str, detail: String| FieldError {
        attribute: attribute.to_owned(),
        index,
        pointer: None,
        detail,
    };
    let mut errors = Vec::new();
    let mut attributes = Vec::with_capacity(members.0.len());
    let mut data_raw = None;
    let mut data_base64 = None;
    for (name, value) in members.0 {
        match (name.as_ref(), value) {
            ("data", Value::Raw(raw)) => data_raw = Some(raw),
            ("data_base64", Value::Raw(raw)) => data_base64 = Some(raw),
            (_, Value::Attribute(None) | Value::Raw(_)) => {}
            (_, Value::Attribute(Some(value))) => attributes.push((name.into_owned(), value)),
            (_, Value::Mistyped) => errors.push(error(
                &name,
                "must be a string, a boolean or an integer".into(),
            )),
        }
    }
    let content_type = attributes
        .iter()
        .find_map(|(name, value)| match (name.as_str(), value) {
            ("datacontenttype", AttrValue::String(text)) => Some(text.clone()),
            _ => None,
        });
    let data = match (data_raw, data_base64) {
        (Some(_), Some(_)) => {
            errors.push(error(
                "data_base64",
                "an event may have `data` or `data_base64`, not both".into(),
            ));
            None
        }
        (Some(raw), None) if raw.get() == "null" => None,
        (Some(raw), None) => Some(match content_type.as_deref() {
            Some(media_type) if !is_json_media_type(media_type) => {
                match serde_json::from_str::<String>(raw.get()) {
                    Ok(text) => Data::Text(text),
                    Err(_) => Data::Json(raw.get().as_bytes().to_vec()),
                }
            }
            _ => Data::Json(raw.get().as_bytes().to_vec()),
        }),
        (None, Some(raw)) => match serde_json::from_str::<Option<String>>(raw.get()) {
            Ok(None) => None,
            Ok(Some(text)) => {
                match base64::engine::general_purpose::STANDARD.decode(text.as_bytes()) {
                    Ok(bytes) => Some(Data::Binary(bytes)),
                    Err(_) => {
                        errors.push(error("data_base64", "is not valid base64".into()));
                        None
                    }
                }
            }
            Err(_) => {
                errors.push(error("data_base64", "must be a base64 string".into()));
                None
            }
        },
        (None, None) => None,
    };
    match Event::from_attributes(attributes, data) {
        Ok(event) if errors.is_empty() => Ok(event),
        Ok(_) => Err(errors),
        Err(problems) => {
            errors.extend(
                problems
                    .into_iter()
                    .map(|problem| error(&problem.attribute, problem.detail)),
            );
            Err(errors)
        }
    }
}

fn body_error(index: Option<usize>, detail: String) -> FieldError {
    FieldError {
        attribute: "body".to_owned(),
        index,
        pointer: None,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes_of(errors: &[FieldError]) -> Vec<&str> {
        errors
            .iter()
            .map(|error| error.attribute.as_str())
            .collect()
    }

    #[test]
    fn reads_attributes_extensions_and_data_in_one_pass() {
        let body = br#"{"specversion":"1.0","id":"e-1","source":"/shop","type":"order.placed",
            "subject":null,"priority":3,"urgent":true,"re\u0067ion":"eu",
            "data":{"sku":"A-1","qty":[1, 2]}}"#;
        let event = parse_one(body).expect("a valid event");
        assert_eq!(event.id, "e-1");
        assert_eq!(event.ty, "order.placed");
        assert_eq!(event.subject, None, "null is as if not given");
        assert_eq!(event.extension("priority"), Some(&AttrValue::Integer(3)));
        assert_eq!(event.extension("urgent"), Some(&AttrValue::Boolean(true)));
        assert_eq!(
            event.extension("region"),
            Some(&AttrValue::String("eu".into())),
            "an escaped member name is read like any other"
        );
        assert_eq!(
            event.data,
            Some(Data::Json(br#"{"sku":"A-1","qty":[1, 2]}"#.to_vec())),
            "data is kept byte for byte"
        );
    }

    #[test]
    fn a_name_given_twice_keeps_the_last_value() {
        let body = br#"{"specversion":"1.0","id":"first","source":"/s","type":"t","id":"second"}"#;
        assert_eq!(parse_one(body).expect("a valid event").id, "second");
    }

    #[test]
    fn names_every_attribute_that_is_not_a_string_a_boolean_or_an_integer() {
        let body = br#"{"specversion":"1.0","id":"e","source":"/s","type":"t",
            "ratio":0.5,"tags":["a"],"nested":{"a":{"b":1}},"huge":18446744073709551615,
            "fine":-2147483648}"#;
        let errors = parse_one(body).expect_err("mistyped extensions");
        assert_eq!(attributes_of(&errors), ["huge", "nested", "ratio", "tags"]);
        assert!(errors[0]
            .detail
            .contains("must be a string, a boolean or an integer"));
    }

    #[test]
    fn a_body_that_is_not_an_object_is_a_body_error() {
        for body in [
            &b"[1, 2]"[..],
            b"{not json",
            b"\"text\"",
            b"{\"id\":\"e\",}",
        ] {
            let errors = parse_one(body).expect_err("not an event object");
            assert_eq!(attributes_of(&errors), ["body"]);
            assert!(errors[0].detail.starts_with("not a JSON object: "));
        }
    }

    /// What the reader gives, as a map-based reading of the same body gives it: the body parsed
    /// into a `serde_json::Value` (whose objects keep the last of a name given twice), each
    /// member then classified alike.
    fn by_map(body: &[u8]) -> Result<Event, Vec<String>> {
        let Ok(serde_json::Value::Object(members)) = serde_json::from_slice(body) else {
            return Err(vec!["body".into()]);
        };
        let mut errors = Vec::new();
        let mut attributes = Vec::new();
        for (name, value) in &members {
            let value = match value {
                _ if name == "data" || name == "data_base64" => continue,
                serde_json::Value::Null => continue,
                serde_json::Value::String(text) => AttrValue::String(text.clone()),
                serde_json::Value::Bool(flag) => AttrValue::Boolean(*flag),
                serde_json::Value::Number(number) if number.as_i64().is_some() => {
                    AttrValue::Integer(number.as_i64().unwrap_or_default())
                }
                _ => {
                    errors.push(name.clone());
                    continue;
                }
            };
            attributes.push((name.clone(), value));
        }
        // The data as the reader keeps it: its raw text, found again in the body.
        let raw = |name: &str| {
            let text: &RawValue =
                serde_json::from_slice::<std::collections::BTreeMap<&str, &RawValue>>(body)
                    .ok()?
                    .remove(name)?;
            Some(text.get().to_owned())
        };
        let data = match (members.get("data"), members.get("data_base64")) {
            (Some(_), Some(_)) => {
                errors.push("data_base64".into());
                None
            }
            (Some(serde_json::Value::Null), None) | (None, None) => None,
            (Some(serde_json::Value::String(text)), None)
                if members
                    .get("datacontenttype")
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|media_type| !is_json_media_type(media_type)) =>
            {
                Some(Data::Text(text.clone()))
            }
            (Some(_), None) => raw("data").map(|text| Data::Json(text.into_bytes())),
            (None, Some(serde_json::Value::String(text))) => {
                match base64::engine::general_purpose::STANDARD.decode(text) {
                    Ok(bytes) => Some(Data::Binary(bytes)),
                    Err(_) => {
                        errors.push("data_base64".into());
                        None
                    }
                }
            }
            (None, Some(serde_json::Value::Null)) => None,
            (None, Some(_)) => {
                errors.push("data_base64".into());
                None
            }
        };
        match Event::from_attributes(attributes, data) {
            Ok(event) if errors.is_empty() => Ok(event),
            Ok(_) => Err(errors),
            Err(problems) => {
                errors.extend(problems.into_iter().map(|problem| problem.attribute));
                Err(errors)
            }
        }
    }

    #[test]
    fn reads_every_body_as_a_map_based_reading_does() {
        let head = r#""specversion":"1.0","source":"/s","type":"t""#;
        let bodies = [
            format!(r#"{{{head},"id":"a","data":{{"x":[1,2,{{"y":null}}]}}}}"#),
            format!(r#"{{{head},"id":"b","data":"text","datacontenttype":"text/plain"}}"#),
            format!(
                r#"{{{head},"id":"c","data":"\"quoted\"","datacontenttype":"application/json"}}"#
            ),
            format!(r#"{{{head},"id":"d","data_base64":"aGVsbG8="}}"#),
            format!(r#"{{{head},"id":"e","data_base64":"not base64!"}}"#),
            format!(r#"{{{head},"id":"f","data":1,"data_base64":"aGk="}}"#),
            format!(r#"{{{head},"id":"g","data":null,"data_base64":null}}"#),
            format!(r#"{{{head},"id":"h","n":1e3,"m":-0,"k":1.0,"big":9223372036854775808}}"#),
            format!(r#"{{{head},"id":"i","\u0078ext":"\u00e9t\u00e9","flag":false,"nil":null}}"#),
            format!(r#"{{{head},"id":"j","id":"j2","data":1,"data":[2]}}"#),
            format!(r#"{{{head},"id":"k","Upper":"x","tags":[],"obj":{{}}}}"#),
            format!(r#"{{{head},"id":"l","time":"2026-12-08T00:00:00Z","subject":""}}"#),
            format!(r#"{{{head},"id":"m","dataschema":"relative/path"}}"#),
            r#"{"id":"n"}"#.to_owned(),
            r#"{}"#.to_owned(),
            format!(r#"{{{head},"id":7}}"#),
        ];
        // Errors compared as sets: a map's order is the reference's, not the reader's concern.
        let sorted = |result: Result<Event, Vec<String>>| {
            result.map_err(|mut errors| {
                errors.sort();
                errors
            })
        };
        for body in &bodies {
            // Every body is JSON: what is compared is reading events, not rejecting bad JSON.
            assert!(
                serde_json::from_str::<serde_json::Value>(body).is_ok(),
                "{body}"
            );
            let read = parse_one(body.as_bytes())
                .map_err(|errors| errors.into_iter().map(|error| error.attribute).collect());
            assert_eq!(sorted(read), sorted(by_map(body.as_bytes())), "{body}");
        }
    }

    #[test]
    fn each_event_of_a_batch_is_read_alike() {
        let body = br#"[{"specversion":"1.0","id":"a","source":"/s","type":"t","data":"x"},
            {"specversion":"1.0","id":"b","source":"/s","type":"t","n":1.5}]"#;
        let errors = parse_batch(body, 10).expect_err("the second event is invalid");
        assert_eq!(attributes_of(&errors), ["n"]);
        assert_eq!(errors[0].index, Some(1));
    }
}
