use super::*;
use std::path::PathBuf;

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/gwx/grid.toml")
}

fn problems(text: &str) -> Vec<(String, Option<usize>, String)> {
    let err =
        config::parse::<Inventory>(text, Path::new("grid.toml")).expect_err("must be rejected");
    err.problems()
        .iter()
        .map(|p| (p.key.clone(), p.position.map(|x| x.0), p.message.clone()))
        .collect()
}

const MINIMAL: &str = r#"[grid]
name = "g"

[[gateway]]
id = "gw1"
public = ["203.0.113.11"]
private = ["192.0.2.11"]

[[service]]
name = "web"
protocol = "tcp"
port = 443
backend = "192.0.2.2:443"
mode = "proxy"
"#;

#[test]
fn shipped_inventory_loads() {
    let inv = Inventory::load(&shipped()).unwrap();
    assert_eq!(inv.gateways.len(), 2);
    assert_eq!(
        inv.gateway("gw2").unwrap().public[0].to_string(),
        "203.0.113.12"
    );
    let web = &inv.services[0];
    assert_eq!(
        (web.mode, web.proxy_protocol),
        (Mode::Proxy, ProxyProtocol::V2)
    );
    assert_eq!(web.limits.connections_per_source, 64);
    assert_eq!(
        web.limits.connect_timeout_ms, 3000,
        "defaults fill what is not given"
    );
    assert_eq!(inv.services[1].mode, Mode::L3);
    assert_eq!(inv.private_addresses().count(), 4);
}

#[test]
fn minimal_inventory_gets_defaults() {
    let inv: Inventory = config::parse(MINIMAL, Path::new("g.toml")).unwrap();
    assert_eq!(inv.hardening, Hardening::default());
    assert_eq!(inv.services[0].proxy_protocol, ProxyProtocol::None);
}

#[test]
fn unknown_mode_names_line_key_and_choices() {
    let got = problems(&MINIMAL.replace("mode = \"proxy\"", "mode = \"dnat\""));
    assert_eq!(got.len(), 1);
    let (key, line, msg) = &got[0];
    assert_eq!((key.as_str(), *line), ("service[0].mode", Some(14)));
    assert!(
        msg.contains("unknown variant `dnat`, expected `proxy` or `l3`"),
        "{msg}"
    );
}

#[test]
fn misspelt_limit_key_is_rejected() {
    let text = format!("{MINIMAL}\n[service.limits]\nconections_per_source = 5\n");
    let got = problems(&text);
    assert_eq!(got[0].0, "service[0].limits.conections_per_source");
    assert_eq!(got[0].1, Some(17));
}

#[test]
fn bad_address_is_named() {
    let got = problems(&MINIMAL.replace("\"203.0.113.11\"", "\"203.0.113.300\""));
    assert_eq!(
        (got[0].0.as_str(), got[0].1),
        ("gateway[0].public[0]", Some(6))
    );
    assert!(
        got[0].2.contains("invalid IP address syntax"),
        "{:?}",
        got[0]
    );
}

#[test]
fn semantic_problems_are_all_reported() {
    let text = r#"[grid]
name = "g"

[[gateway]]
id = "gw 1"
public = ["203.0.113.11"]
private = ["192.0.2.11"]

[[gateway]]
id = "gw2"
public = ["203.0.113.11"]
private = ["2001:db8::12"]

[[service]]
name = "web"
protocol = "tcp"
port = 22
backend = "192.0.2.11:80"
mode = "l3"
proxy_protocol = "v2"

[[service]]
name = "web"
protocol = "tcp"
port = 22
backend = "192.0.2.2:0"
mode = "proxy"
"#;
    let keys: Vec<(String, Option<usize>)> =
        problems(text).into_iter().map(|(k, l, _)| (k, l)).collect();
    assert_eq!(
        keys,
        vec![
            ("gateway[0].id".into(), Some(5)),
            ("gateway[1].public[0]".into(), Some(11)),
            ("service[0].backend".into(), Some(18)),
            ("service[0].proxy_protocol".into(), Some(20)),
            ("service[0].backend".into(), Some(18)),
            ("service[1].name".into(), Some(23)),
            ("service[1].port".into(), Some(25)),
            ("service[1].backend".into(), Some(26)),
            ("hardening.management_ports[0]".into(), None),
        ]
    );
}

#[test]
fn the_dns_section_is_checked_key_by_key() {
    let text = format!(
        "{MINIMAL}\n[dns]\nzone = \"example..net\"\nlisten = []\nnameservers = [\"ns1.example.net\"]\nanswer_count = 0\n\n[dns.check]\nrise = 0\nhttp = {{ path = \"healthz\" }}\n"
    );
    let keys: Vec<String> = problems(&text).into_iter().map(|p| p.0).collect();
    for key in [
        "dns.zone",
        "dns.listen",
        "dns.answer_count",
        "dns.check.rise",
        "dns.check.http.path",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} not in {keys:?}");
    }
    let good = format!(
        "{MINIMAL}\n[dns]\nzone = \"example.net\"\nlisten = [\"127.0.0.1:5300\"]\nnameservers = [\"ns1.example.net\"]\nfallback = {{ backup = [\"203.0.113.200\"] }}\n\n[dns.glue]\n\"ns1.example.net\" = [\"203.0.113.53\", \"2001:db8::53\"]\n"
    );
    let inv = config::parse::<Inventory>(&good, Path::new("grid.toml")).unwrap();
    let dns = inv.dns.unwrap();
    assert_eq!(dns.answer_count, 4);
    assert_eq!(
        dns.fallback,
        Fallback::Backup(vec!["203.0.113.200".parse().unwrap()])
    );
    assert_eq!(dns.glue["ns1.example.net"].len(), 2);
}

/// `[dns.glue]` against `nameservers`: each problem at its key, with the name.
#[test]
fn dns_glue_is_checked_against_the_name_servers() {
    let service = |name: &str, port: u16, hostname: &str| {
        format!(
            "[[service]]\nname = \"{name}\"\nprotocol = \"tcp\"\nport = {port}\n\
             backend = \"192.0.2.2:{port}\"\nmode = \"proxy\"\n{hostname}\n"
        )
    };
    let text = format!(
        "{MINIMAL}\n{}{}\
         [dns]\nzone = \"Example.NET.\"\nlisten = [\"127.0.0.1:5300\"]\n\
         nameservers = [\"ns1.example.net\", \"NS2.example.net.\", \"ns.example.org\", \
         \"ns4.example.net\", \"web.example.net\", \"ns.mail.example.net\", \"dns.example.net\", \
         \"ns5.example.net\", \"example.net\"]\n\n\
         [dns.glue]\n\
         \"ns1.example.net\" = [\"203.0.113.53\", \"2001:db8::53\"]\n\
         \"ns2.example.net\" = [\"2001:db8::54\"]\n\
         \"ns.example.org\" = [\"198.51.100.53\"]\n\
         \"ns9.example.net\" = [\"203.0.113.59\"]\n\
         \"web.example.net\" = [\"203.0.113.60\"]\n\
         \"ns.mail.example.net\" = [\"203.0.113.61\"]\n\
         \"dns.example.net\" = [\"203.0.113.62\"]\n\
         \"ns5.example.net\" = [\"0.0.0.0\", \"203.0.113.63\", \"203.0.113.63\"]\n\
         \"example.net\" = []\n\
         \"NS1.Example.Net.\" = [\"203.0.113.64\"]\n",
        service("mail", 25, ""),
        service("resolver", 853, "hostname = \"DNS\""),
    );
    let got: Vec<(String, String)> = problems(&text)
        .into_iter()
        .map(|(key, _, message)| (key, message))
        .collect();
    let p = |key: &str, message: &str| (key.to_owned(), message.to_owned());
    assert_eq!(
        got,
        [
            p(
                "dns.nameservers[3]",
                "\"ns4.example.net\" is inside the zone example.net, so its addresses must be given: \
                 expected \"ns4.example.net\" = [...] in [dns.glue]"
            ),
            p(
                "dns.nameservers[4]",
                "\"web.example.net\" is also the DNS name of service[0].name: a name server's name \
                 answers with its glue, it cannot also answer with gateway addresses"
            ),
            p(
                "dns.nameservers[6]",
                "\"dns.example.net\" is also the DNS name of service[2].hostname: a name server's \
                 name answers with its glue, it cannot also answer with gateway addresses"
            ),
            p(
                "dns.glue.\"example.net\"",
                "expected 1 to 16 addresses per family for \"example.net\", got 0 IPv4 and 0 IPv6"
            ),
            p(
                "dns.glue.\"ns.example.org\"",
                "\"ns.example.org\" is outside the zone example.net: its addresses are for its own \
                 zone to serve, expected no glue for it"
            ),
            p(
                "dns.glue.\"ns1.example.net\"",
                "expected glue once per name server, \"NS1.Example.Net.\" and \"ns1.example.net\" \
                 are both ns1.example.net"
            ),
            p(
                "dns.glue.\"ns5.example.net\"[0]",
                "expected a unicast host address, got 0.0.0.0"
            ),
            p(
                "dns.glue.\"ns5.example.net\"[2]",
                "expected each address once, 203.0.113.63 appears twice"
            ),
            p(
                "dns.glue.\"ns9.example.net\"",
                "expected glue only for names in dns.nameservers, \"ns9.example.net\" is not one"
            ),
        ]
    );

    // Too many addresses of one family; an out-of-zone name server needs no glue.
    let many: Vec<String> = (1..=17).map(|i| format!("\"2001:db8::{i}\"")).collect();
    let text = format!(
        "{MINIMAL}\n[dns]\nzone = \"example.net\"\nlisten = [\"127.0.0.1:5300\"]\n\
         nameservers = [\"ns1.example.net\", \"ns.example.org\"]\n\n\
         [dns.glue]\n\"ns1.example.net\" = [\"203.0.113.53\", {}]\n",
        many.join(", ")
    );
    assert_eq!(
        problems(&text)
            .into_iter()
            .map(|(key, _, message)| (key, message))
            .collect::<Vec<_>>(),
        [p(
            "dns.glue.\"ns1.example.net\"",
            "expected 1 to 16 addresses per family for \"ns1.example.net\", got 1 IPv4 and 17 IPv6"
        )]
    );
}

/// `[dns.weights]` names gateway addresses only, within the bounds; `group` is free text.
#[test]
fn dns_weights_and_groups() {
    let dns = "\n[dns]\nzone = \"example.net\"\nlisten = [\"127.0.0.1:5300\"]\nnameservers = [\"ns.example.org\"]\n";
    let good = format!(
        "{}{dns}\n[dns.weights]\n\"203.0.113.11\" = 0\n",
        MINIMAL.replace(
            "private = [\"192.0.2.11\"]",
            "private = [\"192.0.2.11\"]\ngroup = \"provider-a\""
        )
    );
    let inv = config::parse::<Inventory>(&good, Path::new("grid.toml")).unwrap();
    assert_eq!(inv.gateways[0].group.as_deref(), Some("provider-a"));
    let d = inv.dns.unwrap();
    assert_eq!(d.weight("203.0.113.11".parse().unwrap()), 0);
    assert_eq!(d.weight("203.0.113.99".parse().unwrap()), 1);

    let bad =
        format!("{MINIMAL}{dns}\n[dns.weights]\n\"203.0.113.99\" = 2\n\"203.0.113.11\" = 1001\n");
    let got: Vec<(String, String)> = problems(&bad).into_iter().map(|p| (p.0, p.2)).collect();
    assert_eq!(
        got,
        [
            (
                "dns.weights.\"203.0.113.11\"".to_owned(),
                "expected 0 to 1000, got 1001".to_owned()
            ),
            (
                "dns.weights.\"203.0.113.99\"".to_owned(),
                "203.0.113.99 is no gateway's public address".to_owned()
            ),
        ]
    );
}

#[test]
fn dns_metrics_may_not_take_the_runtime_port() {
    let dns = "\n[dns]\nzone = \"example.net\"\nlisten = [\"127.0.0.1:5300\"]\n\
               nameservers = [\"ns1.example.net\"]\n\
               [dns.glue]\n\"ns1.example.net\" = [\"203.0.113.53\"]\n";
    let with = |runtime: &str, metrics: &str| {
        format!("{MINIMAL}\n[runtime]\nmetrics_listen = \"{runtime}\"\n{dns}").replace(
            "[dns.glue]",
            &format!("metrics_listen = \"{metrics}\"\n[dns.glue]"),
        )
    };
    let clash = problems(&with("0.0.0.0:9100", "0.0.0.0:9100"));
    assert_eq!(clash.len(), 1, "{clash:?}");
    assert_eq!(clash[0].0, "dns.metrics_listen");
    assert!(clash[0].2.contains("gwx run"), "{}", clash[0].2);

    let own = with("0.0.0.0:9100", "0.0.0.0:9153");
    let inv: Inventory = config::parse(&own, Path::new("g.toml")).unwrap();
    assert_eq!(
        inv.dns.unwrap().metrics_listen,
        Some("0.0.0.0:9153".parse().unwrap())
    );
}
