//! The real `fanout` binary as a child process: crash safety under SIGKILL, graceful SIGTERM,
//! and the `check`, `match` and operator commands.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{client, event, wait_until, Reply, TestReceiver};

const BINARY: &str = env!("CARGO_BIN_EXE_fanout");

/// A running `fanout serve`, with the address it printed.
struct Process {
    child: Child,
    url: String,
    admin: String,
}

impl Process {
    fn start(config: &Path, data: &Path) -> Process {
        let mut child = Command::new(BINARY)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--config",
            ])
            .arg(config)
            .arg("--data")
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the fanout binary starts");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("listening on ") {
                    let _ = sender.send(address.to_owned());
                }
                if let Some(address) = line.strip_prefix("admin listening on ") {
                    let _ = sender.send(address.to_owned());
                }
            }
        });
        let address = receiver
            .recv_timeout(Duration::from_secs(20))
            .expect("fanout prints its address");
        let admin = receiver
            .recv_timeout(Duration::from_secs(20))
            .expect("fanout prints its admin address");
        Process {
            child,
            url: format!("http://{address}"),
            admin: format!("http://{admin}"),
        }
    }

    fn signal(&self, name: &str) {
        // The shell's builtin `kill`, so the test needs no extra package.
        let status = Command::new("sh")
            .args(["-c", &format!("kill -{name} {}", self.child.id())])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "fanout did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes one order event in structured mode; returns the status.
async fn publish(http: &reqwest::Client, url: &str, id: &str) -> u16 {
    http.post(format!("{url}/events"))
        .header("content-type", "application/cloudevents+json")
        .body(event("com.example.shop.order.created", id).to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn write_config(dir: &Path, url: &str) -> std::path::PathBuf {
    let path = dir.join("routes.yaml");
    let text = format!(
        "
outbound: {{ allow_networks: [127.0.0.0/8] }}
subscribers:
  warehouse:
    url: '{url}'
    concurrency: 16
    retry: {{ initial_interval: 50ms, max_interval: 500ms, max_attempts: 10000, max_age: 1h }}
routes:
  - name: all
    to: [warehouse]
"
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn sigkill_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    // The subscriber's port, closed for now: every attempt is refused.
    let port_holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let subscriber_address = port_holder.local_addr().unwrap();
    drop(port_holder);
    let config = write_config(dir.path(), &format!("http://{subscriber_address}/hook"));
    let data = dir.path().join("data");

    let mut router = Process::start(&config, &data);
    let total = 2_000;
    let http = client();
    let next = Arc::new(AtomicUsize::new(0));
    let mut publishers = Vec::new();
    for _ in 0..8 {
        let (http, next, url) = (http.clone(), Arc::clone(&next), router.url.clone());
        publishers.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= total {
                    break;
                }
                assert_eq!(publish(&http, &url, &format!("crash-{index}")).await, 202);
            }
        }));
    }
    for publisher in publishers {
        publisher.await.unwrap();
    }
    // Every event was acknowledged; kill the router without warning.
    router.child.kill().unwrap();
    router.child.wait().unwrap();

    let router = Process::start(&config, &data);
    let listener =
        TcpListener::bind(subscriber_address).expect("the subscriber's port is free again");
    let receiver = TestReceiver::on(listener, |_, _| Reply::ok()).await;
    let unique_ids = || {
        receiver
            .received()
            .iter()
            .map(|received| received.event_id())
            .collect::<BTreeSet<String>>()
    };
    wait_until(
        "all 2,000 events delivered",
        Duration::from_secs(120),
        || unique_ids().len() >= total,
    )
    .await;
    let expected: BTreeSet<String> = (0..total).map(|index| format!("crash-{index}")).collect();
    assert_eq!(unique_ids(), expected);
    let webhook_ids: BTreeSet<String> = receiver
        .received()
        .iter()
        .map(|received| received.header("webhook-id").unwrap().to_owned())
        .collect();
    assert_eq!(
        webhook_ids.len(),
        total,
        "one webhook-id per delivery, stable across the restart"
    );
    drop(router);
}

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = TestReceiver::start().await;
    let config = write_config(dir.path(), &receiver.url);
    let data = dir.path().join("data");
    let mut router = Process::start(&config, &data);
    assert_eq!(publish(&client(), &router.url, "term-1").await, 202);
    receiver.wait_for(1).await;
    router.signal("TERM");
    let status = router.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "exit status {status:?}");
    // The store was closed cleanly: a new process opens it and does not deliver term-1 again
    // beyond at-least-once (its cursor was saved).
    let router = Process::start(&config, &data);
    assert_eq!(publish(&client(), &router.url, "term-2").await, 202);
    let got = receiver.wait_for(2).await;
    let ids: Vec<String> = got.iter().map(|received| received.event_id()).collect();
    assert_eq!(ids, ["term-1", "term-2"]);
}

#[test]
fn check_accepts_the_repository_routes_file() {
    let output = Command::new(BINARY)
        .args(["check", concat!(env!("CARGO_MANIFEST_DIR"), "/routes.yaml")])
        .env_clear()
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("OK"));
    for name in [
        "storefront",
        "erp",
        "warehouse",
        "pim",
        "slack",
        "orders",
        "stock-alerts",
    ] {
        assert!(
            stdout.contains(name),
            "{name} missing from the summary:\n{stdout}"
        );
    }
    assert!(!stdout.contains("whsec_"), "secrets must not be printed");
}

#[test]
fn check_reports_every_error_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(
        &path,
        "subscribers:\n  erp:\n    url: not-a-url\nroutes:\n  - name: orders\n    to: [erp, ghost]\n",
    )
    .unwrap();
    let output = Command::new(BINARY)
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("broken.yaml:3: subscribers.erp.url"),
        "{stderr}"
    );
    assert!(stderr.contains("broken.yaml:6: routes[0].to"), "{stderr}");
    assert!(stderr.contains("ghost"), "{stderr}");
}

/// Runs the binary with `args`; returns (success, stdout, stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BINARY).args(args).output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn operator_commands_talk_to_a_running_binary() {
    let receiver = TestReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("routes.yaml");
    let token = "process-admin-token-123456";
    std::fs::write(
        &config,
        format!(
            "admin: {{ token: {token} }}\noutbound: {{ allow_networks: [127.0.0.0/8] }}\nsubscribers:\n  warehouse: {{ url: '{}' }}\nroutes:\n  - name: all\n    to: [warehouse]\n",
            receiver.url
        ),
    )
    .unwrap();
    let process = Process::start(&config, &dir.path().join("data"));
    let (admin, url) = (process.admin.clone(), process.url.clone());
    let operator = move |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--url", admin.as_str(), "--token", token]);
        run(&all)
    };

    let (ok, out, err) = run(&[
        "publish",
        "--url",
        &url,
        "--type",
        "com.example.shop.order.created",
        "--source",
        "/cli",
        "--id",
        "cli-1",
        "--data",
        "{\"total\": 12}",
    ]);
    assert!(ok, "{out}{err}");
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].event_id(), "cli-1");
    assert_eq!(&got[0].body[..], b"{\"total\": 12}");
    wait_until("the delivery is recorded", Duration::from_secs(20), || {
        let (_, out, _) = operator(&["status", "--json"]);
        out.contains("\"delivered_total\": 1")
    })
    .await;

    let (ok, out, err) = operator(&["status"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("SUBSCRIBER") && out.contains("warehouse") && out.contains("active"),
        "{out}"
    );
    let (ok, out, err) = operator(&["events", "show", "cli-1", "--source", "/cli"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("warehouse") && out.contains("delivered") && out.contains("status 200"),
        "{out}"
    );
    let (ok, out, err) = operator(&["dead-letters", "list", "--json"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "[]");
    let (ok, out, err) = operator(&[
        "dead-letters",
        "replay",
        "--subscriber",
        "warehouse",
        "--dry-run",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("0 dead letter(s) would be replayed"), "{out}");
    let (ok, out, err) = operator(&["reload"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("reloaded"), "{out}");
    // A wrong token is refused with the API's message.
    let (ok, _, err) = run(&[
        "status",
        "--url",
        &process.admin,
        "--token",
        "wrong-token-0000000000",
    ]);
    assert!(!ok);
    assert!(err.contains("401"), "{err}");
}

#[test]
fn match_explains_which_routes_an_event_reaches() {
    let dir = tempfile::tempdir().unwrap();
    let event_path = dir.path().join("event.json");
    std::fs::write(
        &event_path,
        serde_json::json!({
            "specversion": "1.0", "id": "1", "source": "/shop/eu",
            "type": "com.example.shop.order.created", "data": {"total": 10}
        })
        .to_string(),
    )
    .unwrap();
    let routes = concat!(env!("CARGO_MANIFEST_DIR"), "/routes.yaml");
    let (ok, out, err) = run(&["match", "--config", routes, event_path.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("MATCH"), "{out}");
    assert!(out.contains("✓") && out.contains("✗"), "{out}");
    assert!(out.contains("subscribers: "), "{out}");
    // An invalid event names the attribute.
    std::fs::write(&event_path, r#"{"specversion":"1.0","id":"1","type":"t"}"#).unwrap();
    let (ok, _, err) = run(&["match", "--config", routes, event_path.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("source"), "{err}");
}

#[tokio::test]
async fn sighup_reloads_the_routes_file() {
    let receiver = TestReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("routes.yaml");
    let token = "process-admin-token-654321";
    let write = |extra: &str| {
        std::fs::write(
            &config,
            format!(
                "admin: {{ token: {token}, watch_interval: 0s }}\noutbound: {{ allow_networks: [127.0.0.0/8] }}\nsubscribers:\n  warehouse: {{ url: '{}' }}\n{extra}routes:\n  - name: all\n    to: [warehouse]\n",
                receiver.url
            ),
        )
        .unwrap();
    };
    write("");
    let process = Process::start(&config, &dir.path().join("data"));
    write(&format!("  erp: {{ url: '{}' }}\n", receiver.url));
    process.signal("HUP");
    let http = client();
    let admin = process.admin.clone();
    let names = || async {
        let value: serde_json::Value = http
            .get(format!("{admin}/api/v1/subscribers"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        value["subscribers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|subscriber| subscriber["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !names().await.contains(&"erp".to_owned()) {
        assert!(Instant::now() < deadline, "SIGHUP did not reload the file");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
