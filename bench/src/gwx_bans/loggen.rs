//! A large nginx access log for the ban benchmark: mostly ordinary requests from many
//! visitors, and a share of `POST /wp-login.php` from brute-forcing addresses, the
//! traffic a wordpress jail watches. The same seed gives the same log, so runs compare.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};

/// What one log holds.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub lines: u64,
    /// One line in this many is a wp-login POST.
    pub attack_every: u64,
}

/// Lines of the log that are wp-login POSTs (what both matchers must find).
pub fn attacks(shape: Shape) -> u64 {
    (0..shape.lines)
        .filter(|i| i % shape.attack_every == 0)
        .count() as u64
}

const PATHS: [&str; 6] = [
    "/",
    "/index.html",
    "/blog/2026/11/hello-world/",
    "/wp-content/themes/twenty/style.css?ver=6.4",
    "/feed/",
    "/wp-login.php",
];

const AGENTS: [&str; 3] = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "curl/8.5.0",
];

/// xorshift64: a reproducible sequence in a few lines. A crate's generator could change
/// its output between versions, and then the log and the figures would too.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Writes the log to `path`. Times run from 2026-11-21 00:00:00 UTC, a line every 10 ms:
/// well within the date formats every matcher knows.
pub fn write(path: &Path, shape: Shape) -> Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let start = 1_795_219_200i64; // 2026-11-21T00:00:00Z
    for i in 0..shape.lines {
        let r = rng.next();
        let t = chrono_free_time(start + (i / 100) as i64);
        if i % shape.attack_every == 0 {
            // Attackers: 2,000 addresses in 203.0.113.0/24 and 198.18.0.0/15.
            let a = r % 2000;
            writeln!(
                out,
                "198.18.{}.{} - - [{t}] \"POST /wp-login.php HTTP/1.1\" 200 4523 \"-\" \"{}\"",
                a / 250,
                a % 250 + 1,
                AGENTS[(r >> 20) as usize % AGENTS.len()]
            )?;
        } else {
            let v = r % 60_000;
            let path = PATHS[(r >> 16) as usize % (PATHS.len() - 1)];
            writeln!(
                out,
                "10.{}.{}.{} - - [{t}] \"GET {path} HTTP/1.1\" 200 {} \"https://example.org/\" \"{}\"",
                v / 65536,
                (v / 256) % 256,
                v % 256,
                (r >> 24) % 50_000,
                AGENTS[(r >> 40) as usize % AGENTS.len()]
            )?;
        }
    }
    out.flush()
        .with_context(|| format!("write {}", path.display()))
}

/// `21/Nov/2026:HH:MM:SS +0000` for a time within that day (the log spans less than
/// a day: 100 lines a second).
fn chrono_free_time(unix: i64) -> String {
    let s = unix.rem_euclid(86_400);
    let day = 21 + (unix - 1_795_219_200).div_euclid(86_400);
    format!(
        "{day:02}/Nov/2026:{:02}:{:02}:{:02} +0000",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_has_the_shape_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let shape = Shape {
            lines: 1000,
            attack_every: 10,
        };
        write(&path, shape).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1000);
        let posts = text
            .lines()
            .filter(|l| l.contains("POST /wp-login.php"))
            .count() as u64;
        assert_eq!(posts, attacks(shape));
        assert!(text.starts_with("198.18."), "{}", &text[..80]);
        assert!(text.contains("[21/Nov/2026:00:00:09 +0000]"));
    }
}
