//! A dispatcher's gate and health: the webhook validation handshake, the rate limit and the
//! circuit breaker that decide whether an attempt may start, and what an outcome says about the
//! subscriber's health (the breaker, the failing streak that `disable_after` measures, and the
//! operational events and logs that tell operators).

use std::time::{Duration, SystemTime};

use super::{Dispatcher, Gate};
use crate::delivery::adaptive::Adaptive;
use crate::delivery::breaker::{Breaker, Permit, Transition};
use crate::delivery::outcome::Outcome;
use crate::delivery::rate_limit::TokenBucket;
use crate::metrics::Metrics;
use crate::operational;
use crate::store::{self, StoreError};

use super::Context;

/// Where the validation handshake stands.
#[derive(Debug, Default)]
pub(super) struct HandshakeState {
    /// The URL and origin granted, and the granted rate.
    granted: Option<(url::Url, String, crate::delivery::handshake::Grant)>,
    refusals: u32,
    next_try_ms: u64,
}
impl Dispatcher {
    /// The CloudEvents webhook validation handshake, when configured: true once the endpoint
    /// granted this URL and origin. Refusals are tried again with the retry policy's backoff;
    /// meanwhile nothing is delivered.
    pub(super) async fn validate(&mut self) -> bool {
        // A wait set by an earlier pass must not outlive it (a stale deadline would wake the
        // loop every few milliseconds while nothing may be delivered).
        self.gate = Gate::Open;
        let config = self.context.control.config();
        let Some(handshake) = &config.handshake else {
            if self.handshake.granted.take().is_some() || self.handshake.refusals > 0 {
                self.handshake = HandshakeState::default();
                self.context.control.set_handshake(None);
            }
            return true;
        };
        if let Some((url, origin, _)) = &self.handshake.granted {
            if *url == config.url && *origin == handshake.origin {
                return true;
            }
            self.handshake.granted = None;
        }
        if !self.context.control.may_deliver() {
            return false;
        }
        let now_ms = store::now_ms();
        if now_ms < self.handshake.next_try_ms {
            self.gate = Gate::Until(self.handshake.next_try_ms);
            return false;
        }
        let rate = config
            .rate_limit
            .map(|limit| (limit.per_second * 60.0).ceil() as u64);
        let headers = crate::delivery::handshake::request_headers(&handshake.origin, rate);
        let answer = match self.context.sender_for(config.tls.as_ref()) {
            Err(error) => Err(error),
            Ok(sender) => sender
                .options(
                    &config.url,
                    headers
                        .iter()
                        .map(|(name, value)| (name.as_str(), value.as_str())),
                    config.timeout,
                )
                .await
                .map_err(|error| error.to_string())
                .and_then(|(status, headers)| {
                    crate::delivery::handshake::evaluate(status, &headers, &handshake.origin)
                }),
        };
        let name = &self.context.control.name;
        match answer {
            Ok(grant) => {
                tracing::info!(subscriber = %name, origin = %handshake.origin, rate_per_minute = ?grant.per_minute, "Webhook validation granted.");
                self.context
                    .control
                    .set_handshake(Some(match grant.per_minute {
                        Some(rate) => format!("granted ({rate}/min)"),
                        None => "granted".to_owned(),
                    }));
                self.handshake.granted =
                    Some((config.url.clone(), handshake.origin.clone(), grant));
                self.handshake.refusals = 0;
                true
            }
            Err(reason) => {
                self.handshake.refusals += 1;
                let delay = crate::delivery::policy::backoff(
                    &config.retry,
                    self.handshake.refusals,
                    rand::random::<f64>(),
                );
                self.handshake.next_try_ms = now_ms + store::millis(delay);
                tracing::warn!(subscriber = %name, reason = %reason, retry_in_ms = store::millis(delay), "Webhook validation refused; nothing is delivered until it is granted.");
                self.context
                    .control
                    .set_handshake(Some(format!("refused: {reason}")));
                self.gate = Gate::Until(self.handshake.next_try_ms);
                false
            }
        }
    }

    /// Builds or updates the rate limit and the circuit breaker from the policy in force (the
    /// rate limit is the lower of the configured one and the one the handshake granted).
    pub(super) fn sync_policies(&mut self, now_ms: u64) {
        let config = self.context.control.config();
        let granted = self
            .handshake
            .granted
            .as_ref()
            .and_then(|(_, _, grant)| grant.rate_limit());
        let rate_limit = match (config.rate_limit, granted) {
            (Some(configured), Some(granted)) => {
                Some(if granted.per_second < configured.per_second {
                    granted
                } else {
                    configured
                })
            }
            (configured, granted) => configured.or(granted),
        };
        match (rate_limit, &mut self.bucket) {
            (None, _) => self.bucket = None,
            (Some(limit), Some(bucket)) => bucket.set_limit(limit),
            (Some(limit), None) => self.bucket = Some(TokenBucket::new(limit, now_ms)),
        }
        match (config.circuit_breaker, &mut self.breaker) {
            (None, _) => {
                self.breaker = None;
                self.context
                    .control
                    .set_circuit(crate::delivery::breaker::State::Closed);
            }
            (Some(policy), Some(breaker)) => breaker.set_policy(policy),
            (Some(policy), None) => self.breaker = Some(Breaker::new(policy)),
        }
        match (config.adaptive_concurrency, &mut self.adaptive) {
            (false, _) => self.adaptive = None,
            (true, Some(adaptive)) => adaptive.set_max(config.concurrency),
            (true, None) => {
                self.adaptive = Some(Adaptive::new(config.concurrency, std::time::Instant::now()));
            }
        }
        self.publish_limit();
    }

    /// Whether one more attempt may start now (the circuit and the rate limit agree); sets
    /// [`Gate`] when not.
    pub(super) fn admit(&mut self, now_ms: u64) -> bool {
        let mut probe = false;
        if let Some(breaker) = &mut self.breaker {
            let (permit, transition) = breaker.permit(now_ms);
            let state = breaker.state();
            if let Some(transition) = transition {
                announce(&self.context, transition, state);
            }
            match permit {
                Permit::Yes => {}
                Permit::Probe => probe = true,
                Permit::No(Some(until_ms)) => {
                    self.gate = Gate::Until(until_ms);
                    return false;
                }
                Permit::No(None) => {
                    self.gate = Gate::Probe;
                    return false;
                }
            }
        }
        if let Some(bucket) = &mut self.bucket {
            if let Err(at_ms) = bucket.take(now_ms) {
                if probe {
                    if let Some(breaker) = &mut self.breaker {
                        breaker.cancel_probe();
                    }
                }
                self.gate = Gate::Until(at_ms);
                return false;
            }
        }
        self.probe_granted = probe;
        true
    }

    /// Tells the circuit breaker an outcome, and keeps the failing streak that `disable_after`
    /// measures.
    pub(super) fn observe(&mut self, outcome: &Outcome, probe: bool) {
        // Read only when needed: a success without a breaker, the common case, needs no clock.
        let clock = std::cell::OnceCell::new();
        let now_ms = || *clock.get_or_init(store::now_ms);
        // While half-open, only the probe's outcome decides; attempts that started before the
        // circuit opened and end now say nothing about the probe.
        let stale = !probe
            && self.breaker.as_ref().is_some_and(|breaker| {
                matches!(
                    breaker.state(),
                    crate::delivery::breaker::State::HalfOpen { .. }
                )
            });
        if let Some(breaker) = self.breaker.as_mut().filter(|_| !stale) {
            // Only failures that speak of the endpoint's health count.
            let failed = matches!(outcome, Outcome::Retryable { .. });
            if let Some(transition) = breaker.record(now_ms(), failed) {
                announce(&self.context, transition, breaker.state());
            }
        }
        let context = &self.context;
        let control = &context.control;
        let since = control
            .failing_since_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        let result = if matches!(outcome, Outcome::Success { .. }) {
            if since == 0 {
                return;
            }
            control
                .failing_since_ms
                .store(0, std::sync::atomic::Ordering::Relaxed);
            context.store.set_failing_since(context.id, None)
        } else {
            let since = if since == 0 {
                control
                    .failing_since_ms
                    .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
                if let Err(error) = context.store.set_failing_since(context.id, Some(now_ms())) {
                    tracing::error!(subscriber = %control.name, error = %error, "Cannot record when the subscriber started failing.");
                }
                now_ms()
            } else {
                since
            };
            match control.config().disable_after {
                Some(limit)
                    if now_ms().saturating_sub(since) >= store::millis(limit)
                        && control.disabled().is_none() =>
                {
                    let reason = format!(
                        "failing continuously since {} (disable_after {})",
                        humantime::format_rfc3339_millis(
                            SystemTime::UNIX_EPOCH + Duration::from_millis(since)
                        ),
                        humantime::format_duration(limit)
                    );
                    disable(context, reason)
                }
                _ => Ok(()),
            }
        };
        if let Err(error) = result {
            tracing::error!(subscriber = %control.name, error = %error, "Cannot record the subscriber's health.");
        }
    }
}

/// Disables the subscriber (persisted), keeping its deliveries; tells operators.
pub(super) fn disable(context: &Context, reason: String) -> Result<(), StoreError> {
    let control = &context.control;
    context.store.set_disabled(context.id, Some(&reason))?;
    tracing::error!(subscriber = %control.name, reason = %reason, "Subscriber disabled; its deliveries are kept pending until it is re-enabled.");
    if let Some(events) = &context.events {
        events.emit(
            operational::SUBSCRIBER_DISABLED,
            (context.id, &control.name),
            serde_json::json!({ "subscriber": control.name, "reason": reason }),
        );
    }
    control.set_disabled(Some(reason));
    Ok(())
}

/// Shows a circuit breaker transition to operators: state, log, counter, operational event.
fn announce(context: &Context, transition: Transition, state: crate::delivery::breaker::State) {
    let control = &context.control;
    control.set_circuit(state);
    let name = &control.name;
    let event = match transition {
        Transition::Opened { until_ms } => {
            Metrics::add(&control.circuit_opened, 1);
            let until = humantime::format_rfc3339_millis(
                SystemTime::UNIX_EPOCH + Duration::from_millis(until_ms),
            )
            .to_string();
            tracing::warn!(subscriber = %name, until = %until, "Circuit opened; no attempts until then.");
            Some((
                operational::CIRCUIT_OPENED,
                serde_json::json!({ "subscriber": name, "until": until }),
            ))
        }
        Transition::HalfOpened => {
            tracing::info!(subscriber = %name, "Circuit half-open; one probe attempt.");
            None
        }
        Transition::Closed => {
            tracing::info!(subscriber = %name, "Circuit closed; deliveries flow again.");
            Some((
                operational::CIRCUIT_CLOSED,
                serde_json::json!({ "subscriber": name }),
            ))
        }
    };
    if let (Some(events), Some((ty, data))) = (&context.events, event) {
        events.emit(ty, (context.id, name), data);
    }
}
