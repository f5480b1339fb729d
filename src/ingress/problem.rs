//! RFC 9457 problem details (`application/problem+json`): every error the ingress returns names
//! what was wrong, down to the attribute and the batch index.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Serialize;

/// Media type of problem responses.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One problem response.
#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(skip)]
    pub retry_after: Option<u64>,
    /// A `WWW-Authenticate` challenge (401 answers).
    #[serde(skip)]
    pub challenge: Option<&'static str>,
}

/// A problem with one field of the request.
#[derive(Debug, Serialize)]
pub struct FieldError {
    /// The CloudEvents attribute (or `data`, `data_base64`, `body`).
    pub attribute: String,
    /// Position in a batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// JSON pointer into the data (schema violations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    pub detail: String,
}

impl Problem {
    pub fn invalid_event(errors: Vec<FieldError>) -> Problem {
        let detail = match errors.as_slice() {
            [] => "the request is not a valid CloudEvent".to_owned(),
            [only] => match only.index {
                Some(index) => format!("event {index}: {}: {}", only.attribute, only.detail),
                None => format!("{}: {}", only.attribute, only.detail),
            },
            [first, ..] => format!(
                "{} problems; the first: {}{}: {}",
                errors.len(),
                first
                    .index
                    .map(|index| format!("event {index}: "))
                    .unwrap_or_default(),
                first.attribute,
                first.detail
            ),
        };
        Problem {
            kind: "urn:fanout:problem:invalid-event",
            title: "Invalid CloudEvent",
            status: 400,
            detail,
            errors,
            retry_after: None,
            challenge: None,
        }
    }

    /// The data of one or more events breaks its type's JSON Schema.
    pub fn schema_violation(errors: Vec<FieldError>) -> Problem {
        let detail = match errors.first() {
            Some(first) => format!(
                "{} schema violation(s); the first: {}data{}: {}",
                errors.len(),
                first
                    .index
                    .map(|index| format!("event {index}: "))
                    .unwrap_or_default(),
                first.pointer.as_deref().unwrap_or(""),
                first.detail
            ),
            None => "the data does not match its type's schema".into(),
        };
        Problem {
            errors,
            ..Problem::simple(
                "urn:fanout:problem:schema-violation",
                "Data does not match the schema",
                400,
                detail,
            )
        }
    }

    /// A missing or unknown credential. `challenge` is the `WWW-Authenticate` value.
    pub fn unauthorized(detail: String, challenge: Option<&'static str>) -> Problem {
        Problem {
            challenge,
            ..Problem::simple(
                "urn:fanout:problem:unauthorized",
                "Unauthorized",
                401,
                detail,
            )
        }
    }

    /// A known credential that may not do this.
    pub fn forbidden(detail: String, errors: Vec<FieldError>) -> Problem {
        Problem {
            errors,
            ..Problem::simple("urn:fanout:problem:forbidden", "Forbidden", 403, detail)
        }
    }

    /// Too many request headers, or too many bytes of them.
    pub fn headers_too_large(detail: String) -> Problem {
        Problem::simple(
            "urn:fanout:problem:headers-too-large",
            "Request header fields too large",
            431,
            detail,
        )
    }

    pub fn unsupported_media_type(detail: String) -> Problem {
        Problem::simple(
            "urn:fanout:problem:unsupported-media-type",
            "Unsupported media type",
            415,
            detail,
        )
    }

    pub fn too_large(limit: usize) -> Problem {
        Problem::simple(
            "urn:fanout:problem:payload-too-large",
            "Payload too large",
            413,
            format!("the request body exceeds the limit of {limit} bytes (server.max_body_size)"),
        )
    }

    pub fn unavailable(detail: String) -> Problem {
        Problem {
            retry_after: Some(1),
            ..Problem::simple(
                "urn:fanout:problem:unavailable",
                "Service unavailable",
                503,
                detail,
            )
        }
    }

    pub fn not_found(path: &str) -> Problem {
        Problem::simple(
            "urn:fanout:problem:not-found",
            "Not found",
            404,
            format!("no endpoint at {path}; events go to POST /events"),
        )
    }

    pub fn simple(kind: &'static str, title: &'static str, status: u16, detail: String) -> Problem {
        Problem {
            kind,
            title,
            status,
            detail,
            errors: Vec::new(),
            retry_after: None,
            challenge: None,
        }
    }

    /// The HTTP response.
    pub fn response(&self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut response = HttpResponse::build(status);
        response.content_type(PROBLEM_JSON);
        if let Some(seconds) = self.retry_after {
            response.insert_header(("retry-after", seconds.to_string()));
        }
        if let Some(challenge) = self.challenge {
            response.insert_header(("www-authenticate", challenge));
        }
        response.json(self)
    }
}
