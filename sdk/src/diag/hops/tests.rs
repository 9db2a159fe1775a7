use std::net::{IpAddr, SocketAddr};

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn path(hops: &[Option<&str>], reached: Option<u8>) -> PathTrace {
    PathTrace {
        hops: hops.iter().map(|h| h.map(ip)).collect(),
        server_reached_at: reached,
    }
}

fn layers(local: &str, mapped: &str, p: Option<&PathTrace>, gw: Option<&str>) -> Layers {
    interpret(ip(local), Some(ip(mapped)), p, gw.map(ip))
}

fn summary(l: &Layers) -> (Option<u8>, Option<u8>, Option<bool>) {
    (l.exact, l.at_least, l.cgn)
}

#[test]
fn realms() {
    assert_eq!(realm(ip("192.168.6.10")), Realm::Private);
    assert_eq!(realm(ip("10.1.2.3")), Realm::Private);
    assert_eq!(realm(ip("172.31.0.1")), Realm::Private);
    assert_eq!(realm(ip("100.64.6.1")), Realm::Shared);
    assert_eq!(realm(ip("100.127.255.254")), Realm::Shared);
    assert_eq!(realm(ip("100.128.0.1")), Realm::Public);
    assert_eq!(realm(ip("192.0.0.1")), Realm::Softwire);
    assert_eq!(realm(ip("192.0.0.8")), Realm::Public);
    assert_eq!(realm(ip("198.18.0.10")), Realm::Public);
    assert_eq!(realm(ip("fd00::1")), Realm::Private);
    assert_eq!(realm(ip("2001:db8::10")), Realm::Public);
}

#[test]
fn home_router_behind_a_cgn_is_two_nats_with_cgn() {
    // natlab `cgn`: host → home router (192.168.x.1) → CGN (100.64.x.1) → server.
    let p = path(&[Some("192.168.10.1"), Some("100.64.10.1")], Some(3));
    let l = layers("192.168.10.10", "198.18.1.10", Some(&p), None);
    assert_eq!(summary(&l), (Some(2), Some(2), Some(true)));
    assert_eq!(l.note, None);
    // A public first router beyond the CGN ends the walk the same way.
    let p = path(
        &[
            Some("192.168.10.1"),
            Some("100.64.10.1"),
            Some("203.0.113.1"),
        ],
        None,
    );
    let l = layers("192.168.10.10", "203.0.113.9", Some(&p), None);
    assert_eq!(summary(&l), (Some(2), Some(2), Some(true)));
}

#[test]
fn one_home_nat() {
    let p = path(&[Some("192.168.6.1")], Some(2));
    let l = layers("192.168.6.10", "198.18.1.6", Some(&p), None);
    assert_eq!(summary(&l), (Some(1), Some(1), Some(false)));
}

#[test]
fn no_nat() {
    let p = path(&[Some("198.19.1.1")], None);
    let l = layers("198.19.1.10", "198.19.1.10", Some(&p), None);
    assert_eq!(summary(&l), (Some(0), Some(0), Some(false)));
    let l = layers("198.19.1.10", "198.19.1.10", None, None);
    assert_eq!(summary(&l), (Some(0), Some(0), Some(false)));
}

#[test]
fn ds_lite_is_one_carrier_nat() {
    // The host is the B4: softwire 192.0.0.2 → AFTR 192.0.0.1 → server.
    let p = path(&[Some("192.0.0.1")], Some(2));
    let l = layers("192.0.0.2", "198.18.1.11", Some(&p), None);
    assert_eq!(summary(&l), (Some(1), Some(1), Some(true)));
    // Untraced, the B4 address alone says the same.
    let l = layers("192.0.0.2", "198.18.1.11", None, None);
    assert_eq!(summary(&l), (Some(1), Some(1), Some(true)));
    // Behind a B4 router: entering the softwire is tunnelling, not a NAT.
    let p = path(&[Some("192.168.1.1"), Some("192.0.0.1")], Some(3));
    let l = layers("192.168.1.10", "198.18.1.11", Some(&p), None);
    assert_eq!(summary(&l), (Some(1), Some(1), Some(true)));
}

#[test]
fn silent_hops_leave_a_lower_bound() {
    // ICMP filtered by the CGN: the hop that might be 100.64/10 is silent.
    let p = path(&[Some("192.168.10.1"), None], Some(3));
    let l = layers("192.168.10.10", "198.18.1.10", Some(&p), None);
    assert_eq!(summary(&l), (None, Some(1), None));
    assert!(
        l.note.as_deref().unwrap_or("").contains("did not answer"),
        "{l:?}"
    );
    // Nothing answered at all.
    let p = path(&[None, None, None], None);
    let l = layers("192.168.10.10", "198.18.1.10", Some(&p), None);
    assert_eq!(summary(&l), (None, Some(1), None));
    // A silent hop after the first public one does not matter.
    let p = path(&[Some("192.168.1.1"), Some("203.0.113.1"), None], None);
    let l = layers("192.168.1.10", "203.0.113.7", Some(&p), None);
    assert_eq!(summary(&l), (Some(1), Some(1), Some(false)));
}

#[test]
fn a_shared_hop_proves_cgn_even_when_incomplete() {
    let p = path(&[Some("192.168.10.1"), Some("100.64.10.1"), None], None);
    let l = layers("192.168.10.10", "198.18.1.10", Some(&p), None);
    assert_eq!(summary(&l), (None, Some(2), Some(true)));
}

#[test]
fn two_private_networks_in_a_row_are_ambiguous() {
    let p = path(&[Some("192.168.1.1"), Some("192.168.0.1")], Some(3));
    let l = layers("192.168.1.10", "198.18.1.1", Some(&p), None);
    assert_eq!(summary(&l), (None, Some(1), None));
    assert!(
        l.note.as_deref().unwrap_or("").contains("192.168.0.1"),
        "{l:?}"
    );
}

#[test]
fn untraced_paths_use_the_addresses() {
    let l = layers("192.168.1.10", "198.18.1.1", None, None);
    assert_eq!(summary(&l), (None, Some(1), None));
    assert!(l.note.as_deref().unwrap_or("").starts_with(NOTE_PREFIX));
    let mobile = layers("100.64.3.7", "198.18.1.1", None, None);
    assert_eq!(mobile.cgn, Some(true));
    let unknown = interpret(ip("192.168.1.10"), None, None, None);
    assert_eq!(summary(&unknown), (None, None, None));
}

#[test]
fn a_port_mapping_gateway_adds_evidence() {
    // Its external address is shared: another NAT (a CGN) above it.
    let l = layers("192.168.1.10", "198.18.1.1", None, Some("100.64.1.2"));
    assert_eq!((l.at_least, l.cgn), (Some(2), Some(true)));
    // A traced single NAT contradicted by a private gateway address.
    let p = path(&[Some("192.168.1.1")], Some(2));
    let l = layers("192.168.1.10", "198.18.1.1", Some(&p), Some("10.0.0.2"));
    assert_eq!(summary(&l), (None, Some(2), None));
    // The gateway's external address is the mapped one: it is the only NAT.
    let l = layers("192.168.1.10", "198.18.1.1", None, Some("198.18.1.1"));
    assert_eq!(summary(&l), (Some(1), Some(1), Some(false)));
}

#[test]
fn update_replaces_the_previous_note() {
    let mut r = Report::new("s");
    r.local_address = "192.168.1.10:4000".parse().ok();
    r.mapped_address = "198.18.1.1:4000".parse().ok();
    r.update_nat_layers();
    assert_eq!(r.warnings.len(), 1);
    r.path = Some(path(&[Some("192.168.1.1"), Some("100.64.1.1")], Some(3)));
    r.update_nat_layers();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!((r.nat_layers, r.cgn), (Some(2), Some(true)));
}

fn server() -> SocketAddr {
    "198.18.0.10:3478".parse().unwrap()
}

fn id(payload: &[u8]) -> Vec<u8> {
    payload[..20].to_vec()
}

#[test]
fn tracer_walks_hops_until_the_server_answers() {
    let mut t = Tracer::new(TraceConfig::default(), server(), 1);
    let (ttl, p1) = t.next_probe().unwrap();
    assert_eq!(ttl, 1);
    t.on_time_exceeded(ip("192.168.1.1"), &id(&p1));
    let (ttl, p2) = t.next_probe().unwrap();
    assert_eq!(ttl, 2);
    // An ICMP message that quotes only the UDP header still counts for this TTL.
    t.on_time_exceeded(ip("100.64.1.1"), &[]);
    let (ttl, p3) = t.next_probe().unwrap();
    assert_eq!(ttl, 3);
    // A late duplicate for TTL 1 is ignored.
    t.on_time_exceeded(ip("10.9.9.9"), &id(&p1));
    // Another host's datagram is ignored; the server's answer ends the trace.
    t.on_datagram("198.18.0.99:3478".parse().unwrap(), &p3);
    assert!(!t.is_done());
    t.on_datagram(server(), &p3);
    assert!(t.is_done());
    assert!(t.next_probe().is_none());
    let _ = p2;
    assert_eq!(
        t.into_path(),
        path(&[Some("192.168.1.1"), Some("100.64.1.1")], Some(3))
    );
}

#[test]
fn tracer_retries_then_gives_up_on_silence() {
    let cfg = TraceConfig {
        max_ttl: 8,
        attempts: 2,
        max_silent: 2,
    };
    let mut t = Tracer::new(cfg, server(), 2);
    let mut sends = 0;
    while t.next_probe().is_some() {
        sends += 1;
        t.on_timeout();
        assert!(sends < 100);
    }
    assert_eq!(sends, 4);
    assert_eq!(t.into_path(), path(&[None, None], None));
}

#[test]
fn tracer_stops_at_the_first_public_router_and_at_max_ttl() {
    let mut t = Tracer::new(TraceConfig::default(), server(), 3);
    let (_, p) = t.next_probe().unwrap();
    t.on_time_exceeded(ip("203.0.113.1"), &id(&p));
    assert!(t.is_done());
    let cfg = TraceConfig {
        max_ttl: 1,
        ..TraceConfig::default()
    };
    let mut t = Tracer::new(cfg, server(), 4);
    let (_, p) = t.next_probe().unwrap();
    t.on_time_exceeded(ip("192.168.1.1"), &id(&p));
    assert!(t.is_done());
    // A port unreachable from the server itself means it was reached.
    let mut t = Tracer::new(TraceConfig::default(), server(), 5);
    let (_, p) = t.next_probe().unwrap();
    t.on_destination_error(&id(&p));
    assert_eq!(t.into_path().server_reached_at, Some(1));
}
