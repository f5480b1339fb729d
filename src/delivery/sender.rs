//! The HTTP client: the only code that imports reqwest. No redirects are followed (a redirect is
//! a non-2xx answer like any other), each request has its own timeout, connections are pooled.
//!
//! The SSRF guard lives here too: every address a request would connect to, whether a DNS answer
//! or an IP literal in the URL, is checked against [`Outbound`] before the connection is made,
//! so a name that resolves to a private address (DNS rebinding included) is refused just like
//! the address itself. Proxies from the environment are not used: they would hide the address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::outbound::Refusal;
use crate::config::Outbound;

/// Most bytes of a response body kept for the attempt log.
pub const EXCERPT_LIMIT: usize = 4096;

/// Response headers kept in the attempt log of a failed attempt: the ones that explain it.
pub const RECORDED_HEADERS: [&str; 8] = [
    "retry-after",
    "content-type",
    "location",
    "www-authenticate",
    "x-request-id",
    "request-id",
    "x-correlation-id",
    "server",
];

/// A subscriber's answer.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub retry_after: Option<String>,
    /// The start of the body of a non-2xx answer, lossily decoded.
    pub excerpt: Option<String>,
    /// [`RECORDED_HEADERS`] present in a non-2xx answer.
    pub headers: Vec<(String, String)>,
    pub latency: Duration,
}

/// Why no answer came.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Connect(#[source] reqwest::Error),
    #[error("request failed: {0}")]
    Request(#[source] reqwest::Error),
    #[error(transparent)]
    Header(#[from] super::request::InvalidHeader),
    /// The SSRF guard refused the destination: a permanent failure.
    #[error("{0}")]
    Refused(Refused),
}

impl SendError {
    /// Whether trying again cannot help (the destination is refused by policy).
    pub fn is_permanent(&self) -> bool {
        matches!(self, SendError::Refused(_))
    }
}

/// A destination the outbound policy refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("refused by the SSRF guard: {host} is {} ({address}); list its network in outbound.allow_networks to allow it", .kind.describe())]
    Address {
        host: String,
        address: IpAddr,
        kind: Refusal,
    },
    #[error("refused: {0} is not an https:// URL (outbound.https_only)")]
    NotHttps(String),
}

/// Shared HTTP client for all deliveries.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    outbound: Arc<Outbound>,
}

impl Sender {
    /// Builds the client, guarded by `outbound`.
    ///
    /// # Errors
    /// The TLS stack could not be initialised.
    pub fn new(outbound: Outbound) -> Result<Sender, reqwest::Error> {
        let outbound = Arc::new(outbound);
        Ok(Sender {
            client: builder(&outbound).build()?,
            outbound,
        })
    }

    /// A client for one endpoint's TLS settings: a client certificate (mTLS) and extra roots,
    /// under the same outbound policy.
    ///
    /// # Errors
    /// The PEM data is not a usable certificate and key.
    pub fn for_endpoint(&self, tls: &crate::config::EndpointTls) -> Result<Sender, reqwest::Error> {
        let mut builder = builder(&self.outbound);
        if let Some(identity) = &tls.identity_pem {
            builder = builder.identity(reqwest::Identity::from_pem(identity)?);
        }
        if let Some(roots) = &tls.roots_pem {
            for root in reqwest::Certificate::from_pem_bundle(roots)? {
                builder = builder.add_root_certificate(root);
            }
        }
        Ok(Sender {
            client: builder.build()?,
            outbound: Arc::clone(&self.outbound),
        })
    }

    /// Checks a URL before any request: the scheme under `https_only`, and an IP-literal host
    /// (which never reaches the resolver). Names are checked when they are resolved.
    ///
    /// # Errors
    /// The destination is refused.
    pub fn check_url(&self, url: &url::Url) -> Result<(), SendError> {
        if self.outbound.https_only && url.scheme() != "https" {
            return Err(SendError::Refused(Refused::NotHttps(redacted_url(url))));
        }
        let address = match url.host() {
            Some(url::Host::Ipv4(address)) => IpAddr::V4(address),
            Some(url::Host::Ipv6(address)) => IpAddr::V6(address),
            _ => return Ok(()),
        };
        guard(&self.outbound, address, address).map_err(SendError::Refused)
    }

    /// POSTs `body` to `url` with `headers` and waits at most `timeout` for the answer and its
    /// first bytes.
    ///
    /// # Errors
    /// No HTTP answer arrived (connection refused, reset, timeout, bad header).
    pub async fn post(
        &self,
        url: url::Url,
        headers: http::HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Response, SendError> {
        self.check_url(&url)?;
        // A request built whole, not through a builder: a `Url`, not its text (reqwest would
        // parse the text again), and the header map as it is (a builder copies it entry by entry).
        let mut request = reqwest::Request::new(reqwest::Method::POST, url);
        *request.headers_mut() = headers;
        *request.timeout_mut() = Some(timeout);
        *request.body_mut() = Some(body.into());
        self.send(request, timeout).await
    }

    /// Sends an `OPTIONS` request (the CloudEvents webhook validation handshake). The answer's
    /// headers are all kept.
    ///
    /// # Errors
    /// No HTTP answer arrived.
    pub async fn options(
        &self,
        url: &url::Url,
        headers: impl Iterator<Item = (&str, &str)>,
        timeout: Duration,
    ) -> Result<(u16, Vec<(String, String)>), SendError> {
        self.check_url(url)?;
        let request = self
            .client
            .request(reqwest::Method::OPTIONS, url.as_str())
            .timeout(timeout);
        let mut map = http::HeaderMap::new();
        for (name, value) in headers {
            super::request::append(&mut map, name, value)?;
        }
        let response = request
            .headers(map)
            .send()
            .await
            .map_err(|error| classify(error, timeout))?;
        let headers = response
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect();
        Ok((response.status().as_u16(), headers))
    }

    async fn send(
        &self,
        request: reqwest::Request,
        timeout: Duration,
    ) -> Result<Response, SendError> {
        let started = Instant::now();
        let mut response = self
            .client
            .execute(request)
            .await
            .map_err(|error| classify(error, timeout))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let headers = if (200..300).contains(&status) {
            Vec::new()
        } else {
            RECORDED_HEADERS
                .iter()
                .filter_map(|name| {
                    let value = response.headers().get(*name)?.to_str().ok()?;
                    let value = redact_access_token(value);
                    Some(((*name).to_owned(), value.chars().take(256).collect()))
                })
                .collect()
        };
        // Read a small body so the connection can be reused, and keep it for failures.
        let mut excerpt = Vec::new();
        while excerpt.len() < EXCERPT_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => excerpt
                    .extend_from_slice(&chunk[..chunk.len().min(EXCERPT_LIMIT - excerpt.len())]),
                Ok(None) | Err(_) => break,
            }
        }
        let latency = started.elapsed();
        let excerpt = (!(200..300).contains(&status) && !excerpt.is_empty())
            .then(|| String::from_utf8_lossy(&excerpt).into_owned());
        Ok(Response {
            status,
            retry_after,
            excerpt,
            headers,
            latency,
        })
    }
}

/// An OAuth 2.0 access token and its lifetime.
#[derive(Clone, Debug)]
pub struct Token {
    pub access_token: String,
    /// `expires_in`, when the server said.
    pub expires_in: Option<Duration>,
}

/// Why no token came.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token request failed: {0}")]
    Send(#[from] SendError),
    #[error("the token endpoint answered {status}: {excerpt}")]
    Status { status: u16, excerpt: String },
    #[error("the token endpoint's answer has no access_token: {0}")]
    Body(String),
}

impl Sender {
    /// Asks `token_url` for an access token with the client-credentials grant (RFC 6749
    /// section 4.4), authenticating with HTTP basic auth.
    ///
    /// # Errors
    /// No answer, a non-2xx answer, or one without `access_token`.
    pub async fn fetch_token(
        &self,
        token_url: &url::Url,
        client_id: &str,
        client_secret: &str,
        form: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Token, TokenError> {
        self.check_url(token_url)?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = self
            .client
            .post(token_url.as_str())
            .timeout(timeout)
            .basic_auth(client_id, Some(client_secret))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|error| classify(error, timeout))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| classify(error, timeout))?;
        if !(200..300).contains(&status) {
            return Err(TokenError::Status {
                status,
                excerpt: String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned(),
            });
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            access_token: String,
            expires_in: Option<u64>,
        }
        let answer: Answer =
            serde_json::from_slice(&bytes).map_err(|error| TokenError::Body(error.to_string()))?;
        Ok(Token {
            access_token: answer.access_token,
            expires_in: answer.expires_in.map(Duration::from_secs),
        })
    }
}

/// A header value (a `Location` echoing the request URL) with any `access_token` query value
/// replaced, so a bearer token sent in the query never reaches the attempt log.
fn redact_access_token(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("access_token=") {
        let (before, after) = rest.split_at(start + "access_token=".len());
        out.push_str(before);
        out.push_str("<redacted>");
        rest = after.find('&').map_or("", |end| &after[end..]);
    }
    out.push_str(rest);
    out
}

/// The client settings every sender shares: no redirects, no retries, no proxies, the guarded
/// resolver, pooled connections, no Nagle.
fn builder(outbound: &Arc<Outbound>) -> reqwest::ClientBuilder {
    // reqwest is built without a bundled crypto provider; use ring for rustls.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        // fanout's retry schedule is the only one: a transparent resend would be a delivery
        // without an attempt record. With no retries allowed, reqwest also stops copying every
        // request (headers, extensions, body handle) in case it must send it again.
        .retry(reqwest::retry::never().max_retries_per_request(0))
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver(Arc::clone(outbound))))
        .user_agent(concat!("fanout/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
}

/// Resolves names with the system resolver, then keeps only the addresses the outbound policy
/// allows. The connection is made to exactly those addresses, so a second DNS answer cannot
/// slip a private address in (no rebinding between the check and the connect).
struct GuardedResolver(Arc<Outbound>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let outbound = Arc::clone(&self.0);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|address| match guard(&outbound, &host, address.ip()) {
                    Ok(()) => true,
                    Err(refusal) => {
                        refused.get_or_insert(refusal);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refused) {
                (true, Some(refusal)) => {
                    Err(Box::new(refusal) as Box<dyn std::error::Error + Send + Sync>)
                }
                _ => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

/// The outbound policy's verdict on connecting to `address` for `host`.
/// `host` is turned into text only for a refusal: an allowed request builds none.
fn guard(
    outbound: &Outbound,
    host: impl std::fmt::Display,
    address: IpAddr,
) -> Result<(), Refused> {
    outbound.check(address).map_err(|kind| Refused::Address {
        host: host.to_string(),
        address,
        kind,
    })
}

/// The URL without its query (which may hold an `access_token`).
fn redacted_url(url: &url::Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

fn classify(error: reqwest::Error, timeout: Duration) -> SendError {
    // A refusal of the guarded resolver is permanent, whatever reqwest wraps it in.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(current) = cause {
        if let Some(refused) = current.downcast_ref::<Refused>() {
            return SendError::Refused(refused.clone());
        }
        cause = current.source();
    }
    // An `access_token` in the URL must not reach a log through the error's text.
    let redact = error
        .url()
        .and_then(|url| url.query())
        .is_some_and(|query| query.contains("access_token"));
    let error = if redact { error.without_url() } else { error };
    if error.is_timeout() {
        SendError::Timeout(timeout)
    } else if error.is_connect() {
        SendError::Connect(error)
    } else {
        SendError::Request(error)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn access_tokens_are_redacted_from_recorded_headers() {
        assert_eq!(
            super::redact_access_token("https://x/hook?a=1&access_token=s3cret&b=2"),
            "https://x/hook?a=1&access_token=<redacted>&b=2"
        );
        assert_eq!(
            super::redact_access_token("https://x/?access_token=s3cret"),
            "https://x/?access_token=<redacted>"
        );
        assert_eq!(super::redact_access_token("/plain"), "/plain");
    }
}
