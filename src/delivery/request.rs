//! Builds what goes on the wire: the body (built once, signed as is, never re-serialised) and the
//! headers of CloudEvents binary or structured mode plus the Standard Webhooks headers.
//!
//! Headers are built straight into an [`http::HeaderMap`], the form the HTTP client sends: the
//! names fanout sets are static (no allocation), each value is allocated once.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::config::{Mode, Secret};
use crate::event::Event;

use super::signature::sign;

/// Header names, as constants so tests and code agree.
pub mod headers {
    pub const WEBHOOK_ID: &str = "webhook-id";
    pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
    pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";
    pub const CONTENT_TYPE: &str = "content-type";
    pub const CE_PREFIX: &str = "ce-";
    pub const STRUCTURED_MEDIA_TYPE: &str = "application/cloudevents+json";
}

/// The HTTP binding's header value encoding: space, `"`, `%` and anything outside printable
/// ASCII are percent-encoded (CloudEvents HTTP binding, section 3.1.3.2).
const HEADER_VALUE: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%').add(0x7f);

/// A message ready to be signed and sent: body and the headers that do not change per attempt.
#[derive(Clone, Debug)]
pub struct Message {
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// An event's CloudEvents headers and body in each mode, built once (the first time one of its
/// subscribers is sent it) and then copied into each subscriber's request: a header value's
/// clone shares its bytes, as a body's does. Kept in the [`Event`], whose clone starts without
/// them. With them, the event's identity as the attempt log shows it, also made once and shared.
#[derive(Default)]
pub struct Encodings {
    binary: OnceLock<Result<Message, InvalidHeader>>,
    structured: OnceLock<Result<Message, InvalidHeader>>,
    identity: OnceLock<Arc<EventIdentity>>,
}

/// What the attempt log shows of an event: one copy per event, shared by every attempt at it
/// (at fan-out 16 the log's entries would otherwise copy the three strings 16 times).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventIdentity {
    pub id: String,
    pub source: String,
    pub event_type: String,
}

/// The event's identity for the attempt log (made by the first attempt that asks).
pub fn identity(event: &Event) -> Arc<EventIdentity> {
    Arc::clone(event.encodings.identity.get_or_init(|| {
        Arc::new(EventIdentity {
            id: event.id.clone(),
            source: event.source.clone(),
            event_type: event.ty.clone(),
        })
    }))
}

impl Clone for Encodings {
    fn clone(&self) -> Encodings {
        Encodings::default()
    }
}

impl PartialEq for Encodings {
    fn eq(&self, _: &Encodings) -> bool {
        true
    }
}

impl std::fmt::Debug for Encodings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Encodings")
    }
}

/// The most entries a header map holds: `http` grows its table to at most 32,768 slots and fills
/// three quarters of them (`append` panics past that, `try_append` refuses).
const MAX_HEADERS: usize = 24_576;

/// A header name or value HTTP does not allow (a subscriber's credentials, or an event's
/// `datacontenttype` with characters a header cannot carry).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid header {0}")]
pub struct InvalidHeader(pub String);

/// Appends `name: value`, refusing what HTTP does not allow (named in the error).
///
/// # Errors
/// The name is not a token or the value has characters a header cannot carry.
pub fn append(headers: &mut HeaderMap, name: &str, value: &str) -> Result<(), InvalidHeader> {
    let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| InvalidHeader(name.into()))?;
    let value = HeaderValue::from_str(value).map_err(|_| InvalidHeader(name.into()))?;
    push(headers, header, value)
}

/// Appends a header, refusing one past [`MAX_HEADERS`] (an event may carry any number of
/// extension attributes, and binary mode makes each a header).
fn push(
    headers: &mut HeaderMap,
    name: HeaderName,
    value: HeaderValue,
) -> Result<(), InvalidHeader> {
    if headers.len() >= MAX_HEADERS {
        return Err(InvalidHeader(format!(
            "{name}: over the {MAX_HEADERS} a request can hold"
        )));
    }
    // By value (a `&HeaderName` would be cloned into the map); so the check above names it.
    headers
        .try_append(name, value)
        .map(drop)
        .map_err(|_| InvalidHeader(format!("over the {MAX_HEADERS} a request can hold")))
}

/// A header map with the subscriber's static `extra` headers, and room for `more`.
fn with_extra(extra: &[(String, String)], more: usize) -> Result<HeaderMap, InvalidHeader> {
    let mut headers = HeaderMap::with_capacity((extra.len() + more).min(MAX_HEADERS));
    for (name, value) in extra {
        append(&mut headers, name, value)?;
    }
    Ok(headers)
}

/// A value fanout built itself (percent-encoded, a number, an id): allocated once, not copied.
fn owned_value(name: &str, value: String) -> Result<HeaderValue, InvalidHeader> {
    HeaderValue::try_from(value).map_err(|_| InvalidHeader(name.into()))
}

/// The binary-mode header of a context attribute: static for the attributes the spec defines,
/// built for an extension.
fn ce_name(attribute: &str) -> Result<HeaderName, InvalidHeader> {
    Ok(HeaderName::from_static(match attribute {
        "id" => "ce-id",
        "source" => "ce-source",
        "type" => "ce-type",
        "subject" => "ce-subject",
        "time" => "ce-time",
        "dataschema" => "ce-dataschema",
        extension => {
            let name = format!("{}{extension}", headers::CE_PREFIX);
            return HeaderName::from_bytes(name.as_bytes()).map_err(|_| InvalidHeader(name));
        }
    }))
}

/// Encodes `event` in `mode`, with the subscriber's static `extra` headers. The event's own
/// headers and body are built once per mode and shared by all its subscribers ([`Encodings`]).
///
/// The CloudEvents distributed tracing extension (`traceparent`, `tracestate`) is also passed on
/// as the W3C Trace Context HTTP headers, so the subscriber's spans join the producer's trace.
///
/// # Errors
/// A header cannot carry the event's `datacontenttype`, or an `extra` header is not HTTP.
pub fn encode(
    event: &Event,
    mode: Mode,
    extra: &[(String, String)],
) -> Result<Message, InvalidHeader> {
    let once = match mode {
        Mode::Binary => &event.encodings.binary,
        Mode::Structured => &event.encodings.structured,
    };
    let shared = once
        .get_or_init(|| encode_event(event, mode))
        .as_ref()
        .map_err(Clone::clone)?;
    // Without extra headers (the usual case), a clone of the shared map: it copies the table as
    // it is, where inserting each header again hashes its name and probes for its slot (about a
    // thousand instructions per delivery at the benchmark's six). The clone keeps the table's
    // slots, so the attempt's headers fit without a rehash; its list of entries is copied at its
    // length and grows once. With extra headers, the subscriber's first, as they always came.
    let headers = if extra.is_empty() {
        shared.headers.clone()
    } else {
        let mut headers = with_extra(extra, shared.headers.len() + 4)?;
        for (name, value) in &shared.headers {
            push(&mut headers, name.clone(), value.clone())?;
        }
        headers
    };
    Ok(Message {
        headers,
        body: shared.body.clone(),
    })
}

/// The event's own headers and body in `mode`, in a table with slots for the attempt's too (a
/// delivery's map is a clone of it).
fn encode_event(event: &Event, mode: Mode) -> Result<Message, InvalidHeader> {
    let mut headers = HeaderMap::with_capacity(16);
    for name in ["traceparent", "tracestate"] {
        if let Some(value) = event.attribute(name) {
            if value.is_ascii() && !value.chars().any(char::is_control) {
                let value = owned_value(name, value.into_owned())?;
                headers.append(HeaderName::from_static(name), value);
            }
        }
    }
    let body = match mode {
        Mode::Structured => {
            headers.append(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(headers::STRUCTURED_MEDIA_TYPE),
            );
            Bytes::from(event.to_structured_json())
        }
        Mode::Binary => {
            headers.append(
                HeaderName::from_static("ce-specversion"),
                HeaderValue::from_static(crate::event::SPEC_VERSION),
            );
            for (name, value) in event.attributes() {
                let header = ce_name(name)?;
                let value = match Cow::from(utf8_percent_encode(&value, HEADER_VALUE)) {
                    Cow::Borrowed(text) => HeaderValue::from_str(text),
                    Cow::Owned(text) => HeaderValue::try_from(text),
                }
                .map_err(|_| InvalidHeader(header.to_string()))?;
                push(&mut headers, header, value)?;
            }
            if let Some(content_type) = &event.datacontenttype {
                let value = HeaderValue::from_str(content_type)
                    .map_err(|_| InvalidHeader(headers::CONTENT_TYPE.into()))?;
                push(&mut headers, http::header::CONTENT_TYPE, value)?;
            }
            Bytes::copy_from_slice(event.data_bytes())
        }
    };
    Ok(Message { headers, body })
}

/// Encodes several events in CloudEvents batched mode (`application/cloudevents-batch+json`, a
/// JSON array of structured events), after the subscriber's static `extra` headers.
///
/// # Errors
/// An `extra` header is not HTTP.
pub fn encode_batch<'a>(
    events: impl Iterator<Item = &'a Event>,
    extra: &[(String, String)],
) -> Result<Message, InvalidHeader> {
    let mut body = vec![b'['];
    for (index, event) in events.enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&event.to_structured_json());
    }
    body.push(b']');
    let mut headers = with_extra(extra, 4)?;
    push(
        &mut headers,
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(BATCH_MEDIA_TYPE),
    )?;
    Ok(Message {
        headers,
        body: Bytes::from(body),
    })
}

/// The media type of CloudEvents batched mode.
pub const BATCH_MEDIA_TYPE: &str = "application/cloudevents-batch+json";

/// Adds the Standard Webhooks headers of one attempt to `headers` (the timestamp changes per
/// attempt, the id never).
///
/// # Errors
/// The id has characters a header cannot carry.
pub fn sign_into(
    headers: &mut HeaderMap,
    secrets: &[Secret],
    webhook_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<(), InvalidHeader> {
    push(
        headers,
        HeaderName::from_static(headers::WEBHOOK_ID),
        HeaderValue::from_str(webhook_id).map_err(|_| InvalidHeader(headers::WEBHOOK_ID.into()))?,
    )?;
    push(
        headers,
        HeaderName::from_static(headers::WEBHOOK_TIMESTAMP),
        HeaderValue::from(timestamp),
    )?;
    if let Some(signature) = sign(secrets, webhook_id, timestamp, body) {
        push(
            headers,
            HeaderName::from_static(headers::WEBHOOK_SIGNATURE),
            owned_value(headers::WEBHOOK_SIGNATURE, signature)?,
        )?;
    }
    Ok(())
}

/// The Standard Webhooks headers of one attempt, on their own.
///
/// # Errors
/// The id has characters a header cannot carry.
pub fn webhook_headers(
    secrets: &[Secret],
    webhook_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<HeaderMap, InvalidHeader> {
    let mut headers = HeaderMap::with_capacity(3);
    sign_into(&mut headers, secrets, webhook_id, timestamp, body)?;
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{AttrValue, Data};

    fn event() -> Event {
        let mut attributes: Vec<(String, AttrValue)> = [
            ("specversion", "1.0"),
            ("id", "A 1"),
            ("source", "/shop"),
            ("type", "com.shop.order.created"),
            ("subject", "Grüße \"x\" 100%"),
            ("datacontenttype", "application/json"),
        ]
        .iter()
        .map(|(name, value)| (name.to_string(), AttrValue::String(value.to_string())))
        .collect();
        attributes.push(("priority".into(), AttrValue::Integer(3)));
        Event::from_attributes(attributes, Some(Data::Json(br#"{"total": 12.5}"#.to_vec())))
            .unwrap()
    }

    fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
        message
            .headers
            .get(name)
            .map(|value| value.to_str().unwrap())
    }

    #[test]
    fn binary_mode_puts_attributes_in_percent_encoded_headers() {
        let message = encode(&event(), Mode::Binary, &[("x-tenant".into(), "eu".into())]).unwrap();
        assert_eq!(header(&message, "x-tenant"), Some("eu"));
        assert_eq!(header(&message, "ce-specversion"), Some("1.0"));
        assert_eq!(header(&message, "ce-id"), Some("A%201"));
        assert_eq!(
            header(&message, "ce-subject"),
            Some("Gr%C3%BC%C3%9Fe%20%22x%22%20100%25")
        );
        assert_eq!(header(&message, "ce-priority"), Some("3"));
        assert_eq!(header(&message, "content-type"), Some("application/json"));
        assert_eq!(header(&message, "ce-datacontenttype"), None);
        assert_eq!(&message.body[..], br#"{"total": 12.5}"#);
    }

    #[test]
    fn subscribers_of_one_event_share_its_encoding_but_not_their_headers() {
        let event = event();
        let first = encode(&event, Mode::Binary, &[("x-a".into(), "1".into())]).unwrap();
        let second = encode(&event, Mode::Binary, &[("x-b".into(), "2".into())]).unwrap();
        assert_eq!(first.body.as_ptr(), second.body.as_ptr());
        assert_eq!(header(&first, "ce-id"), Some("A%201"));
        assert_eq!(header(&second, "ce-id"), Some("A%201"));
        assert_eq!(
            (header(&first, "x-a"), header(&first, "x-b")),
            (Some("1"), None)
        );
        assert_eq!(
            (header(&second, "x-a"), header(&second, "x-b")),
            (None, Some("2"))
        );
        // Without extra headers a delivery's map is a copy: what one attempt adds to it is its own.
        let mut plain = encode(&event, Mode::Binary, &[]).unwrap();
        append(&mut plain.headers, headers::WEBHOOK_ID, "msg_1").unwrap();
        let other = encode(&event, Mode::Binary, &[]).unwrap();
        assert_eq!(header(&plain, headers::WEBHOOK_ID), Some("msg_1"));
        assert_eq!(header(&other, headers::WEBHOOK_ID), None);
        assert_eq!(header(&other, "ce-id"), Some("A%201"));
        assert_eq!(plain.headers.len(), other.headers.len() + 1);
        // Each mode has its own; a changed copy of the event is encoded again.
        let structured = encode(&event, Mode::Structured, &[]).unwrap();
        assert_eq!(
            header(&structured, "content-type"),
            Some(headers::STRUCTURED_MEDIA_TYPE)
        );
        let mut changed = event.clone();
        changed.id = "B".into();
        let again = encode(&changed, Mode::Binary, &[]).unwrap();
        assert_eq!(header(&again, "ce-id"), Some("B"));
        assert_ne!(again.body.as_ptr(), first.body.as_ptr());
    }

    #[test]
    fn too_many_extensions_for_binary_mode_are_an_error_not_a_panic() {
        let mut attributes: Vec<(String, AttrValue)> = [
            ("specversion", "1.0"),
            ("id", "1"),
            ("source", "/s"),
            ("type", "t"),
        ]
        .iter()
        .map(|(name, value)| (name.to_string(), AttrValue::String(value.to_string())))
        .collect();
        // ce-specversion, ce-id, ce-source, ce-type and the extensions: exactly a full map.
        for index in 0..MAX_HEADERS - 4 {
            attributes.push((format!("x{index}"), AttrValue::Integer(1)));
        }
        let full = Event::from_attributes(attributes.clone(), None).unwrap();
        let mut message = encode(&full, Mode::Binary, &[]).unwrap();
        assert_eq!(message.headers.len(), MAX_HEADERS);
        // No room for the signature, or for a subscriber's header.
        let secrets = [Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()];
        let error = sign_into(&mut message.headers, &secrets, "id", 1, b"").unwrap_err();
        assert!(
            error.to_string().contains("webhook-id: over the 24576"),
            "{error}"
        );
        let error = encode(&full, Mode::Binary, &[("x-a".into(), "1".into())]).unwrap_err();
        assert!(error.to_string().contains("over the 24576"), "{error}");
        attributes.push(("xonemore".into(), AttrValue::Integer(1)));
        let event = Event::from_attributes(attributes, None).unwrap();
        let error = encode(&event, Mode::Binary, &[]).unwrap_err();
        assert!(error.to_string().contains("over the 24576"), "{error}");
        // Structured mode carries them in the body.
        assert!(encode(&event, Mode::Structured, &[]).is_ok());
    }

    #[test]
    fn structured_mode_sends_the_json_format() {
        let message = encode(&event(), Mode::Structured, &[]).unwrap();
        assert_eq!(
            header(&message, "content-type"),
            Some(headers::STRUCTURED_MEDIA_TYPE)
        );
        let value: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
        assert_eq!(value["subject"], "Grüße \"x\" 100%");
        assert_eq!(value["data"]["total"], 12.5);
    }

    #[test]
    fn the_tracing_extension_becomes_trace_context_headers() {
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let attributes: Vec<(String, AttrValue)> = [
            ("specversion", "1.0"),
            ("id", "1"),
            ("source", "/shop"),
            ("type", "t"),
            ("traceparent", parent),
            ("tracestate", "congo=t61rcWkgMzE"),
        ]
        .iter()
        .map(|(name, value)| (name.to_string(), AttrValue::String(value.to_string())))
        .collect();
        let event = Event::from_attributes(attributes, None).unwrap();
        for mode in [Mode::Binary, Mode::Structured] {
            let message = encode(&event, mode, &[]).unwrap();
            assert_eq!(header(&message, "traceparent"), Some(parent));
            assert_eq!(header(&message, "tracestate"), Some("congo=t61rcWkgMzE"));
        }
        // A subscriber's own headers come first, before the event's (shared) ones.
        let own = "00-11111111111111111111111111111111-2222222222222222-01";
        let message = encode(&event, Mode::Binary, &[("traceparent".into(), own.into())]).unwrap();
        let values: Vec<&str> = message
            .headers
            .get_all("traceparent")
            .iter()
            .map(|value| value.to_str().unwrap())
            .collect();
        assert_eq!(values, [own, parent]);
        assert_eq!(
            header(
                &encode(&self::tests::event(), Mode::Binary, &[]).unwrap(),
                "traceparent"
            ),
            None
        );
    }

    #[test]
    fn the_identity_is_made_once_per_event_and_a_clone_starts_without_it() {
        let event = event();
        let first = identity(&event);
        assert_eq!(first.id, "A 1");
        assert_eq!(first.source, "/shop");
        assert_eq!(first.event_type, "com.shop.order.created");
        assert!(Arc::ptr_eq(&first, &identity(&event)));
        let mut changed = event.clone();
        changed.id = "B 2".into();
        assert_eq!(identity(&changed).id, "B 2");
    }
}
