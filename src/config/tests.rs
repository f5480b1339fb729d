use std::path::Path;

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse_ok(text: &str) -> Config {
    parse(text, Path::new("routes.yaml"), &no_env).unwrap_or_else(|errors| panic!("{errors}"))
}

#[track_caller]
fn check_error(text: &str, line: usize, key: &str, needle: &str) {
    let errors = parse(text, Path::new("routes.yaml"), &no_env)
        .expect_err("should be invalid")
        .0;
    assert!(
        errors.iter().any(|error| error.line == Some(line)
            && error.key == key
            && error.message.contains(needle)
            && error.to_string().starts_with("routes.yaml:")),
        "wanted line {line} key {key:?} containing {needle:?}, got:\n{}",
        ConfigErrors(errors.clone())
    );
}

const VALID: &str = "\
defaults:
  timeout: 5s
  retry:
    max_attempts: 4
subscribers:
  erp:
    url: http://127.0.0.1:9001/hook
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
  slack:
    url: https://hooks.example.com/x
    mode: structured
    concurrency: 2
    retry:
      initial_interval: 50ms
      retry_on: [429, \"5xx\"]
routes:
  - name: orders
    filters:
      - prefix: { type: com.shop.order. }
      - not: { exact: { source: /test } }
    to: [erp, slack]
  - name: everything
    to: [slack]
";

#[test]
fn adaptive_concurrency_is_inherited_and_overridden() {
    let text = VALID
        .replace("defaults:\n", "defaults:\n  adaptive_concurrency: false\n")
        .replace(
            "    concurrency: 2\n",
            "    concurrency: 2\n    adaptive_concurrency: true\n",
        );
    let config = parse_ok(&text);
    assert!(
        !config.subscribers[0].adaptive_concurrency,
        "erp inherits the default"
    );
    assert!(
        config.subscribers[1].adaptive_concurrency,
        "slack overrides it"
    );
}

#[test]
fn applies_defaults_and_overrides() {
    let config = parse_ok(VALID);
    assert_eq!(config.subscribers.len(), 2);
    let erp = &config.subscribers[0];
    assert_eq!(erp.name, "erp");
    assert_eq!(erp.timeout, Duration::from_secs(5));
    assert_eq!(erp.retry.max_attempts, 4);
    assert_eq!(erp.retry.initial_interval, Duration::from_secs(1));
    assert_eq!(erp.secrets.len(), 1);
    assert_eq!(erp.mode, Mode::Binary);
    let slack = &config.subscribers[1];
    assert_eq!(slack.mode, Mode::Structured);
    assert_eq!(slack.concurrency, 2);
    assert!(
        erp.adaptive_concurrency && slack.adaptive_concurrency,
        "adaptive by default"
    );
    assert_eq!(slack.retry.max_attempts, 4);
    assert_eq!(slack.retry.initial_interval, Duration::from_millis(50));
    assert!(slack.retry.retry_on.contains(503) && !slack.retry.retry_on.contains(408));
    assert!(erp.retry.retry_on.contains(408) && !erp.retry.retry_on.contains(404));
    assert_eq!(config.routes.len(), 2);
    assert!(config.routes[1].filter.is_none());
    assert_eq!(config.server.max_body_size, 1024 * 1024);
    assert_eq!(config.storage.durability, Durability::Strict);
}

#[test]
fn data_and_sql_filter_errors_name_line_and_key() {
    check_error(
        &VALID.replace(
            "- prefix: { type: com.shop.order. }",
            "- sql: \"type = 'x' AND (\"",
        ),
        19,
        "routes[0].filters[0].sql",
        "invalid CESQL: at character 17: the expression ends too early",
    );
    check_error(
        &VALID.replace(
            "- prefix: { type: com.shop.order. }",
            "- sql: \"LOWER(type, 1) = 'x'\"",
        ),
        19,
        "routes[0].filters[0].sql",
        "no function LOWER with 2 argument(s)",
    );
    check_error(
        &VALID.replace(
            "- prefix: { type: com.shop.order. }",
            "- data: { path: $.total, gt: 1, lt: 5 }",
        ),
        19,
        "routes[0].filters[0].data",
        "exactly one operator",
    );
    check_error(
        &VALID.replace(
            "- prefix: { type: com.shop.order. }",
            "- data: { path: total, exists: true }",
        ),
        19,
        "routes[0].filters[0].data",
        "is not a data path",
    );
    check_error(
        &VALID.replace(
            "- prefix: { type: com.shop.order. }",
            "- data: { path: $.ip, cidr: 10.0.0.0/40 }",
        ),
        19,
        "routes[0].filters[0].data",
        "prefix length",
    );
    check_error(
        &VALID.replace(
            "- prefix: { type: com.shop.order. }",
            "- data: { path: $.ip, between: [1, 2] }",
        ),
        19,
        "",
        "routes[0].filters[0].data: unknown field `between`",
    );
    let config = parse_ok(&VALID.replace(
        "- prefix: { type: com.shop.order. }",
        "- data: { path: $.total, gte: 100 }\n      - sql: \"EXISTS subject\"",
    ));
    assert!(matches!(
        config.routes[0].filter,
        Some(Filter::All(ref filters)) if matches!(filters[..], [Filter::Data(_), Filter::Sql(_), Filter::Not(_)])
    ));
}

#[test]
fn receiver_auth_errors_name_line_and_key_and_never_the_secret() {
    let with_auth = |auth: &str| {
        VALID.replace(
            "    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
            &format!("    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n    auth: {auth}\n"),
        )
    };
    check_error(
        &with_auth("{ bearer: t1, basic: { username: u, password: p } }"),
        9,
        "subscribers.erp.auth",
        "exactly one method",
    );
    check_error(
        &with_auth("{ bearer: { token: t1, in: cookie } }"),
        9,
        "subscribers.erp.auth.bearer.in",
        "header",
    );
    check_error(
        &with_auth("{ basic: { username: u, password: 'file:/nonexistent/pw' } }"),
        9,
        "subscribers.erp.auth.basic.password",
        "cannot read the credential file",
    );
    check_error(
        &with_auth("{ oauth2: { token_url: 'nope', client_id: c, client_secret: s } }"),
        9,
        "subscribers.erp.auth.oauth2.token_url",
        "not a valid URL",
    );
    let config = parse_ok(&with_auth(
        "{ basic: { username: shop, password: hunter2-secret } }",
    ));
    let debug = format!("{config:?}");
    assert!(
        debug.contains("Credential(<redacted>)") && !debug.contains("hunter2"),
        "{debug}"
    );
}

#[test]
fn endpoint_tls_files_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let with = |tls: &str| {
        VALID.replace(
            "    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
            &format!("    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n    tls: {tls}\n"),
        )
    };
    let cert = cert.display();
    check_error(
        &with(&format!("{{ client_cert: '{cert}' }}")),
        9,
        "subscribers.erp.tls",
        "client_cert and client_key go together",
    );
    check_error(
        &with(&format!(
            "{{ client_cert: '{cert}', client_key: '{cert}' }}"
        )),
        9,
        "subscribers.erp.tls.client_key",
        "no PEM block with \"PRIVATE KEY\"",
    );
    check_error(
        &with("{ ca: /nonexistent/ca.pem }"),
        9,
        "subscribers.erp.tls.ca",
        "cannot read",
    );
    let config = parse_ok(&with(&format!("{{ ca: '{cert}' }}")));
    let tls = config.subscribers[0].tls.as_ref().unwrap();
    assert!(tls.identity_pem.is_none() && tls.roots_pem.is_some());
}

#[test]
fn batch_and_ordering_are_checked() {
    let with = |extra: &str| {
        VALID.replace(
            "    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
            &format!("    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n{extra}"),
        )
    };
    check_error(
        &with("    batch: { max_events: 0 }\n"),
        9,
        "subscribers.erp.batch.max_events",
        "1 to 10000",
    );
    check_error(
        &with("    batch: {}\n    ordering: { key: subject }\n"),
        9,
        "subscribers.erp.batch",
        "cannot be combined with ordering",
    );
    check_error(
        &with("    ordering: { key: Subject }\n"),
        9,
        "subscribers.erp.ordering.key",
        "not a CloudEvents attribute name",
    );
    let config = parse_ok(&with("    batch: { max_wait: 250ms }\n"));
    assert_eq!(
        config.subscribers[0].batch,
        Some(Batch {
            max_events: 100,
            max_wait: Duration::from_millis(250)
        })
    );
}

#[test]
fn errors_name_file_line_and_key() {
    check_error(
        &VALID.replace("to: [erp, slack]", "to: [erp, ghost]"),
        21,
        "routes[0].to[1]",
        "unknown subscriber \"ghost\"",
    );
    check_error(
        &VALID.replace("http://127.0.0.1:9001/hook", "not a url"),
        7,
        "subscribers.erp.url",
        "not a valid URL",
    );
    check_error(
        &VALID.replace("http://127.0.0.1:9001/hook", "ftp://x/y"),
        7,
        "subscribers.erp.url",
        "http",
    );
    check_error(
        &VALID.replace("- prefix:", "- prefx:"),
        19,
        "",
        "unknown field `prefx`, expected one of `exact`",
    );
    check_error(
        &VALID.replace("    mode: structured", "    mood: structured"),
        11,
        "",
        "unknown field `mood`",
    );
    check_error(
        &VALID.replace("name: everything", "name: orders"),
        22,
        "routes[1].name",
        "duplicate route name",
    );
    check_error(
        &VALID.replace("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "hunter2"),
        8,
        "subscribers.erp.secret",
        "whsec_",
    );
    check_error(
        &VALID.replace("timeout: 5s", "timeout: soon"),
        2,
        "",
        "invalid duration",
    );
    check_error(
        &VALID.replace("url: http://127.0.0.1:9001/hook", "url: ${ERP_URL}"),
        7,
        "",
        "ERP_URL",
    );
    check_error(
        &VALID.replace("{ type: com.shop.order. }", "{ Type: x }"),
        19,
        "routes[0].filters[0].prefix.Type",
        "attribute name",
    );
    check_error(
        &VALID.replace("to: [slack]", "to: []"),
        23,
        "routes[1].to",
        "at least one",
    );
    check_error(
        &VALID.replace("concurrency: 2", "concurrency: 0"),
        12,
        "subscribers.slack.concurrency",
        "at least 1",
    );
    check_error(
        &VALID.replace("\"5xx\"", "\"6xx\""),
        15,
        "subscribers.slack.retry.retry_on[1]",
        "status code",
    );
}

#[test]
fn duplicate_subscriber_names_are_errors() {
    let text = VALID.replace("  slack:\n", "  erp:\n");
    let errors = parse(&text, Path::new("routes.yaml"), &no_env).unwrap_err();
    assert!(errors.to_string().contains("duplicate"), "{errors}");
}

#[test]
fn secrets_are_redacted() {
    let config = parse_ok(VALID);
    let printed = format!("{:?}", config.subscribers[0]);
    assert!(
        !printed.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        "{printed}"
    );
}

#[test]
fn environment_fills_variables() {
    let env = |name: &str| (name == "ERP_URL").then(|| "http://127.0.0.1:7/erp".to_owned());
    let text = VALID.replace("url: http://127.0.0.1:9001/hook", "url: ${ERP_URL}");
    let config = parse(&text, Path::new("routes.yaml"), &env).unwrap();
    assert_eq!(config.subscribers[0].url.as_str(), "http://127.0.0.1:7/erp");
}

#[test]
fn secrets_and_keys_come_from_files_and_are_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let signing = write("signing", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n");
    let token = write("token", "admin-token-from-a-file\n");
    let key = write("key", "publisher-key-from-a-file\n");
    let hook = write("hook", "hook-secret-from-a-file\n");
    let config = parse_ok(&format!(
        "admin: {{ token: 'file:{token}' }}
api_keys:
  shop: {{ key: 'file:{key}', types: [com.example.] }}
sources:
  gh: {{ verify: github, secret: 'file:{hook}', source: /gh }}
subscribers:
  erp: {{ url: 'http://127.0.0.1:9001/', secret: 'file:{signing}' }}
routes:
  - {{ name: all, to: [erp] }}
"
    ));
    assert_eq!(
        config.admin.token.as_deref(),
        Some("admin-token-from-a-file")
    );
    assert_eq!(config.subscribers[0].secrets.len(), 1);
    assert!(config.api_keys[0]
        .digest
        .matches(&TokenDigest::of("publisher-key-from-a-file")));
    assert_eq!(
        config.sources[0].secrets[0].key(),
        b"hook-secret-from-a-file"
    );
    let printed = format!("{}\n{config:?}", summary::summary(&config));
    for secret in [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "publisher-key-from-a-file",
        "hook-secret-from-a-file",
    ] {
        assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
    }
    assert!(printed.contains("POST /hooks/gh") && printed.contains("API key required"));
}

#[test]
fn source_and_key_errors_name_line_and_key() {
    let base =
        "subscribers:\n  a: { url: 'http://x.example/' }\nroutes:\n  - { name: r, to: [a] }\n";
    check_error(
        &format!("{base}sources:\n  s: {{ verify: gitlab, secret: x, source: /s }}\n"),
        6,
        "sources.s.verify",
        "unknown scheme",
    );
    check_error(
        &format!("{base}sources:\n  s: {{ verify: hmac, secret: x, source: /s }}\n"),
        6,
        "sources.s.hmac",
        "is required",
    );
    check_error(
        &format!("{base}sources:\n  s:\n    verify: standard_webhooks\n    secret: not-whsec\n    source: /s\n"),
        8,
        "sources.s.secret",
        "whsec_",
    );
    check_error(
        &format!("{base}sources:\n  s:\n    verify: github\n    secret: x\n    source: /s\n    type: {{ header: A, pointer: /b }}\n"),
        10,
        "sources.s.type",
        "exactly one",
    );
    check_error(
        &format!("{base}api_keys:\n  k: {{ key: short }}\n"),
        6,
        "api_keys.k.key",
        "at least 16",
    );
    check_error(
        &format!("{base}server:\n  max_headers: 500\n"),
        6,
        "server.max_headers",
        "1 to 96",
    );
}

#[test]
fn every_schema_is_compiled_at_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("com.example.good.json"),
        r#"{"type":"object"}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("com.example.bad.json"), r#"{"type": 5}"#).unwrap();
    std::fs::write(dir.path().join("README.md"), "not a schema").unwrap();
    let text = format!(
        "schemas:\n  dir: '{}'\nsubscribers:\n  a: {{ url: 'http://x.example/' }}\nroutes:\n  - {{ name: r, to: [a] }}\n",
        dir.path().display()
    );
    check_error(
        &text,
        2,
        "schemas.dir",
        "com.example.bad.json is not a valid JSON Schema",
    );
    std::fs::remove_file(dir.path().join("com.example.bad.json")).unwrap();
    let config = parse_ok(&text);
    let types: Vec<&str> = config.schemas.files().map(|(ty, _)| ty).collect();
    assert_eq!(types, ["com.example.good"]);
    check_error(
        &text.replace(&dir.path().display().to_string(), "/no/such/folder"),
        2,
        "schemas.dir",
        "cannot read the folder",
    );
}

#[test]
fn the_example_sources_parse_once_uncommented() {
    let text = include_str!("../../routes.yaml");
    let mut inside = false;
    let uncommented: Vec<String> = text
        .lines()
        .map(|line| {
            if line.starts_with("# sources:") {
                inside = true;
            } else if !line.starts_with("# ") {
                inside = false;
            }
            match line.strip_prefix("# ") {
                Some(rest) if inside => rest.to_owned(),
                _ => line.to_owned(),
            }
        })
        .collect();
    let env = |name: &str| {
        name.ends_with("_WEBHOOK_SECRET")
            .then(|| "an-example-secret".to_owned())
    };
    let config = parse(&uncommented.join("\n"), Path::new("routes.yaml"), &env)
        .unwrap_or_else(|errors| panic!("{errors}"));
    let names: Vec<&str> = config
        .sources
        .iter()
        .map(|source| source.name.as_str())
        .collect();
    assert_eq!(names, ["github", "shopify", "stripe"]);
}

#[test]
fn sled_flushes_on_its_own_interval() {
    let config = parse_ok(VALID);
    assert_eq!(config.storage.flush_interval, Duration::from_millis(200));
    assert_eq!(config.storage.state_flush_interval, Duration::from_secs(1));
    let config = parse_ok(&format!("storage:\n  state_flush_interval: 3s\n{VALID}"));
    assert_eq!(config.storage.state_flush_interval, Duration::from_secs(3));
    check_error(
        &format!("storage:\n  state_flush_interval: 0s\n{VALID}"),
        2,
        "storage.state_flush_interval",
        "greater than zero",
    );
}

#[test]
fn the_commit_delay_is_bounded_and_may_be_off() {
    let config = parse_ok(VALID);
    assert_eq!(config.storage.commit_delay, Duration::from_micros(100));
    let config = parse_ok(&format!("storage:\n  commit_delay: 0s\n{VALID}"));
    assert_eq!(config.storage.commit_delay, Duration::ZERO);
    let config = parse_ok(&format!("storage:\n  commit_delay: 250us\n{VALID}"));
    assert_eq!(config.storage.commit_delay, Duration::from_micros(250));
    check_error(
        &format!("storage:\n  commit_delay: 1s\n{VALID}"),
        2,
        "storage.commit_delay",
        "at most 10ms",
    );
}
