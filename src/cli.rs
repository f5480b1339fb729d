//! The operator commands of the `fanout` binary: thin clients of the admin API (`status`,
//! `events show`, `dead-letters`, `reload`), `publish` (one CloudEvent to `POST /events`) and the
//! offline `match`. Tables for people by default, `--json` for scripts.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::config::{self, EnvLookup};

/// Where the admin API is and how to authenticate, with one HTTP client for every call.
pub struct Admin {
    url: String,
    token: Option<String>,
    json: bool,
    client: reqwest::Client,
}

fn client() -> anyhow::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?)
}

impl Admin {
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(url: String, token: Option<String>, json: bool) -> anyhow::Result<Admin> {
        Ok(Admin {
            url,
            token,
            json,
            client: client()?,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let mut request = self.client.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the admin API at {url}"))?;
        let status = response.status();
        let value: serde_json::Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!(
                "{status}: {}",
                value["detail"].as_str().unwrap_or("no details")
            );
        }
        Ok(value)
    }

    fn print(&self, value: &serde_json::Value, table: impl FnOnce(&serde_json::Value) -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            print!("{}", table(value));
        }
    }

    /// `fanout status`: the subscribers table.
    ///
    /// # Errors
    /// The API could not be reached or refused.
    pub async fn status(&self) -> anyhow::Result<()> {
        let value = self
            .call(reqwest::Method::GET, "/api/v1/subscribers", None)
            .await?;
        self.print(&value, |value| {
            let mut rows = vec![[
                "SUBSCRIBER",
                "STATE",
                "PENDING",
                "IN FLIGHT",
                "DEAD",
                "DELIVERED",
                "SUCCESS",
                "P99 MS",
                "LAST ERROR",
            ]
            .map(str::to_owned)
            .to_vec()];
            for subscriber in value["subscribers"].as_array().into_iter().flatten() {
                rows.push(vec![
                    text(&subscriber["name"]),
                    text(&subscriber["state"]),
                    format!(
                        "{}{}",
                        text(&subscriber["pending"]),
                        if subscriber["pending_exact"] == false {
                            "+"
                        } else {
                            ""
                        }
                    ),
                    text(&subscriber["in_flight"]),
                    text(&subscriber["dead_letters"]),
                    text(&subscriber["delivered_total"]),
                    subscriber["recent"]["success_rate"]
                        .as_f64()
                        .map_or("-".into(), |rate| format!("{:.1} %", rate * 100.0)),
                    subscriber["recent"]["p99_ms"]
                        .as_f64()
                        .map_or("-".into(), |p99| format!("{p99:.1}")),
                    subscriber["last_error"]["error"]
                        .as_str()
                        .unwrap_or("")
                        .chars()
                        .take(40)
                        .collect(),
                ]);
            }
            table(&rows)
        });
        Ok(())
    }

    /// `fanout events show ID --source S`.
    ///
    /// # Errors
    /// The API could not be reached or refused.
    pub async fn show_event(&self, id: &str, source: &str) -> anyhow::Result<()> {
        let path = format!("/api/v1/events/{}?source={}", encode(id), encode(source));
        let value = self.call(reqwest::Method::GET, &path, None).await?;
        self.print(&value, |value| {
            let mut out = String::new();
            let event = &value["event"];
            let _ = writeln!(
                out,
                "event {} from {} ({}), accepted {}",
                text(&event["id"]),
                text(&event["source"]),
                text(&event["type"]),
                text(&value["accepted_at"])
            );
            for delivery in value["deliveries"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    out,
                    "\n  {} [{}] {}{}",
                    text(&delivery["subscriber"]),
                    text(&delivery["webhook_id"]),
                    text(&delivery["state"]),
                    delivery["reason"]
                        .as_str()
                        .map(|reason| format!(": {reason}"))
                        .unwrap_or_default()
                );
                for attempt in delivery["attempts"].as_array().into_iter().flatten() {
                    let _ = writeln!(
                        out,
                        "    #{} {} status {} in {} ms{}",
                        text(&attempt["number"]),
                        text(&attempt["at"]),
                        text(&attempt["status"]),
                        text(&attempt["latency_ms"]),
                        attempt["error"]
                            .as_str()
                            .map(|error| format!(": {error}"))
                            .unwrap_or_default()
                    );
                }
            }
            out
        });
        Ok(())
    }

    /// `fanout dead-letters list` with the API's filters (`key=value` query pairs).
    ///
    /// # Errors
    /// The API could not be reached or refused.
    pub async fn list_dead_letters(&self, filters: &[(String, String)]) -> anyhow::Result<()> {
        let mut next: Option<String> = None;
        let mut all = Vec::new();
        loop {
            let mut query: Vec<String> = filters
                .iter()
                .map(|(key, value)| format!("{key}={}", encode(value)))
                .collect();
            query.push("limit=1000".into());
            if let Some(after) = &next {
                query.push(format!("after={after}"));
            }
            let page = self
                .call(
                    reqwest::Method::GET,
                    &format!("/api/v1/dead-letters?{}", query.join("&")),
                    None,
                )
                .await?;
            all.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next"].as_str() {
                Some(cursor) => next = Some(cursor.to_owned()),
                None => break,
            }
        }
        let value = serde_json::Value::Array(all);
        self.print(&value, |value| {
            let mut rows = vec![[
                "WEBHOOK ID",
                "SUBSCRIBER",
                "EVENT",
                "TYPE",
                "STATUS",
                "ATTEMPTS",
                "DEAD AT",
                "REASON",
            ]
            .map(str::to_owned)
            .to_vec()];
            for letter in value.as_array().into_iter().flatten() {
                rows.push(vec![
                    text(&letter["webhook_id"]),
                    text(&letter["subscriber"]),
                    text(&letter["event"]["id"]),
                    text(&letter["event"]["type"]),
                    text(&letter["last_status"]),
                    text(&letter["attempts"]),
                    text(&letter["dead_at"]),
                    text(&letter["reason"]).chars().take(50).collect(),
                ]);
            }
            table(&rows)
        });
        Ok(())
    }

    /// `fanout dead-letters replay|purge`: with `--dry-run`, only how many would be touched.
    /// A large job runs in the background; this follows its progress.
    ///
    /// # Errors
    /// The API could not be reached or refused.
    pub async fn dead_letter_action(
        &self,
        purge: bool,
        filters: &[(String, String)],
        ids: &[String],
        dry_run: bool,
    ) -> anyhow::Result<()> {
        let value = if purge {
            let mut query: Vec<String> = filters
                .iter()
                .map(|(key, value)| format!("{key}={}", encode(value)))
                .collect();
            query.push(format!("dry_run={dry_run}"));
            self.call(
                reqwest::Method::DELETE,
                &format!("/api/v1/dead-letters?{}", query.join("&")),
                None,
            )
            .await?
        } else {
            let mut body = serde_json::Map::new();
            for (key, value) in filters {
                let value = match key.as_str() {
                    "status" => serde_json::Value::from(
                        value
                            .parse::<u16>()
                            .context("--status is an HTTP status code")?,
                    ),
                    _ => serde_json::Value::from(value.clone()),
                };
                body.insert(key.clone(), value);
            }
            if !ids.is_empty() {
                body.insert("ids".into(), serde_json::json!(ids));
            }
            body.insert("dry_run".into(), dry_run.into());
            self.call(
                reqwest::Method::POST,
                "/api/v1/dead-letters/replay",
                Some(serde_json::Value::Object(body)),
            )
            .await?
        };
        if let Some(job) = value["job"].as_str() {
            let total = value["matched"].as_u64().unwrap_or(0);
            loop {
                let progress = self.call(reqwest::Method::GET, job, None).await?;
                let done = progress["done"].as_u64().unwrap_or(0);
                if !self.json {
                    eprint!("\r{} {}", bar(done, total), format_args!("{done}/{total}"));
                }
                if progress["finished"] == true {
                    if !self.json {
                        eprintln!();
                    }
                    if let Some(error) = progress["error"].as_str() {
                        bail!("the job failed: {error}");
                    }
                    self.print(&progress, |_| format!("{done} of {total} done\n"));
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let verb = if purge { "purged" } else { "replayed" };
        self.print(&value, |value| {
            if value["dry_run"] == true {
                format!(
                    "{} dead letter(s) would be {verb} (dry run)\n",
                    text(&value["matched"])
                )
            } else {
                format!("{} dead letter(s) {verb}\n", text(&value["done"]))
            }
        });
        Ok(())
    }

    /// `fanout reload`: reload the routes file now and print the diff or the errors.
    ///
    /// # Errors
    /// The API could not be reached or the file is invalid.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let value = self
            .call(reqwest::Method::POST, "/api/v1/reload", None)
            .await?;
        self.print(&value, |value| {
            let mut out = String::from("reloaded\n");
            if let Some(diff) = value["diff"].as_object() {
                for (key, names) in diff {
                    let names: Vec<String> =
                        names.as_array().into_iter().flatten().map(text).collect();
                    if !names.is_empty() {
                        let _ = writeln!(out, "  {}: {}", key.replace('_', " "), names.join(", "));
                    }
                }
            }
            out
        });
        Ok(())
    }
}

/// `fanout publish`: one structured-mode CloudEvent to `POST /events`.
///
/// # Errors
/// The data file cannot be read, or the router refused the event.
pub async fn publish(
    url: &str,
    ty: &str,
    source: &str,
    id: Option<String>,
    subject: Option<String>,
    data: Option<String>,
) -> anyhow::Result<()> {
    let mut event = serde_json::json!({
        "specversion": "1.0",
        "id": id.unwrap_or_else(|| format!("cli-{}", crate::store::now_ms())),
        "source": source,
        "type": ty,
        "time": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
    });
    if let Some(subject) = subject {
        event["subject"] = subject.into();
    }
    // JSON data is embedded byte for byte (not re-serialised), as fanout will deliver it.
    let mut raw_data = None;
    if let Some(data) = data {
        let text = match data.strip_prefix('@') {
            Some("-") => std::io::read_to_string(std::io::stdin())?,
            Some(path) => {
                std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?
            }
            None if data == "-" => std::io::read_to_string(std::io::stdin())?,
            None => data,
        };
        if serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok() {
            event["datacontenttype"] = "application/json".into();
            raw_data = Some(text.trim().to_owned());
        } else {
            event["datacontenttype"] = "text/plain".into();
            event["data"] = text.into();
        }
    }
    let mut body = event.to_string();
    if let Some(raw) = raw_data {
        body.pop();
        body.push_str(",\"data\":");
        body.push_str(&raw);
        body.push('}');
    }
    let target = format!("{}/events", url.trim_end_matches('/'));
    let response = client()?
        .post(&target)
        .header("content-type", "application/cloudevents+json")
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot reach {target}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{status}: {body}");
    }
    println!("{status}: {body}");
    Ok(())
}

/// `fanout match`: which routes and subscribers an event reaches, and why, without a server.
///
/// # Errors
/// The routes file is invalid, or the event file is not a valid CloudEvent.
pub fn match_event(
    config_path: &Path,
    event_path: &Path,
    env: EnvLookup<'_>,
) -> anyhow::Result<String> {
    let config = config::load(config_path, env).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let bytes = if event_path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())?.into_bytes()
    } else {
        std::fs::read(event_path)
            .with_context(|| format!("cannot read {}", event_path.display()))?
    };
    let event = crate::ingress::structured::parse_one(&bytes).map_err(|errors| {
        anyhow::anyhow!(
            "{} is not a valid CloudEvent: {}",
            event_path.display(),
            errors
                .iter()
                .map(|error| format!("{}: {}", error.attribute, error.detail))
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    let (verdicts, reached) = crate::routing::explain(&config.routes, &event);
    let mut out = String::new();
    for verdict in verdicts {
        let _ = writeln!(
            out,
            "{} route {} -> {}",
            if verdict.matched {
                "MATCH   "
            } else {
                "no match"
            },
            verdict.route,
            verdict.to.join(", ")
        );
        for line in verdict.reasons {
            let _ = writeln!(out, "  {line}");
        }
    }
    if reached.is_empty() {
        let _ = writeln!(
            out,
            "\nno subscriber: the event would be stored and counted as unrouted"
        );
    } else {
        let _ = writeln!(out, "\nsubscribers: {}", reached.join(", "));
    }
    Ok(out)
}

fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn bar(done: u64, total: u64) -> String {
    let width = 30;
    let filled = (done * width)
        .checked_div(total)
        .unwrap_or(width)
        .min(width);
    format!(
        "[{}{}]",
        "#".repeat(filled as usize),
        " ".repeat((width - filled) as usize)
    )
}

/// Aligned columns.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .map(|row| row.get(column).map_or(0, |cell| cell.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(column, cell)| format!("{cell:<width$}", width = widths[column]))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}
