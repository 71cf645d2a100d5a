//! nginx, the web server whose headers and TLS the auditor grades.
//!
//! Started as `nginx -p DIR -c DIR/nginx.conf -e stderr -g 'daemon off;'`: the prefix and
//! config are private, `-e stderr` sends the log nginx opens *before* reading its config
//! (Debian's default is a system path) into the server's own log, and `daemon off` keeps
//! the master in the foreground so [`Process`](crate::Process) owns it (the worker is in
//! its process group and dies with it).
//!
//! The config puts every path Debian compiles in under `/var` (temp dirs for bodies and
//! proxying, pid, lock, access log) into the private directory. `user root` lets the
//! worker read the document root inside the 0700 private directory. A fixed location,
//! `/.testbed-ready`, answers 200 for the readiness check, so a test is free to put
//! anything (or nothing) in the document root and to add directives with
//! [`Nginx::start_with`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Host, Running, Server, Setup, impl_server};
use crate::error::Result;
use crate::require;

/// A running nginx serving a private document root over plain HTTP.
#[derive(Debug)]
pub struct Nginx {
    run: Running,
    root: PathBuf,
    access_log: PathBuf,
}
impl_server!(Nginx);

impl Nginx {
    pub fn start(host: Host<'_>) -> Result<Nginx> {
        Self::start_with(host, "")
    }

    /// Starts nginx with `directives` added to its `server` block, e.g.
    /// `add_header X-Frame-Options DENY always;`.
    pub fn start_with(host: Host<'_>, directives: &str) -> Result<Nginx> {
        require::root()?;
        let nginx = require::tool("nginx", "nginx-light")?;

        let setup = Setup::new("nginx", host)?;
        let root = setup.mkdir("www")?;
        let tmp = setup.mkdir("tmp")?;
        let access_log = setup.path("access.log");
        let conf = setup.write(
            "nginx.conf",
            format!(
                "\
user root;
worker_processes 1;
pid {pid};
lock_file {lock};
error_log stderr;
events {{
    worker_connections 256;
}}
http {{
    types {{
        text/html html;
        text/plain txt;
        application/json json;
    }}
    default_type application/octet-stream;
    access_log {access_log};
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen {addr};
        server_name _;
        root {root};
        location = /.testbed-ready {{
            default_type text/plain;
            return 200 \"ready\\n\";
        }}
{directives}
    }}
}}
",
                pid = setup.path("nginx.pid").display(),
                lock = setup.path("nginx.lock").display(),
                access_log = access_log.display(),
                tmp = tmp.display(),
                addr = setup.addr(),
                root = root.display(),
            ),
        )?;

        let args = [
            "-p".into(),
            setup.path("").into_os_string(),
            "-c".into(),
            conf.into_os_string(),
            "-e".into(),
            "stderr".into(),
            "-g".into(),
            "daemon off;".into(),
        ];
        let request = format!(
            "GET /.testbed-ready HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            setup.addr()
        );
        let run = setup.launch(&nginx, &args, Duration::from_secs(20), |s| {
            let answer = s.talk(request.as_bytes(), |_| false)?;
            if answer.starts_with(b"HTTP/1.1 200 ") {
                Ok(())
            } else {
                Err(format!("answered {:?}", String::from_utf8_lossy(&answer)))
            }
        })?;
        Ok(Nginx {
            run,
            root,
            access_log,
        })
    }

    /// The document root: files put here are served at `/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn access_log(&self) -> &Path {
        &self.access_log
    }

    /// `http://IP:PORT/` joined with `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr(), path.trim_start_matches('/'))
    }
}
