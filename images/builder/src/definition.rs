//! An appliance definition (`images/appliances/NAME.toml`): which services run, with
//! which config files, host programs, kernel modules, sysctls and nftables ruleset.
//!
//! ```toml
//! name = "gwx"
//! description = "DDoS gateway in front of a hidden backend"
//! ready = "http://127.0.0.1:9100/healthz"     # or "tcp://127.0.0.1:25"
//! programs = ["/usr/sbin/nft"]                # host programs, bundled with their libraries
//! kernel_modules = ["nf_tables", "nft_ct"]    # loaded at boot, with their dependencies
//! nftables = "gwx/base.nft"                   # under images/files, loaded at boot
//!
//! [[service]]
//! name = "gwx"
//! binary = "gwx"                              # from the workspace's release build
//! command = ["--config", "/etc/gwx/grid.toml", "--gateway", "${APPLIANCE_GATEWAY}", "run"]
//!
//! [[setup]]                                  # run once at boot, before the services
//! name = "ruleset"
//! binary = "gwx"
//! command = ["--config", "/etc/gwx/grid.toml", "backend-ruleset", "--apply"]
//!
//! [[file]]
//! source = "gwx/grid.toml"                    # under images/files, or an absolute host path
//! path = "/etc/gwx/grid.toml"
//! mode = "0644"
//!
//! [sysctl]
//! "net.ipv4.ip_forward" = "1"
//! ```
//!
//! `${APPLIANCE_KEY}` in a command is the kernel command line's `appliance.key=VALUE`
//! (in a VM) or the container's environment variable `APPLIANCE_KEY` (in OCI).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// The appliance's name: host name, image name, file names.
    pub name: String,
    pub description: String,
    /// How the appliance knows it is ready: an HTTP URL answering 2xx, or a TCP
    /// address accepting connections. The console then says [`ready_marker`].
    pub ready: String,
    #[serde(default, rename = "service")]
    pub services: Vec<Service>,
    /// Commands run once at boot, in order, after the sysctls, addresses and ruleset and
    /// before the services (a setup step that fails is logged; boot goes on).
    #[serde(default, rename = "setup")]
    pub setup: Vec<Service>,
    /// Host programs (absolute paths) copied in with their shared libraries.
    #[serde(default)]
    pub programs: Vec<PathBuf>,
    #[serde(default, rename = "file")]
    pub files: Vec<FileSpec>,
    /// Kernel modules loaded at boot (VM images only), dependencies first.
    #[serde(default)]
    pub kernel_modules: Vec<String>,
    /// Applied at boot, in key order.
    #[serde(default)]
    pub sysctl: BTreeMap<String, String>,
    /// A ruleset under `images/files`, loaded with `nft -f` at boot.
    pub nftables: Option<PathBuf>,
}

/// A daemon the appliance runs and restarts when it exits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: String,
    /// A binary of the workspace's release build (`target/release/<binary>`), installed
    /// as `/usr/bin/<binary>` and run with `command` as its arguments. Without it,
    /// `command` is a program of the image (an absolute path) and its arguments.
    pub binary: Option<String>,
    #[serde(default)]
    pub command: Vec<String>,
}

impl Definition {
    /// Every command the image runs, services and setup steps: what needs a binary.
    pub fn commands(&self) -> impl Iterator<Item = &Service> {
        self.services.iter().chain(&self.setup)
    }
}

impl Service {
    /// The program and its arguments as the service's script runs them.
    pub fn argv(&self) -> Vec<String> {
        match &self.binary {
            Some(b) => std::iter::once(format!("/usr/bin/{b}"))
                .chain(self.command.iter().cloned())
                .collect(),
            None => self.command.clone(),
        }
    }
}

/// A file copied into the image: from `images/files`, or, with an absolute `source`,
/// from the build host (a file of a Debian package, like `programs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub source: PathBuf,
    pub path: PathBuf,
    #[serde(default = "default_mode")]
    pub mode: String,
}

fn default_mode() -> String {
    "0644".to_owned()
}

/// The console line an appliance prints once its readiness check passes.
pub fn ready_marker(name: &str) -> String {
    format!("appliance {name} ready")
}

/// How [`Definition::ready`] is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready {
    Http(String),
    Tcp { host: String, port: u16 },
}

impl Definition {
    /// Reads and validates a definition; every problem is named with its key.
    pub fn load(path: &Path) -> Result<Definition> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read the appliance definition {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("appliance definition {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Definition> {
        let def: Definition = toml::from_str(text)?;
        def.validate()?;
        Ok(def)
    }

    fn validate(&self) -> Result<()> {
        let mut problems = String::new();
        let mut problem = |key: &str, why: String| {
            let _ = writeln!(problems, "  {key}: {why}");
        };
        if !is_name(&self.name) {
            problem(
                "name",
                format!("{:?}: lower-case letters, digits and '-'", self.name),
            );
        }
        if let Err(e) = self.ready() {
            problem("ready", e.to_string());
        }
        let commands =
            (self.services.iter().enumerate()).map(|(i, s)| (format!("service[{i}]"), s));
        let setups = (self.setup.iter().enumerate()).map(|(i, s)| (format!("setup[{i}]"), s));
        for (key, s) in commands.chain(setups) {
            if !is_name(&s.name) {
                problem(&format!("{key}.name"), format!("{:?}", s.name));
            }
            match &s.binary {
                Some(b) if !is_name(b) => {
                    problem(&format!("{key}.binary"), format!("{b:?}"));
                }
                Some(_) => {}
                None if !s.command.first().is_some_and(|c| c.starts_with('/')) => problem(
                    &format!("{key}.command"),
                    "without `binary`, the command starts with a program's absolute path"
                        .to_owned(),
                ),
                None => {}
            }
            for arg in &s.command {
                // Each argument is put in double quotes in the service's script.
                if arg.contains(['"', '\\', '`', '\n']) {
                    problem(
                        &format!("{key}.command"),
                        format!("{arg:?}: no quotes, backslashes, backticks or newlines"),
                    );
                }
            }
        }
        for (i, p) in self.programs.iter().enumerate() {
            if !p.is_absolute() || has_dots(p) {
                problem(
                    &format!("programs[{i}]"),
                    format!("{}: an absolute path", p.display()),
                );
            }
        }
        for (i, f) in self.files.iter().enumerate() {
            if has_dots(&f.source) {
                problem(
                    &format!("file[{i}].source"),
                    format!(
                        "{}: relative to images/files, or a host file's absolute path",
                        f.source.display()
                    ),
                );
            }
            if !f.path.is_absolute() || has_dots(&f.path) {
                problem(
                    &format!("file[{i}].path"),
                    format!("{}: an absolute path in the image", f.path.display()),
                );
            }
            if let Err(e) = f.mode() {
                problem(&format!("file[{i}].mode"), e.to_string());
            }
        }
        for m in &self.kernel_modules {
            if m.is_empty() || !m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                problem("kernel_modules", format!("{m:?} is no module name"));
            }
        }
        for (k, v) in &self.sysctl {
            let key_ok = !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !key_ok {
                problem("sysctl", format!("{k:?} is no sysctl key"));
            }
            if v.is_empty() || v.contains(['\n', '\'']) {
                problem(&format!("sysctl.{k}"), format!("{v:?}"));
            }
        }
        if let Some(n) = &self.nftables
            && (n.is_absolute() || has_dots(n))
        {
            problem(
                "nftables",
                format!("{}: relative to images/files", n.display()),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("invalid:\n{}", problems.trim_end())
        }
    }

    pub fn ready(&self) -> Result<Ready> {
        if self.ready.starts_with("http://") {
            return Ok(Ready::Http(self.ready.clone()));
        }
        if let Some(addr) = self.ready.strip_prefix("tcp://")
            && let Some((host, port)) = addr.rsplit_once(':')
            && let Ok(port) = port.parse::<u16>()
            && !host.is_empty()
            && port != 0
        {
            return Ok(Ready::Tcp {
                host: host.to_owned(),
                port,
            });
        }
        bail!(
            "{:?}: an http:// URL or tcp://HOST:PORT (busybox's wget and nc check it)",
            self.ready
        )
    }
}

impl FileSpec {
    pub fn mode(&self) -> Result<u32> {
        match u32::from_str_radix(&self.mode, 8) {
            Ok(m) if m <= 0o7777 => Ok(m),
            _ => bail!("{:?}: an octal mode such as \"0644\"", self.mode),
        }
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
}

fn has_dots(p: &Path) -> bool {
    p.components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "gwx"
description = "gateway"
ready = "http://127.0.0.1:9100/healthz"
programs = ["/usr/sbin/nft"]
kernel_modules = ["nf_tables"]
nftables = "gwx/base.nft"

[[service]]
name = "gwx"
binary = "gwx"
command = ["--config", "/etc/gwx/grid.toml", "run"]

[[file]]
source = "gwx/grid.toml"
path = "/etc/gwx/grid.toml"

[sysctl]
"net.ipv4.ip_forward" = "1"
"#;

    #[test]
    fn a_good_definition_loads() {
        let d = Definition::parse(GOOD).unwrap();
        assert_eq!(d.services[0].argv()[..2], ["/usr/bin/gwx", "--config"]);
        assert_eq!(d.files[0].mode().unwrap(), 0o644);
        assert_eq!(
            d.ready().unwrap(),
            Ready::Http("http://127.0.0.1:9100/healthz".into())
        );
        assert_eq!(ready_marker(&d.name), "appliance gwx ready");
    }

    #[test]
    fn every_problem_is_named() {
        let text = GOOD
            .replace("name = \"gwx\"\ndescription", "name = \"GWX\"\ndescription")
            .replace("http://127.0.0.1:9100/healthz", "ftp://x")
            .replace("\"/usr/sbin/nft\"", "\"nft\"")
            .replace("path = \"/etc/gwx/grid.toml\"", "path = \"/etc/../x\"")
            .replace("\"nf_tables\"", "\"nf-tables;\"");
        let e = format!("{:#}", Definition::parse(&text).unwrap_err());
        for key in [
            "name:",
            "ready:",
            "programs[0]",
            "file[0].path",
            "kernel_modules",
        ] {
            assert!(e.contains(key), "{key} missing in {e}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = Definition::parse(&GOOD.replace("programs", "program")).unwrap_err();
        assert!(format!("{e:#}").contains("program"), "{e:#}");
    }

    #[test]
    fn tcp_readiness() {
        let d =
            Definition::parse(&GOOD.replace("http://127.0.0.1:9100/healthz", "tcp://127.0.0.1:25"))
                .unwrap();
        assert_eq!(
            d.ready().unwrap(),
            Ready::Tcp {
                host: "127.0.0.1".into(),
                port: 25
            }
        );
    }
}
