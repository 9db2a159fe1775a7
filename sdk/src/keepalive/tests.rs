#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use super::*;

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn safe_default_until_known_then_sized_to_the_timer() {
    let now = Instant::now();
    let mut k = Keepalive::new(KeepaliveConfig::default(), now);
    for t in TARGETS {
        assert_eq!(k.interval(t), s(15));
    }
    k.set_measured(Some(s(30)));
    assert_eq!(k.interval(Target::RelayAllocation), s(12));
    k.set_measured(Some(s(600)));
    assert_eq!(k.interval(Target::ServerMapping), s(120), "ceiling");
    k.set_measured(Some(Duration::from_millis(500)));
    assert_eq!(k.interval(Target::SelectedPath), s(1), "floor");
    k.set_measured(Some(Duration::ZERO));
    assert_eq!(
        k.interval(Target::SelectedPath),
        s(15),
        "zero means unknown"
    );
}

#[test]
fn an_expired_mapping_shortens_at_once_and_only_downwards() {
    let now = Instant::now();
    let mut k = Keepalive::new(KeepaliveConfig::default(), now);
    k.set_measured(Some(s(100)));
    assert_eq!(k.interval(Target::SelectedPath), s(40));
    k.mapping_expired(s(25));
    assert_eq!(k.interval(Target::SelectedPath), s(10));
    k.mapping_expired(s(50));
    assert_eq!(
        k.interval(Target::SelectedPath),
        s(10),
        "a longer gap says nothing new"
    );
    k.mapping_expired(Duration::ZERO);
    assert_eq!(k.interval(Target::SelectedPath), s(1));
}

#[test]
fn server_reflexive_change_uses_the_idle_time_of_that_mapping() {
    let t0 = Instant::now();
    let mut k = Keepalive::new(KeepaliveConfig::default(), t0);
    k.on_sent(Target::ServerMapping, t0 + s(5));
    k.server_reflexive_changed(t0 + s(25), Target::ServerMapping);
    assert_eq!(k.timer(), Some(s(20)));
    assert_eq!(k.interval(Target::ServerMapping), s(8));
}

#[test]
fn schedule_in_simulated_time_keeps_a_10s_nat_alive_for_3_minutes() {
    // A NAT with a 10 s timer, measured by diag. Simulate three idle minutes:
    // the gap between refreshes of each mapping never reaches the timer.
    let t0 = Instant::now();
    let mut k = Keepalive::new(KeepaliveConfig::default(), t0);
    k.set_measured(Some(s(10)));
    let mut now = t0;
    let mut last = [t0; 3];
    let mut sent = 0;
    while now < t0 + s(180) {
        now = k.poll_timeout();
        for t in k.poll_due(now) {
            let gap = now - last[t as usize];
            assert!(gap < s(10), "{t:?} idle {gap:?}");
            last[t as usize] = now;
            sent += 1;
        }
    }
    // 3 targets × 180 s / 4 s.
    assert_eq!(sent, 3 * 45);
}

#[test]
fn traffic_postpones_keepalives() {
    let t0 = Instant::now();
    let mut k = Keepalive::new(KeepaliveConfig::default(), t0);
    k.on_sent(Target::SelectedPath, t0 + s(10));
    assert_eq!(k.next_due(Target::SelectedPath), t0 + s(25));
    assert_eq!(
        k.poll_due(t0 + s(15)),
        vec![Target::RelayAllocation, Target::ServerMapping]
    );
    assert!(k.poll_due(t0 + s(16)).is_empty());
}

#[test]
fn the_cache_carries_the_timer_to_the_next_session_on_the_same_network() {
    let now = Instant::now();
    let mut cache = MemoryCache::default();
    let home = NetworkKey::new("192.168.1.1", Some("198.51.100.7".parse().unwrap()));
    let cafe = NetworkKey::new("10.0.0.1", Some("203.0.113.9".parse().unwrap()));
    let mut k = Keepalive::new(KeepaliveConfig::default(), now);
    k.set_measured(Some(s(40)));
    k.mapping_expired(s(30));
    k.store(&mut cache, &home);
    let again = Keepalive::from_cache(KeepaliveConfig::default(), now, &cache, &home);
    assert_eq!(again.timer(), Some(s(30)));
    assert_eq!(again.interval(Target::SelectedPath), s(12));
    let elsewhere = Keepalive::from_cache(KeepaliveConfig::default(), now, &cache, &cafe);
    assert_eq!(elsewhere.interval(Target::SelectedPath), s(15));
}
