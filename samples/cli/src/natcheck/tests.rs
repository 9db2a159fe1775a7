//! Rendering tests: each verdict class gets the right headline in both languages,
//! unknowns are shown as unknown (never guessed), and the JSON keeps its spellings.

use tsunagi::diag::{
    Behaviour::{self, *},
    LifetimeBracket, MapeHint, PortAllocation, PortRange, Report,
};

use super::render::render;
use super::verdict::{Advice, Headline, Hosting, PeerKind, Verdict, direct_with, keepalive_for};
use super::{Lang, render_en::English, render_ja::Japanese, resolve};

fn report(mapping: Option<Behaviour>, filtering: Option<Behaviour>, nat: bool) -> Report {
    let mut r = Report::new("198.18.0.10:3478");
    r.server_address = "198.18.0.10:3478".parse().ok();
    r.local_address = "192.168.1.10:40000".parse().ok();
    r.mapped_address = if nat {
        "203.0.113.5:40000".parse().ok()
    } else {
        r.local_address
    };
    r.mapping = mapping;
    r.filtering = filtering;
    r
}

fn en(r: &Report) -> String {
    render(r, &English, false, false)
}

fn ja(r: &Report) -> String {
    render(r, &Japanese, false, false)
}

#[test]
fn each_verdict_class_has_its_headline_in_both_languages() {
    let cases = [
        (
            report(Some(EndpointIndependent), Some(EndpointIndependent), true),
            Headline::Open,
            "Open: players can reach",
            "オープン: ",
        ),
        (
            report(Some(EndpointIndependent), Some(AddressDependent), true),
            Headline::AllPeers,
            "Good: every kind of player",
            "良好: ",
        ),
        (
            report(
                Some(EndpointIndependent),
                Some(AddressAndPortDependent),
                true,
            ),
            Headline::MostPeers,
            "Mostly fine:",
            "おおむね良好:",
        ),
        (
            report(
                Some(AddressAndPortDependent),
                Some(AddressAndPortDependent),
                true,
            ),
            Headline::FewPeers,
            "Restrictive (symmetric NAT)",
            "制限あり（シンメトリックNAT）",
        ),
        (
            report(None, None, true),
            Headline::Unknown,
            "could not be fully identified",
            "特定しきれませんでした",
        ),
        (
            Report::new("198.18.0.10:3478"),
            Headline::Unreachable,
            "did not answer over UDP",
            "UDPの応答がなかった",
        ),
    ];
    for (r, headline, en_text, ja_text) in cases {
        assert_eq!(Verdict::of(&r, false).headline, headline, "{r:?}");
        let (e, j) = (en(&r), ja(&r));
        // The verdict comes first: the headline is on the line after the heading.
        assert!(e.lines().nth(3).is_some_and(|l| l.contains(en_text)), "{e}");
        assert!(j.lines().nth(3).is_some_and(|l| l.contains(ja_text)), "{j}");
    }
}

#[test]
fn no_nat_without_filtering_is_open_internet() {
    let r = report(Some(EndpointIndependent), Some(EndpointIndependent), false);
    let v = Verdict::of(&r, false);
    assert_eq!(v.hosting, Hosting::Yes);
    let e = en(&r);
    assert!(e.contains("open internet"), "{e}");
    assert!(e.contains("seen unchanged by the server (no NAT)"), "{e}");
    assert!(e.contains("Type 1"), "{e}");
    assert!(ja(&r).contains("インターネット直結"));
}

#[test]
fn symmetric_lists_the_relayed_peers_and_labels() {
    let mut r = report(
        Some(AddressAndPortDependent),
        Some(AddressAndPortDependent),
        true,
    );
    r.port_allocation = Some(PortAllocation::Random);
    let v = Verdict::of(&r, false);
    assert_eq!(
        v.relayed(),
        vec![PeerKind::PortRestricted, PeerKind::Symmetric]
    );
    let e = en(&r);
    assert!(
        e.contains("players behind port-restricted NAT or symmetric NAT."),
        "{e}"
    );
    assert!(e.contains("Strict") && e.contains("Type 3") && e.contains("NAT type D"));
    assert!(e.contains("approximations of how consoles label it"));
    let j = ja(&r);
    assert!(j.contains("厳密 (Strict)") && j.contains("NATタイプ 3") && j.contains("NATタイプ D"));
    assert!(
        j.contains("ポート制限コーンNAT・シンメトリックNAT のプレイヤー。"),
        "{j}"
    );
}

#[test]
fn unknown_filtering_is_not_guessed() {
    // EIM with unknown filtering: full cone, address- and port-restricted peers connect
    // whatever the filtering is; a symmetric peer depends on it.
    let mut r = report(Some(EndpointIndependent), None, true);
    r.warnings
        .push("filtering test got no answer from the alternate address".into());
    assert_eq!(direct_with(&r, PeerKind::PortRestricted), Some(true));
    assert_eq!(direct_with(&r, PeerKind::Symmetric), None);
    let v = Verdict::of(&r, false);
    assert_eq!(v.headline, Headline::Unknown);
    let e = en(&r);
    assert!(
        e.contains("unknown (filtering test got no answer from the alternate address)"),
        "{e}"
    );
    assert!(!e.contains("full cone\n") && !e.contains("Moderate"), "{e}");
    assert!(ja(&r).contains("不明（filtering test got no answer from the alternate address）"));
}

#[test]
fn unknown_without_a_warning_says_it_was_not_established() {
    let r = report(None, None, true);
    assert!(en(&r).contains("unknown (the check could not establish it)"));
    assert!(ja(&r).contains("不明（チェックで確定できませんでした）"));
}

#[test]
fn quick_and_cancelled_timers_are_marked() {
    let mut r = report(Some(EndpointIndependent), Some(EndpointIndependent), true);
    r.quick = true;
    assert!(en(&r).contains("not measured (quick check"));
    assert!(ja(&r).contains("未測定（簡易チェック"));
    r.quick = false;
    r.binding_lifetime = Some(LifetimeBracket {
        lower_s: 32.0,
        upper_s: None,
        trials: 3,
    });
    // What the driver reports on cancel: the lower bound as the estimate.
    r.binding_lifetime_s = Some(32.0);
    let e = render(&r, &English, true, false);
    assert!(e.contains("cancelled: still alive after 32 s idle"), "{e}");
    assert!(!e.contains("forgets a silent UDP session"), "{e}");
    assert!(
        !Verdict::of(&r, true)
            .advice
            .iter()
            .any(|a| matches!(a, Advice::Keepalive { .. }))
    );
    // Not cancelled, no upper bound: a lower bound, not "about".
    let e = en(&r);
    assert!(
        e.contains("keeps a silent UDP session for at least 32 s"),
        "{e}"
    );
    assert!(ja(&r).contains("少なくとも 32 秒"));
    assert!(render(&r, &Japanese, true, false).contains("中断: 32 秒"));
}

#[test]
fn timer_gives_keepalive_advice() {
    let mut r = report(Some(EndpointIndependent), Some(EndpointIndependent), true);
    r.binding_lifetime_s = Some(30.0);
    r.binding_lifetime = Some(LifetimeBracket {
        lower_s: 28.0,
        upper_s: Some(32.0),
        trials: 7,
    });
    let e = en(&r);
    assert!(e.contains("about 30 s (alive after 28 s idle, gone after 32 s; 7 trials)"));
    assert!(e.contains("at least every 15 s"), "{e}");
    assert!(e.contains("Tsunagi sends keepalives every 5 s"), "{e}");
    assert!(ja(&r).contains("少なくとも 15 秒ごと"));
    r.binding_lifetime_s = Some(6.0);
    assert!(en(&r).contains("set keep_alive to 3 s"));
    assert_eq!(keepalive_for(f64::NAN), 1);
    assert_eq!(keepalive_for(0.5), 1);
}

#[test]
fn mape_cgn_ipv6_and_upnp_advice() {
    let mut r = report(
        Some(AddressAndPortDependent),
        Some(AddressAndPortDependent),
        true,
    );
    r.mape_hint = Some(MapeHint {
        psid_offset: 4,
        psid_len: 8,
        psid: 0x34,
        block_size: 16,
        port_count: 240,
        block: (4928, 4943),
    });
    r.port_range = Some(PortRange {
        min: 4930,
        max: 4933,
        observed: vec![4930, 4931, 4933],
    });
    r.cgn = Some(true);
    r.nat_layers = Some(2);
    r.ipv6.reachable = Some(true);
    r.ipv6.address = "2001:db8::10".parse().ok();
    r.ipv6.filtering = Some(AddressAndPortDependent);
    r.port_mapping.upnp_igd.present = Some(true);
    r.port_mapping.upnp_igd.external_address = "100.64.0.2".parse().ok();
    let v = Verdict::of(&r, false);
    assert!(v.advice.contains(&Advice::SymmetricMapE { ports: 240 }));
    assert!(v.advice.contains(&Advice::Cgn));
    assert!(v.advice.contains(&Advice::UseIpv6));
    assert!(
        v.advice
            .contains(&Advice::PortMappingPresent { inner: true })
    );
    let e = en(&r);
    assert!(e.contains("Ask your ISP about a fixed IP option"), "{e}");
    assert!(e.contains("240 usable ports in blocks of 16"), "{e}");
    assert!(e.contains("direct over IPv6"), "{e}");
    assert!(e.contains("2 (double NAT"), "{e}");
    let j = ja(&r);
    assert!(j.contains("固定IPオプション") && j.contains("二重NAT") && j.contains("CGN"));
    assert!(j.contains("IPv6 で直接接続"));
}

#[test]
fn json_keeps_the_documented_spellings() {
    let mut r = report(
        Some(EndpointIndependent),
        Some(AddressAndPortDependent),
        true,
    );
    r.port_allocation = Some(PortAllocation::Preserving);
    let v: serde_json::Value =
        serde_json::from_str(&r.to_json_pretty()).unwrap_or(serde_json::Value::Null);
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["mapping"], "endpoint-independent");
    assert_eq!(v["filtering"], "address-and-port-dependent");
    assert_eq!(v["port_allocation"], "preserving");
    for key in [
        "port_range",
        "binding_lifetime_s",
        "hairpinning",
        "nat_layers",
        "cgn",
        "ipv6",
        "nat64_prefix",
        "port_mapping",
        "warnings",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    r.mapping = Some(AddressDependent);
    assert!(
        r.to_json_pretty()
            .contains(r#""mapping": "address-dependent""#)
    );
}

#[test]
fn language_follows_the_locale() {
    assert_eq!(Lang::from_locale(Some("ja_JP.UTF-8")), Lang::Ja);
    assert_eq!(Lang::from_locale(Some("JA")), Lang::Ja);
    assert_eq!(Lang::from_locale(Some("en_US.UTF-8")), Lang::En);
    assert_eq!(Lang::from_locale(Some("C")), Lang::En);
    assert_eq!(Lang::from_locale(None), Lang::En);
}

#[test]
fn servers_resolve_or_say_what_is_wrong() {
    let t = resolve("198.18.0.10:3478").ok();
    assert_eq!(
        t.map(|t| t.primary.to_string()),
        Some("198.18.0.10:3478".into())
    );
    let t = resolve("[::1]:3479").ok();
    assert_eq!(t.and_then(|t| t.v6).map(|a| a.port()), Some(3479));
    let t = resolve("127.0.0.1").ok();
    assert_eq!(t.map(|t| t.primary.port()), Some(3478));
    let t = resolve("2001:db8::1").ok();
    assert_eq!(t.map(|t| t.primary.port()), Some(3478));
    let e = resolve("localhost:http").err().map(|e| format!("{e:#}"));
    assert!(e.is_some_and(|e| e.contains("not a port")));
    let e = resolve("").err().map(|e| format!("{e:#}"));
    assert!(e.is_some_and(|e| e.contains("HOST:PORT")));
}

#[test]
fn hostile_reports_do_not_panic() {
    let mut r = report(Some(EndpointIndependent), Some(EndpointIndependent), true);
    r.binding_lifetime_s = Some(f64::INFINITY);
    r.binding_lifetime = Some(LifetimeBracket {
        lower_s: f64::NAN,
        upper_s: Some(-1.0),
        trials: u32::MAX,
    });
    r.duration_ms = u64::MAX;
    r.nat_layers = Some(u8::MAX);
    r.port_range = Some(PortRange::default());
    r.warnings.push(String::new());
    let _ = en(&r);
    let _ = ja(&r);
}

#[test]
fn ds_lite_is_named_and_no_nat_has_no_hairpinning() {
    let mut r = report(Some(EndpointIndependent), Some(EndpointIndependent), true);
    r.local_address = "192.0.0.2:40000".parse().ok();
    r.cgn = Some(true);
    let v = Verdict::of(&r, false);
    assert!(v.advice.contains(&Advice::DsLite) && !v.advice.contains(&Advice::Cgn));
    assert!(en(&r).contains("DS-Lite tunnel"));
    assert!(ja(&r).contains("DS-Lite のトンネル"));
    let r = report(Some(EndpointIndependent), Some(EndpointIndependent), false);
    assert!(en(&r).contains("not applicable (no NAT)"));
    assert!(ja(&r).contains("該当なし（NATなし）"));
}

#[test]
fn reasons_come_from_the_right_probe() {
    let mut r = Report::new("[2001:db8:46::c612:a]:3478");
    r.warnings.push(
        "IPv6: the server has no second IPv6 address, so the firewall's filtering could not be measured"
            .into(),
    );
    r.warnings
        .push("no STUN answer from [2001:db8:46::c612:a]:3478 over UDP: UDP is blocked".into());
    let e = en(&r);
    assert!(
        e.contains("Filtering (RFC 4787)      unknown (no STUN answer"),
        "{e}"
    );
    assert!(
        e.contains("Hairpinning               unknown (no STUN answer"),
        "{e}"
    );
    assert!(!e.contains("Through the relay"), "{e}");
    assert!(e.contains("symmetric NAT           unknown"), "{e}");
}

#[test]
fn the_unreachable_message_names_the_server() {
    let t = super::Target {
        name: "stun.example.net:3478".into(),
        primary: "192.0.2.1:3478".parse().unwrap_or(([0, 0, 0, 0], 0).into()),
        v6: None,
    };
    let m = super::unreachable_message(&t, std::time::Duration::from_secs(3));
    assert_eq!(
        m,
        "no answer from stun.example.net:3478 (192.0.2.1:3478) over UDP within 3 s: \
         is the server running, and is UDP allowed out?"
    );
}

#[test]
fn ipv6_only_is_not_called_unreachable() {
    let mut r = Report::new("198.18.0.10:3478");
    r.ipv6.reachable = Some(true);
    assert_eq!(Verdict::of(&r, false).headline, Headline::Ipv6Only);
    assert!(en(&r).contains("IPv6 works but the server did not answer over IPv4"));
    assert!(ja(&r).contains("IPv6 は使えますが"));
}

#[test]
fn a_full_check_without_nat_has_no_timer_to_measure() {
    let r = report(Some(EndpointIndependent), Some(EndpointIndependent), false);
    assert!(
        en(&r).contains("not applicable (no NAT or firewall"),
        "{}",
        en(&r)
    );
    assert!(
        ja(&r).contains("該当なし（NAT もファイアウォールもない"),
        "{}",
        ja(&r)
    );
}

#[test]
fn nat_layers_show_the_traced_path() {
    let mut r = report(
        Some(EndpointIndependent),
        Some(AddressAndPortDependent),
        true,
    );
    r.path = Some(tsunagi::diag::hops::PathTrace {
        hops: vec!["192.168.1.1".parse().ok(), None, "100.64.1.1".parse().ok()],
        server_reached_at: Some(4),
    });
    r.nat_layers_at_least = Some(2);
    for text in [en(&r), ja(&r)] {
        assert!(
            text.contains("[192.168.1.1 → * → 100.64.1.1 → 198.18.0.10]"),
            "{text}"
        );
    }
}
