//! CloudEvents HTTP binary mode: attributes in `ce-*` headers (percent-encoded), the data in the
//! body, its media type in `Content-Type`.

use actix_web::http::header::HeaderMap;
use percent_encoding::percent_decode_str;

use crate::event::{is_json_media_type, AttrValue, Data, Event};

use super::problem::FieldError;

/// Builds an event from a binary-mode request.
///
/// # Errors
/// Every problem, naming the attribute.
pub fn parse(
    headers: &HeaderMap,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Event, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut attributes = Vec::new();
    for (name, value) in headers {
        let Some(attribute) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        let decoded = value
            .to_str()
            .map_err(|_| "header value must be ASCII; percent-encode other characters")
            .and_then(|text| {
                percent_decode_str(text)
                    .decode_utf8()
                    .map_err(|_| "percent-encoding does not decode to UTF-8")
            });
        match decoded {
            Ok(text) => {
                attributes.push((attribute.to_owned(), AttrValue::String(text.into_owned())))
            }
            Err(detail) => errors.push(error(attribute, detail)),
        }
    }
    if attributes.iter().any(|(name, _)| name == "datacontenttype") {
        errors.push(error(
            "datacontenttype",
            "in binary mode the media type goes in Content-Type, not ce-datacontenttype",
        ));
    }
    if let Some(content_type) = content_type {
        attributes.push((
            "datacontenttype".to_owned(),
            AttrValue::String(content_type.to_owned()),
        ));
    }
    let data = if body.is_empty() && content_type.is_none() {
        None
    } else {
        Some(classify_data(content_type, body))
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Event::from_attributes(attributes, data).map_err(|errors| {
        errors
            .into_iter()
            .map(|problem| error(&problem.attribute, &problem.detail))
            .collect()
    })
}

/// JSON when the media type says so and the bytes parse, text for valid UTF-8 `text/*`, else bytes.
fn classify_data(content_type: Option<&str>, body: &[u8]) -> Data {
    let media_type = content_type.unwrap_or("");
    if is_json_media_type(media_type)
        && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
    {
        Data::Json(body.to_vec())
    } else if media_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("text/")
    {
        match std::str::from_utf8(body) {
            Ok(text) => Data::Text(text.to_owned()),
            Err(_) => Data::Binary(body.to_vec()),
        }
    } else {
        Data::Binary(body.to_vec())
    }
}

fn error(attribute: &str, detail: &str) -> FieldError {
    FieldError {
        attribute: attribute.to_owned(),
        index: None,
        pointer: None,
        detail: detail.to_owned(),
    }
}
