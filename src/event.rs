//! The CloudEvent as fanout holds it: validated attributes plus the producer's data bytes.
//!
//! Both HTTP modes (binary and structured/batched) reduce a request to a list of named attribute
//! values and the data, then call [`Event::from_attributes`], the one place where the CloudEvents
//! 1.0 core rules are checked. The data is kept as the exact bytes the producer sent (JSON data is
//! not re-serialised), so what a subscriber receives is what was published.

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use serde::{Deserialize, Serialize};

/// The only CloudEvents spec version fanout accepts.
pub const SPEC_VERSION: &str = "1.0";

/// A validated CloudEvents 1.0 event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub datacontenttype: Option<String>,
    pub dataschema: Option<String>,
    pub subject: Option<String>,
    /// RFC 3339 text exactly as the producer sent it (validated, not normalised).
    pub time: Option<String>,
    /// Extension attributes, sorted by name.
    pub extensions: Vec<(String, AttrValue)>,
    pub data: Option<Data>,
    /// The event's wire forms, built once by delivery and shared by all its subscribers. Not
    /// part of the event: serde skips it, `==` ignores it, a clone starts without it. So an
    /// event is changed only as a clone (as dead letters are annotated), never once encoded.
    #[serde(skip)]
    pub(crate) encodings: crate::delivery::request::Encodings,
}

/// A context attribute value, in the CloudEvents type system's JSON-representable forms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AttrValue {
    String(String),
    Boolean(bool),
    Integer(i64),
}

/// The event's data, as received.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Data {
    /// JSON text, byte for byte as the producer sent it.
    Json(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A string value whose media type is not JSON (structured mode `"data": "..."`).
    Text(String),
    /// Opaque bytes (binary-mode body, or structured `data_base64`).
    Binary(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// One problem found in an event, naming the attribute it concerns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AttributeError {
    pub attribute: String,
    pub detail: String,
}

impl AttributeError {
    pub fn new(attribute: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            attribute: attribute.into(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for AttributeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.attribute, self.detail)
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::String(value) => f.write_str(value),
            AttrValue::Boolean(value) => write!(f, "{value}"),
            AttrValue::Integer(value) => write!(f, "{value}"),
        }
    }
}

const REQUIRED: [&str; 4] = ["id", "source", "specversion", "type"];
const OPTIONAL: [&str; 4] = ["datacontenttype", "dataschema", "subject", "time"];

/// Whether `name` is a legal CloudEvents attribute name: lower-case ASCII letters and digits.
pub fn is_valid_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit())
}

/// Whether a media type names JSON (`application/json`, `text/json` or any `+json` suffix).
pub fn is_json_media_type(media_type: &str) -> bool {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

impl Event {
    /// Builds an event from named attribute values, checking every CloudEvents 1.0 core rule.
    ///
    /// # Errors
    /// Every problem found, each naming its attribute: a missing or empty required attribute,
    /// a `specversion` other than `1.0`, a `time` that is not RFC 3339, a `dataschema` that is not an
    /// absolute URI, an empty optional attribute, an illegal extension name or value type, or an
    /// attribute given twice.
    pub fn from_attributes(
        attributes: Vec<(String, AttrValue)>,
        data: Option<Data>,
    ) -> Result<Event, Vec<AttributeError>> {
        let mut errors = Vec::new();
        let mut known: [Option<String>; 8] = Default::default();
        // Given but not a string: already reported, so not reported missing as well.
        let mut mistyped = [false; 8];
        let mut extensions: Vec<(String, AttrValue)> = Vec::new();

        for (name, value) in attributes {
            let slot = REQUIRED
                .iter()
                .chain(OPTIONAL.iter())
                .position(|known| *known == name);
            match slot {
                Some(index) => {
                    let AttrValue::String(text) = value else {
                        errors.push(AttributeError::new(&name, "must be a string"));
                        mistyped[index] = true;
                        continue;
                    };
                    if known[index].is_some() {
                        errors.push(AttributeError::new(&name, "is given more than once"));
                    } else {
                        known[index] = Some(text);
                    }
                }
                None => {
                    if !is_valid_attribute_name(&name) {
                        errors.push(AttributeError::new(
                            &name,
                            "is not a legal attribute name (only lower-case letters a-z and digits 0-9)",
                        ));
                    } else if extensions.iter().any(|(existing, _)| *existing == name) {
                        errors.push(AttributeError::new(&name, "is given more than once"));
                    } else if matches!(value, AttrValue::Integer(number) if i32::try_from(number).is_err())
                    {
                        errors.push(AttributeError::new(
                            &name,
                            "integer is out of the 32-bit signed range",
                        ));
                    } else {
                        extensions.push((name, value));
                    }
                }
            }
        }

        let [id, source, specversion, ty, datacontenttype, dataschema, subject, time] = known;
        for ((name, value), mistyped) in REQUIRED
            .iter()
            .zip([&id, &source, &specversion, &ty])
            .zip(mistyped)
        {
            match value {
                None if mistyped => {}
                None => errors.push(AttributeError::new(*name, "is required")),
                Some(text) if text.is_empty() => {
                    errors.push(AttributeError::new(*name, "must not be empty"))
                }
                Some(_) => {}
            }
        }
        if let Some(version) = &specversion {
            if !version.is_empty() && version != SPEC_VERSION {
                errors.push(AttributeError::new(
                    "specversion",
                    format!("unsupported version {version:?}; only \"1.0\" is accepted"),
                ));
            }
        }
        for (name, value) in OPTIONAL
            .iter()
            .zip([&datacontenttype, &dataschema, &subject, &time])
        {
            if value.as_deref() == Some("") {
                errors.push(AttributeError::new(*name, "must not be empty when present"));
            }
        }
        if let Some(text) = time.as_deref().filter(|text| !text.is_empty()) {
            if chrono::DateTime::parse_from_rfc3339(text).is_err() {
                errors.push(AttributeError::new(
                    "time",
                    format!("{text:?} is not an RFC 3339 timestamp"),
                ));
            }
        }
        if let Some(text) = dataschema.as_deref().filter(|text| !text.is_empty()) {
            if url::Url::parse(text).is_err() {
                errors.push(AttributeError::new(
                    "dataschema",
                    format!("{text:?} is not an absolute URI"),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        extensions.sort_by(|left, right| left.0.cmp(&right.0));
        Ok(Event {
            id: id.unwrap_or_default(),
            source: source.unwrap_or_default(),
            ty: ty.unwrap_or_default(),
            datacontenttype,
            dataschema,
            subject,
            time,
            extensions,
            data,
            encodings: Default::default(),
        })
    }

    /// The canonical string form of a context attribute (extensions included), as the
    /// CloudEvents Subscriptions API filters compare it; `None` when the event does not have it.
    pub fn attribute(&self, name: &str) -> Option<Cow<'_, str>> {
        fn borrowed(value: &Option<String>) -> Option<Cow<'_, str>> {
            value.as_deref().map(Cow::Borrowed)
        }
        match name {
            "specversion" => Some(Cow::Borrowed(SPEC_VERSION)),
            "id" => Some(Cow::Borrowed(&self.id)),
            "source" => Some(Cow::Borrowed(&self.source)),
            "type" => Some(Cow::Borrowed(&self.ty)),
            "datacontenttype" => borrowed(&self.datacontenttype),
            "dataschema" => borrowed(&self.dataschema),
            "subject" => borrowed(&self.subject),
            "time" => borrowed(&self.time),
            _ => self.extension(name).map(|value| match value {
                AttrValue::String(text) => Cow::Borrowed(text.as_str()),
                other => Cow::Owned(other.to_string()),
            }),
        }
    }

    /// An extension attribute by name.
    pub fn extension(&self, name: &str) -> Option<&AttrValue> {
        self.extensions
            .binary_search_by(|(existing, _)| existing.as_str().cmp(name))
            .ok()
            .map(|index| &self.extensions[index].1)
    }

    /// Every context attribute except `specversion`, as (name, value) pairs in a fixed order.
    pub fn attributes(&self) -> impl Iterator<Item = (&str, Cow<'_, str>)> {
        let core = [
            ("id", Some(self.id.as_str())),
            ("source", Some(self.source.as_str())),
            ("type", Some(self.ty.as_str())),
            ("subject", self.subject.as_deref()),
            ("time", self.time.as_deref()),
            ("dataschema", self.dataschema.as_deref()),
        ];
        core.into_iter()
            .filter_map(|(name, value)| value.map(|value| (name, Cow::Borrowed(value))))
            .chain(self.extensions.iter().map(|(name, value)| {
                let text = match value {
                    AttrValue::String(text) => Cow::Borrowed(text.as_str()),
                    other => Cow::Owned(other.to_string()),
                };
                (name.as_str(), text)
            }))
    }

    /// The data as the body of a binary-mode message.
    pub fn data_bytes(&self) -> &[u8] {
        match &self.data {
            None => &[],
            Some(Data::Json(bytes)) | Some(Data::Binary(bytes)) => bytes,
            Some(Data::Text(text)) => text.as_bytes(),
        }
    }

    /// The event in the CloudEvents JSON format (structured mode), with JSON data embedded
    /// byte for byte and binary data as `data_base64`.
    pub fn to_structured_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.data_bytes().len() * 4 / 3);
        out.push(b'{');
        write_member(
            &mut out,
            "specversion",
            &AttrValue::String(SPEC_VERSION.into()),
            true,
        );
        for (name, value) in [
            ("id", Some(&self.id)),
            ("source", Some(&self.source)),
            ("type", Some(&self.ty)),
            ("datacontenttype", self.datacontenttype.as_ref()),
            ("dataschema", self.dataschema.as_ref()),
            ("subject", self.subject.as_ref()),
            ("time", self.time.as_ref()),
        ] {
            if let Some(text) = value {
                out.push(b',');
                write_json_string(&mut out, name);
                out.push(b':');
                write_json_string(&mut out, text);
            }
        }
        for (name, value) in &self.extensions {
            write_member(&mut out, name, value, false);
        }
        match &self.data {
            None => {}
            Some(Data::Json(bytes)) => {
                out.extend_from_slice(b",\"data\":");
                out.extend_from_slice(bytes);
            }
            Some(Data::Text(text)) => {
                out.extend_from_slice(b",\"data\":");
                write_json_string(&mut out, text);
            }
            Some(Data::Binary(bytes)) => {
                out.extend_from_slice(b",\"data_base64\":\"");
                out.extend_from_slice(
                    base64::engine::general_purpose::STANDARD
                        .encode(bytes)
                        .as_bytes(),
                );
                out.push(b'"');
            }
        }
        out.push(b'}');
        out
    }
}

fn write_member(out: &mut Vec<u8>, name: &str, value: &AttrValue, first: bool) {
    if !first {
        out.push(b',');
    }
    write_json_string(out, name);
    out.push(b':');
    match value {
        AttrValue::String(text) => write_json_string(out, text),
        AttrValue::Boolean(flag) => out.extend_from_slice(if *flag { b"true" } else { b"false" }),
        AttrValue::Integer(number) => out.extend_from_slice(number.to_string().as_bytes()),
    }
}

fn write_json_string(out: &mut Vec<u8>, text: &str) {
    // Serialising a &str into a Vec cannot fail.
    serde_json::to_writer(&mut *out, text).unwrap_or_default();
}

/// A minimal valid event (source `/s`, type `t`, no data) with this id, for tests.
#[cfg(test)]
pub(crate) fn minimal(id: &str) -> Event {
    let attributes = [
        ("specversion", "1.0"),
        ("id", id),
        ("source", "/s"),
        ("type", "t"),
    ]
    .iter()
    .map(|(name, value)| (name.to_string(), AttrValue::String(value.to_string())))
    .collect();
    Event::from_attributes(attributes, None).expect("a valid event")
}

#[cfg(test)]
mod tests;
