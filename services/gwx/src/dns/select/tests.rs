use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::*;

/// 0.999 quantiles of the chi-square distribution by degrees of freedom (regularized
/// gamma, bisection): a fixed seed cannot flake, and a biased draw fails by far.
const CHI2_999_DF1: f64 = 10.8276;
const CHI2_999_DF3: f64 = 16.2662;
const CHI2_999_DF31: f64 = 61.0983;

fn v4(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, i))
}

fn v6(i: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i))
}

fn rng() -> SmallRng {
    SmallRng::seed_from_u64(0x5e1ec7)
}

fn policy(answer_count: usize) -> Policy {
    Policy {
        answer_count,
        fallback: Fallback::All,
        allow_unchecked_at_start: false,
    }
}

/// IPv4 candidates `first..first + count`, all in one health state.
fn grid(first: u8, count: u8, health: Health) -> Vec<Candidate> {
    (first..first + count)
        .map(|i| Candidate::new(v4(i), health))
        .collect()
}

fn pool(candidates: &[Candidate], policy: &Policy) -> Pool {
    Pool::new(candidates, policy).expect("valid policy")
}

fn draws(pool: &Pool, family: Family, count: usize) -> Vec<Selection> {
    let mut rng = rng();
    (0..count).map(|_| pool.select(family, &mut rng)).collect()
}

fn with_health(candidates: &[Candidate], health: Health) -> HashSet<IpAddr> {
    candidates
        .iter()
        .filter(|c| c.health == health)
        .map(|c| c.addr)
        .collect()
}

fn distinct(addrs: &[IpAddr]) -> HashSet<IpAddr> {
    let set: HashSet<IpAddr> = addrs.iter().copied().collect();
    assert_eq!(set.len(), addrs.len(), "repeated address in {addrs:?}");
    set
}

/// Pearson's statistic of `observed` counts against `expected` shares (summing to 1).
fn chi_square(observed: &[u64], shares: &[f64]) -> f64 {
    let total: u64 = observed.iter().sum();
    observed
        .iter()
        .zip(shares)
        .map(|(&o, &p)| {
            let e = total as f64 * p;
            (o as f64 - e).powi(2) / e
        })
        .sum()
}

fn counts(addrs: &[IpAddr], of: impl Iterator<Item = IpAddr>) -> Vec<u64> {
    let mut by_addr: HashMap<IpAddr, u64> = HashMap::new();
    for a in of {
        *by_addr.entry(a).or_default() += 1;
    }
    addrs
        .iter()
        .map(|a| by_addr.get(a).copied().unwrap_or(0))
        .collect()
}

#[test]
fn healthy_answers_hold_n_distinct_up_addresses() {
    let mut candidates = grid(1, 32, Health::Up);
    candidates.extend(grid(101, 8, Health::Down));
    candidates.extend(grid(121, 8, Health::Unchecked));
    candidates.extend(grid(141, 4, Health::Drained));
    let up = with_health(&candidates, Health::Up);
    let pool = pool(&candidates, &policy(4));
    assert_eq!(pool.source(Family::V4), Source::Healthy);
    for selection in draws(&pool, Family::V4, 2000) {
        assert_eq!(selection.source, Source::Healthy);
        assert_eq!(selection.addrs.len(), 4);
        assert!(distinct(&selection.addrs).is_subset(&up), "{selection:?}");
    }
}

#[test]
fn exactly_n_up_is_healthy_and_uses_them_all() {
    let candidates = grid(1, 4, Health::Up);
    let pool = pool(&candidates, &policy(4));
    for selection in draws(&pool, Family::V4, 100) {
        assert_eq!(selection.source, Source::Healthy);
        assert_eq!(
            distinct(&selection.addrs),
            with_health(&candidates, Health::Up)
        );
    }
}

#[test]
fn families_are_kept_apart() {
    let mut candidates = grid(1, 8, Health::Up);
    candidates.extend((1..=8).map(|i| Candidate::new(v6(i), Health::Down)));
    let pool = pool(&candidates, &policy(4));
    for selection in draws(&pool, Family::V4, 200) {
        assert_eq!(selection.source, Source::Healthy);
        assert!(selection.addrs.iter().all(IpAddr::is_ipv4));
    }
    for selection in draws(&pool, Family::V6, 200) {
        assert_eq!(selection.source, Source::FallbackAll);
        assert_eq!(selection.addrs.len(), 4);
        assert!(selection.addrs.iter().all(IpAddr::is_ipv6));
    }
}

#[test]
fn fewer_up_than_n_answers_with_all_up_in_random_order() {
    let mut candidates = grid(1, 2, Health::Up);
    candidates.extend(grid(11, 5, Health::Down));
    candidates.extend(grid(21, 3, Health::Unchecked));
    candidates.extend(grid(31, 3, Health::Drained));
    let pool = pool(&candidates, &policy(4));
    let mut firsts = HashSet::new();
    for selection in draws(&pool, Family::V4, 200) {
        assert_eq!(selection.source, Source::Partial);
        assert!(!selection.source.is_fallback());
        assert_eq!(
            distinct(&selection.addrs),
            with_health(&candidates, Health::Up)
        );
        firsts.insert(selection.addrs[0]);
    }
    assert_eq!(firsts.len(), 2, "both orders must occur");
}

#[test]
fn none_up_falls_back_to_all_not_drained() {
    let mut candidates = grid(1, 6, Health::Down);
    candidates.extend(grid(11, 2, Health::Unchecked));
    candidates.extend(grid(21, 3, Health::Drained));
    let drained = with_health(&candidates, Health::Drained);
    let pool = pool(&candidates, &policy(4));
    let mut seen = HashSet::new();
    for selection in draws(&pool, Family::V4, 500) {
        assert_eq!(selection.source, Source::FallbackAll);
        assert!(selection.source.is_fallback());
        assert_eq!(selection.addrs.len(), 4);
        let addrs = distinct(&selection.addrs);
        assert!(addrs.is_disjoint(&drained), "{selection:?}");
        seen.extend(addrs);
    }
    assert_eq!(
        seen.len(),
        8,
        "every down and unchecked address takes its turn"
    );
}

#[test]
fn none_up_falls_back_to_backup_of_the_family() {
    let candidates = grid(1, 8, Health::Down);
    let backup = vec![v4(200), v6(1), v4(201), v4(200)];
    let policy = Policy {
        fallback: Fallback::Backup(backup),
        ..policy(4)
    };
    let pool = pool(&candidates, &policy);
    for selection in draws(&pool, Family::V4, 100) {
        assert_eq!(selection.source, Source::FallbackBackup);
        assert!(selection.source.is_fallback());
        assert_eq!(
            distinct(&selection.addrs),
            HashSet::from([v4(200), v4(201)])
        );
    }
    // No IPv6 gateway at all: the backup still answers AAAA.
    let selection = pool.select(Family::V6, &mut rng());
    assert_eq!(selection.source, Source::FallbackBackup);
    assert_eq!(selection.addrs, vec![v6(1)]);
}

#[test]
fn backup_answers_hold_n_at_most() {
    let candidates = grid(1, 8, Health::Down);
    let backup: Vec<IpAddr> = (200..210).map(v4).collect();
    let policy = Policy {
        fallback: Fallback::Backup(backup.clone()),
        ..policy(4)
    };
    let pool = pool(&candidates, &policy);
    let backup: HashSet<IpAddr> = backup.into_iter().collect();
    for selection in draws(&pool, Family::V4, 200) {
        assert_eq!(selection.addrs.len(), 4);
        assert!(distinct(&selection.addrs).is_subset(&backup));
    }
}

#[test]
fn backup_without_an_address_of_the_family_falls_back_to_all() {
    let candidates = grid(1, 8, Health::Down);
    let policy = Policy {
        fallback: Fallback::Backup(vec![v6(1)]),
        ..policy(4)
    };
    let pool = pool(&candidates, &policy);
    let selection = pool.select(Family::V4, &mut rng());
    assert_eq!(selection.source, Source::FallbackAll);
    assert!(distinct(&selection.addrs).is_subset(&with_health(&candidates, Health::Down)));
}

#[test]
fn backup_is_not_used_while_something_is_up() {
    let mut candidates = grid(1, 1, Health::Up);
    candidates.extend(grid(11, 8, Health::Down));
    let policy = Policy {
        fallback: Fallback::Backup(vec![v4(200)]),
        ..policy(4)
    };
    let selection = pool(&candidates, &policy).select(Family::V4, &mut rng());
    assert_eq!(selection.source, Source::Partial);
    assert_eq!(selection.addrs, vec![v4(1)]);
}

#[test]
fn unchecked_never_join_up_addresses_even_at_start() {
    let mut candidates = grid(1, 1, Health::Up);
    candidates.extend(grid(11, 31, Health::Unchecked));
    let policy = Policy {
        allow_unchecked_at_start: true,
        ..policy(4)
    };
    for selection in draws(&pool(&candidates, &policy), Family::V4, 100) {
        assert_eq!(selection.source, Source::Partial);
        assert_eq!(selection.addrs, vec![v4(1)]);
    }
}

#[test]
fn unchecked_at_start_when_nothing_checked_and_allowed() {
    let mut candidates = grid(1, 8, Health::Unchecked);
    candidates.extend(grid(21, 2, Health::Drained));
    let allowed = Policy {
        allow_unchecked_at_start: true,
        ..policy(4)
    };
    let pool = pool(&candidates, &allowed);
    assert_eq!(pool.source(Family::V4), Source::UncheckedAtStart);
    for selection in draws(&pool, Family::V4, 200) {
        assert_eq!(selection.source, Source::UncheckedAtStart);
        assert!(!selection.source.is_fallback());
        assert_eq!(selection.addrs.len(), 4);
        assert!(distinct(&selection.addrs).is_subset(&with_health(&candidates, Health::Unchecked)));
    }
}

#[test]
fn unchecked_at_start_not_allowed_means_fallback() {
    let candidates = grid(1, 8, Health::Unchecked);
    let all = pool(&candidates, &policy(4)).select(Family::V4, &mut rng());
    assert_eq!(all.source, Source::FallbackAll);
    assert_eq!(all.addrs.len(), 4);
    let backup = Policy {
        fallback: Fallback::Backup(vec![v4(200)]),
        ..policy(4)
    };
    let backup = pool(&candidates, &backup).select(Family::V4, &mut rng());
    assert_eq!(backup.source, Source::FallbackBackup);
    assert_eq!(backup.addrs, vec![v4(200)]);
}

#[test]
fn one_address_checked_down_ends_the_start_grace() {
    let mut candidates = grid(1, 1, Health::Down);
    candidates.extend(grid(11, 31, Health::Unchecked));
    let policy = Policy {
        allow_unchecked_at_start: true,
        ..policy(4)
    };
    let pool = pool(&candidates, &policy);
    assert_eq!(pool.source(Family::V4), Source::FallbackAll);
}

#[test]
fn drained_never_drawn_while_another_address_exists() {
    for other in [Health::Up, Health::Down, Health::Unchecked] {
        let mut candidates = grid(1, 1, other);
        candidates.extend(grid(11, 20, Health::Drained));
        let policy = Policy {
            allow_unchecked_at_start: true,
            ..policy(4)
        };
        for selection in draws(&pool(&candidates, &policy), Family::V4, 50) {
            assert_eq!(selection.addrs, vec![v4(1)], "{other:?}: {selection:?}");
        }
    }
}

#[test]
fn all_drained_serves_the_drained_flagged() {
    let candidates = grid(1, 8, Health::Drained);
    let pool = pool(&candidates, &policy(4));
    let selection = pool.select(Family::V4, &mut rng());
    assert_eq!(selection.source, Source::AllDrained);
    assert!(selection.source.is_fallback());
    assert_eq!(selection.addrs.len(), 4);
    assert!(distinct(&selection.addrs).is_subset(&with_health(&candidates, Health::Drained)));
}

#[test]
fn all_drained_prefers_the_backup() {
    let candidates = grid(1, 8, Health::Drained);
    let policy = Policy {
        fallback: Fallback::Backup(vec![v4(200)]),
        ..policy(4)
    };
    let selection = pool(&candidates, &policy).select(Family::V4, &mut rng());
    assert_eq!(selection.source, Source::FallbackBackup);
    assert_eq!(selection.addrs, vec![v4(200)]);
}

#[test]
fn no_address_of_the_family_gives_an_empty_answer() {
    let pool = pool(&grid(1, 8, Health::Up), &policy(4));
    assert_eq!(pool.source(Family::V6), Source::NoAddress);
    let selection = pool.select(Family::V6, &mut rng());
    assert_eq!(selection.source, Source::NoAddress);
    assert!(selection.source.is_fallback());
    assert!(selection.addrs.is_empty());
}

#[test]
fn an_address_listed_twice_is_used_once_as_first_listed() {
    let candidates = vec![
        Candidate::new(v4(1), Health::Up),
        Candidate::new(v4(1), Health::Up),
        Candidate::new(v4(2), Health::Down),
        Candidate::new(v4(2), Health::Up),
        Candidate::new(v4(3), Health::Up),
    ];
    let pool = pool(&candidates, &policy(4));
    for selection in draws(&pool, Family::V4, 100) {
        assert_eq!(selection.source, Source::Partial);
        assert_eq!(distinct(&selection.addrs), HashSet::from([v4(1), v4(3)]));
    }
}

#[test]
fn answer_count_is_validated() {
    for bad in [0, MAX_ANSWER_COUNT + 1] {
        let err = Pool::new(&[], &policy(bad)).expect_err("out of range");
        assert_eq!(err, PolicyError::AnswerCount(bad));
        assert!(err.to_string().contains(&bad.to_string()), "{err}");
    }
    let candidates = grid(1, 100, Health::Up);
    let pool = pool(&candidates, &policy(MAX_ANSWER_COUNT));
    let selection = pool.select(Family::V4, &mut rng());
    assert_eq!(distinct(&selection.addrs).len(), MAX_ANSWER_COUNT);
}

#[test]
fn same_seed_same_answers() {
    let pool = pool(&grid(1, 32, Health::Up), &policy(4));
    assert_eq!(draws(&pool, Family::V4, 50), draws(&pool, Family::V4, 50));
}

#[test]
fn every_up_address_equally_often_and_equally_often_first() {
    let candidates = grid(1, 32, Health::Up);
    let addrs: Vec<IpAddr> = candidates.iter().map(|c| c.addr).collect();
    let shares = vec![1.0 / 32.0; 32];
    let selections = draws(&pool(&candidates, &policy(4)), Family::V4, 20_000);

    // Inclusion counts: drawing without replacement makes them less dispersed than
    // multinomial counts, so the chi-square quantile is a conservative bound.
    let included = counts(
        &addrs,
        selections.iter().flat_map(|s| s.addrs.iter().copied()),
    );
    let stat = chi_square(&included, &shares);
    assert!(
        stat < CHI2_999_DF31,
        "inclusion chi-square {stat}: {included:?}"
    );

    // The first address (the one many clients use) is multinomial: exact test.
    let first = counts(&addrs, selections.iter().map(|s| s.addrs[0]));
    let stat = chi_square(&first, &shares);
    assert!(
        stat < CHI2_999_DF31,
        "first-address chi-square {stat}: {first:?}"
    );
}

#[test]
fn weights_shift_frequencies_proportionally() {
    let candidates: Vec<Candidate> = (1..=4)
        .map(|i| Candidate::new(v4(i), Health::Up).with_weight(u32::from(i)))
        .collect();
    let addrs: Vec<IpAddr> = candidates.iter().map(|c| c.addr).collect();
    let selections = draws(&pool(&candidates, &policy(2)), Family::V4, 20_000);
    for selection in &selections {
        distinct(&selection.addrs);
    }
    let first = counts(&addrs, selections.iter().map(|s| s.addrs[0]));
    let stat = chi_square(&first, &[0.1, 0.2, 0.3, 0.4]);
    assert!(stat < CHI2_999_DF3, "chi-square {stat}: {first:?}");
    // And uniform shares are far off: the weights do matter.
    assert!(chi_square(&first, &[0.25; 4]) > 10.0 * CHI2_999_DF3);
}

#[test]
fn weight_zero_is_a_standby() {
    let mut candidates = grid(1, 3, Health::Up);
    candidates.push(Candidate::new(v4(9), Health::Up).with_weight(0));
    let three = pool(&candidates, &policy(3));
    for selection in draws(&three, Family::V4, 500) {
        assert!(!selection.addrs.contains(&v4(9)), "{selection:?}");
    }
    let four = pool(&candidates, &policy(4));
    for selection in draws(&four, Family::V4, 100) {
        assert_eq!(selection.addrs.len(), 4);
        assert_eq!(selection.addrs[3], v4(9));
    }
    let only_standby: Vec<Candidate> = grid(1, 3, Health::Up)
        .into_iter()
        .map(|c| c.with_weight(0))
        .collect();
    let selection = pool(&only_standby, &policy(2)).select(Family::V4, &mut rng());
    assert_eq!(distinct(&selection.addrs).len(), 2);
}

fn grouped(groups: &[(&str, u8)]) -> Vec<Candidate> {
    let mut next = 1;
    let mut candidates = Vec::new();
    for &(group, size) in groups {
        for _ in 0..size {
            candidates.push(Candidate::new(v4(next), Health::Up).with_group(group));
            next += 1;
        }
    }
    candidates
}

fn groups_of<'a>(candidates: &'a [Candidate], addrs: &[IpAddr]) -> Vec<Option<&'a str>> {
    addrs
        .iter()
        .map(|a| {
            let c = candidates
                .iter()
                .find(|c| c.addr == *a)
                .expect("a candidate");
            c.group.as_deref()
        })
        .collect()
}

#[test]
fn groups_are_covered_before_any_repeats() {
    let candidates = grouped(&[("de", 8), ("fr", 8), ("nl", 8), ("us", 8)]);
    for selection in draws(&pool(&candidates, &policy(4)), Family::V4, 500) {
        let groups: HashSet<_> = groups_of(&candidates, &selection.addrs)
            .into_iter()
            .collect();
        assert_eq!(groups.len(), 4, "{selection:?}");
    }
    for selection in draws(&pool(&candidates, &policy(6)), Family::V4, 500) {
        let groups = groups_of(&candidates, &selection.addrs);
        // The first four draws cover every group, then two second addresses.
        assert_eq!(
            groups[..4].iter().collect::<HashSet<_>>().len(),
            4,
            "{groups:?}"
        );
        for g in &groups {
            assert!(groups.iter().filter(|h| *h == g).count() <= 2, "{groups:?}");
        }
    }
}

#[test]
fn a_small_group_is_always_represented() {
    let candidates = grouped(&[("big", 10), ("small", 1)]);
    let small = candidates[10].addr;
    for selection in draws(&pool(&candidates, &policy(2)), Family::V4, 500) {
        assert!(selection.addrs.contains(&small), "{selection:?}");
    }
}

#[test]
fn unlabelled_addresses_are_groups_of_their_own() {
    let mut candidates = grouped(&[("x", 5)]);
    candidates.extend(grid(101, 3, Health::Up));
    for selection in draws(&pool(&candidates, &policy(4)), Family::V4, 500) {
        let groups = groups_of(&candidates, &selection.addrs);
        assert_eq!(
            groups.iter().filter(|g| g.is_some()).count(),
            1,
            "{groups:?}"
        );
        assert_eq!(
            groups.iter().filter(|g| g.is_none()).count(),
            3,
            "{groups:?}"
        );
    }
}

#[test]
fn weights_still_count_within_a_group() {
    let candidates = vec![
        Candidate::new(v4(1), Health::Up).with_group("a"),
        Candidate::new(v4(2), Health::Up)
            .with_group("a")
            .with_weight(3),
        Candidate::new(v4(3), Health::Up).with_group("b"),
    ];
    let selections = draws(&pool(&candidates, &policy(2)), Family::V4, 20_000);
    for selection in &selections {
        assert!(selection.addrs.contains(&v4(3)), "{selection:?}");
    }
    let from_a = counts(
        &[v4(1), v4(2)],
        selections.iter().flat_map(|s| s.addrs.iter().copied()),
    );
    let stat = chi_square(&from_a, &[0.25, 0.75]);
    assert!(stat < CHI2_999_DF1, "chi-square {stat}: {from_a:?}");
}

#[test]
fn only_no_up_is_a_fallback() {
    for (source, fallback) in [
        (Source::Healthy, false),
        (Source::Partial, false),
        (Source::UncheckedAtStart, false),
        (Source::FallbackBackup, true),
        (Source::FallbackAll, true),
        (Source::AllDrained, true),
        (Source::NoAddress, true),
    ] {
        assert_eq!(source.is_fallback(), fallback, "{source:?}");
    }
}
