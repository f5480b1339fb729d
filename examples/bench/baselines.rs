//! Baselines measured in the same run, so every headline is a ratio to what this machine can do
//! right now: B0 write+fdatasync, B1 raw sled, B2 a bare actix-web 202 handler, B3 fanout's HTTP
//! client posting straight to the receiver.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};

/// B0: 1 KiB `pwrite` + `fdatasync` in a loop: durable writes per second.
pub fn b0_fdatasync(dir: &std::path::Path, duration: Duration) -> f64 {
    let path = dir.join("b0.dat");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let block = vec![7u8; 1024];
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < duration {
        file.write_at(&block, count * 1024).unwrap();
        file.sync_data().unwrap();
        count += 1;
    }
    let _ = std::fs::remove_file(path);
    count as f64 / started.elapsed().as_secs_f64()
}

/// B1: raw sled inserts of `size` bytes, one flush per 64: inserts per second.
pub fn b1_sled(dir: &std::path::Path, size: usize, duration: Duration) -> f64 {
    let path = dir.join("b1.sled");
    let db = sled::Config::new()
        .path(&path)
        .cache_capacity(64 << 20)
        .open()
        .unwrap();
    let tree = db.open_tree("events").unwrap();
    let value = vec![7u8; size];
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < duration {
        let mut batch = sled::Batch::default();
        for _ in 0..64 {
            batch.insert(&count.to_be_bytes(), value.as_slice());
            count += 1;
        }
        tree.apply_batch(batch).unwrap();
        db.flush().unwrap();
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    drop(tree);
    drop(db);
    let _ = std::fs::remove_dir_all(path);
    rate
}

/// B2's server: run in a child process pinned to the router's CPU. Prints its address, then
/// answers every POST with 202 and nothing else (the body is read, as fanout must).
pub fn serve_b2() -> std::io::Result<()> {
    actix_web::rt::System::new().block_on(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        println!("listening on {}", listener.local_addr()?);
        std::io::stdout().flush()?;
        HttpServer::new(|| {
            App::new().route(
                "/events",
                web::post().to(|_body: web::Bytes| async { HttpResponse::Accepted().finish() }),
            )
        })
        .workers(1)
        .keep_alive(crate::SERVER_KEEP_ALIVE)
        .listen(listener)?
        .run()
        .await
    })
}

/// B3's client: run in a child process pinned to the router's CPU; posts `size` bytes with
/// fanout's own `Sender` from `connections` tasks for `seconds`, prints the requests per second
/// and the process's CPU time per request in µs.
pub fn run_b3(url: &str, seconds: f64, connections: usize, size: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let sender = fanout::delivery::sender::Sender::new(fanout::config::Outbound {
            allow_networks: vec!["127.0.0.0/8".parse().unwrap()],
            https_only: false,
        })
        .unwrap();
        let url = url::Url::parse(url).unwrap();
        let as_delivery = std::env::var_os("FANOUT_B3_AS_DELIVERY").is_some();
        // What a binary-mode delivery of the benchmark's event carries: its `ce-` headers and
        // content type, and its data as the body, encoded by fanout's own code.
        let message = as_delivery.then(|| {
            let text = crate::load::event_body("b3", size, crate::receiver::now_ns());
            let event = fanout::ingress::structured::parse_one(text.as_bytes()).unwrap();
            fanout::delivery::request::encode(&event, fanout::config::Mode::Binary, &[]).unwrap()
        });
        let body = match &message {
            Some(message) => message.body.clone(),
            None => bytes::Bytes::from(vec![b'x'; size]),
        };
        let duration = Duration::from_secs_f64(seconds);
        let started = Instant::now();
        let cpu_at_start = crate::router::cpu_of(std::process::id()).unwrap_or_default();
        let mut tasks = Vec::new();
        for worker in 0..connections {
            let (sender, url, body) = (sender.clone(), url.clone(), body.clone());
            let template = message.as_ref().map(|message| message.headers.clone());
            tasks.push(tokio::spawn(async move {
                let secrets = [fanout::config::Secret::parse(crate::receiver::SECRET).unwrap()];
                let mut count = 0u64;
                while started.elapsed() < duration {
                    let id = format!("b3-{worker}-{count}");
                    let headers = match &template {
                        Some(template) => {
                            let mut headers = template.clone();
                            fanout::delivery::request::sign_into(
                                &mut headers,
                                &secrets,
                                &id,
                                1,
                                &body,
                            )
                            .unwrap();
                            headers
                        }
                        None => fanout::delivery::request::webhook_headers(&secrets, &id, 1, &body)
                            .unwrap(),
                    };
                    if let Ok(response) = sender
                        .post(url.clone(), headers, body.clone(), Duration::from_secs(10))
                        .await
                    {
                        if response.status == 200 {
                            count += 1;
                        }
                    }
                }
                count
            }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.unwrap();
        }
        let rate = total as f64 / started.elapsed().as_secs_f64();
        let cpu = crate::router::cpu_of(std::process::id())
            .unwrap_or_default()
            .saturating_sub(cpu_at_start);
        println!("{rate} {}", cpu.as_secs_f64() * 1e6 / total.max(1) as f64);
    });
}
