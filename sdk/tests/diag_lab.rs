//! `tsunagi::diag` against real kernel NATs: for each NAT behaviour of the lab, the
//! diagnosis run from the site's host against coturn (RFC 5780) must agree with the
//! lab's label. Needs root (network namespaces); prints `SKIPPED(not root)` otherwise.
//! Each test builds its own lab, so they run in parallel.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use natlab::{Knobs, Lab, SERVER_V4, Site, Topology, catalog};
use tsunagi::diag::{Behaviour, CancelFlag, DiagConfig, LifetimeConfig, Report, run_blocking};

use Behaviour::{
    AddressAndPortDependent as APD, AddressDependent as AD, EndpointIndependent as EI,
};

fn site(name: &str) -> Site {
    catalog()
        .into_iter()
        .find(|s| s.name == name)
        .expect("a catalog site")
}

/// A lab with `s` and coturn, or `None` (with the reason printed) when it cannot be built.
fn lab(test: &str, s: Site) -> Option<Lab> {
    if !natlab::is_root() {
        println!("SKIPPED(not root): {test} needs root for network namespaces");
        return None;
    }
    let mut lab = match Lab::build(Topology::new().site(s)) {
        Ok(lab) => lab,
        Err(e) if e.to_string().contains("not built") => {
            println!("SKIPPED({test}): {e}");
            return None;
        }
        Err(e) => panic!("building the lab for {test}: {e}"),
    };
    natlab::coturn::start(&mut lab, &[]).expect("starting coturn in the server namespace");
    Some(lab)
}

/// Runs the diagnosis inside the site's host namespace.
fn diagnose(lab: &Lab, name: &str, config: DiagConfig) -> Report {
    let host = lab.host(name).unwrap().clone();
    let started = Instant::now();
    let report = host
        .ns
        .run(move || {
            run_blocking(
                &config,
                |p| println!("  progress: {p:?}"),
                &CancelFlag::default(),
            )
        })
        .expect("running in the host's namespace")
        .expect("the diagnosis runs");
    println!(
        "{name}: diagnosis took {:?}\n{}",
        started.elapsed(),
        report.to_json_pretty()
    );
    println!(
        "ROW | {name:<10} | {:<26} | {:<26} | {:<10} | {:>5}-{:<5} | hairpin {:?} | layers {:?} (≥{:?}) | cgn {:?} | {} | {:?} | PS {:?} | Switch {:?} | lifetime {:?} | {} ms",
        fmt(report.mapping),
        fmt(report.filtering),
        report
            .port_allocation
            .map(|p| format!("{p:?}"))
            .unwrap_or("-".into()),
        report.port_range.as_ref().map_or(0, |r| r.min),
        report.port_range.as_ref().map_or(0, |r| r.max),
        report.hairpinning,
        report.nat_layers,
        report.nat_layers_at_least,
        report.cgn,
        report.classic_name(),
        report.open_moderate_strict(),
        report.playstation_type(),
        report.switch_type(),
        report.binding_lifetime_s,
        report.duration_ms,
    );
    report
}

fn fmt(b: Option<Behaviour>) -> String {
    b.map(|b| {
        serde_json::to_string(&b)
            .unwrap()
            .trim_matches('"')
            .to_owned()
    })
    .unwrap_or_else(|| "null".into())
}

fn quick() -> DiagConfig {
    DiagConfig {
        quick: true,
        ..DiagConfig::new(&SocketAddr::new(SERVER_V4[0].into(), 3478).to_string())
    }
}

/// Quick diagnosis of catalog site `name`: mapping and filtering must match.
fn expect(name: &str, mapping: Behaviour, filtering: Behaviour) -> Option<Report> {
    let lab = lab(name, site(name))?;
    let r = diagnose(&lab, name, quick());
    assert_eq!(
        r.mapping,
        Some(mapping),
        "mapping of {name}: {:?}",
        r.warnings
    );
    assert_eq!(
        r.filtering,
        Some(filtering),
        "filtering of {name}: {:?}",
        r.warnings
    );
    let public = lab.site(name).unwrap().public_v4;
    assert_eq!(
        r.mapped_address.map(|a| a.ip()),
        public.map(Into::into),
        "{name}"
    );
    assert!(
        r.binding_lifetime_s.is_none(),
        "quick mode skips the lifetime"
    );
    Some(r)
}

#[test]
fn public_has_no_nat() {
    let Some(r) = expect("public", EI, EI) else {
        return;
    };
    assert_eq!(r.behind_nat(), Some(false));
    assert_eq!(r.nat_layers, Some(0));
    assert_eq!(r.classic_name().to_string(), "open internet");
}

#[test]
fn dualstack_is_port_restricted() {
    let Some(r) = expect("dualstack", EI, APD) else {
        return;
    };
    assert_eq!(r.hairpinning, Some(false));
}

#[test]
fn fullcone_is_eim_eif() {
    let Some(r) = expect("fullcone", EI, EI) else {
        return;
    };
    assert_eq!(r.classic_name().to_string(), "full cone");
}

#[test]
fn addrrestr_is_eim_adf() {
    expect("addrrestr", EI, AD);
}

#[test]
fn portrestr_is_eim_apdf() {
    let Some(r) = expect("portrestr", EI, APD) else {
        return;
    };
    assert_eq!(r.nat_layers_at_least, Some(1));
}

#[test]
fn symmetric_is_apdm_apdf() {
    let Some(r) = expect("symmetric", APD, APD) else {
        return;
    };
    assert_eq!(
        r.port_allocation,
        Some(tsunagi::diag::PortAllocation::Random)
    );
    assert_eq!(r.classic_name().to_string(), "symmetric");
}

fn in_map_e_set(r: &Report) {
    let range = r.port_range.as_ref().expect("a port range");
    assert!(range.min >= 20000 && range.max <= 20015, "{range:?}");
    assert!(range.observed.len() >= 3, "{range:?}");
}

#[test]
fn mapeeim_ports_stay_in_the_set() {
    let Some(r) = expect("mapeeim", EI, APD) else {
        return;
    };
    in_map_e_set(&r);
    let hint = r
        .mape_hint
        .expect("a MAP-E hint from ports in one 16-port block");
    assert_eq!(hint.block, (20000, 20015));
}

/// A random port out of 16 per destination repeats by chance (≈ 1 in 8 per
/// diagnosis), which RFC 5780's comparisons read as endpoint- or address-dependence,
/// and fewer than three distinct ports may show. So up to 4 quick diagnoses in one lab
/// (fresh sockets each) must show the label once: miss probability ≈ 2e-4.
#[test]
fn mapesym_ports_stay_in_the_set() {
    let Some(lab) = lab("mapesym", site("mapesym")) else {
        return;
    };
    let mut seen = Vec::new();
    for _ in 0..4 {
        let r = diagnose(&lab, "mapesym", quick());
        if let Some(range) = &r.port_range {
            assert!(range.min >= 20000 && range.max <= 20015, "{range:?}");
        }
        let three = r.port_range.as_ref().is_some_and(|p| p.observed.len() >= 3);
        if r.mapping == Some(APD) && r.filtering == Some(APD) && three {
            return;
        }
        seen.push(format!(
            "{:?}/{:?} {:?}",
            r.mapping, r.filtering, r.port_range
        ));
    }
    panic!("4 diagnoses never showed APDM/APDF with 3 ports in the set: {seen:?}");
}

#[test]
fn cgn_is_port_restricted_behind_two_nats() {
    let Some(r) = expect("cgn", EI, APD) else {
        return;
    };
    assert_eq!(r.nat_layers_at_least.map(|n| n >= 1), Some(true));
    // Two NATs in a row cannot be told apart from one by STUN alone: the report must
    // not claim an exact count it cannot know.
    assert_ne!(r.nat_layers, Some(1));
}

#[test]
fn dslite_aftr_is_full_cone_and_a_carrier_nat() {
    let Some(r) = expect("dslite", EI, EI) else {
        return;
    };
    assert_eq!(r.cgn, Some(true));
    assert_eq!(r.nat_layers, Some(1));
}

#[test]
fn upnp_site_is_port_restricted() {
    expect("upnp", EI, APD);
}

/// The binding lifetime of a port-restricted NAT whose conntrack timers are 5 s
/// (unreplied) and 8 s (stream). A mapping that saw one request and its response within
/// two seconds is not ASSURED, so it lives `nf_conntrack_udp_timeout` = 5 s.
#[test]
fn binding_lifetime_matches_the_unreplied_conntrack_timer() {
    let s = Site::new("timer", site("portrestr").kind).knobs(Knobs {
        udp_timeout: Some((Duration::from_secs(5), Duration::from_secs(8))),
        ..Knobs::default()
    });
    let Some(lab) = lab("binding_lifetime", s) else {
        return;
    };
    let mut config = quick();
    config.quick = false;
    config.probe.lifetime = LifetimeConfig {
        max: Duration::from_secs(20),
        ..LifetimeConfig::default()
    };
    let started = Instant::now();
    let r = diagnose(&lab, "timer", config);
    let took = started.elapsed();
    let lifetime = r.binding_lifetime_s.expect("a measured lifetime");
    println!(
        "timer: measured {lifetime} s (bracket {:?}) in {took:?}; conntrack unreplied timer 5 s",
        r.binding_lifetime
    );
    assert!(
        (4.0..=6.0).contains(&lifetime),
        "{lifetime} s is not within 20 % of 5 s: {:?}",
        r.binding_lifetime
    );
    assert!(took < Duration::from_secs(60), "took {took:?}");
}
