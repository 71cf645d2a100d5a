//! `gwx bans ...`: the ban engine daemon, fail2ban-regex for gwx, and the operator's
//! view of the ban sets (list, add, del, stats, report).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use appliance::Runtime;
use appliance::cli::CommonArgs;
use gwx::bans::daemon::Engine;
use gwx::bans::guard::Guard;
use gwx::bans::jails::{BansConfig, MAX_BANTIME};
use gwx::bans::metrics::BanMetrics;
use gwx::bans::nftset::{BanSets, Listed, Placement};
use gwx::bans::report;
use gwx::bans::state::{SavedBan, StateFile};
use gwx::inventory::Inventory;
use gwx::nft::command::Nft;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

mod regex;

/// Default jails file on an appliance.
const DEFAULT_JAILS: &str = "/etc/gwx/bans.toml";

#[derive(Debug, clap::Args)]
pub struct BansArgs {
    /// The jails file (TOML): state directory, allowlist, one [[jail]] per log.
    #[arg(long, global = true, env = "GWX_JAILS", value_name = "PATH", default_value = DEFAULT_JAILS)]
    pub jails: PathBuf,
    #[command(subcommand)]
    pub command: BansCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum BansCommand {
    /// Run the ban engine: follow each jail's log, ban into the gateway's nftables ban
    /// sets, keep the bans in the state file; reload the jails on SIGHUP.
    Run,
    /// Test a filter against a log, as fail2ban-regex does: matched lines, hosts and a
    /// summary. Needs neither root nor nftables.
    Regex(regex::RegexArgs),
    /// List the bans in the ban sets with their time left and jail.
    List {
        /// One JSON object per ban.
        #[arg(long)]
        json: bool,
    },
    /// Ban addresses by hand (IPv6 addresses are widened to the ban prefix).
    Add {
        #[arg(required = true, value_name = "ADDRESS")]
        addresses: Vec<std::net::IpAddr>,
        /// How long: seconds or "1h", "2d"... (default: hardening.ban_timeout_secs).
        #[arg(long, value_name = "DURATION")]
        time: Option<String>,
    },
    /// Lift bans (give the address, or any address of a banned network).
    Del {
        #[arg(required = true, value_name = "ADDRESS")]
        addresses: Vec<std::net::IpAddr>,
    },
    /// Counts of bans per jail and family.
    Stats,
    /// Bans grouped by network, with reverse-DNS names of the banned addresses.
    Report {
        /// IPv4 grouping prefix.
        #[arg(long, default_value_t = 24)]
        v4_prefix: u8,
        /// IPv6 grouping prefix.
        #[arg(long, default_value_t = 64)]
        v6_prefix: u8,
        /// Seconds each reverse lookup may take.
        #[arg(long, default_value_t = 2.0)]
        dns_timeout: f64,
        /// Skip the reverse lookups.
        #[arg(long)]
        no_dns: bool,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub fn dispatch(common: &CommonArgs, args: &BansArgs) -> anyhow::Result<ExitCode> {
    let inventory_path = &super::inventory_path(common);
    if let BansCommand::Regex(r) = &args.command {
        return regex::run(r);
    }
    let inventory = super::load_inventory(inventory_path)?;
    // Only the commands that place bans or run the engine need the jails (state file,
    // allowlists): listing what is in the kernel must work with a broken jails file.
    let config = || BansConfig::load(&args.jails).context("loading the jails file");
    let sets = BanSets::new(Nft::new(), &inventory.hardening);
    match &args.command {
        BansCommand::Regex(_) => unreachable!("handled above"),
        BansCommand::Run => run(common, inventory_path, &args.jails, inventory, config()?),
        BansCommand::List { json } => {
            let mut bans = sets.list()?;
            bans.sort_by_key(|a| a.net);
            let mut out = std::io::stdout().lock();
            for b in &bans {
                if *json {
                    let v = serde_json::json!({"net": b.net.to_string(), "expires_secs": b.expires.as_secs(), "jail": b.jail});
                    writeln!(out, "{v}")?;
                } else {
                    writeln!(
                        out,
                        "{:<24} {:>8}s  {}",
                        b.net.to_string(),
                        b.expires.as_secs(),
                        b.jail
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BansCommand::Add { addresses, time } => {
            let timeout = match time {
                Some(t) => parse_time(t)?,
                None => Duration::from_secs(inventory.hardening.ban_timeout_secs),
            };
            add(&inventory, &config()?, &sets, addresses, timeout)
        }
        BansCommand::Del { addresses } => del(&inventory, &config()?, &sets, addresses),
        BansCommand::Stats => {
            print!("{}", stats(&sets.list()?));
            Ok(ExitCode::SUCCESS)
        }
        BansCommand::Report {
            v4_prefix,
            v6_prefix,
            dns_timeout,
            no_dns,
            json,
        } => {
            let mut groups = report::group(&sets.list()?, *v4_prefix, *v6_prefix);
            if !no_dns {
                let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
                rt.block_on(report::resolve(
                    &mut groups,
                    Duration::from_secs_f64(dns_timeout.clamp(0.01, 60.0)),
                ));
            }
            if *json {
                println!("{}", serde_json::to_string_pretty(&groups)?);
            } else {
                print!("{}", report::render(&groups));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn parse_time(t: &str) -> anyhow::Result<Duration> {
    let d = match t.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(t)
            .map_err(|e| super::UsageError(format!("--time {t:?}: {e}")))?,
    };
    if d.is_zero() || d > MAX_BANTIME {
        return Err(
            super::UsageError(format!("--time {t:?}: expected 1 second to 365 days")).into(),
        );
    }
    Ok(d)
}

/// `gwx bans add`: refuses protected networks (gateways, backends, loopback) outright.
fn add(
    inventory: &Inventory,
    config: &BansConfig,
    sets: &BanSets,
    addresses: &[std::net::IpAddr],
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let guard = Guard::for_grid(inventory);
    let mut placements = Vec::new();
    for a in addresses {
        let net = inventory.hardening.ban_net(*a);
        guard
            .check(&net)
            .map_err(|r| super::UsageError(format!("not banning {a}: {r}")))?;
        placements.push(Placement {
            net,
            timeout,
            jail: MANUAL.to_owned(),
            replace: true,
        });
    }
    let state = StateFile::new(config.state_file());
    let lock = state.lock()?;
    sets.add(&placements)?;
    let mut saved = state.read(&lock)?;
    let until = gwx::bans::counter::now_millis() + timeout.as_millis() as i64;
    for p in &placements {
        saved.bans.retain(|b| b.net != p.net);
        saved.bans.push(SavedBan {
            net: p.net,
            jail: MANUAL.to_owned(),
            until,
        });
        println!("banned {} for {}s", p.net, timeout.as_secs());
    }
    state.write(&lock, &saved)?;
    Ok(ExitCode::SUCCESS)
}

/// The jail name of bans placed by hand.
const MANUAL: &str = "manual";

/// `gwx bans del`: lifts the bans covering each address.
fn del(
    inventory: &Inventory,
    config: &BansConfig,
    sets: &BanSets,
    addresses: &[std::net::IpAddr],
) -> anyhow::Result<ExitCode> {
    let state = StateFile::new(config.state_file());
    let lock = state.lock()?;
    let listed = sets.list()?;
    let mut nets = Vec::new();
    for a in addresses {
        let net = inventory.hardening.ban_net(*a);
        if !listed.iter().any(|l| l.net == net) {
            return Err(super::UsageError(format!("{a} is not banned (no ban of {net})")).into());
        }
        nets.push(net);
    }
    sets.delete(&nets)?;
    let mut saved = state.read(&lock)?;
    saved.bans.retain(|b| !nets.contains(&b.net));
    state.write(&lock, &saved)?;
    for n in &nets {
        println!("unbanned {n}");
    }
    Ok(ExitCode::SUCCESS)
}

fn stats(bans: &[Listed]) -> String {
    let mut per_jail: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for b in bans {
        let e = per_jail
            .entry(if b.jail.is_empty() { "?" } else { &b.jail })
            .or_default();
        if b.net.addr().is_ipv4() {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    let mut out = format!(
        "{:<24} {:>8} {:>8} {:>8}\n",
        "jail", "ipv4", "ipv6", "total"
    );
    for (jail, (v4, v6)) in &per_jail {
        out.push_str(&format!("{jail:<24} {v4:>8} {v6:>8} {:>8}\n", v4 + v6));
    }
    let (v4, v6) = per_jail
        .values()
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
    out.push_str(&format!("{:<24} {v4:>8} {v6:>8} {:>8}\n", "all", v4 + v6));
    out
}

/// `gwx bans run`.
fn run(
    common: &CommonArgs,
    inventory_path: &Path,
    jails_path: &Path,
    inventory: Inventory,
    config: BansConfig,
) -> anyhow::Result<ExitCode> {
    let rt = common.runtime().context("starting the async runtime")?;
    rt.block_on(serve(inventory_path, jails_path, inventory, config))?;
    Ok(ExitCode::SUCCESS)
}

/// A running engine and how to stop it.
struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Loads the engine, places the saved bans again (before the daemon reports ready:
/// ready means the bans are in force), and starts it.
async fn start(
    inventory: Inventory,
    config: BansConfig,
    metrics: &BanMetrics,
    shutdown: &CancellationToken,
) -> anyhow::Result<Running> {
    let engine = Engine::new(config, inventory, Nft::new(), metrics.clone())?;
    let restored = tokio::task::spawn_blocking(move || engine.restore())
        .await
        .context("restoring the saved bans panicked")??;
    let stop = shutdown.child_token();
    let token = stop.clone();
    let shutdown = shutdown.clone();
    let engine = restored.start(token).await;
    let task = tokio::spawn(async move {
        let r = engine
            .await
            .context("the ban engine panicked")
            .and_then(|r| r);
        if let Err(e) = &r {
            // The daemon is useless without its engine: stop the whole process.
            tracing::error!(error = %format!("{e:#}"), "ban engine failed");
            shutdown.cancel();
        }
        r
    });
    Ok(Running { stop, task })
}

async fn serve(
    inventory_path: &Path,
    jails_path: &Path,
    inventory: Inventory,
    config: BansConfig,
) -> anyhow::Result<()> {
    let mut runtime = Runtime::new("gwx", env!("CARGO_PKG_VERSION"))
        .with_drain_timeout(config.runtime.drain_timeout());
    let metrics = BanMetrics::register(runtime.registry());
    let listener = config.runtime.bind_metrics().await?;
    let shutdown = runtime.shutdown();
    let running = Mutex::new(Some(start(inventory, config, &metrics, &shutdown).await?));
    let (inventory_path, jails_path) = (inventory_path.to_owned(), jails_path.to_owned());
    runtime
        .run(listener, || async {
            // A new config must load completely (filters included) before the running
            // engine is stopped; it takes a snapshot, and the new one restores from it.
            let inventory = super::load_inventory(&inventory_path)?;
            let config = BansConfig::load(&jails_path).context("loading the jails file")?;
            Engine::new(
                config.clone(),
                inventory.clone(),
                Nft::new(),
                BanMetrics::default(),
            )?;
            let mut slot = running.lock().await;
            if let Some(old) = slot.take() {
                old.stop.cancel();
                // Its error, if it had one, was logged when it happened.
                let _ = old.task.await;
            }
            *slot = Some(start(inventory, config, &metrics, &shutdown).await?);
            Ok::<_, anyhow::Error>(())
        })
        .await?;
    if let Some(r) = running.lock().await.take() {
        r.stop.cancel();
        r.task.await.context("the ban engine panicked")??;
    }
    Ok(())
}
