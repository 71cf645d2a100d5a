//! The L4 forwarders gwx is compared with, each a real Debian daemon started in a
//! namespace and configured for a list of `listen -> backend` pairs with a given number
//! of workers:
//!
//! * HAProxy in `mode tcp` (`haproxy -db -f CONF`), `nbthread` = workers;
//! * nginx's `stream` module (`libnginx-mod-stream`, loaded with `load_module`),
//!   `worker_processes` = workers.
//!
//! Both keep their shipped defaults otherwise (buffer sizes, no splicing), and both get
//! connection limits high enough never to cap a benchmark.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Result, bail};
use testbed::{Netns, require};

use crate::daemon::{Daemon, write_file};

/// One forwarded port: connections to `listen` are relayed to `backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub listen: SocketAddr,
    pub backend: SocketAddr,
}

/// Most concurrent connections a forwarder accepts: far above what a benchmark opens,
/// and low enough for HAProxy's file descriptors (about two per connection) to fit the
/// usual hard limit of a container or service.
const MAX_CONNECTIONS: usize = 4096;

/// Where Debian's `libnginx-mod-stream` puts the module.
const NGINX_STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// HAProxy in `mode tcp` with `workers` threads, forwarding every pair, in `ns`.
pub fn haproxy(ns: &Netns, forwards: &[Forward], workers: usize) -> Result<Daemon> {
    let program = require::tool("haproxy", "haproxy")?;
    let dir = Daemon::dir("haproxy")?;
    let conf = write_file(&dir, "haproxy.cfg", &haproxy_config(forwards, workers))?;
    let mut cmd = ns.command(&program.to_string_lossy());
    cmd.arg("-db").arg("-f").arg(&conf);
    Daemon::start(ns, "haproxy", dir, cmd, &listens(forwards))
}

/// nginx with only the `stream` module's proxy and `workers` worker processes,
/// forwarding every pair, in `ns`.
pub fn nginx_stream(ns: &Netns, forwards: &[Forward], workers: usize) -> Result<Daemon> {
    let program = require::tool("nginx", "nginx-light")?;
    if !Path::new(NGINX_STREAM_MODULE).exists() {
        bail!(
            "nginx stream: {NGINX_STREAM_MODULE} is missing: install the Debian package \
             `libnginx-mod-stream` (scripts/setup does)"
        );
    }
    let dir = Daemon::dir("nginx-stream")?;
    let conf = write_file(
        &dir,
        "nginx.conf",
        &nginx_stream_config(dir.path(), forwards, workers),
    )?;
    let mut cmd = ns.command(&program.to_string_lossy());
    cmd.arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .args(["-e", "stderr", "-g", "daemon off;"]);
    Daemon::start(ns, "nginx-stream", dir, cmd, &listens(forwards))
}

fn listens(forwards: &[Forward]) -> Vec<SocketAddr> {
    forwards.iter().map(|f| f.listen).collect()
}

fn haproxy_config(forwards: &[Forward], workers: usize) -> String {
    let mut conf = format!(
        "\
global
    nbthread {workers}
    maxconn {MAX_CONNECTIONS}

defaults
    mode tcp
    timeout connect 5s
    timeout client 1m
    timeout server 1m
"
    );
    for (i, f) in forwards.iter().enumerate() {
        conf += &format!(
            "
listen forward{i}
    bind {listen}
    server backend {backend}
",
            listen = f.listen,
            backend = f.backend
        );
    }
    conf
}

fn nginx_stream_config(dir: &Path, forwards: &[Forward], workers: usize) -> String {
    let mut servers = String::new();
    for f in forwards {
        servers += &format!(
            "    server {{\n        listen {};\n        proxy_pass {};\n    }}\n",
            f.listen, f.backend
        );
    }
    format!(
        "\
load_module {NGINX_STREAM_MODULE};
worker_processes {workers};
pid {dir}/nginx.pid;
lock_file {dir}/nginx.lock;
error_log stderr;
events {{
    worker_connections {MAX_CONNECTIONS};
}}
stream {{
{servers}}}
",
        dir = dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwards() -> Vec<Forward> {
        vec![
            Forward {
                listen: "198.51.100.1:10001".parse().unwrap(),
                backend: "192.0.2.2:5201".parse().unwrap(),
            },
            Forward {
                listen: "198.51.100.1:10002".parse().unwrap(),
                backend: "192.0.2.2:8080".parse().unwrap(),
            },
        ]
    }

    #[test]
    fn haproxy_forwards_every_pair_with_the_given_threads() {
        let conf = haproxy_config(&forwards(), 2);
        assert!(conf.contains("nbthread 2\n"), "{conf}");
        assert!(conf.contains("mode tcp\n"), "{conf}");
        assert!(conf.contains("bind 198.51.100.1:10001\n    server backend 192.0.2.2:5201\n"));
        assert!(conf.contains("bind 198.51.100.1:10002\n    server backend 192.0.2.2:8080\n"));
    }

    #[test]
    fn nginx_stream_forwards_every_pair_with_the_given_workers() {
        let conf = nginx_stream_config(Path::new("/tmp/x"), &forwards(), 1);
        assert!(conf.starts_with(&format!("load_module {NGINX_STREAM_MODULE};\n")));
        assert!(conf.contains("worker_processes 1;\n"), "{conf}");
        assert!(conf.contains("listen 198.51.100.1:10001;\n        proxy_pass 192.0.2.2:5201;"));
        assert!(conf.contains("listen 198.51.100.1:10002;\n        proxy_pass 192.0.2.2:8080;"));
        assert!(!conf.contains("http {"), "{conf}");
    }
}
