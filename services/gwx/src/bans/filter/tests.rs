//! Whole-filter tests: files on disk (includes, `.local`, `[Init]`, jail options),
//! matching (dates, prefregex, ignoreregex, multi-line ids, `maxlines`), the
//! log-injection guard, and errors that name file, option and feature.

use std::path::{Path, PathBuf};

use chrono::TimeZone;

use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap()
}

/// Writes `files` (name, text) into a fresh directory.
fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = d.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    d
}

fn path(d: &tempfile::TempDir, name: &str) -> PathBuf {
    d.path().join(name)
}

fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The failure `o` reports; panics on any other outcome.
#[track_caller]
fn failure(o: Outcome) -> Failure {
    match o {
        Outcome::Failure(f) => f,
        other => panic!("not a failure: {other:?}"),
    }
}

fn host(o: &Outcome) -> Option<String> {
    match o {
        Outcome::Failure(f) => Some(f.host.to_string()),
        _ => None,
    }
}

const COMMON: &str = "[INCLUDES]\nafter = common.local\n\
    [DEFAULT]\n_daemon = \\S*\n__prefix_line = \\s*\\S+ %(_daemon)s(?:\\[\\d+\\])?:\\s+\n";

#[test]
fn includes_local_known_and_jail_options() {
    let d = dir(&[
        ("filter.d/common.conf", COMMON),
        (
            "filter.d/svc.conf",
            "[INCLUDES]\nbefore = common.conf\n\
             [DEFAULT]\n_daemon = svc\n\
             [Init]\nmode = normal\n\
             [Definition]\n\
             normal = ^%(__prefix_line)sbad password for <F-USER>\\S+</F-USER> from <HOST>$\n\
             strict = ^%(__prefix_line)s(?:bad|no) password for <F-USER>\\S+</F-USER> from <HOST>$\n\
             failregex = <<mode>>\n\
             journalmatch = _SYSTEMD_UNIT=svc.service\n",
        ),
        (
            "filter.d/svc.local",
            "[Definition]\nfailregex = %(known/failregex)s\n  ^%(__prefix_line)sbanned <HOST>$\n",
        ),
    ]);
    let f = Filter::load(&path(&d, "filter.d/svc.conf"), &[]).unwrap();
    assert_eq!(f.failregex_count(), 2);
    assert_eq!(f.journalmatch(), Some("_SYSTEMD_UNIT=svc.service"));
    let mut m = f.matcher();
    let found = failure(m.match_line(
        "Nov 21 10:00:00 gw svc[12]: bad password for bob from 192.0.2.1",
        now(),
    ));
    assert_eq!(found.host, Host::Ip("192.0.2.1".parse().unwrap()));
    assert_eq!(found.user.as_deref(), Some("bob"));
    assert_eq!(found.failregex, 0);
    assert_eq!(found.time.to_rfc3339(), "2026-11-21T10:00:00+00:00");
    assert_eq!(
        host(&m.match_line("Nov 21 10:00:01 gw svc[12]: banned 192.0.2.3", now())),
        Some("192.0.2.3".into())
    );
    let line = "Nov 21 10:00:00 gw svc[12]: no password for bob from 192.0.2.1";
    assert_eq!(m.match_line(line, now()), Outcome::NoMatch);
    let f = Filter::load(&path(&d, "filter.d/svc.conf"), &opts(&[("mode", "strict")])).unwrap();
    assert_eq!(
        host(&f.matcher().match_line(line, now())),
        Some("192.0.2.1".into())
    );
}

#[test]
fn errors_name_file_option_and_feature() {
    let d = dir(&[
        (
            "a.conf",
            "[INCLUDES]\nbefore = missing.conf\n[Definition]\nfailregex = <HOST>\n",
        ),
        (
            "b.conf",
            "[Definition]\nfailregex = ^ok <HOST>\n  ^multi<SKIPLINES>line <HOST>\n",
        ),
        ("c.conf", "[Definition]\nfailregex = ^x (?<=a+)<HOST>\n"),
        ("d.conf", "[Definition]\nfailregex = ^(<HOST>\n"),
        ("e.conf", "[Definition]\nfailregex = ^%(nope)s <HOST>\n"),
        ("f.conf", "[Definition]\nfailregex = ^no host here$\n"),
        (
            "g.conf",
            "[Definition]\nfailregex = <HOST>\ndatepattern = %%Y-%%q\n",
        ),
        (
            "h.conf",
            "[Definition]\nfailregex = <HOST>\nmaxlines = none\n",
        ),
        ("i.conf", "[Definition]\nfailregex = <HOST>\n[Definition]\n"),
    ]);
    let err = |name: &str| Filter::load(&path(&d, name), &[]).unwrap_err();
    let p = |name: &str| path(&d, name).display().to_string();
    assert_eq!(
        err("a.conf").to_string(),
        format!(
            "{}: includes {}, which does not exist",
            p("a.conf"),
            p("missing.conf")
        )
    );
    let e = err("b.conf");
    assert!(e.is_unsupported());
    assert_eq!(
        e.to_string(),
        format!(
            "{}: option `failregex` line 2: regex uses <SKIPLINES> (multi-line skipping), which is not supported",
            p("b.conf")
        )
    );
    assert_eq!(
        err("c.conf").to_string(),
        format!(
            "{}: option `failregex` line 1: regex uses a lookbehind of variable width, which is not supported",
            p("c.conf")
        )
    );
    assert!(
        err("d.conf")
            .to_string()
            .contains("option `failregex` line 1: missing )")
    );
    assert!(
        err("e.conf")
            .to_string()
            .contains("option `failregex`: `%(nope)s` names no option")
    );
    assert!(err("f.conf").to_string().contains("regex has no <HOST>"));
    assert!(
        err("g.conf")
            .to_string()
            .contains("option `datepattern` line 1: date pattern has an unknown field `%q`")
    );
    assert!(
        err("h.conf")
            .to_string()
            .contains("option `maxlines`: `none` is not a whole number")
    );
    assert!(
        err("i.conf")
            .to_string()
            .contains(":3: section [Definition] appears twice")
    );
    let e = Filter::load(Path::new("/nonexistent/x.conf"), &[]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/x.conf: cannot read")
    );
}

#[test]
fn prefregex_content_and_ignoreregex() {
    let d = dir(&[(
        "web.conf",
        "[Definition]\n\
         prefregex = ^\\[client <HOST>\\] <F-CONTENT>.+</F-CONTENT>$\n\
         failregex = ^user <F-USER>\\S+</F-USER>: authentication failure\n\
         ignoreregex = ^user monitor:\n",
    )]);
    let f = Filter::load(&path(&d, "web.conf"), &[]).unwrap();
    let mut m = f.matcher();
    let found = failure(m.match_line(
        "[client 198.51.100.4] user alice: authentication failure for /",
        now(),
    ));
    assert_eq!(
        (found.host.to_string(), found.user),
        ("198.51.100.4".into(), Some("alice".into()))
    );
    let line = "[client 198.51.100.4] user monitor: authentication failure for /";
    assert_eq!(m.match_line(line, now()), Outcome::Ignored);
    assert_eq!(
        m.match_line("[client 198.51.100.4] all good", now()),
        Outcome::NoMatch
    );
    assert_eq!(m.match_line("junk", now()), Outcome::NoMatch);
}

#[test]
fn multi_line_ids_carry_the_host() {
    // sshd's scheme: the connection id is the prefix; "Connection from" only feeds the
    // cache, a later line without an address is a failure of that address.
    let d = dir(&[(
        "ssh.conf",
        "[Definition]\n\
         prefregex = ^<F-MLFID>\\s*\\S+ sshd\\[\\d+\\]: </F-MLFID><F-CONTENT>.+</F-CONTENT>$\n\
         failregex = ^<F-NOFAIL>Connection from</F-NOFAIL> <HOST>\n\
         \x20   ^Disconnecting: Too many authentication failures\n\
         \x20   ^<F-MLFFORGET>Connection closed</F-MLFFORGET> by <HOST>\n",
    )]);
    let f = Filter::load(&path(&d, "ssh.conf"), &[]).unwrap();
    let mut m = f.matcher();
    let at = |t: &str| format!("Nov 21 10:00:0{t} gw sshd");
    let o = m.match_line(
        &format!("{}[7]: Connection from 203.0.113.9 port 1", at("1")),
        now(),
    );
    assert_eq!(o, Outcome::NoFailure);
    let o = m.match_line(
        &format!(
            "{}[8]: Disconnecting: Too many authentication failures",
            at("2")
        ),
        now(),
    );
    assert_eq!(o, Outcome::NoFailure, "another connection: address unknown");
    let o = m.match_line(
        &format!(
            "{}[7]: Disconnecting: Too many authentication failures",
            at("3")
        ),
        now(),
    );
    assert_eq!(host(&o), Some("203.0.113.9".into()));
    assert_eq!(m.cached_ids(), 2);
    m.match_line(
        &format!("{}[7]: Connection closed by 203.0.113.9", at("4")),
        now(),
    );
    assert_eq!(m.cached_ids(), 1);
}

#[test]
fn maxlines_buffer_spans_lines() {
    let d = dir(&[(
        "ml.conf",
        "[Definition]\nmaxlines = 2\ndatepattern = {^LN-BEG}\n\
         failregex = ^ login attempt$\\n^ from <HOST> failed$\n",
    )]);
    let f = Filter::load(&path(&d, "ml.conf"), &[]).unwrap();
    let mut m = f.matcher();
    assert_eq!(
        m.match_line("Nov 21 10:00:00 login attempt", now()),
        Outcome::NoMatch
    );
    let o = m.match_line("Nov 21 10:00:01 from 192.0.2.7 failed", now());
    assert_eq!(host(&o), Some("192.0.2.7".into()));
    // The two lines were consumed: repeating the second alone does not match.
    assert_eq!(
        m.match_line("Nov 21 10:00:02 from 192.0.2.7 failed", now()),
        Outcome::NoMatch
    );
}

#[test]
fn injection_guard_with_naive_regexes() {
    // A user name carrying an address. Greedy or lazy, an unanchored regex could pick
    // either address: the line is reported ambiguous, whichever it picked.
    let line = "Nov 21 10:00:00 gw sshd[1]: Failed password for invalid user from 10.0.0.1 from 192.0.2.9 port 4711 ssh2";
    for regex in [
        "Failed password for .* from <HOST>",
        "Failed password for .*? from <HOST>",
    ] {
        let f = Filter::from_regex(regex).unwrap();
        match f.matcher().match_line(line, now()) {
            Outcome::Ambiguous { mut hosts } => {
                hosts.sort();
                assert_eq!(hosts, vec!["10.0.0.1", "192.0.2.9"], "{regex}");
            }
            other => panic!("{regex}: {other:?}"),
        }
        let mut plain = f.matcher();
        plain.set_injection_guard(false);
        assert!(matches!(plain.match_line(line, now()), Outcome::Failure(_)));
    }
    // An anchored regex takes the address from a fixed place: no ambiguity.
    let f = Filter::from_regex(r"for invalid user .* from <HOST> port \d+ ssh2$").unwrap();
    assert_eq!(
        host(&f.matcher().match_line(line, now())),
        Some("192.0.2.9".into())
    );
    // `::ffff:` in front of the address, a DNS-looking word elsewhere: one host.
    let f = Filter::from_regex(r"REFUSED FROM <HOST>").unwrap();
    let line =
        "Nov 21 10:00:00 gw sshd[1]: ROOT LOGIN REFUSED FROM ::ffff:192.0.2.4 REFUSED FROM gw";
    assert_eq!(
        host(&f.matcher().match_line(line, now())),
        Some("192.0.2.4".into())
    );
}

#[test]
fn dates_and_journal_messages() {
    let f = Filter::from_regex(r#"^<HOST> .* "POST /wp-login.php"#).unwrap();
    let mut m = f.matcher();
    let line =
        r#"2001:db8::5 - - [21/Nov/2026:11:00:00 +0100] "POST /wp-login.php HTTP/1.1" 200 1"#;
    let found = failure(m.match_line(line, now()));
    assert_eq!(found.host.to_string(), "2001:db8::5");
    assert_eq!(found.time.to_rfc3339(), "2026-11-21T10:00:00+00:00");
    // No date: the line's time is `now`.
    let found = failure(m.match_line(r#"192.0.2.1 - "POST /wp-login.php"#, now()));
    assert_eq!(found.time, now());
    let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    let found = failure(m.match_message(r#"192.0.2.1 - - "POST /wp-login.php"#, t));
    assert_eq!(
        (found.host.to_string(), found.time),
        ("192.0.2.1".into(), t)
    );
}

#[test]
fn date_text_is_cut_and_brackets_stay() {
    // fail2ban removes exactly the date text; what surrounds it stays in the line.
    let f = Filter::from_regex(r#"^<HOST> - - \[\] "GET /secret"#).unwrap();
    let line = r#"192.0.2.8 - - [21/Nov/2026:10:00:00 +0000] "GET /secret HTTP/1.1" 403 0"#;
    assert_eq!(
        host(&f.matcher().match_line(line, now())),
        Some("192.0.2.8".into())
    );
    let f = Filter::from_regex(r"^\s*gw sshd: fail <HOST>$").unwrap();
    let line = "Nov 21 10:00:00 gw sshd: fail 192.0.2.9";
    assert_eq!(
        host(&f.matcher().match_line(line, now())),
        Some("192.0.2.9".into())
    );
}

#[test]
fn hosts() {
    assert_eq!(
        Host::parse("192.0.2.1"),
        Host::Ip("192.0.2.1".parse().unwrap())
    );
    assert_eq!(
        Host::parse("[2001:db8::1]"),
        Host::Ip("2001:db8::1".parse().unwrap())
    );
    assert_eq!(
        Host::parse("::ffff:192.0.2.1"),
        Host::Ip("192.0.2.1".parse().unwrap())
    );
    assert_eq!(Host::parse("192.030.0.6"), Host::Name("192.030.0.6".into()));
    assert_eq!(Host::parse("example.com").ip(), None);
}

#[test]
fn filter_and_matcher_are_shareable() {
    fn send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}
    fn send<T: Send>() {}
    send_sync::<Filter>();
    send::<Matcher>();
}
