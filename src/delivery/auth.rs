//! Credentials on each request to a subscriber: a bearer token (header or `access_token` query
//! parameter, as the CloudEvents webhook spec allows), HTTP basic auth, or an OAuth 2.0 token from
//! the client-credentials grant, cached and refreshed before it expires (and fetched again after
//! the endpoint answers 401). Credentials are never logged.

use std::time::{Duration, Instant};

use base64::Engine;
use tokio::sync::Mutex;

use crate::config::ReceiverAuth;

use super::sender::{Sender, TokenError};

/// A token is fetched again this long before it expires...
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// ...or, for a short-lived token, once this share of its lifetime is left.
const REFRESH_SHARE: f64 = 0.5;
/// The lifetime assumed when the server does not say.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// How long a token request may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// What to add to one request.
#[derive(Debug, Default)]
pub struct Credentials {
    pub headers: Vec<(String, String)>,
    /// A query parameter to add to the URL.
    pub query: Option<(&'static str, String)>,
}

struct Cached {
    /// The configuration the token was fetched for (a reload may change it).
    auth: ReceiverAuth,
    token: String,
    refresh_at: Instant,
}

/// One subscriber's token cache.
#[derive(Default)]
pub struct Authenticator {
    cached: Mutex<Option<Cached>>,
}

impl Authenticator {
    /// The credentials for the next request.
    ///
    /// # Errors
    /// The OAuth 2.0 token could not be fetched.
    pub async fn credentials(
        &self,
        auth: &ReceiverAuth,
        sender: &Sender,
    ) -> Result<Credentials, TokenError> {
        Ok(match auth {
            ReceiverAuth::Bearer { token, query: true } => Credentials {
                headers: Vec::new(),
                query: Some(("access_token", token.expose().to_owned())),
            },
            ReceiverAuth::Bearer {
                token,
                query: false,
            } => bearer(token.expose()),
            ReceiverAuth::Basic { username, password } => {
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()));
                Credentials {
                    headers: vec![("authorization".into(), format!("Basic {encoded}"))],
                    query: None,
                }
            }
            ReceiverAuth::OAuth2 {
                token_url,
                client_id,
                client_secret,
                scope,
                audience,
            } => {
                let mut cached = self.cached.lock().await;
                if let Some(current) = cached.as_ref() {
                    if current.auth == *auth && Instant::now() < current.refresh_at {
                        return Ok(bearer(&current.token));
                    }
                }
                let mut form = vec![("grant_type", "client_credentials")];
                if let Some(scope) = scope {
                    form.push(("scope", scope));
                }
                if let Some(audience) = audience {
                    form.push(("audience", audience));
                }
                let fetched_at = Instant::now();
                let token = sender
                    .fetch_token(
                        token_url,
                        client_id,
                        client_secret.expose(),
                        &form,
                        TOKEN_TIMEOUT,
                    )
                    .await?;
                // A day at most: an absurd `expires_in` must not overflow the clock arithmetic.
                let lifetime = token
                    .expires_in
                    .unwrap_or(DEFAULT_LIFETIME)
                    .min(Duration::from_secs(24 * 3600));
                // Refresh a margin before expiry: a minute, or half the lifetime if shorter.
                let margin = REFRESH_MARGIN.min(lifetime.mul_f64(REFRESH_SHARE));
                let early = lifetime - margin;
                let credentials = bearer(&token.access_token);
                *cached = Some(Cached {
                    auth: auth.clone(),
                    token: token.access_token,
                    refresh_at: fetched_at + early,
                });
                credentials
            }
        })
    }

    /// Forgets the cached token (the endpoint refused it).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }
}

fn bearer(token: &str) -> Credentials {
    Credentials {
        headers: vec![("authorization".into(), format!("Bearer {token}"))],
        query: None,
    }
}
