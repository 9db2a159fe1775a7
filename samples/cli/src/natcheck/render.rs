//! The human report's layout, shared by both languages: verdict first, then details,
//! then advice and the check's own notes. The words come from a [`Text`] table
//! (`render_en`, `render_ja`), so both languages always show the same facts in the same
//! order.

use std::fmt::Write as _;

use tsunagi::diag::{Behaviour, ClassicName, OpenModerateStrict, PortMappingService, Report};

use super::verdict::{Advice, Headline, Hosting, Ipv6Direct, PeerKind, Verdict};

/// A labelled line in the details section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// RFC 4787 mapping.
    Mapping,
    /// RFC 4787 filtering.
    Filtering,
    /// Classic RFC 3489 name.
    Classic,
    /// Xbox-style label.
    Xbox,
    /// PlayStation-style label.
    PlayStation,
    /// Switch-style label.
    Switch,
    /// Local and mapped addresses.
    Addresses,
    /// Binding lifetime.
    Timer,
    /// Port allocation and range.
    Ports,
    /// MAP-E port-set hint.
    MapE,
    /// NAT layers.
    Layers,
    /// Carrier-grade NAT.
    Cgn,
    /// Hairpinning.
    Hairpin,
    /// Native IPv6.
    Ipv6,
    /// NAT64 prefix.
    Nat64,
    /// UPnP-IGD.
    Upnp,
    /// NAT-PMP.
    NatPmp,
    /// PCP.
    Pcp,
}

/// Section headings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The verdict.
    Verdict,
    /// The details.
    Details,
    /// Console-style labels (with the approximation note).
    Consoles,
    /// What you can do.
    Advice,
    /// The check's own notes (warnings).
    Notes,
}

/// The words of one language. Every method returns text for a known value; unknown
/// values are handled by the layout with [`Text::unknown`].
pub trait Text {
    /// First line: the check, the server and its address.
    fn title(&self, report: &Report) -> String;
    /// A section heading.
    fn section(&self, s: Section) -> &'static str;
    /// A details label.
    fn field(&self, f: Field) -> &'static str;
    /// The headline sentence.
    fn headline(&self, h: Headline) -> &'static str;
    /// Label before the hosting answer.
    fn hosting_label(&self) -> &'static str;
    /// The hosting answer.
    fn hosting(&self, h: Hosting) -> &'static str;
    /// Label before the per-peer list.
    fn direct_label(&self) -> &'static str;
    /// A classic peer type as a noun phrase.
    fn peer(&self, k: PeerKind) -> &'static str;
    /// Direct connection answer for one peer type.
    fn direct(&self, d: Option<bool>) -> &'static str;
    /// The IPv6 row label.
    fn ipv6_peer(&self) -> &'static str;
    /// Direct IPv6 answer.
    fn ipv6_direct(&self, d: Ipv6Direct) -> &'static str;
    /// The relay line, given the peer types that will be relayed.
    fn relayed(&self, kinds: &[PeerKind], ipv6: Ipv6Direct) -> String;
    /// An RFC 4787 behaviour with its abbreviation (`M` or `F` suffix) and a gloss.
    fn behaviour(&self, b: Behaviour, filtering: bool) -> String;
    /// A classic name.
    fn classic(&self, c: ClassicName) -> &'static str;
    /// An Xbox-style label.
    fn xbox(&self, l: OpenModerateStrict) -> &'static str;
    /// A PlayStation-style type.
    fn playstation(&self, t: u8) -> String;
    /// A Switch-style letter.
    fn switch(&self, c: char) -> String;
    /// The details of a known field, or `None` when the report does not know it.
    fn value(&self, f: Field, report: &Report, cancelled: bool) -> Option<String>;
    /// A port-mapping protocol's state.
    fn service(&self, s: &PortMappingService) -> String;
    /// One piece of advice.
    fn advice(&self, a: &Advice) -> String;
    /// "unknown", followed by the reason when there is one.
    fn unknown(&self, reason: Option<&str>) -> String;
}

/// Words in the warnings that point at the reason a field is unknown.
fn keywords(f: Field) -> &'static [&'static str] {
    match f {
        Field::Mapping | Field::Filtering | Field::Classic => &[
            "mapping",
            "filtering",
            "rfc 5780",
            "other-address",
            "alternate",
        ],
        Field::Xbox | Field::PlayStation | Field::Switch => {
            &["mapping", "filtering", "rfc 5780", "other-address"]
        }
        Field::Addresses => &["udp", "answer", "timeout", "timed out"],
        Field::Timer => &["lifetime", "timer", "cancel"],
        Field::Ports | Field::MapE => &["port allocation", "port range", "ports"],
        Field::Layers => &["layer", "nat count"],
        Field::Cgn => &["cgn", "100.64", "carrier"],
        Field::Hairpin => &["hairpin"],
        Field::Ipv6 => &["ipv6"],
        Field::Nat64 => &["nat64", "dns64"],
        Field::Upnp => &["upnp"],
        Field::NatPmp => &["nat-pmp", "natpmp"],
        Field::Pcp => &["pcp"],
    }
}

/// Fields about the IPv4 NAT, whose reasons are never warnings about the side
/// probes (IPv6, NAT64, port mapping), and may be the server's silence.
fn is_nat_field(f: Field) -> bool {
    !matches!(
        f,
        Field::Ipv6 | Field::Nat64 | Field::Upnp | Field::NatPmp | Field::Pcp
    )
}

/// The first warning that explains why `f` is unknown.
pub fn reason(report: &Report, f: Field) -> Option<&str> {
    let side_probe = ["ipv6", "nat64", "upnp"];
    report.warnings.iter().map(String::as_str).find(|w| {
        let w = w.to_lowercase();
        if is_nat_field(f) {
            if side_probe.iter().any(|p| w.starts_with(p)) {
                return false;
            }
            if w.contains("no stun answer") {
                return true;
            }
        }
        keywords(f).iter().any(|k| w.contains(k))
    })
}

/// Display width: East Asian wide characters take two columns.
fn width(s: &str) -> usize {
    s.chars()
        .map(|c| match u32::from(c) {
            0x1100..=0x115f | 0x2e80..=0xa4cf | 0xac00..=0xd7a3 | 0xf900..=0xfaff => 2,
            0xfe30..=0xfe4f | 0xff00..=0xff60 | 0xffe0..=0xffe6 => 2,
            _ => 1,
        })
        .sum()
}

fn line(out: &mut String, indent: usize, label: &str, value: &str, column: usize) {
    let pad = column.saturating_sub(width(label)).max(1);
    let _ = writeln!(
        out,
        "{:indent$}{label}{:pad$}{value}",
        "",
        "",
        indent = indent,
        pad = pad
    );
}

/// Renders the whole human report. `cancelled` marks a lifetime test stopped by the
/// user; `bold` wraps the headline in terminal bold.
pub fn render(report: &Report, text: &dyn Text, cancelled: bool, bold: bool) -> String {
    let v = Verdict::of(report, cancelled);
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", text.title(report));

    let _ = writeln!(out, "{}", text.section(Section::Verdict));
    let headline = text.headline(v.headline);
    if bold {
        let _ = writeln!(out, "  \x1b[1m{headline}\x1b[0m");
    } else {
        let _ = writeln!(out, "  {headline}");
    }
    let column = 26;
    line(
        &mut out,
        2,
        text.hosting_label(),
        text.hosting(v.hosting),
        column,
    );
    let _ = writeln!(out, "  {}", text.direct_label());
    for (kind, direct) in v.peers {
        line(
            &mut out,
            4,
            text.peer(kind),
            text.direct(direct),
            column - 2,
        );
    }
    line(
        &mut out,
        4,
        text.ipv6_peer(),
        text.ipv6_direct(v.ipv6),
        column - 2,
    );
    if !matches!(v.headline, Headline::Unreachable | Headline::Ipv6Only) {
        let _ = writeln!(out, "  {}", text.relayed(&v.relayed(), v.ipv6));
    }

    let _ = writeln!(out, "\n{}", text.section(Section::Details));
    let unknown = |f: Field| text.unknown(reason(report, f));
    let behaviour = |b: Option<Behaviour>, f: Field| {
        b.map_or_else(|| unknown(f), |b| text.behaviour(b, f == Field::Filtering))
    };
    line(
        &mut out,
        2,
        text.field(Field::Mapping),
        &behaviour(report.mapping, Field::Mapping),
        column,
    );
    line(
        &mut out,
        2,
        text.field(Field::Filtering),
        &behaviour(report.filtering, Field::Filtering),
        column,
    );
    let classic = match report.classic_name() {
        ClassicName::Unknown => unknown(Field::Classic),
        c => text.classic(c).to_owned(),
    };
    line(&mut out, 2, text.field(Field::Classic), &classic, column);

    let _ = writeln!(out, "  {}", text.section(Section::Consoles));
    let xbox = report
        .open_moderate_strict()
        .map_or_else(|| unknown(Field::Xbox), |l| text.xbox(l).to_owned());
    let ps = report
        .playstation_type()
        .map_or_else(|| unknown(Field::PlayStation), |t| text.playstation(t));
    let switch = report
        .switch_type()
        .map_or_else(|| unknown(Field::Switch), |c| text.switch(c));
    line(&mut out, 4, text.field(Field::Xbox), &xbox, column - 2);
    line(&mut out, 4, text.field(Field::PlayStation), &ps, column - 2);
    line(&mut out, 4, text.field(Field::Switch), &switch, column - 2);

    for f in [
        Field::Addresses,
        Field::Timer,
        Field::Ports,
        Field::MapE,
        Field::Layers,
        Field::Cgn,
        Field::Hairpin,
        Field::Ipv6,
        Field::Nat64,
    ] {
        let mut value = text
            .value(f, report, cancelled)
            .unwrap_or_else(|| unknown(f));
        if matches!(f, Field::Layers)
            && let Some(path) = path_text(report)
        {
            value = format!("{value} [{path}]");
        }
        line(&mut out, 2, text.field(f), &value, column);
    }
    let pm = &report.port_mapping;
    for (f, s) in [
        (Field::Upnp, &pm.upnp_igd),
        (Field::NatPmp, &pm.nat_pmp),
        (Field::Pcp, &pm.pcp),
    ] {
        let value = if s.present.is_none() {
            unknown(f)
        } else {
            text.service(s)
        };
        line(&mut out, 2, text.field(f), &value, column);
    }

    let _ = writeln!(out, "\n{}", text.section(Section::Advice));
    for a in &v.advice {
        let _ = writeln!(out, "  - {}", text.advice(a));
    }
    if !report.warnings.is_empty() {
        let _ = writeln!(out, "\n{}", text.section(Section::Notes));
        for w in &report.warnings {
            let _ = writeln!(out, "  - {w}");
        }
    }
    out
}

/// Seconds for display: whole numbers without decimals, others with one.
pub fn secs(s: f64) -> String {
    if (s - s.round()).abs() < 0.05 {
        format!("{s:.0}")
    } else {
        format!("{s:.1}")
    }
}

/// The routers towards the server as traced (`*` for one that did not answer), then
/// the server's address if it was reached: what support staff read NAT layers from.
/// `None` when the path was not traced.
pub fn path_text(r: &Report) -> Option<String> {
    let p = r.path.as_ref()?;
    let mut hops: Vec<String> = p
        .hops
        .iter()
        .map(|h| h.map_or_else(|| "*".to_owned(), |ip| ip.to_string()))
        .collect();
    if p.server_reached_at.is_some()
        && let Some(server) = r.server_address
    {
        hops.push(server.ip().to_string());
    }
    (!hops.is_empty()).then(|| hops.join(" → "))
}
