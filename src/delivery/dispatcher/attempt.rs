//! One attempt: build the request (encoding, signature, credentials, origin), send it, and
//! classify the answer. Runs as its own task; the dispatcher applies the result.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{Context, Done, Job};
use crate::delivery::outcome::{classify, Outcome};
use crate::delivery::request;
use crate::ids::webhook_id;
use crate::store::{self, AttemptRecord};

/// Sends one attempt and classifies the answer.
pub(super) async fn attempt(context: Arc<Context>, job: Job) -> Done {
    let config = context.control.config();
    context
        .control
        .in_flight
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // A batch is one request, one signature; its id is stable as long as its members are (they
    // keep one retry schedule, so they go again together).
    let (message, id) = if config.batch.is_some() || !job.rest.is_empty() {
        (
            request::encode_batch(job.members().map(|member| &*member.event), &config.headers),
            format!(
                "{}_b{}",
                webhook_id(job.seq, context.id),
                job.members().count()
            ),
        )
    } else {
        (
            request::encode(&job.event, config.mode, &config.headers),
            webhook_id(job.seq, context.id),
        )
    };
    let now = SystemTime::now();
    let at_ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(store::millis)
        .unwrap_or(0);
    let timestamp = i64::try_from(at_ms / 1000).unwrap_or(i64::MAX);
    let started = std::time::Instant::now();
    let sender = context.sender_for(config.tls.as_ref());
    let credentials = match (&sender, &config.auth) {
        (Err(error), _) => Err(error.clone()),
        (Ok(_), None) => Ok(crate::delivery::auth::Credentials::default()),
        // Boxed: a token fetch is a whole request, and inline it would make every attempt's
        // task (moved into place at each spawn) several times larger.
        (Ok(sender), Some(auth)) => Box::pin(context.auth.credentials(auth, sender))
            .await
            .map_err(|error| format!("no credentials for the endpoint: {error}")),
    };
    let result = match (message, credentials, sender) {
        (Ok(mut message), Ok(credentials), Ok(sender)) => {
            let mut url = config.url.clone();
            if let Some((name, value)) = &credentials.query {
                url.query_pairs_mut().append_pair(name, value);
            }
            match finish_headers(&mut message, &config, &id, timestamp, &credentials) {
                Ok(()) => sender
                    .post(url, message.headers, message.body, config.timeout)
                    .await
                    .map_err(|error| (error.to_string(), error.is_permanent())),
                Err(error) => Err((error.to_string(), false)),
            }
        }
        (Err(error), _, _) => Err((error.to_string(), false)),
        (_, Err(error), _) | (_, _, Err(error)) => Err((error, false)),
    };
    let (outcome, attempt) = match result {
        Ok(response) => (
            classify(
                response.status,
                response.retry_after.as_deref(),
                &config.retry.retry_on,
                SystemTime::now,
            ),
            AttemptRecord {
                at_ms,
                status: Some(response.status),
                error: None,
                latency_us: micros(response.latency),
                response_excerpt: response.excerpt,
                response_headers: response.headers,
            },
        ),
        Err((error, permanent)) => (
            if permanent {
                Outcome::Refused {
                    reason: error.clone(),
                }
            } else {
                Outcome::Retryable {
                    status: None,
                    error: Some(error.clone()),
                    retry_after: None,
                }
            },
            AttemptRecord {
                at_ms,
                status: None,
                error: Some(error),
                latency_us: micros(started.elapsed()),
                response_excerpt: None,
                response_headers: Vec::new(),
            },
        ),
    };
    // A refused OAuth 2.0 token may have been revoked: fetch a new one for the retry.
    let outcome = match (&config.auth, outcome) {
        (Some(crate::config::ReceiverAuth::OAuth2 { .. }), Outcome::Permanent { status: 401 }) => {
            Box::pin(context.auth.invalidate()).await;
            Outcome::Retryable {
                status: Some(401),
                error: Some(
                    "the endpoint refused the OAuth 2.0 token; a new one will be fetched".into(),
                ),
                retry_after: None,
            }
        }
        (_, outcome) => outcome,
    };
    context
        .control
        .in_flight
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    Done {
        job,
        outcome,
        attempt,
    }
}

/// The headers that follow the encoding: the Standard Webhooks signature, the handshake's origin,
/// the endpoint's credentials.
fn finish_headers(
    message: &mut request::Message,
    config: &crate::config::SubscriberConfig,
    id: &str,
    timestamp: i64,
    credentials: &crate::delivery::auth::Credentials,
) -> Result<(), request::InvalidHeader> {
    request::sign_into(
        &mut message.headers,
        &config.secrets,
        id,
        timestamp,
        &message.body,
    )?;
    if let Some(handshake) = &config.handshake {
        request::append(
            &mut message.headers,
            crate::delivery::handshake::REQUEST_ORIGIN,
            &handshake.origin,
        )?;
    }
    for (name, value) in &credentials.headers {
        request::append(&mut message.headers, name, value)?;
    }
    Ok(())
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
