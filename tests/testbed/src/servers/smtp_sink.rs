//! Postfix's `smtp-sink`, an SMTP server that accepts everything: the "internal mail
//! server" behind the perimeter, or any relay target a test needs.
//!
//! `-d DIR/mail/` dumps every transaction into its own file there, headed by what the
//! client said (`X-Client-Addr`, `X-Helo-Args`, `X-Mail-Args`, `X-Rcpt-Args`), so a test
//! reads exactly what was delivered. smtp-sink must drop root after binding and names the
//! user with `-u`; `root` keeps the dump directory (inside a 0700 private directory)
//! writable without chown games. The backlog argument is required by smtp-sink; 64
//! covers load tests. Readiness is the `220` greeting.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Host, Running, Server, Setup, impl_server};
use crate::error::{Error, IoContext, Result};
use crate::require;

/// A running smtp-sink that keeps every mail it accepts.
#[derive(Debug)]
pub struct SmtpSink {
    run: Running,
    dump_dir: PathBuf,
}
impl_server!(SmtpSink);

impl SmtpSink {
    pub fn start(host: Host<'_>) -> Result<SmtpSink> {
        require::root()?;
        let sink = require::tool("smtp-sink", "postfix")?;

        let setup = Setup::new("smtp-sink", host)?;
        let dump_dir = setup.mkdir("mail")?;
        let args = [
            "-u".to_owned(),
            "root".to_owned(),
            // A trailing slash: the template is a directory, each file a random hex name.
            "-d".to_owned(),
            format!("{}/", dump_dir.display()),
            setup.addr().to_string(),
            "64".to_owned(),
        ];
        let run = setup.launch(&sink, &args, Duration::from_secs(20), |s| {
            let greeting = s.talk(b"", |a| a.ends_with(b"\r\n"))?;
            if greeting.starts_with(b"220 ") {
                Ok(())
            } else {
                Err(format!("greeting {:?}", String::from_utf8_lossy(&greeting)))
            }
        })?;
        Ok(SmtpSink { run, dump_dir })
    }

    /// Where each accepted mail lands as one file.
    pub fn dump_dir(&self) -> &Path {
        &self.dump_dir
    }

    /// Every mail accepted so far (dump headers included), oldest first.
    pub fn messages(&self) -> Result<Vec<String>> {
        let what = || format!("smtp-sink: read dump directory {}", self.dump_dir.display());
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.dump_dir).context(what)? {
            let entry = entry.context(what)?;
            let modified = entry.metadata().and_then(|m| m.modified()).context(what)?;
            files.push((modified, entry.path()));
        }
        files.sort();
        files
            .into_iter()
            .map(|(_, path)| {
                std::fs::read_to_string(&path)
                    .context(|| format!("smtp-sink: read {}", path.display()))
            })
            .collect()
    }

    /// Waits up to `timeout` until at least `count` mails arrived and returns them all.
    pub fn wait_for_messages(&self, count: usize, timeout: Duration) -> Result<Vec<String>> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages()?;
            if messages.len() >= count {
                return Ok(messages);
            }
            if Instant::now() >= deadline {
                return Err(Error::NotReady {
                    server: format!("smtp-sink on {}", self.addr()),
                    reason: format!(
                        "{} of {count} expected mails arrived within {timeout:?}",
                        messages.len()
                    ),
                    log: self.log_path().display().to_string(),
                    tail: self.log_tail(20),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
