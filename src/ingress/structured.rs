//! CloudEvents JSON format: one event (structured mode) or an array of them (batched mode).
//! The `data` member is kept as the exact bytes the producer sent.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::value::RawValue;

use crate::event::{is_json_media_type, AttrValue, Data, Event};

use super::problem::FieldError;

/// Parses a structured-mode body.
///
/// # Errors
/// Every problem, naming the attribute.
pub fn parse_one(body: &[u8]) -> Result<Event, Vec<FieldError>> {
    let members: BTreeMap<String, Box<RawValue>> = serde_json::from_slice(body)
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
        let parsed = serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(item.get())
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

fn from_members(
    members: BTreeMap<String, Box<RawValue>>,
    index: Option<usize>,
) -> Result<Event, Vec<FieldError>> {
    let error = |attribute: &str, detail: String| FieldError {
        attribute: attribute.to_owned(),
        index,
        pointer: None,
        detail,
    };
    let mut errors = Vec::new();
    let mut attributes = Vec::with_capacity(members.len());
    let mut data_raw = None;
    let mut data_base64 = None;
    for (name, raw) in members {
        match name.as_str() {
            "data" => data_raw = Some(raw),
            "data_base64" => data_base64 = Some(raw),
            _ => match serde_json::from_str::<serde_json::Value>(raw.get()) {
                Ok(serde_json::Value::Null) => {}
                Ok(serde_json::Value::String(text)) => {
                    attributes.push((name, AttrValue::String(text)))
                }
                Ok(serde_json::Value::Bool(flag)) => {
                    attributes.push((name, AttrValue::Boolean(flag)))
                }
                Ok(serde_json::Value::Number(number)) if number.as_i64().is_some() => {
                    attributes.push((
                        name,
                        AttrValue::Integer(number.as_i64().unwrap_or_default()),
                    ));
                }
                Ok(_) => errors.push(error(
                    &name,
                    "must be a string, a boolean or an integer".into(),
                )),
                Err(parse) => errors.push(error(&name, parse.to_string())),
            },
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
