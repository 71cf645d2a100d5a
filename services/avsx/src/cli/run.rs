//! `avsx run`: the SMTP front with the perimeter behind it, the metrics endpoint,
//! SIGHUP (recipient map, TLS certificate) and SIGTERM (drain).

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use appliance::Runtime;
use appliance::cli::CommonArgs;
use avsx::config::Config;
use avsx::metrics::Metrics;
use avsx::perimeter::Perimeter;
use avsx::recipients::Recipients;
use avsx::relay::Relay;
use avsx::scan::Scanners;
use avsx::smtp::Server;
use avsx::stats::Store;

pub fn run(common: &CommonArgs, config: Config) -> anyhow::Result<ExitCode> {
    let rt = common.runtime().context("starting the async runtime")?;
    rt.block_on(async {
        let mut runtime = Runtime::new("avsx", env!("CARGO_PKG_VERSION"))
            .with_drain_timeout(config.runtime.drain_timeout());
        let listener = config.runtime.bind_metrics().await?;
        let metrics = Metrics::register(runtime.registry());
        let recipients = Arc::new(
            Recipients::new(&config.recipients)
                .await
                .context("loading the recipients")?,
        );
        let perimeter = Perimeter {
            recipients: recipients.clone(),
            scanners: Scanners::new(&config.scan, metrics.clone()),
            relay: Relay::new(&config.relay)
                .context("setting up the relay")?
                .helo(&config.smtp.hostname),
            stats: Store::open(&config.stats.path).context("opening the stats store")?,
            metrics: metrics.clone(),
        };
        let server = Server::bind(&config.smtp, Arc::new(perimeter), metrics)
            .await
            .context("starting the SMTP listeners")?;
        tracing::info!(listen = ?server.local_addrs(), hostname = %config.smtp.hostname, "serving SMTP");
        let tls = server.tls_reloader();
        let shutdown = runtime.shutdown();
        let smtp = tokio::spawn(server.run(shutdown));
        runtime
            .run(listener, || {
                let (recipients, tls) = (recipients.clone(), tls.clone());
                async move {
                    let n = recipients.reload_map().context("re-reading the recipient map")?;
                    tracing::info!(addresses = n, "recipient map re-read");
                    tls.reload().context("re-reading the TLS certificate")
                }
            })
            .await?;
        smtp.await.context("the SMTP server panicked")??;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// What `avsx check` prints: the config as it will be used.
pub fn summary(c: &Config) -> String {
    let mut s = String::new();
    let scanner = |x: &Option<avsx::config::Scanner>| {
        x.as_ref().map_or("off".to_owned(), |x| {
            format!(
                "{} (max {} bytes, timeout {} ms)",
                x.address, x.max_bytes, x.timeout_ms
            )
        })
    };
    let _ = writeln!(
        s,
        "smtp: {:?} as {}, TLS {}",
        c.smtp.listen,
        c.smtp.hostname,
        if c.smtp.tls.is_some() { "on" } else { "off" }
    );
    let _ = writeln!(
        s,
        "limits: {} bytes, {} recipients, {} connections ({} per IP)",
        c.smtp.max_message_bytes,
        c.smtp.max_recipients,
        c.smtp.max_connections,
        c.smtp.max_connections_per_ip
    );
    let _ = writeln!(
        s,
        "recipients: {:?}, map {}, LDAP {}",
        c.recipients.domains,
        c.recipients.map.display(),
        c.recipients.ldap.as_ref().map_or("off", |l| l.url.as_str())
    );
    let _ = writeln!(
        s,
        "scan: tag {} kill {}, spamd {}, clamd {}, on failure {:?}, oversize {:?}",
        c.scan.tag_level,
        c.scan.kill_level,
        scanner(&c.scan.spamd),
        scanner(&c.scan.clamd),
        c.scan.on_failure,
        c.scan.oversize
    );
    let _ = writeln!(s, "relay: {}", c.relay.address);
    let _ = writeln!(s, "stats: {}", c.stats.path.display());
    s
}
