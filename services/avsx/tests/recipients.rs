//! Recipient verification against a real slapd: the static map, LDAP lookups by `mail`
//! and `proxyAddresses`, escaping of hostile addresses, caching, a directory that is
//! down or silent, and `avsx recipients sync`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use avsx::config;
use avsx::recipients::{Recipients, SyncReport, Verdict, sync};
use tempfile::TempDir;
use testbed::servers::{Host, Server, Slapd};

const DOMAIN: &str = "perimeter.test";

/// Entries as real directories hold them: `mail` only, `proxyAddresses` only (a primary
/// `SMTP:`, a secondary `smtp:`, an X.400 address and one in a foreign domain), values in
/// mixed case, and an entry whose only address is in a domain avsx does not serve.
const PEOPLE: &str = "\
dn: uid=alice,dc=perimeter,dc=test
objectClass: inetOrgPerson
objectClass: perimeterRecipient
uid: alice
cn: Alice
sn: Alice
mail: alice@perimeter.test

dn: uid=bob,dc=perimeter,dc=test
objectClass: inetOrgPerson
objectClass: perimeterRecipient
uid: bob
cn: Bob
sn: Bob
proxyAddresses: SMTP:Bob.Primary@perimeter.test
proxyAddresses: smtp:bob.alias@perimeter.test
proxyAddresses: X400:c=US;a= ;p=Perimeter;o=Test;s=Bob;
proxyAddresses: smtp:bob@other.test

dn: uid=carol,dc=perimeter,dc=test
objectClass: inetOrgPerson
objectClass: perimeterRecipient
uid: carol
cn: Carol
sn: Carol
mail: Carol.Mixed@Perimeter.TEST

dn: uid=dave,dc=perimeter,dc=test
objectClass: inetOrgPerson
objectClass: perimeterRecipient
uid: dave
cn: Dave
sn: Dave
mail: dave@other.test
";

/// A person with only a `mail` address in [`DOMAIN`].
fn person(uid: &str) -> String {
    format!(
        "dn: uid={uid},dc=perimeter,dc=test\nobjectClass: inetOrgPerson\n\
         objectClass: perimeterRecipient\nuid: {uid}\ncn: {uid}\nsn: {uid}\n\
         mail: {uid}@{DOMAIN}\n\n"
    )
}

struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write fixture file");
        path
    }

    /// LDAP settings bound as the test directory's admin, with short timeouts.
    fn ldap(&self, url: &str) -> config::Ldap {
        config::Ldap {
            url: url.to_owned(),
            bind_dn: Some(Slapd::ADMIN_DN.to_owned()),
            password_file: Some(self.write("ldap.pass", &format!("{}\n", Slapd::ADMIN_PASSWORD))),
            base: Slapd::BASE_DN.to_owned(),
            filter: "(|(mail=%s)(proxyAddresses=smtp:%s))".to_owned(),
            timeout_ms: 2000,
            cache_secs: 300,
            negative_cache_secs: 60,
            max_shrink_percent: 20,
        }
    }

    fn recipients(&self, map: &Path, ldap: Option<config::Ldap>) -> config::Recipients {
        config::Recipients {
            domains: vec![DOMAIN.to_owned(), "Example.TEST.".to_owned()],
            map: map.to_owned(),
            ldap,
        }
    }
}

fn start_slapd(ldif: &str) -> Slapd {
    let slapd = Slapd::start(Host::Loopback).expect("start slapd");
    if !ldif.is_empty() {
        slapd.add(ldif).expect("add entries");
    }
    slapd
}

async fn check_all(r: &Recipients, addresses: &[&str], want: Verdict) {
    for a in addresses {
        assert_eq!(r.check(a).await, want, "{a}");
    }
}

fn is_tempfail(v: &Verdict) -> bool {
    matches!(v, Verdict::TempFail(_))
}

/// The addresses in a map file, without comments.
fn map_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read map")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn map_and_ldap_lookups() {
    let slapd = start_slapd(PEOPLE);
    let fx = Fixture::new();
    let map = fx.write(
        "map",
        "# static\nmapped@perimeter.test OK\nstatic@example.test\n",
    );
    let r = Recipients::new(&fx.recipients(&map, Some(fx.ldap(&slapd.url()))))
        .await
        .expect("recipients");

    // The map, case-insensitively, both configured domains.
    check_all(
        &r,
        &[
            "mapped@perimeter.test",
            "MAPPED@Perimeter.Test",
            "static@example.test",
            " static@EXAMPLE.test ",
        ],
        Verdict::Known,
    )
    .await;
    // The directory: mail, the primary and a secondary proxy address, mixed case on either
    // side.
    check_all(
        &r,
        &[
            "alice@perimeter.test",
            "Alice@PERIMETER.test",
            "bob.primary@perimeter.test",
            "bob.alias@perimeter.test",
            "BOB.Alias@perimeter.test",
            "carol.mixed@perimeter.test",
            "CAROL.MIXED@PERIMETER.TEST",
        ],
        Verdict::Known,
    )
    .await;
    check_all(
        &r,
        &[
            "nobody@perimeter.test",
            "bob@perimeter.test",
            "@perimeter.test",
            "alice",
            "",
        ],
        Verdict::Unknown,
    )
    .await;
    check_all(
        &r,
        &[
            "alice@other.test",
            "dave@other.test",
            "bob@other.test",
            "a@perimeter.test.evil",
        ],
        Verdict::OtherDomain,
    )
    .await;

    // Hostile addresses: unescaped, the first would match every entry with a mail
    // address in the domain, the others would rewrite the filter.
    let raw = slapd
        .search("(mail=*@perimeter.test)", &["mail"])
        .expect("raw search");
    assert!(raw.contains("alice@perimeter.test"), "{raw}");
    check_all(
        &r,
        &[
            "*@perimeter.test",
            "a*@perimeter.test",
            "a)(mail=*@perimeter.test",
            "*)(uid=*))(|(uid=*@perimeter.test",
            "x\\2a@perimeter.test",
            "alice\\40perimeter.test@perimeter.test",
            "ali\0ce@perimeter.test",
        ],
        Verdict::Unknown,
    )
    .await;

    // Anonymous lookups work too (slapd lets anyone read by default).
    let mut anonymous = fx.ldap(&slapd.url());
    anonymous.bind_dn = None;
    anonymous.password_file = None;
    let r = Recipients::new(&fx.recipients(&map, Some(anonymous)))
        .await
        .unwrap();
    assert_eq!(r.check("bob.alias@perimeter.test").await, Verdict::Known);

    // A wrong password is no answer: 451, not 250 and not 550.
    let mut wrong = fx.ldap(&slapd.url());
    wrong.password_file = Some(fx.write("wrong.pass", "not-the-password\n"));
    let r = Recipients::new(&fx.recipients(&map, Some(wrong)))
        .await
        .unwrap();
    assert!(is_tempfail(&r.check("alice@perimeter.test").await));
    assert!(is_tempfail(&r.check("nobody@perimeter.test").await));
    assert_eq!(r.check("mapped@perimeter.test").await, Verdict::Known);
}

#[tokio::test]
async fn negative_answers_are_cached_for_their_ttl() {
    let slapd = start_slapd("");
    let fx = Fixture::new();
    let map = fx.write("map", "");
    let mut ldap = fx.ldap(&slapd.url());
    ldap.negative_cache_secs = 1;
    let r = Recipients::new(&fx.recipients(&map, Some(ldap)))
        .await
        .unwrap();

    let asked = Instant::now();
    assert_eq!(r.check("newcomer@perimeter.test").await, Verdict::Unknown);
    slapd.add(&person("newcomer")).unwrap();
    // Still the cached answer, as long as the TTL has not run out meanwhile (a slow
    // ldapadd on a busy machine); the cache entry is younger than `asked`.
    let since = asked.elapsed();
    let cached = r.check("newcomer@perimeter.test").await;
    if since < Duration::from_millis(800) {
        assert_eq!(cached, Verdict::Unknown);
    } else {
        eprintln!("ldapadd took {since:?}: the cached negative answer was not checked");
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(r.check("newcomer@perimeter.test").await, Verdict::Known);
}

#[tokio::test]
async fn directory_down_is_a_temporary_failure() {
    let mut slapd = start_slapd(PEOPLE);
    let fx = Fixture::new();
    let map = fx.write("map", "mapped@perimeter.test\n");
    let r = Recipients::new(&fx.recipients(&map, Some(fx.ldap(&slapd.url()))))
        .await
        .unwrap();
    assert_eq!(r.check("alice@perimeter.test").await, Verdict::Known);
    assert_eq!(r.check("nobody@perimeter.test").await, Verdict::Unknown);

    slapd.process().stop();

    // Not cached: the directory must answer, and cannot.
    for a in ["bob.alias@perimeter.test", "someone@perimeter.test"] {
        let v = r.check(a).await;
        assert!(is_tempfail(&v), "{a}: {v:?}");
    }
    // Cached answers and the map still count.
    assert_eq!(r.check("alice@perimeter.test").await, Verdict::Known);
    assert_eq!(r.check("nobody@perimeter.test").await, Verdict::Unknown);
    assert_eq!(r.check("mapped@perimeter.test").await, Verdict::Known);
    assert_eq!(r.check("alice@other.test").await, Verdict::OtherDomain);
    // Failures are not cached: still failing (after a reconnect attempt), not Unknown.
    assert!(is_tempfail(&r.check("someone@perimeter.test").await));

    // A directory that was never up: the start-up does not need it.
    let mut ldap = fx.ldap(&slapd.url());
    ldap.bind_dn = None;
    ldap.password_file = None;
    let r = Recipients::new(&fx.recipients(&map, Some(ldap)))
        .await
        .unwrap();
    assert_eq!(r.check("mapped@perimeter.test").await, Verdict::Known);
    assert!(is_tempfail(&r.check("alice@perimeter.test").await));
}

/// A "server" that accepts connections and never says a word.
async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ldap://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, task)
}

#[tokio::test]
async fn silent_directory_times_out() {
    let (url, server) = silent_server().await;
    let fx = Fixture::new();
    let map = fx.write("map", "mapped@perimeter.test\n");
    let timeout = Duration::from_millis(500);
    // Bound (the bind hangs) and anonymous (the search hangs).
    for bind in [true, false] {
        let mut ldap = fx.ldap(&url);
        ldap.timeout_ms = timeout.as_millis() as u64;
        if !bind {
            ldap.bind_dn = None;
            ldap.password_file = None;
        }
        let r = Arc::new(
            Recipients::new(&fx.recipients(&map, Some(ldap)))
                .await
                .unwrap(),
        );

        let started = Instant::now();
        let v = r.check("alice@perimeter.test").await;
        let took = started.elapsed();
        assert_eq!(
            v,
            Verdict::TempFail("recipient directory timed out".into()),
            "bind {bind}"
        );
        assert!(
            took >= timeout && took < timeout + Duration::from_secs(1),
            "{took:?}"
        );

        // Concurrent lookups each wait at most the timeout, not one after another.
        let started = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for i in 0..5 {
            let r = Arc::clone(&r);
            set.spawn(async move { r.check(&format!("user{i}@perimeter.test")).await });
        }
        while let Some(v) = set.join_next().await {
            assert!(is_tempfail(&v.unwrap()));
        }
        let took = started.elapsed();
        assert!(
            took < 2 * timeout + Duration::from_millis(500),
            "bind {bind}: {took:?}"
        );

        // The map does not wait for the directory.
        let started = Instant::now();
        assert_eq!(r.check("mapped@perimeter.test").await, Verdict::Known);
        assert!(started.elapsed() < timeout);
    }
    server.abort();
}

fn expected_after_first_sync() -> Vec<String> {
    let mut v: Vec<String> = [
        "alice@perimeter.test",
        "bob.alias@perimeter.test",
        "bob.primary@perimeter.test",
        "carol.mixed@perimeter.test",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend((1..=6).map(|i| format!("user{i}@{DOMAIN}")));
    v.sort();
    v
}

async fn delete(slapd: &Slapd, uids: &[&str]) {
    let (conn, mut ldap) = ldap3::LdapConnAsync::new(&slapd.url()).await.unwrap();
    ldap3::drive!(conn);
    ldap.simple_bind(Slapd::ADMIN_DN, Slapd::ADMIN_PASSWORD)
        .await
        .unwrap()
        .success()
        .unwrap();
    for uid in uids {
        ldap.delete(&format!("uid={uid},{}", Slapd::BASE_DN))
            .await
            .unwrap()
            .success()
            .unwrap();
    }
    ldap.unbind().await.unwrap();
}

#[tokio::test]
async fn sync_writes_reports_and_guards_the_map() {
    let users: String = (1..=6).map(|i| person(&format!("user{i}"))).collect();
    let slapd = start_slapd(&format!("{PEOPLE}\n{users}"));
    let fx = Fixture::new();
    let map = fx.path("relay_recipients");
    let cfg = fx.recipients(&map, Some(fx.ldap(&slapd.url())));

    // First sync: no map yet; everything is added, sorted, lowercased, only the
    // configured domains and only SMTP proxy addresses.
    let expected = expected_after_first_sync();
    let report = sync(&cfg, false, false).await.expect("first sync");
    assert_eq!(
        report,
        SyncReport {
            added: expected.clone(),
            removed: vec![],
            total: expected.len(),
            written: true,
        }
    );
    assert_eq!(map_lines(&map), expected);
    let text = report.to_string();
    assert!(text.contains("+ alice@perimeter.test\n"), "{text}");
    assert!(
        text.ends_with("10 addresses: 10 added, 0 removed; map written"),
        "{text}"
    );

    // The map is what the daemon loads.
    let r = Recipients::new(&cfg).await.unwrap();
    assert_eq!(r.check("Bob.Primary@perimeter.test").await, Verdict::Known);

    // Second sync: nothing changed, nothing written.
    let before = std::fs::read(&map).unwrap();
    let report = sync(&cfg, false, false).await.expect("second sync");
    assert!(
        report.added.is_empty() && report.removed.is_empty(),
        "{report}"
    );
    assert_eq!((report.total, report.written), (10, false));
    assert_eq!(std::fs::read(&map).unwrap(), before);

    // Dry run: reports a new address, writes nothing.
    slapd.add(&person("user7")).unwrap();
    let report = sync(&cfg, false, true).await.expect("dry run");
    assert_eq!(report.added, ["user7@perimeter.test"]);
    assert_eq!((report.total, report.written), (11, false));
    assert_eq!(std::fs::read(&map).unwrap(), before);

    // A shrink within the limit (10 -> 9 after adding one and removing two: 10%).
    delete(&slapd, &["user1", "user2"]).await;
    let report = sync(&cfg, false, false).await.expect("small shrink");
    assert_eq!(report.added, ["user7@perimeter.test"]);
    assert_eq!(
        report.removed,
        ["user1@perimeter.test", "user2@perimeter.test"]
    );
    assert_eq!((report.total, report.written), (9, true));
    assert_eq!(map_lines(&map).len(), 9);

    // Too big a shrink (9 -> 6: 33%): refused, saying why and how to force it.
    delete(&slapd, &["user3", "user4", "user5"]).await;
    let before = std::fs::read(&map).unwrap();
    let err = sync(&cfg, false, false).await.expect_err("big shrink");
    let msg = format!("{err:#}");
    assert!(msg.contains(&map.display().to_string()), "{msg}");
    assert!(msg.contains("from 9 to 6 addresses (33.3%)"), "{msg}");
    assert!(msg.contains("max_shrink_percent (20%)"), "{msg}");
    assert!(msg.contains("avsx recipients sync --force"), "{msg}");
    assert_eq!(std::fs::read(&map).unwrap(), before);

    // Forced, as a dry run: reported, still not written.
    let report = sync(&cfg, true, true).await.expect("forced dry run");
    assert_eq!(report.removed.len(), 3);
    assert!(!report.written);
    assert_eq!(std::fs::read(&map).unwrap(), before);

    // Forced: written.
    let report = sync(&cfg, true, false).await.expect("forced sync");
    assert_eq!(
        report.removed,
        [
            "user3@perimeter.test",
            "user4@perimeter.test",
            "user5@perimeter.test"
        ]
    );
    assert_eq!((report.total, report.written), (6, true));
    assert_eq!(
        map_lines(&map),
        [
            "alice@perimeter.test",
            "bob.alias@perimeter.test",
            "bob.primary@perimeter.test",
            "carol.mixed@perimeter.test",
            "user6@perimeter.test",
            "user7@perimeter.test",
        ]
    );

    // The running daemon picks the new map up on reload.
    assert_eq!(r.reload_map().unwrap(), 6);
}

#[tokio::test]
async fn sync_reads_all_pages() {
    // More than two pages (500 entries, slapd's default size limit).
    let users: String = (0..1100).map(|i| person(&format!("u{i:04}"))).collect();
    let slapd = start_slapd(&users);
    let fx = Fixture::new();
    let map = fx.path("relay_recipients");
    let cfg = fx.recipients(&map, Some(fx.ldap(&slapd.url())));
    let report = sync(&cfg, false, false).await.expect("sync");
    assert_eq!(report.total, 1100);
    assert_eq!(map_lines(&map).len(), 1100);

    // Anonymously, slapd stops a paged search at its size limit too: that must be an
    // error, not a map of the first 500 addresses.
    let mut anonymous = fx.ldap(&slapd.url());
    anonymous.bind_dn = None;
    anonymous.password_file = None;
    let partial = fx.path("partial");
    let err = sync(&fx.recipients(&partial, Some(anonymous)), true, false)
        .await
        .expect_err("size limit");
    let msg = format!("{err:#}");
    assert!(msg.contains("sizeLimitExceeded"), "{msg}");
    assert!(!partial.exists());
}

#[tokio::test]
async fn map_file_problems() {
    let fx = Fixture::new();

    let bad = fx.write("bad", "alice@perimeter.test\n@perimeter.test OK\n");
    let err = Recipients::new(&fx.recipients(&bad, None))
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains(&bad.display().to_string()), "{msg}");
    assert!(msg.contains("line 2"), "{msg}");
    assert!(msg.contains("catch-all"), "{msg}");

    let missing = fx.path("missing");
    let err = Recipients::new(&fx.recipients(&missing, None))
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains(&missing.display().to_string()), "{msg}");

    // An empty map is fine; without LDAP, what is not in it is unknown.
    let map = fx.write("map", "");
    let r = Recipients::new(&fx.recipients(&map, None)).await.unwrap();
    assert_eq!(r.check("alice@perimeter.test").await, Verdict::Unknown);
    assert_eq!(r.check("alice@other.test").await, Verdict::OtherDomain);

    // Reload: a good map replaces the old one, a bad one leaves it in place.
    fx.write("map", "alice@perimeter.test OK\n");
    assert_eq!(r.reload_map().unwrap(), 1);
    assert_eq!(r.check("alice@perimeter.test").await, Verdict::Known);
    fx.write("map", "bob@perimeter.test\nnot-an-address\n");
    let msg = format!("{:#}", r.reload_map().unwrap_err());
    assert!(
        msg.contains("line 2") && msg.contains("keeping the current recipient map"),
        "{msg}"
    );
    assert_eq!(r.check("alice@perimeter.test").await, Verdict::Known);
    assert_eq!(r.check("bob@perimeter.test").await, Verdict::Unknown);

    // A password file that cannot be read is a start-up error naming it.
    let map = fx.write("good-map", "");
    let mut ldap = fx.ldap("ldap://127.0.0.1:1");
    let pass = fx.path("no-such.pass");
    ldap.password_file = Some(pass.clone());
    let err = Recipients::new(&fx.recipients(&map, Some(ldap.clone())))
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains(&pass.display().to_string()), "{msg}");
    // An empty one too: it would silently bind anonymously.
    ldap.password_file = Some(fx.write("empty.pass", "\n"));
    let err = Recipients::new(&fx.recipients(&map, Some(ldap)))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("empty"), "{err:#}");

    // Sync needs a directory.
    let err = sync(&fx.recipients(&map, None), false, false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("recipients.ldap"), "{err}");
}
