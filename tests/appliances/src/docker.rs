//! A Docker engine as a test host for the OCI images: images loaded with `docker load`,
//! private internal networks, containers on them, all removed when the [`Docker`]
//! handle drops (also when the test panics).
//!
//! Names carry the creating pid (`appliance-tests-<pid>-<n>-<label>`), so containers,
//! networks and loaded images left by a test process killed with SIGKILL are swept away
//! by the next one, as [`testbed::Netns`] does for namespaces.
//!
//! The engine is driven with its CLI (`docker`), the interface an operator uses; no API
//! client library.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use testbed::{Error, Result};

/// What every name this module gives starts with.
pub const PREFIX: &str = "appliance-tests-";
/// The tag added to an image this module loaded (`<repository>:<MARK>-<pid>`): it tells
/// the sweep of a later run which images a dead run loaded.
const MARK: &str = "loaded-by-appliance-tests";

static SEQ: AtomicUsize = AtomicUsize::new(0);
static SWEEP: Once = Once::new();

/// Whether a Docker engine answers here: its server version, or why not (no `docker`
/// CLI, or `docker info` failed and what it said).
pub fn engine() -> std::result::Result<String, String> {
    let out = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map_err(|e| format!("cannot run the docker CLI: {e}"))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() && !version.is_empty() {
        Ok(version)
    } else {
        Err(format!(
            "`docker info` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// An image in the engine.
#[derive(Debug, Clone)]
pub struct Image {
    /// `repository:tag`, as `docker load` named it.
    pub reference: String,
    /// The image ID: `sha256:` of its config.
    pub id: String,
    /// Whether this handle loaded it (it was not there, or was another image): then it
    /// is removed on drop.
    pub loaded_here: bool,
}

/// A network made by [`Docker::internal_network`].
#[derive(Debug, Clone)]
pub struct Network {
    pub name: String,
    /// The host's bridge interface of the network (`br-<id>`).
    pub bridge: String,
}

/// A container to create: the image, its networks (the first one at creation, the others
/// connected before it starts), environment, capabilities and sysctls.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// Shows in the container's name; also its host name.
    pub label: String,
    pub image: String,
    /// (network name, IPv4 address on it).
    pub networks: Vec<(String, String)>,
    pub env: Vec<(String, String)>,
    pub cap_add: Vec<String>,
    pub sysctls: Vec<(String, String)>,
}

/// The engine's objects a test made; removed on drop.
#[derive(Debug)]
pub struct Docker {
    prefix: String,
    containers: Vec<String>,
    networks: Vec<String>,
    /// Image references to remove on drop: the marker tag, then the loaded reference.
    images: Vec<String>,
}

impl Docker {
    /// A handle for one test; first removes what dead test processes left behind.
    pub fn new() -> Result<Docker> {
        testbed::require::tool("docker", "docker.io")?;
        SWEEP.call_once(sweep_stale);
        Ok(Docker {
            prefix: format!(
                "{PREFIX}{}-{}-",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            ),
            containers: Vec::new(),
            networks: Vec::new(),
            images: Vec::new(),
        })
    }

    /// The name of this handle's object `label`.
    pub fn name(&self, label: &str) -> String {
        format!("{}{label}", self.prefix)
    }

    /// `docker load -i tar`: the one reference it loaded.
    fn load(&self, tar: &Path) -> Result<String> {
        let out = docker(&["load", "-i", &tar.to_string_lossy()])?;
        let refs: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("Loaded image: "))
            .map(str::trim)
            .collect();
        match refs[..] {
            [reference] => Ok(reference.to_owned()),
            _ => Err(Error::Command {
                command: format!("docker load -i {}", tar.display()),
                status: "success".into(),
                stderr: format!("expected one `Loaded image: REF` line, got: {}", out.trim()),
            }),
        }
    }

    /// The ID of image `reference`.
    pub fn image_id(&self, reference: &str) -> Result<String> {
        docker(&["image", "inspect", "--format", "{{.Id}}", reference]).map(|s| s.trim().to_owned())
    }

    /// Loads `tar`, whose image is `reference`, and removes it on drop unless the engine
    /// already had that very image under that reference.
    pub fn load_image(&mut self, tar: &Path, reference: &str) -> Result<Image> {
        // `docker load` moves the reference to the loaded image: note what it named.
        let before = self.image_id(reference).ok();
        let loaded = self.load(tar)?;
        if loaded != reference {
            return Err(Error::Command {
                command: format!("docker load -i {}", tar.display()),
                status: "success".into(),
                stderr: format!("loaded {loaded}, expected {reference}"),
            });
        }
        let id = self.image_id(reference)?;
        let image = Image {
            reference: loaded,
            loaded_here: before.as_deref() != Some(id.as_str()),
            id,
        };
        if image.loaded_here {
            let repository = reference
                .rsplit_once(':')
                .map_or(reference, |(repo, _)| repo);
            let mark = format!("{repository}:{MARK}-{}", std::process::id());
            docker(&["tag", reference, &mark])?;
            self.images.push(mark);
            self.images.push(reference.to_owned());
        }
        Ok(image)
    }

    /// A user-defined bridge network on `subnet`, `--internal` (nothing is routed off
    /// the host), in which the host takes no part: no address on the bridge
    /// (`inhibit_ipv4`: Docker would give it the subnet's first address) and no ARP
    /// answers from it (`arp_ignore=8`: Linux answers ARP for any of its addresses on any
    /// interface). Without both, a host that owns an address of the test's subnet (a
    /// documentation range, so it should not, but a sandbox may) would capture the
    /// containers' traffic to that address, and would see its own default gateway
    /// become a local address.
    pub fn internal_network(&mut self, label: &str, subnet: &str) -> Result<Network> {
        let name = self.name(label);
        let id = docker(&[
            "network",
            "create",
            "--driver",
            "bridge",
            "--internal",
            "--subnet",
            subnet,
            "--opt",
            "com.docker.network.bridge.inhibit_ipv4=true",
            "--label",
            "appliance-tests=1",
            &name,
        ])
        .map_err(|e| match e {
            Error::Command {
                command,
                status,
                stderr,
            } if stderr.contains("overlap") => Error::Command {
                command,
                status,
                stderr: format!(
                    "{stderr} (another network uses {subnet}: `docker network ls`; \
                         another test run holding it must end first)"
                ),
            },
            e => e,
        })?;
        self.networks.push(name.clone());
        let id = id.trim();
        let bridge = format!("br-{}", &id[..12.min(id.len())]);
        let arp_ignore = format!("/proc/sys/net/ipv4/conf/{bridge}/arp_ignore");
        std::fs::write(&arp_ignore, "8").map_err(|source| Error::Io {
            what: format!("write 8 to {arp_ignore} (network {name})"),
            source,
        })?;
        Ok(Network { name, bridge })
    }

    /// Creates the container of `spec`, connects its networks and starts it; returns
    /// its name.
    pub fn run(&mut self, spec: &Spec) -> Result<String> {
        let name = self.name(&spec.label);
        let mut args: Vec<String> = vec![
            "create".into(),
            "--name".into(),
            name.clone(),
            "--hostname".into(),
            spec.label.clone(),
            "--label".into(),
            "appliance-tests=1".into(),
        ];
        if let Some((network, ip)) = spec.networks.first() {
            args.extend([
                "--network".into(),
                network.clone(),
                "--ip".into(),
                ip.clone(),
            ]);
        } else {
            args.extend(["--network".into(), "none".into()]);
        }
        for (k, v) in &spec.env {
            args.extend(["--env".into(), format!("{k}={v}")]);
        }
        for cap in &spec.cap_add {
            args.extend(["--cap-add".into(), cap.clone()]);
        }
        for (k, v) in &spec.sysctls {
            args.extend(["--sysctl".into(), format!("{k}={v}")]);
        }
        args.push(spec.image.clone());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&args)?;
        self.containers.push(name.clone());
        for (network, ip) in spec.networks.iter().skip(1) {
            docker(&["network", "connect", "--ip", ip, network, &name])?;
        }
        docker(&["start", &name])?;
        Ok(name)
    }

    /// `docker stop -t SECS`: the image's stop signal, SIGKILL after `timeout`.
    pub fn stop(&self, container: &str, timeout: Duration) -> Result<()> {
        docker(&["stop", "-t", &timeout.as_secs().to_string(), container]).map(drop)
    }

    /// The container's state: (`.State.Status`, `.State.ExitCode`).
    pub fn state(&self, container: &str) -> Result<(String, i32)> {
        let out = docker(&[
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.ExitCode}}",
            container,
        ])?;
        let (status, code) = out.trim().split_once(' ').unwrap_or((out.trim(), ""));
        Ok((status.to_owned(), code.parse().unwrap_or(-1)))
    }

    /// The container's console output so far (stdout and stderr).
    pub fn logs(&self, container: &str) -> Result<String> {
        let out = output(Command::new("docker").args(["logs", container]))?;
        if !out.status.success() {
            return Err(failed(&format!("docker logs {container}"), &out));
        }
        Ok(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    /// Runs `sh -c script` in the container; the raw result (status, stdout, stderr).
    pub fn sh(&self, container: &str, script: &str) -> Result<Output> {
        output(Command::new("docker").args(["exec", container, "sh", "-c", script]))
    }

    /// Runs `sh -c script` in the container; its stdout, or an error with its stderr.
    pub fn sh_ok(&self, container: &str, script: &str) -> Result<String> {
        let out = self.sh(container, script)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(failed(
                &format!("docker exec {container} sh -c {script:?}"),
                &out,
            ))
        }
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        for c in self.containers.drain(..).rev() {
            let _ = docker(&["rm", "--force", "--volumes", &c]);
        }
        for n in self.networks.drain(..).rev() {
            let _ = docker(&["network", "rm", &n]);
        }
        for i in self.images.drain(..) {
            let _ = docker(&["rmi", &i]);
        }
    }
}

fn output(cmd: &mut Command) -> Result<Output> {
    let shown = format!("{cmd:?}").replace('"', "");
    cmd.output().map_err(|source| Error::Io {
        what: format!("run {shown}"),
        source,
    })
}

fn failed(command: &str, out: &Output) -> Error {
    Error::Command {
        command: command.to_owned(),
        status: out.status.to_string(),
        stderr: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr).trim(),
            match String::from_utf8_lossy(&out.stdout).trim() {
                "" => String::new(),
                s => format!(" (stdout: {s})"),
            }
        ),
    }
}

/// `docker ARGS`; stdout, or an error with stderr.
fn docker(args: &[&str]) -> Result<String> {
    let out = output(Command::new("docker").args(args))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(failed(&format!("docker {}", args.join(" ")), &out))
    }
}

/// Whether `appliance-tests-<pid>-...` names a process that is gone.
fn dead_owner(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .and_then(|rest| rest.split('-').next())
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
}

/// Removes the containers, networks and loaded images of test processes that no longer
/// exist. Errors are ignored: a sweep must not fail a test.
fn sweep_stale() {
    let list = |args: &[&str]| -> Vec<String> {
        docker(args)
            .map(|out| out.lines().map(|l| l.trim().to_owned()).collect())
            .unwrap_or_default()
    };
    for c in list(&[
        "ps",
        "--all",
        "--filter",
        "name=^appliance-tests-",
        "--format",
        "{{.Names}}",
    ]) {
        if dead_owner(&c) {
            let _ = docker(&["rm", "--force", "--volumes", &c]);
        }
    }
    for n in list(&[
        "network",
        "ls",
        "--filter",
        "name=^appliance-tests-",
        "--format",
        "{{.Name}}",
    ]) {
        if dead_owner(&n) {
            let _ = docker(&["network", "rm", &n]);
        }
    }
    // `<repository>:loaded-by-appliance-tests-<pid>`: the image was loaded by that run.
    for line in list(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]) {
        let Some((reference, id)) = line.split_once(' ') else {
            continue;
        };
        let Some((_, tag)) = reference.rsplit_once(':') else {
            continue;
        };
        let Some(pid) = tag.strip_prefix(MARK).and_then(|p| p.strip_prefix('-')) else {
            continue;
        };
        if pid
            .parse::<u32>()
            .is_ok_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        {
            // Every reference of that image: the run loaded it, nobody else did.
            let _ = docker(&["rmi", "--force", id]);
        }
    }
}
