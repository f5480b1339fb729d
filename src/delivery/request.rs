//! Builds what goes on the wire: the body (built once, signed as is, never re-serialised) and the
//! headers of CloudEvents binary or structured mode plus the Standard Webhooks headers.

use bytes::Bytes;
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
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// Encodes `event` in `mode`, after the subscriber's static `extra` headers.
///
/// The CloudEvents distributed tracing extension (`traceparent`, `tracestate`) is also passed on
/// as the W3C Trace Context HTTP headers, so the subscriber's spans join the producer's trace.
pub fn encode(event: &Event, mode: Mode, extra: &[(String, String)]) -> Message {
    let mut headers: Vec<(String, String)> = extra.to_vec();
    for name in ["traceparent", "tracestate"] {
        if let Some(value) = event.attribute(name) {
            if value.is_ascii() && !value.chars().any(char::is_control) {
                headers.push((name.to_owned(), value.into_owned()));
            }
        }
    }
    match mode {
        Mode::Structured => {
            headers.push((
                headers::CONTENT_TYPE.into(),
                headers::STRUCTURED_MEDIA_TYPE.into(),
            ));
            Message {
                headers,
                body: Bytes::from(event.to_structured_json()),
            }
        }
        Mode::Binary => {
            headers.push(("ce-specversion".into(), crate::event::SPEC_VERSION.into()));
            for (name, value) in event.attributes() {
                headers.push((
                    format!("{}{name}", headers::CE_PREFIX),
                    utf8_percent_encode(&value, HEADER_VALUE).to_string(),
                ));
            }
            if let Some(content_type) = &event.datacontenttype {
                headers.push((headers::CONTENT_TYPE.into(), content_type.clone()));
            }
            Message {
                headers,
                body: Bytes::copy_from_slice(event.data_bytes()),
            }
        }
    }
}

/// Encodes several events in CloudEvents batched mode (`application/cloudevents-batch+json`, a
/// JSON array of structured events), after the subscriber's static `extra` headers.
pub fn encode_batch<'a>(
    events: impl Iterator<Item = &'a Event>,
    extra: &[(String, String)],
) -> Message {
    let mut body = vec![b'['];
    for (index, event) in events.enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&event.to_structured_json());
    }
    body.push(b']');
    let mut headers = extra.to_vec();
    headers.push((headers::CONTENT_TYPE.into(), BATCH_MEDIA_TYPE.into()));
    Message {
        headers,
        body: Bytes::from(body),
    }
}

/// The media type of CloudEvents batched mode.
pub const BATCH_MEDIA_TYPE: &str = "application/cloudevents-batch+json";

/// The Standard Webhooks headers of one attempt (the timestamp changes per attempt, the id never).
pub fn webhook_headers(
    secrets: &[Secret],
    webhook_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(String, String)> {
    let mut out = vec![
        (headers::WEBHOOK_ID.to_owned(), webhook_id.to_owned()),
        (headers::WEBHOOK_TIMESTAMP.to_owned(), timestamp.to_string()),
    ];
    if let Some(signature) = sign(secrets, webhook_id, timestamp, body) {
        out.push((headers::WEBHOOK_SIGNATURE.to_owned(), signature));
    }
    out
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
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    #[test]
    fn binary_mode_puts_attributes_in_percent_encoded_headers() {
        let message = encode(&event(), Mode::Binary, &[("x-tenant".into(), "eu".into())]);
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
    fn structured_mode_sends_the_json_format() {
        let message = encode(&event(), Mode::Structured, &[]);
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
            let message = encode(&event, mode, &[]);
            assert_eq!(header(&message, "traceparent"), Some(parent));
            assert_eq!(header(&message, "tracestate"), Some("congo=t61rcWkgMzE"));
        }
        assert_eq!(
            header(
                &encode(&self::tests::event(), Mode::Binary, &[]),
                "traceparent"
            ),
            None
        );
    }
}
