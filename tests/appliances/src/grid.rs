//! The gwx grid as VMs on one private segment, as the grid scenarios boot it: gw1 and gw2
//! (the gwx appliance), the backend, and a client (the backend image under another host
//! name: busybox's nslookup and wget). Addresses are those of the gwx appliance's grid
//! (`images/files/gwx/grid.toml`).

use std::path::Path;
use std::time::Instant;

use testbed::vm::{Nic, VirtualNet, Vm, VmOptions};

use crate::{Appliance, appliance};

/// The name the gateways' DNS answers for the web service.
pub const NAME: &str = "web.grid.example";
/// The gateways' public addresses (and name servers), gw1 then gw2.
pub const GATEWAYS: [&str; 2] = ["203.0.113.11", "203.0.113.12"];

/// Options for the four VMs, in this order: backend, gw1, gw2, client; all on `net`.
pub fn vms(net: &VirtualNet) -> [VmOptions; 4] {
    let (gwx, backend) = (appliance("gwx"), appliance("backend"));
    let on = |a: &Appliance, host: &str, args: &[&str]| {
        let mut append = vec![format!("appliance.hostname={host}")];
        append.extend(args.iter().map(|s| s.to_string()));
        a.vm(host, vec![Nic::net(net)], &append)
    };
    [
        on(&backend, "backend", &["appliance.net=eth0=192.0.2.2/24"]),
        on(
            &gwx,
            "gw1",
            &[
                "appliance.gateway=gw1",
                "appliance.net=eth0=203.0.113.11/24,eth0=192.0.2.11/24",
            ],
        ),
        on(
            &gwx,
            "gw2",
            &[
                "appliance.gateway=gw2",
                "appliance.net=eth0=203.0.113.12/24,eth0=192.0.2.12/24",
            ],
        ),
        // The client has a leg in the private range too, to knock on the backend's door.
        on(
            &backend,
            "client",
            &["appliance.net=eth0=203.0.113.100/24,eth0=192.0.2.100/24"],
        ),
    ]
}

/// The backend's page, as the backend image serves it.
pub fn page() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../images/files/backend/index.html");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The addresses in busybox nslookup's answer for [`NAME`] (the server's own address,
/// printed first, is skipped).
pub fn addresses(nslookup: &str) -> Vec<String> {
    let answer = nslookup.split_once(NAME).map_or("", |(_, a)| a);
    answer
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Address:"))
        .map(|a| a.trim().to_owned())
        .collect()
}

/// Boots the four VMs side by side and prints each one's boot-to-ready time.
pub fn boot(opts: [VmOptions; 4]) -> [Vm; 4] {
    let started = Instant::now();
    let vms = Vm::boot_all(opts.into()).expect("four VMs booted to ready");
    for vm in &vms {
        println!(
            "{}: ready {:.1} s after start ({})",
            vm.name(),
            vm.boot_to_ready().as_secs_f64(),
            vm.accelerator()
        );
    }
    println!(
        "all four ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    <[Vm; 4]>::try_from(vms).unwrap()
}
