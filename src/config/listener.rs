//! The listeners' own settings: request limits of the ingest port, and HTTPS (certificate and key
//! files, read and parsed when the routes file is loaded so that a bad file is a located error).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::compile::Errors;
use super::raw::{RawListenerTls, RawServer};

/// Request limits, all with safe defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Events in one batched-mode request.
    pub max_batch_events: usize,
    /// Request headers, counted.
    pub max_headers: usize,
    /// Bytes of all request header names and values together.
    pub max_header_size: usize,
    /// Time a client has to send the request head.
    pub request_timeout: Duration,
    /// How long an idle connection stays open between requests; zero closes each connection
    /// after its response.
    pub keep_alive: Duration,
    /// Open connections per worker; further connections wait in the kernel's backlog.
    pub max_connections: usize,
}

pub mod defaults {
    use std::time::Duration;

    pub const MAX_BATCH_EVENTS: usize = 1000;
    pub const MAX_HEADERS: usize = 64;
    pub const MAX_HEADER_SIZE: u64 = 16 * 1024;
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
    /// actix-web's own default.
    pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
    pub const MAX_CONNECTIONS: usize = 4096;
}

/// actix-web's own ceilings: a request head past them is refused before fanout sees it.
const HEADERS_CEILING: usize = 96;
const HEADER_SIZE_CEILING: u64 = 128 * 1024;

/// A certificate chain and its private key, parsed.
#[derive(Clone)]
pub struct ListenerTls {
    pub certificates: Vec<CertificateDer<'static>>,
    pub key: std::sync::Arc<PrivateKeyDer<'static>>,
}

impl PartialEq for ListenerTls {
    fn eq(&self, other: &Self) -> bool {
        self.certificates == other.certificates && self.key.secret_der() == other.key.secret_der()
    }
}

impl fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerTls")
            .field("certificates", &self.certificates.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

pub(super) fn limits(raw: &RawServer, errors: &mut Errors) -> Limits {
    let max_headers = raw.max_headers.unwrap_or(defaults::MAX_HEADERS);
    if !(1..=HEADERS_CEILING).contains(&max_headers) {
        errors.push((
            "server.max_headers".into(),
            format!("must be 1 to {HEADERS_CEILING}"),
        ));
    }
    let max_header_size = raw.max_header_size.unwrap_or(defaults::MAX_HEADER_SIZE);
    if !(1024..=HEADER_SIZE_CEILING).contains(&max_header_size) {
        errors.push((
            "server.max_header_size".into(),
            "must be 1KiB to 128KiB".into(),
        ));
    }
    let max_batch_events = raw.max_batch_events.unwrap_or(defaults::MAX_BATCH_EVENTS);
    if max_batch_events == 0 {
        errors.push((
            "server.max_batch_events".into(),
            "must be at least 1".into(),
        ));
    }
    let request_timeout = raw.request_timeout.unwrap_or(defaults::REQUEST_TIMEOUT);
    if request_timeout.is_zero() {
        errors.push((
            "server.request_timeout".into(),
            "must be greater than zero".into(),
        ));
    }
    let max_connections = raw.max_connections.unwrap_or(defaults::MAX_CONNECTIONS);
    if max_connections == 0 {
        errors.push(("server.max_connections".into(), "must be at least 1".into()));
    }
    Limits {
        max_batch_events,
        max_headers,
        max_header_size: usize::try_from(max_header_size).unwrap_or(usize::MAX),
        request_timeout,
        keep_alive: raw.keep_alive.unwrap_or(defaults::KEEP_ALIVE),
        max_connections,
    }
}

/// Reads `{ cert, key }`; `key` is the config key for messages (`server.tls`, `admin.tls`).
pub(super) fn tls(raw: &RawListenerTls, key: &str, errors: &mut Errors) -> Option<ListenerTls> {
    let certificates = read(&raw.cert, &format!("{key}.cert"), errors, |bytes| {
        CertificateDer::pem_slice_iter(bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| error.to_string())
            .and_then(|list| {
                if list.is_empty() {
                    Err("no CERTIFICATE block".into())
                } else {
                    Ok(list)
                }
            })
    });
    let private_key = read(&raw.key, &format!("{key}.key"), errors, |bytes| {
        PrivateKeyDer::from_pem_slice(bytes).map_err(|error| error.to_string())
    });
    Some(ListenerTls {
        certificates: certificates?,
        key: std::sync::Arc::new(private_key?),
    })
}

fn read<T>(
    path: &Path,
    key: &str,
    errors: &mut Errors,
    parse: impl FnOnce(&[u8]) -> Result<T, String>,
) -> Option<T> {
    let bytes = super::compile::read_file(path, key, errors)?;
    parse(&bytes)
        .map_err(|error| {
            errors.push((
                key.to_owned(),
                format!("{} is not usable PEM: {error}", path.display()),
            ));
        })
        .ok()
}
