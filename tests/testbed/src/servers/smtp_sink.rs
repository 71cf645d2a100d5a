//! Postfix's `smtp-sink`, an SMTP server that accepts everything: the "internal mail
//! server" behind the perimeter, or any relay target a test needs.
//!
//! `-d DIR/mail/` dumps every transaction into its own file there, headed by what the
//! client said (`X-Client-Addr`, `X-Helo-Args`, `X-Mail-Args`, `X-Rcpt-Args`), so a test
//! reads exactly what was delivered. smtp-sink must drop root after binding and names the
//! user with `-u`; `root` keeps the dump directory (inside a 0700 private directory)
//! writable without chown games. The backlog argument is required by smtp-sink; 64
//! covers functional tests. Readiness is the `220` greeting.
//!
//! For load tests, [`SmtpSink::start_discarding`] keeps nothing (a file per mail would
//! cost the sink more than the SMTP) and counts instead: `-c` makes smtp-sink print
//! `sess=N quit=N mesg=N` to its log after every mail, flushed each time, and
//! [`SmtpSink::delivered`] reads the last count. Its backlog is 1024, so a burst of
//! connections is queued, not refused.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Host, Running, Server, Setup, impl_server};
use crate::error::{Error, IoContext, Result};
use crate::require;

/// A running smtp-sink that keeps every mail it accepts (or, started with
/// [`SmtpSink::start_discarding`], only counts them).
#[derive(Debug)]
pub struct SmtpSink {
    run: Running,
    dump_dir: PathBuf,
    discarding: bool,
}
impl_server!(SmtpSink);

impl SmtpSink {
    pub fn start(host: Host<'_>) -> Result<SmtpSink> {
        Self::start_mode(host, false, &[])
    }

    /// A dumping sink with extra smtp-sink options, e.g. `["-r", "RCPT", "-b", "451
    /// 4.3.0 Try again later"]` to refuse recipients with that reply (`man smtp-sink`).
    /// Ready once it greets, whatever the greeting (an option may change it).
    pub fn start_with(host: Host<'_>, options: &[&str]) -> Result<SmtpSink> {
        Self::start_mode(host, false, options)
    }

    /// A sink for load tests: accepts everything, keeps nothing, counts the mails
    /// ([`SmtpSink::delivered`]); [`SmtpSink::messages`] fails.
    pub fn start_discarding(host: Host<'_>) -> Result<SmtpSink> {
        Self::start_mode(host, true, &[])
    }

    fn start_mode(host: Host<'_>, discarding: bool, options: &[&str]) -> Result<SmtpSink> {
        require::root()?;
        let sink = require::tool("smtp-sink", "postfix")?;

        let setup = Setup::new("smtp-sink", host)?;
        let dump_dir = setup.mkdir("mail")?;
        let mut args = vec!["-u".to_owned(), "root".to_owned()];
        if discarding {
            args.push("-c".to_owned());
        } else {
            // A trailing slash: the template is a directory, each file a random hex name.
            args.push("-d".to_owned());
            args.push(format!("{}/", dump_dir.display()));
        }
        args.extend(options.iter().map(|o| o.to_string()));
        args.push(setup.addr().to_string());
        args.push(if discarding { "1024" } else { "64" }.to_owned());
        let run = setup.launch(&sink, &args, Duration::from_secs(20), |s| {
            let greeting = s.talk(b"", |a| a.ends_with(b"\r\n"))?;
            // With extra options the greeting may be a refusal; it must still be one.
            let is_reply = greeting.len() > 4
                && greeting[..3].iter().all(u8::is_ascii_digit)
                && matches!(greeting[3], b' ' | b'-');
            if greeting.starts_with(b"220 ") || (is_reply && !options.is_empty()) {
                Ok(())
            } else {
                Err(format!("greeting {:?}", String::from_utf8_lossy(&greeting)))
            }
        })?;
        Ok(SmtpSink {
            run,
            dump_dir,
            discarding,
        })
    }

    /// How many mails the sink has accepted so far (the end of their DATA seen).
    pub fn delivered(&self) -> Result<u64> {
        if !self.discarding {
            return Ok(self.messages()?.len() as u64);
        }
        // Only the end of the log matters: the last `... mesg=N\r`.
        let path = self.log_path();
        let what = || format!("smtp-sink: read the count in {}", path.display());
        let mut log = std::fs::File::open(path).context(what)?;
        let len = log.metadata().context(what)?.len();
        log.seek(SeekFrom::Start(len.saturating_sub(512)))
            .context(what)?;
        let mut tail = Vec::new();
        log.read_to_end(&mut tail).context(what)?;
        Ok(last_count(&String::from_utf8_lossy(&tail)))
    }

    /// Where each accepted mail lands as one file.
    pub fn dump_dir(&self) -> &Path {
        &self.dump_dir
    }

    /// Every mail accepted so far (dump headers included), oldest first. Fails for a
    /// discarding sink, which keeps none.
    pub fn messages(&self) -> Result<Vec<String>> {
        if self.discarding {
            return Err(Error::Io {
                what: format!("smtp-sink on {}: read the mails", self.addr()),
                source: std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "started with start_discarding: it keeps no mail, see delivered()",
                ),
            });
        }
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

/// The last `mesg=N` of smtp-sink's `-c` counters (`sess=1 quit=1 mesg=1\r...`); 0
/// before the first mail.
fn last_count(log: &str) -> u64 {
    log.rsplit("mesg=")
        .find_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::last_count;

    #[test]
    fn reads_the_last_message_count() {
        assert_eq!(last_count(""), 0);
        assert_eq!(last_count("sess=1 quit=0 mesg=0\r"), 0);
        assert_eq!(
            last_count("sess=1 quit=1 mesg=9\rsess=2 quit=1 mesg=10\r"),
            10
        );
        // A cut at the start of the tail or a warning in between changes nothing.
        assert_eq!(
            last_count("g=3\rsmtp-sink: warning: lost connection\nsess=4 quit=3 mesg=12\r"),
            12
        );
    }
}
