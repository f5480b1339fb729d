//! The one-screen summary `fanout check` prints: subscribers, routes, and who each route reaches.
//! Secrets and URL passwords are never shown.

use std::fmt::{self, Write};

use super::sources::Verification;
use super::{Config, Filter, Mode};

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pairs = |f: &mut fmt::Formatter<'_>, dialect: &str, pairs: &[(String, String)]| {
            let list: Vec<String> = pairs
                .iter()
                .map(|(name, value)| format!("{name}={value:?}"))
                .collect();
            write!(f, "{dialect}({})", list.join(", "))
        };
        let list = |f: &mut fmt::Formatter<'_>, dialect: &str, filters: &[Filter]| {
            let list: Vec<String> = filters.iter().map(ToString::to_string).collect();
            write!(f, "{dialect}({})", list.join(", "))
        };
        match self {
            Filter::Exact(items) => pairs(f, "exact", items),
            Filter::Prefix(items) => pairs(f, "prefix", items),
            Filter::Suffix(items) => pairs(f, "suffix", items),
            Filter::All(filters) => list(f, "all", filters),
            Filter::Any(filters) => list(f, "any", filters),
            Filter::Not(filter) => write!(f, "not({filter})"),
            Filter::Data(filter) => {
                let (operator, value) = filter.operator();
                write!(f, "data({} {operator} {value})", filter.path)
            }
            Filter::Sql(expression) => write!(f, "sql({:?})", expression.source()),
        }
    }
}

/// A URL with any password replaced by `***`.
pub fn redacted_url(url: &url::Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    url.to_string()
}

/// Renders the summary.
pub fn summary(config: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: OK", config.path.display());
    let _ = writeln!(out, "\nsubscribers ({}):", config.subscribers.len());
    let width = config
        .subscribers
        .iter()
        .map(|subscriber| subscriber.name.len())
        .max()
        .unwrap_or(0);
    for subscriber in &config.subscribers {
        let mode = match subscriber.mode {
            Mode::Binary => "binary",
            Mode::Structured => "structured",
        };
        let _ = writeln!(
            out,
            "  {:width$}  {}  [{mode}, timeout {}, concurrency {}{}, up to {} attempts within {}, {} secret(s)]",
            subscriber.name,
            redacted_url(&subscriber.url),
            humantime::format_duration(subscriber.timeout),
            subscriber.concurrency,
            if subscriber.adaptive_concurrency { " (adaptive)" } else { "" },
            subscriber.retry.max_attempts,
            humantime::format_duration(subscriber.retry.max_age),
            subscriber.secrets.len(),
        );
    }
    let _ = writeln!(out, "\nroutes ({}):", config.routes.len());
    for route in &config.routes {
        let filter = route
            .filter
            .as_ref()
            .map_or_else(|| "every event".to_owned(), ToString::to_string);
        let _ = writeln!(
            out,
            "  {}: {filter}\n    -> {}",
            route.name,
            route.to.join(", ")
        );
    }
    let unused: Vec<&str> = config
        .subscribers
        .iter()
        .filter(|subscriber| {
            !config
                .routes
                .iter()
                .any(|route| route.to.contains(&subscriber.name))
        })
        .map(|subscriber| subscriber.name.as_str())
        .collect();
    if !unused.is_empty() {
        let _ = writeln!(out, "\nnote: no route reaches {}", unused.join(", "));
    }
    if let Some(dead_letter) = &config.dead_letter {
        let _ = writeln!(
            out,
            "\ndead letters are also sent to {}",
            redacted_url(&dead_letter.url)
        );
    }
    if !config.sources.is_empty() {
        let _ = writeln!(
            out,
            "
webhook sources ({}):",
            config.sources.len()
        );
        for source in &config.sources {
            let scheme = match &source.verification {
                Verification::Hmac {
                    algorithm, header, ..
                } => format!("HMAC-{algorithm:?} in {header}").to_uppercase(),
                Verification::Stripe { tolerance } => format!(
                    "Stripe-Signature, tolerance {}",
                    humantime::format_duration(*tolerance)
                ),
                Verification::StandardWebhooks { tolerance } => format!(
                    "Standard Webhooks, tolerance {}",
                    humantime::format_duration(*tolerance)
                ),
            };
            let _ = writeln!(
                out,
                "  POST /hooks/{}  [{scheme}, {} secret(s)] -> source {}",
                source.name,
                source.secrets.len(),
                source.source
            );
        }
    }
    if config.api_keys.is_empty() {
        let _ = writeln!(
            out,
            "
publishing: open (no api_keys)"
        );
    } else {
        let names: Vec<&str> = config
            .api_keys
            .iter()
            .map(|key| key.name.as_str())
            .collect();
        let _ = writeln!(
            out,
            "
publishing: API key required ({} key(s): {})",
            names.len(),
            names.join(", ")
        );
    }
    let schemas: Vec<&str> = config.schemas.files().map(|(ty, _)| ty).collect();
    if !schemas.is_empty() {
        let _ = writeln!(
            out,
            "
schemas ({}, compiled): {}",
            schemas.len(),
            schemas.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "
outbound: non-public addresses refused{}{}",
        if config.outbound.allow_networks.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = config
                .outbound
                .allow_networks
                .iter()
                .map(ToString::to_string)
                .collect();
            format!(" except {}", list.join(", "))
        },
        if config.outbound.https_only {
            "; https only"
        } else {
            ""
        }
    );
    out
}
