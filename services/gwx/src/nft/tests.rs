//! Unit tests of the rulesets as data, the apply plan and the counters: no kernel
//! needed. `tests/nft.rs` applies the same rulesets to the real kernel.

use super::listing::TableListing;
use super::*;
use crate::test_support::{golden, shipped};

#[test]
fn shipped_gateway_json_matches_the_golden_file() {
    let rs = gateway::ruleset(&shipped(), "gw1").unwrap();
    golden("gateway-gw1.json", &rs.to_json());
}

#[test]
fn rendering_is_deterministic() {
    let mut inv = shipped();
    inv.hardening.syn_proxy = true; // synproxy flags live in a HashSet
    let first = gateway::ruleset(&inv, "gw1").unwrap().to_json();
    for _ in 0..20 {
        assert_eq!(first, gateway::ruleset(&inv, "gw1").unwrap().to_json());
    }
    assert!(first.contains("\"sack-perm\",\n"), "sorted flags: {first}");
}

#[test]
fn unknown_gateway_names_it_and_the_known_ones() {
    let err = gateway::ruleset(&shipped(), "gw7").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown gateway `gw7`: the inventory has `gw1`, `gw2`"
    );
}

#[test]
fn every_drop_has_a_counter_and_comments_are_unique() {
    let mut inv = shipped();
    inv.hardening.syn_proxy = true;
    inv.hardening.management_sources = vec!["192.0.2.0/24".parse().unwrap()];
    for rs in [
        gateway::ruleset(&inv, "gw1").unwrap(),
        gateway::ruleset(&shipped(), "gw2").unwrap(),
        backend::ruleset(&inv),
    ] {
        let mut seen = std::collections::HashSet::new();
        for r in &rs.rules {
            let comment = r.comment.as_deref().expect("every rule has a comment");
            assert!(
                seen.insert((r.chain.as_str(), comment)),
                "{comment} twice in {}",
                r.chain
            );
            let json = serde_json::to_string(&r.expr).unwrap();
            assert!(json.contains("\"counter\""), "{comment}: no counter");
            if json.contains("\"drop\"") || json.contains("\"reject\"") {
                assert!(
                    counters::drop_reason(comment).is_some(),
                    "{comment} drops but is not a drop: comment"
                );
            }
        }
    }
}

#[test]
fn gateway_rules_follow_the_inventory() {
    let inv = shipped();
    let rs = gateway::ruleset(&inv, "gw1").unwrap();
    // The proxy service `web` (TCP 8080) has both limits on both families, and is
    // accepted on input; the L3 service `raw` is DNATed from the IPv4 address only.
    for comment in [
        "drop:rate web ip",
        "drop:rate web ip6",
        "notrack:synproxy ip", // absent: syn_proxy is off in the shipped grid
    ] {
        let chain = gateway::PREFILTER;
        assert_eq!(
            rs.rule(chain, comment).is_some(),
            !comment.starts_with("notrack"),
            "{comment}"
        );
    }
    assert!(
        rs.rule(gateway::STATEFUL, "drop:connlimit web ip6")
            .is_some()
    );
    assert!(rs.rule(gateway::INPUT, "accept:service web ip6").is_some());
    assert!(rs.rule(gateway::INPUT, "accept:service raw ip").is_none());
    assert!(rs.rule(gateway::DNAT, "dnat:raw").is_some());
    assert!(rs.rule(gateway::SNAT, "snat:raw").is_some());
    assert!(rs.chain(gateway::DNAT_LOCAL).is_none());
    let snat = serde_json::to_string(&rs.rule(gateway::SNAT, "snat:raw").unwrap().expr).unwrap();
    assert!(snat.contains("192.0.2.11"), "SNAT to gw1's private: {snat}");
    assert_eq!(rs.set(gateway::BANS4).unwrap().timeout, Some(1200));

    // Without L3 services there is no forward chain at all.
    let mut proxy_only = inv.clone();
    proxy_only
        .services
        .retain(|s| s.mode == crate::inventory::Mode::Proxy);
    let rs = gateway::ruleset(&proxy_only, "gw1").unwrap();
    assert!(rs.chain(gateway::FORWARD).is_none());
    assert!(rs.chain(gateway::DNAT).is_none());

    // With synproxy, the L3 TCP service is handed to synproxy and DNATed locally too.
    let mut syn = inv;
    syn.hardening.syn_proxy = true;
    let rs = gateway::ruleset(&syn, "gw1").unwrap();
    assert!(rs.rule(gateway::PREFILTER, "notrack:synproxy ip").is_some());
    assert!(rs.rule(gateway::INPUT, "synproxy:l3 ip").is_some());
    assert!(rs.rule(gateway::DNAT_LOCAL, "dnat:raw").is_some());
}

#[test]
fn the_dns_server_is_reachable_where_it_listens_on_this_gateway() {
    let mut inv = shipped();
    assert!(inv.dns.is_none(), "the shipped grid has no [dns]");
    let rs = gateway::ruleset(&inv, "gw1").unwrap();
    assert!(rs.rule(gateway::INPUT, "accept:dns udp").is_none());

    let text = std::fs::read_to_string(crate::test_support::shipped_path()).unwrap()
        + "\n[dns]\nzone = \"example.net\"\nlisten = [\"0.0.0.0:53\", \"203.0.113.12:5353\"]\n\
           nameservers = [\"ns1.example.org\"]\n";
    inv = appliance::config::parse(&text, std::path::Path::new("grid.toml")).unwrap();
    let rs = gateway::ruleset(&inv, "gw1").unwrap();
    for protocol in ["udp", "tcp"] {
        let rule = rs
            .rule(gateway::INPUT, &format!("accept:dns {protocol}"))
            .unwrap_or_else(|| panic!("no accept:dns {protocol}"));
        let expr = serde_json::to_string(&rule.expr).unwrap();
        // 53 on any address; 5353 is on gw2's address, not gw1's.
        assert!(expr.contains(protocol) && expr.contains("53"), "{expr}");
        assert!(!expr.contains("5353"), "{expr}");
    }
    let rs = gateway::ruleset(&inv, "gw2").unwrap();
    let expr =
        serde_json::to_string(&rs.rule(gateway::INPUT, "accept:dns udp").unwrap().expr).unwrap();
    assert!(expr.contains("5353"), "gw2 listens on 5353 too: {expr}");
}

#[test]
fn zero_limits_mean_no_rule_and_no_set() {
    let mut inv = shipped();
    for s in &mut inv.services {
        s.limits.connections_per_source = 0;
        s.limits.new_per_second_per_source = 0;
    }
    let rs = gateway::ruleset(&inv, "gw1").unwrap();
    let names: Vec<&str> = rs.sets.iter().map(|s| &*s.name).collect();
    assert_eq!(names, [gateway::BANS4, gateway::BANS6]);
    assert!(
        !rs.rules.iter().any(|r| {
            let c = r.comment.as_deref().unwrap();
            c.starts_with("drop:rate") || c.starts_with("drop:connlimit")
        }),
        "{:#?}",
        rs.rules
    );
}

#[test]
fn l3_service_without_a_public_address_of_its_family_is_an_error() {
    let mut inv = shipped();
    inv.gateways[0].public.retain(|a| a.is_ipv6());
    let err = gateway::ruleset(&inv, "gw1").unwrap_err().to_string();
    assert!(
        err.starts_with("gateway gw1: L3 service `raw` has an IPv4 backend"),
        "{err}"
    );
}

#[test]
fn backend_ruleset_matches_the_golden_file() {
    golden("backend.json", &backend::ruleset(&shipped()).to_json());
}

/// A listing as `nft -j list table inet gwx` prints it, of `rs` applied, with extras.
fn listing_of(rs: &Ruleset, extra: &str) -> TableListing {
    let doc: serde_json::Value = serde_json::from_str(&rs.to_json()).unwrap();
    let mut objects: Vec<serde_json::Value> = doc["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|cmd| cmd["add"].clone())
        .collect();
    objects.extend(serde_json::from_str::<Vec<serde_json::Value>>(extra).unwrap());
    let text = serde_json::json!({ "nftables": objects }).to_string();
    TableListing::parse(&text, &rs.table).unwrap()
}

#[test]
fn plan_keeps_unchanged_sets_and_replaces_everything_else() {
    let inv = shipped();
    let rs = gateway::ruleset(&inv, "gw1").unwrap();

    let fresh = Plan::new(None, &rs);
    assert!(fresh.kept_sets.is_empty());
    assert_eq!(fresh.created_sets.len(), rs.sets.len());
    assert_eq!(fresh.created_chains.len(), rs.chains.len());
    assert!(!fresh.batch_json().contains("\"flush\""));

    // The same ruleset again, plus a stale chain and set: sets and chains are kept,
    // every chain is flushed, the strays are deleted.
    let stale = r#"[
        {"chain": {"family": "inet", "table": "gwx", "name": "old", "handle": 9}},
        {"set": {"family": "inet", "table": "gwx", "name": "old4", "type": "ipv4_addr"}},
        {"set": {"family": "inet", "table": "other", "name": "x", "type": "ipv4_addr"}}
    ]"#;
    let again = Plan::new(Some(&listing_of(&rs, stale)), &rs);
    assert_eq!(again.kept_sets.len(), rs.sets.len(), "{again:?}");
    assert!(again.created_sets.is_empty() && again.replaced_sets.is_empty());
    assert_eq!(again.deleted_sets, ["old4"]);
    assert_eq!(again.deleted_chains, ["old"]);
    assert_eq!(again.kept_chains.len(), rs.chains.len());
    let batch = again.batch_json();
    assert_eq!(batch.matches("\"flush\"").count(), rs.chains.len() + 1);
    assert!(!batch.contains("\"name\": \"x\""), "other tables untouched");

    // A new ban timeout changes the ban sets' definition: they are re-created.
    let mut longer = inv.clone();
    longer.hardening.ban_timeout_secs = 3600;
    let rs2 = gateway::ruleset(&longer, "gw1").unwrap();
    let changed = Plan::new(Some(&listing_of(&rs, "[]")), &rs2);
    assert_eq!(changed.replaced_sets, ["bans4", "bans6"]);
    // A base chain whose priority changed is re-created too.
    let mut moved = rs.clone();
    moved.chains[0].prio = Some(-460);
    let plan = Plan::new(Some(&listing_of(&rs, "[]")), &moved);
    assert_eq!(plan.replaced_chains, [gateway::PREFILTER]);
}

#[test]
fn set_definitions_compare_as_nft_lists_them() {
    // nft 1.0.6 lists a dynamic set without the `dynamic` flag and a set with a timeout
    // with `"flags": ["timeout"]` (sometimes as a bare string).
    let listed = serde_json::json!({"family": "inet", "name": "rate4_web", "table": "gwx",
        "type": "ipv4_addr", "handle": 3, "size": 65535, "flags": "timeout", "timeout": 60,
        "elem": [{"elem": {"val": "198.51.100.2", "expires": 59}}]});
    let rs = gateway::ruleset(&shipped(), "gw1").unwrap();
    let desired = rs.set("rate4_web").unwrap();
    let desired = listing::SetDef::from_json(&ruleset::set_object(desired)["set"]);
    assert_eq!(listing::SetDef::from_json(&listed), desired);
}

#[test]
fn counters_come_from_commented_rules_and_drops_sum_by_reason() {
    let json = r#"{"nftables": [
      {"metainfo": {"version": "1.0.6"}},
      {"table": {"family": "inet", "name": "gwx", "handle": 1}},
      {"rule": {"family": "inet", "table": "gwx", "chain": "prefilter", "handle": 5,
        "comment": "drop:rate web ip", "expr": [{"counter": {"packets": 3, "bytes": 180}}, {"drop": null}]}},
      {"rule": {"family": "inet", "table": "gwx", "chain": "prefilter", "handle": 6,
        "comment": "drop:rate web ip6", "expr": [{"counter": {"packets": 4, "bytes": 320}}, {"drop": null}]}},
      {"rule": {"family": "inet", "table": "gwx", "chain": "input", "handle": 7,
        "comment": "accept:loopback", "expr": [{"counter": {"packets": 10, "bytes": 1000}}, {"accept": null}]}},
      {"rule": {"family": "inet", "table": "gwx", "chain": "input", "handle": 8,
        "expr": [{"counter": {"packets": 1, "bytes": 1}}]}},
      {"rule": {"family": "inet", "table": "gwx", "chain": "input", "handle": 9,
        "comment": "drop:input-policy", "expr": [{"counter": {"packets": 2, "bytes": 100}}]}}
    ]}"#;
    let listing = TableListing::parse(json, "gwx").unwrap();
    let counters = counters::from_listing(&listing);
    assert_eq!(
        counters.len(),
        4,
        "the rule without a comment is not reported"
    );
    assert_eq!(
        counters[0],
        RuleCounter {
            chain: "prefilter".into(),
            comment: "drop:rate web ip".into(),
            packets: 3,
            bytes: 180
        }
    );
    let by = counters::drops_by_reason(&counters);
    assert_eq!(by.get("rate"), Some(&7));
    assert_eq!(by.get("input-policy"), Some(&2));
    assert_eq!(by.len(), 2);

    let mut registry = prometheus_client::registry::Registry::with_prefix("gwx");
    let metrics = NftMetrics::register(&mut registry);
    metrics.update(&counters);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in [
        "# TYPE gwx_nft_drops counter",
        r#"gwx_nft_drops_total{reason="rate"} 7"#,
        r#"gwx_nft_rule_packets_total{chain="input",rule="accept:loopback"} 10"#,
        r#"gwx_nft_rule_bytes_total{chain="prefilter",rule="drop:rate web ip6"} 320"#,
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // A re-apply restarts the kernel's counters: the exported value follows.
    metrics.update(&[]);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(!text.contains("gwx_nft_drops_total{"), "{text}");
}

#[test]
fn drop_reasons() {
    assert_eq!(counters::drop_reason("drop:xmas"), Some("xmas"));
    assert_eq!(
        counters::drop_reason("drop:connlimit web ip6"),
        Some("connlimit")
    );
    assert_eq!(counters::drop_reason("accept:loopback"), None);
    assert_eq!(counters::drop_reason("drop:"), None);
}
