//! What ingest checks besides the CloudEvents rules: the publisher's key and what it may publish,
//! the request's header limits, and each event type's JSON Schema. Built from the configuration
//! and swapped whole on reload, like the routing table.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::header::HeaderMap;

use crate::config::{ApiKey, Config, Limits, Schemas, SourceConfig, TokenDigest};
use crate::event::{Data, Event};

use super::problem::{FieldError, Problem};

/// The challenge sent with a 401 from `POST /events`.
const CHALLENGE: &str = "Bearer realm=\"fanout\"";

/// The ingress's reloadable rules.
#[derive(Debug, Default)]
pub struct Admission {
    pub sources: HashMap<String, Arc<SourceConfig>>,
    pub api_keys: Vec<ApiKey>,
    pub schemas: Schemas,
}

impl Admission {
    pub fn new(config: &Config) -> Admission {
        Admission {
            sources: config
                .sources
                .iter()
                .map(|source| (source.name.clone(), Arc::new(source.clone())))
                .collect(),
            api_keys: config.api_keys.clone(),
            schemas: config.schemas.clone(),
        }
    }

    /// The key a publisher presented (`Authorization: Bearer`), when keys are configured.
    ///
    /// # Errors
    /// 401 when keys are configured and none, or an unknown one, was presented.
    pub fn publisher(&self, headers: &HeaderMap) -> Result<Option<&ApiKey>, Problem> {
        if self.api_keys.is_empty() {
            return Ok(None);
        }
        let presented = headers
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, token) = value.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| {
                Problem::unauthorized(
                    "publishing needs an API key: Authorization: Bearer <key>".into(),
                    Some(CHALLENGE),
                )
            })?;
        let digest = TokenDigest::of(presented);
        // Every key is compared, so the time taken does not tell which one nearly matched.
        let mut found = None;
        for key in &self.api_keys {
            if key.digest.matches(&digest) && found.is_none() {
                found = Some(key);
            }
        }
        found.map(Some).ok_or_else(|| {
            Problem::unauthorized("the API key is not valid".into(), Some(CHALLENGE))
        })
    }

    /// Checks what `key` may publish and every event's data against its type's schema.
    ///
    /// # Errors
    /// 403 naming each event (by index) and attribute outside the key's prefixes; 400 naming
    /// each JSON pointer that breaks a schema.
    pub fn check(
        &self,
        key: Option<&ApiKey>,
        events: &[Event],
        batch: bool,
    ) -> Result<(), Problem> {
        let index_of = |index: usize| batch.then_some(index);
        if let Some(key) = key {
            let errors: Vec<FieldError> = events
                .iter()
                .enumerate()
                .filter_map(|(index, event)| {
                    let attribute = key.permits(&event.source, &event.ty).err()?;
                    let value = if attribute == "source" {
                        &event.source
                    } else {
                        &event.ty
                    };
                    Some(FieldError {
                        attribute: attribute.to_owned(),
                        index: index_of(index),
                        pointer: None,
                        detail: format!(
                            "API key {:?} may not publish {attribute} {value:?}",
                            key.name
                        ),
                    })
                })
                .collect();
            if !errors.is_empty() {
                return Err(Problem::forbidden(
                    format!(
                        "{}: API key {:?} may not publish this",
                        describe(&errors[0]),
                        key.name
                    ),
                    errors,
                ));
            }
        }
        if self.schemas.is_empty() {
            return Ok(());
        }
        let mut errors = Vec::new();
        for (index, event) in events.iter().enumerate() {
            let Some(schema) = self.schemas.get(&event.ty) else {
                continue;
            };
            let data = match &event.data {
                None => serde_json::Value::Null,
                Some(Data::Json(bytes)) => match serde_json::from_slice(bytes) {
                    Ok(value) => value,
                    Err(error) => {
                        errors.push(field(
                            index_of(index),
                            String::new(),
                            format!("is not JSON: {error}"),
                        ));
                        continue;
                    }
                },
                Some(_) => {
                    errors.push(field(
                        index_of(index),
                        String::new(),
                        format!("must be JSON: type {:?} has a JSON Schema", event.ty),
                    ));
                    continue;
                }
            };
            errors.extend(
                schema
                    .violations(&data)
                    .into_iter()
                    .map(|violation| field(index_of(index), violation.pointer, violation.reason)),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Problem::schema_violation(errors))
        }
    }
}

fn field(index: Option<usize>, pointer: String, detail: String) -> FieldError {
    FieldError {
        attribute: "data".into(),
        index,
        pointer: Some(pointer),
        detail,
    }
}

fn describe(error: &FieldError) -> String {
    match error.index {
        Some(index) => format!("event {index}: {}", error.attribute),
        None => error.attribute.clone(),
    }
}

/// Refuses a request with more headers, or more header bytes, than `limits` allow.
///
/// # Errors
/// 431 naming the limit.
pub fn check_headers(headers: &HeaderMap, limits: &Limits) -> Result<(), Problem> {
    let count = headers.len();
    if count > limits.max_headers {
        return Err(Problem::headers_too_large(format!(
            "the request has {count} headers; at most {} are accepted (server.max_headers)",
            limits.max_headers
        )));
    }
    let size: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if size > limits.max_header_size {
        return Err(Problem::headers_too_large(format!(
            "the request's headers take {size} bytes; at most {} are accepted (server.max_header_size)",
            limits.max_header_size
        )));
    }
    Ok(())
}
