//! `gwx check`: validates the inventory and prints what it describes.

use std::path::Path;
use std::process::ExitCode;

use gwx::inventory::{Mode, ProxyProtocol};

pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let inv = super::load_inventory(path)?;
    println!("{}: grid `{}` is valid", path.display(), inv.grid.name);
    for g in &inv.gateways {
        let list = |a: &[std::net::IpAddr]| {
            a.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "  gateway {:<12} public {}  private {}",
            g.id,
            list(&g.public),
            list(&g.private)
        );
    }
    for s in &inv.services {
        let mode = match (s.mode, s.proxy_protocol) {
            (Mode::L3, _) => "l3 (kernel DNAT+SNAT)".to_owned(),
            (Mode::Proxy, ProxyProtocol::None) => "proxy".to_owned(),
            (Mode::Proxy, pp) => format!("proxy with PROXY {pp:?}").to_lowercase(),
        };
        println!(
            "  service {:<12} {}/{} -> {}  {mode}",
            s.name,
            s.protocol.as_str(),
            s.port,
            s.backend
        );
    }
    Ok(ExitCode::SUCCESS)
}
