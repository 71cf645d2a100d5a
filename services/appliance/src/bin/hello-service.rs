//! `hello-service`: the smallest complete service on the shared runtime, and the pattern
//! every real one follows: parse the shared CLI, start logging, load and validate the
//! config (exit 64 on a bad one, every problem printed), bind, register metrics, serve
//! until a signal, reload on SIGHUP, drain on SIGTERM.
//!
//! It greets each TCP client with the configured greeting and echoes lines back until
//! the client sends `bye`; a held connection is what a drain waits for. The lifecycle
//! tests run it as a child process, the way systemd would; it is not
//! meant to be deployed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, RwLock};

use appliance::cli::{CommonArgs, EXIT_CONFIG, EXIT_FAILURE};
use appliance::config::{self, Problems, Validate};
use appliance::{Runtime, RuntimeConfig, logging};
use clap::Parser;
use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Greets TCP clients; an example of a service on the appliance runtime.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Where clients connect.
    listen: SocketAddr,
    /// First line sent to each client.
    greeting: String,
    #[serde(default)]
    runtime: RuntimeConfig,
}

impl Validate for Config {
    fn validate(&self, problems: &mut Problems) {
        problems.check(
            !self.greeting.trim().is_empty() && !self.greeting.contains('\n'),
            "greeting",
            "expected one non-empty line",
        );
        self.runtime.validate_at("runtime", problems);
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = logging::init(args.common.log_format, &args.common.log_level) {
        eprintln!("hello-service: {e}");
        return ExitCode::from(EXIT_CONFIG as u8);
    }
    let path = args
        .common
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("hello.toml"));
    let config: Config = match config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hello-service: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let rt = args.common.runtime().expect("tokio runtime");
    match rt.block_on(serve(path, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hello-service: {e}");
            ExitCode::from(EXIT_FAILURE as u8)
        }
    }
}

async fn serve(path: PathBuf, config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let mut runtime = Runtime::new("hello", env!("CARGO_PKG_VERSION"))
        .with_drain_timeout(config.runtime.drain_timeout());
    let connections = Counter::<u64>::default();
    runtime.registry().register(
        "connections",
        "Client connections accepted",
        connections.clone(),
    );

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let metrics = config
        .runtime
        .bind_metrics()
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(listen = %config.listen, "accepting clients");

    let greeting = Arc::new(RwLock::new(config.greeting));
    let (shutdown, tracker) = (runtime.shutdown(), runtime.tracker());
    let accept_greeting = greeting.clone();
    tracker.clone().spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((stream, peer)) => {
                    connections.inc();
                    let text = accept_greeting.read().unwrap().clone();
                    tracker.spawn(async move {
                        if let Err(e) = greet(stream, &text).await {
                            tracing::debug!(%peer, error = %e, "client connection ended with an error");
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "accept failed"),
            }
        }
        // Dropping the listener here closes the port: new clients are refused while
        // the connections already accepted finish.
    });

    let stopped = runtime.run(metrics, || reload(&path, &greeting)).await?;
    tracing::info!(?stopped, "exiting");
    Ok(())
}

/// Re-reads the config; only the greeting can change without a restart.
async fn reload(path: &Path, greeting: &RwLock<String>) -> Result<(), config::ConfigError> {
    let fresh: Config = config::load(path)?;
    *greeting.write().unwrap() = fresh.greeting;
    Ok(())
}

async fn greet(stream: TcpStream, greeting: &str) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    write.write_all(format!("{greeting}\n").as_bytes()).await?;
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        write.write_all(format!("{line}\n").as_bytes()).await?;
        if line == "bye" {
            break;
        }
    }
    Ok(())
}
