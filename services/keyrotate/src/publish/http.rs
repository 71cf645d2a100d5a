//! The one HTTP operation publication needs: a POST whose 2xx reply body is returned and
//! whose every failure names the URL and what went wrong (status and the start of the
//! body, or the connect/timeout failure).

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, anyhow};
use ureq::Agent;

/// Replies are small (a JSON object, a short HTML page); anything past this is not read.
const MAX_REPLY: u64 = 1 << 20;
/// How much of an error reply is quoted in the error message.
const MAX_EXCERPT: usize = 300;

/// What a POST carries.
pub(super) enum Payload<'a> {
    /// `application/x-www-form-urlencoded` fields.
    Form(&'a [(&'a str, &'a str)]),
    /// An `application/json` document.
    Json(String),
}

/// An HTTP client whose every request ends within `timeout`, connect to last body byte.
pub(super) struct Client {
    agent: Agent,
    timeout: Duration,
}

impl Client {
    pub(super) fn new(timeout: Duration) -> Client {
        let config = Agent::config_builder()
            .timeout_global(Some(timeout))
            // Statuses are judged below, with the body at hand for the message.
            .http_status_as_error(false)
            // A redirected POST may turn into a GET that "succeeds" without uploading
            // anything; better to fail and show where the server points to.
            .max_redirects(0)
            .user_agent(concat!("keyrotate/", env!("CARGO_PKG_VERSION")))
            .build();
        Client {
            agent: config.into(),
            timeout,
        }
    }

    /// POSTs `payload` to `url`; the reply body (lossy UTF-8) when the status is 2xx.
    pub(super) fn post(&self, url: &str, payload: Payload<'_>) -> anyhow::Result<String> {
        let request = self.agent.post(url);
        let sent = match payload {
            Payload::Form(fields) => request.send_form(fields.iter().copied()),
            Payload::Json(json) => request.content_type("application/json").send(json),
        };
        let mut response = sent.map_err(|e| self.failure(url, e))?;
        let status = response.status();
        let mut body = Vec::new();
        response
            .body_mut()
            .as_reader()
            .take(MAX_REPLY)
            .read_to_end(&mut body)
            .with_context(|| {
                format!(
                    "POST {url}: HTTP {status}, then reading the reply failed (timeout {})",
                    secs(self.timeout)
                )
            })?;
        if status.is_success() {
            return Ok(String::from_utf8_lossy(&body).into_owned());
        }
        let redirect = match response.headers().get("location") {
            Some(to) if status.is_redirection() => format!(
                " (redirected to {}; uploads do not follow redirects, configure that URL)",
                to.to_str().unwrap_or("a non-ASCII location")
            ),
            _ => String::new(),
        };
        Err(anyhow!(
            "POST {url}: HTTP {status}{redirect}: {}",
            excerpt(&body)
        ))
    }

    /// The transport error, said plainly, with ureq's own as the cause.
    fn failure(&self, url: &str, e: ureq::Error) -> anyhow::Error {
        let what = match &e {
            ureq::Error::Timeout(_) => format!("no answer within {}", secs(self.timeout)),
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                "connection refused".to_owned()
            }
            ureq::Error::HostNotFound => "host name not found".to_owned(),
            ureq::Error::ConnectionFailed => "cannot connect".to_owned(),
            _ => "request failed".to_owned(),
        };
        anyhow::Error::new(e).context(format!("POST {url}: {what}"))
    }
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// `base` joined with the absolute `path`, keeping any path prefix of `base`:
/// `https://h/ks/` + `/pks/add` is `https://h/ks/pks/add`.
pub(super) fn endpoint(base: &str, path: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        !base.contains(['?', '#']),
        "keyserver URL {base:?} has a query or fragment: expected a base like https://host[:port][/prefix]"
    );
    Ok(format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    ))
}

/// The start of an error reply on one line: HTML tags dropped (keyservers answer with
/// HTML pages), whitespace collapsed, control characters removed so a hostile server
/// cannot drive the operator's terminal, cut at [`MAX_EXCERPT`] characters.
pub(super) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut plain = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            // A space where the tag was: "<h1>Error</h1><p>bad" is "Error bad".
            '>' if in_tag => {
                in_tag = false;
                plain.push(' ');
            }
            _ if in_tag => {}
            _ => plain.push(c),
        }
    }
    let words: Vec<&str> = plain.split_whitespace().collect();
    let line: String = words
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    match line.char_indices().nth(MAX_EXCERPT) {
        None if line.is_empty() => "(empty reply)".to_owned(),
        None => line,
        Some((cut, _)) => format!("{}...", &line[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_keeps_the_path_prefix() {
        let e = |b| endpoint(b, "/pks/add").unwrap();
        assert_eq!(e("http://k:11371"), "http://k:11371/pks/add");
        assert_eq!(e("http://k:11371/"), "http://k:11371/pks/add");
        assert_eq!(e("https://h/ks"), "https://h/ks/pks/add");
        assert_eq!(e("https://h/ks//"), "https://h/ks/pks/add");
        let err = endpoint("https://h/?x=1", "/pks/add").unwrap_err();
        assert!(err.to_string().contains("https://h/?x=1"), "{err}");
    }

    #[test]
    fn excerpt_of_html_plain_and_empty_replies() {
        assert_eq!(
            excerpt(b"<html><head><title>Oops</title></head>\n<body><h1>Key rejected</h1>\r\n<p>bad packet</p></body></html>"),
            "Oops Key rejected bad packet"
        );
        assert_eq!(excerpt(b"line one\nline two\n"), "line one line two");
        assert_eq!(excerpt(b"a\x1b[31mred"), "a[31mred");
        assert_eq!(excerpt(b" \n "), "(empty reply)");
        let long = "x".repeat(1000);
        assert_eq!(
            excerpt(long.as_bytes()),
            format!("{}...", &long[..MAX_EXCERPT])
        );
        // A lone '>' is text, not the end of a tag.
        assert_eq!(excerpt(b"a > b"), "a > b");
    }
}
