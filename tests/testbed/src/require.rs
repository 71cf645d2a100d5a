//! Preconditions a test states up front. A test that cannot run here fails with a message
//! saying what is missing and how to get it; it never passes silently.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Fails unless the process runs as root (namespaces, nftables and most daemons need it).
pub fn root() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(Error::Missing {
            need: "root".into(),
            hint: "network namespaces and nftables need CAP_NET_ADMIN; run the tests as root"
                .into(),
        })
    }
}

/// Finds `program` on PATH or in the sbin directories (daemons live there and a non-login
/// shell's PATH may lack them); fails naming the Debian package that provides it.
pub fn tool(program: &str, package: &str) -> Result<PathBuf> {
    find(program).ok_or_else(|| Error::Missing {
        need: format!("`{program}`"),
        hint: format!("install the Debian package `{package}` (scripts/setup does)"),
    })
}

fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn missing_tool_names_the_package() {
        let err = super::tool("no-such-tool-xyz", "no-such-package").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`no-such-tool-xyz`"), "{msg}");
        assert!(msg.contains("no-such-package"), "{msg}");
    }

    #[test]
    fn finds_a_tool_in_sbin() {
        // `ip` lives in /usr/sbin or /sbin on Debian, outside many PATHs.
        let ip = super::tool("ip", "iproute2").unwrap();
        assert!(ip.ends_with("ip"));
    }
}
