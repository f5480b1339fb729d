//! The `fanout` command line: parses arguments, loads the configuration, starts telemetry and
//! calls one command. No business logic lives here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

/// A CloudEvents event router: durable, signed, retried fan-out to webhooks.
#[derive(Parser)]
#[command(name = "fanout", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve: accept events on POST /events and deliver them.
    Serve {
        /// The routes file.
        #[arg(long, env = "FANOUT_CONFIG", default_value = "routes.yaml")]
        config: PathBuf,
        /// Where the store lives (default: server.data_dir in the routes file, else ./fanout-data).
        #[arg(long, env = "FANOUT_DATA")]
        data: Option<PathBuf>,
        /// Address to listen on (default: server.listen in the routes file, else 0.0.0.0:8080).
        #[arg(long, env = "FANOUT_LISTEN")]
        listen: Option<SocketAddr>,
    },
    /// Validate a routes file and print a summary; exit code 1 on errors.
    Check {
        /// The routes file.
        #[arg(default_value = "routes.yaml", env = "FANOUT_CONFIG")]
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = |name: &str| std::env::var(name).ok();
    match cli.command {
        Command::Check { file } => match fanout::config::load(&file, &env) {
            Ok(config) => {
                print!("{}", fanout::config::summary::summary(&config));
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                eprintln!("{} error(s)", errors.0.len());
                ExitCode::FAILURE
            }
        },
        Command::Serve {
            config,
            data,
            listen,
        } => {
            init_tracing();
            let mut loaded = match fanout::config::load(&config, &env) {
                Ok(loaded) => loaded,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::FAILURE;
                }
            };
            if let Some(data) = data {
                loaded.server.data_dir = data;
            }
            if let Some(listen) = listen {
                loaded.server.listen = listen;
            }
            match serve(loaded) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(
                        error = format!("{error:#}"),
                        "fanout stopped with an error."
                    );
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}

#[tokio::main]
async fn serve(config: fanout::config::Config) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(config.server.listen)
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let shutdown = CancellationToken::new();
    let running = fanout::app::start(config, listener, shutdown.clone()).await?;
    println!("listening on {}", running.addr);
    tokio::spawn(async move {
        wait_for_signal().await;
        shutdown.cancel();
    });
    running.wait().await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
