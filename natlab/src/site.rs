//! Building the internet segment and each kind of site.
//!
//! Addressing (site number `i`, host number `j` from 1):
//! - internet: 198.18.0.0/16 and 2001:db8::/64 on a bridge in `core` (198.18.0.1,
//!   2001:db8::1); the server has 198.18.0.10/.11 and 2001:db8::10/::11; site routers'
//!   WAN addresses are 198.18.1.i and 2001:db8::1:i.
//! - home LANs: 192.168.i.0/24 (router .1, hosts .(9+j)); public sites 198.19.i.0/24;
//!   IPv6 LANs 2001:db8:i::/64 (router ::1, hosts ::(f+j)), routed by `core`.
//! - CGN inside 100.64.i.0/24; DS-Lite softwire 192.0.0.0/29 in a VXLAN over IPv6.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::time::Duration;

use crate::lab::{CORE_V4, CORE_V6, Lab, Role, SERVER_V4, SERVER_V6, SiteInfo};
use crate::netns::{Netns, run_checked};
use crate::nft::{self, Inbound};
use crate::topology::{Nat, Site, SiteKind};
use crate::{Error, nat64};

/// conntrack's default UDP stream timer, used for NAT map entries when no knob is set.
const DEFAULT_STREAM_TIMEOUT: Duration = Duration::from_secs(120);

fn wan_v4(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 1, i)
}
fn wan_v6(i: u8) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, u16::from(i))
}
fn lan_v6(i: u8, host: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, u16::from(i), 0, 0, 0, 0, host)
}

/// Creates a veth pair with one end in each namespace.
fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<(), Error> {
    run_checked(Command::new("ip").args([
        "link",
        "add",
        a_if,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ]))
    .map(|_| ())
}

/// Connects `ns` to the internet bridge through its interface `wan`.
fn attach_to_internet(lab: &Lab, ns: &Netns, port: u8) -> Result<(), Error> {
    let core = lab.node("core")?.ns.clone();
    let core_if = format!("p{port}");
    veth(ns, "wan", &core, &core_if)?;
    core.ip_batch(&[format!("link set {core_if} master br0 up")])
}

pub(crate) fn build_internet(lab: &mut Lab) -> Result<(), Error> {
    let core = lab.add_node("core", Role::Core, vec![CORE_V4], vec![CORE_V6])?;
    core.sysctl(&[
        "net.ipv4.ip_forward=1",
        "net.ipv6.conf.all.forwarding=1",
        "net.ipv4.conf.all.send_redirects=0",
    ])?;
    core.ip_batch(&[
        "link add br0 type bridge".into(),
        "link set br0 up".into(),
        format!("addr add {CORE_V4}/16 dev br0"),
        format!("addr add {CORE_V6}/64 dev br0 nodad"),
    ])?;
    let server = lab.add_node(
        "server",
        Role::Server,
        SERVER_V4.to_vec(),
        SERVER_V6.to_vec(),
    )?;
    attach_to_internet(lab, &server, 0)?;
    let mut cmds = vec!["link set wan up".to_string()];
    cmds.extend(SERVER_V4.iter().map(|a| format!("addr add {a}/16 dev wan")));
    cmds.extend(
        SERVER_V6
            .iter()
            .map(|a| format!("addr add {a}/64 dev wan nodad")),
    );
    cmds.push(format!("route add default via {CORE_V4}"));
    cmds.push(format!("route add default via {CORE_V6}"));
    server.ip_batch(&cmds)
}

/// A router attached to the internet, forwarding, with WAN addresses and routes.
fn edge_router(lab: &mut Lab, name: &str, i: u8) -> Result<Netns, Error> {
    let ns = lab.add_node(name, Role::Router, vec![wan_v4(i)], vec![wan_v6(i)])?;
    attach_to_internet(lab, &ns, i)?;
    ns.sysctl(&["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"])?;
    ns.ip_batch(&[
        "link set wan up".into(),
        format!("addr add {}/16 dev wan", wan_v4(i)),
        format!("addr add {}/64 dev wan nodad", wan_v6(i)),
        format!("route add default via {CORE_V4}"),
        format!("route add default via {CORE_V6}"),
        "link add lan type bridge".into(),
        "link set lan up".into(),
    ])?;
    Ok(ns)
}

/// Adds the core's routes to a site's routed prefixes.
fn route_from_core(lab: &Lab, i: u8, v4: Option<&str>, v6: bool) -> Result<(), Error> {
    let core = lab.node("core")?.ns.clone();
    let mut cmds = Vec::new();
    if let Some(prefix) = v4 {
        cmds.push(format!("route add {prefix} via {}", wan_v4(i)));
    }
    if v6 {
        cmds.push(format!("route add {}/64 via {}", lan_v6(i, 0), wan_v6(i)));
    }
    core.ip_batch(&cmds)
}

/// How a host is addressed on its router's LAN bridge.
struct HostAddr {
    v4: Option<(Ipv4Addr, u8, Ipv4Addr)>,
    v6: Option<(Ipv6Addr, Ipv6Addr)>,
}

/// A host on `router`'s LAN bridge `lan`.
/// Adds the hosts `names` behind `router`: host `j` (from 1) on router port `j`
/// with the addresses `addr(j)`.
fn hosts(
    lab: &mut Lab,
    names: &[String],
    router: &Netns,
    addr: impl Fn(u8) -> HostAddr,
) -> Result<(), Error> {
    for (j, name) in (1u8..).zip(names) {
        host(lab, name, router, j, addr(j))?;
    }
    Ok(())
}

fn host(lab: &mut Lab, name: &str, router: &Netns, port: u8, a: HostAddr) -> Result<Netns, Error> {
    let ns = lab.add_node(
        name,
        Role::Host,
        a.v4.iter().map(|v| v.0).collect(),
        a.v6.iter().map(|v| v.0).collect(),
    )?;
    let rport = format!("h{port}");
    veth(&ns, "eth0", router, &rport)?;
    router.ip_batch(&[format!("link set {rport} master lan up")])?;
    let mut cmds = vec!["link set eth0 up".to_string()];
    if let Some((addr, len, gw)) = a.v4 {
        cmds.push(format!("addr add {addr}/{len} dev eth0"));
        cmds.push(format!("route add default via {gw}"));
    }
    if let Some((addr, gw)) = a.v6 {
        cmds.push(format!("addr add {addr}/64 dev eth0 nodad"));
        cmds.push(format!("route add default via {gw}"));
    }
    ns.ip_batch(&cmds)?;
    Ok(ns)
}

fn nat_timeout(site: &Site) -> Duration {
    site.knobs
        .udp_timeout
        .map(|(_, stream)| stream)
        .unwrap_or(DEFAULT_STREAM_TIMEOUT)
}

fn apply_nat(ns: &Netns, nat: &Nat, site: &Site) -> Result<(), Error> {
    ns.nft(&nft::nat("wan", nat, nat_timeout(site)))
}

fn apply_timers(ns: &Netns, site: &Site) -> Result<(), Error> {
    if let Some((unreplied, stream)) = site.knobs.udp_timeout {
        ns.sysctl(&[
            &format!(
                "net.netfilter.nf_conntrack_udp_timeout={}",
                unreplied.as_secs().max(1)
            ),
            &format!(
                "net.netfilter.nf_conntrack_udp_timeout_stream={}",
                stream.as_secs().max(1)
            ),
        ])?;
    }
    Ok(())
}

/// Loss, rate and delay on the router that faces the internet.
fn apply_knobs(lab: &mut Lab, ns: &Netns, site: &Site, index: u8) -> Result<(), Error> {
    if let Some(p) = site.knobs.loss_percent {
        ns.nft(&nft::loss(p))?;
    }
    if let Some(kbit) = site.knobs.rate_kbit {
        for dev in ["wan", "lan"] {
            ns.exec(
                "tc",
                [
                    "qdisc",
                    "add",
                    "dev",
                    dev,
                    "root",
                    "tbf",
                    "rate",
                    &format!("{kbit}kbit"),
                    "burst",
                    "16kb",
                    "latency",
                    "50ms",
                ],
            )?;
        }
    }
    if let Some(delay) = site.knobs.delay {
        let queue = u16::from(index);
        let delayer = crate::delay::Delayer::start(ns, queue, delay)?;
        crate::delay::install_rules(ns, "wan", queue)?;
        lab.keep(Box::new(delayer));
    }
    Ok(())
}

pub(crate) fn build_site(lab: &mut Lab, site: &Site, i: u8) -> Result<SiteInfo, Error> {
    let s = site.name.as_str();
    let v4_lan = |j: u8| Ipv4Addr::new(192, 168, i, 9 + j);
    let v4_gw = Ipv4Addr::new(192, 168, i, 1);
    let v6_gw = lan_v6(i, 1);
    let host_names: Vec<String> = (1..=site.hosts).map(|j| format!("{s}.host{j}")).collect();
    let router_name = format!("{s}.router");
    let mut edge_name = router_name.clone();
    let mut public_v4 = Some(wan_v4(i));

    match &site.kind {
        SiteKind::Public => {
            let r = edge_router(lab, &router_name, i)?;
            r.ip_batch(&[
                format!("addr add 198.19.{i}.1/24 dev lan"),
                format!("addr add {v6_gw}/64 dev lan nodad"),
            ])?;
            r.nft(&nft::firewall("wan", Inbound::Open))?;
            route_from_core(lab, i, Some(&format!("198.19.{i}.0/24")), true)?;
            hosts(lab, &host_names, &r, |j| HostAddr {
                v4: Some((
                    Ipv4Addr::new(198, 19, i, 9 + j),
                    24,
                    Ipv4Addr::new(198, 19, i, 1),
                )),
                v6: Some((lan_v6(i, 0xf + u16::from(j)), v6_gw)),
            })?;
            public_v4 = Some(Ipv4Addr::new(198, 19, i, 10));
            apply_knobs(lab, &r, site, i)?;
        }
        SiteKind::Ipv6Only | SiteKind::Nat64 => {
            let r = edge_router(lab, &router_name, i)?;
            r.ip_batch(&[format!("addr add {v6_gw}/64 dev lan nodad")])?;
            r.nft(&nft::firewall("wan", Inbound::Stateful))?;
            route_from_core(lab, i, None, true)?;
            hosts(lab, &host_names, &r, |j| HostAddr {
                v4: None,
                v6: Some((lan_v6(i, 0xf + u16::from(j)), v6_gw)),
            })?;
            if site.kind == SiteKind::Nat64 {
                nat64::start(lab, &router_name, i)?;
                // What RA/DHCPv6 would hand out: the router's DNS64 as the resolver.
                for name in &host_names {
                    lab.node(name)?
                        .ns
                        .set_resolver(crate::dns64::router_lan_v6(i).into())?;
                }
                apply_nat(&r, &Nat::port_restricted(), site)?;
            } else {
                public_v4 = None;
            }
            apply_timers(&r, site)?;
            apply_knobs(lab, &r, site, i)?;
        }
        SiteKind::DualStack(nat) | SiteKind::Nat(nat) | SiteKind::Upnp(nat) => {
            let v6 = matches!(site.kind, SiteKind::DualStack(_));
            let r = edge_router(lab, &router_name, i)?;
            let mut cmds = vec![format!("addr add {v4_gw}/24 dev lan")];
            if v6 {
                cmds.push(format!("addr add {v6_gw}/64 dev lan nodad"));
            }
            r.ip_batch(&cmds)?;
            r.nft(&nft::firewall("wan", Inbound::Stateful))?;
            apply_nat(&r, nat, site)?;
            if v6 {
                route_from_core(lab, i, None, true)?;
            }
            hosts(lab, &host_names, &r, |j| HostAddr {
                v4: Some((v4_lan(j), 24, v4_gw)),
                v6: v6.then(|| (lan_v6(i, 0xf + u16::from(j)), v6_gw)),
            })?;
            apply_timers(&r, site)?;
            apply_knobs(lab, &r, site, i)?;
            if matches!(site.kind, SiteKind::Upnp(_)) {
                crate::upnp::start(lab, &router_name, i)?;
            }
        }
        SiteKind::Cgn { cgn, home } => {
            edge_name = format!("{s}.cgn");
            let c = edge_router(lab, &edge_name, i)?;
            c.ip_batch(&[format!("addr add 100.64.{i}.1/24 dev lan")])?;
            c.nft(&nft::firewall("wan", Inbound::Stateful))?;
            apply_nat(&c, cgn, site)?;
            let home_wan = Ipv4Addr::new(100, 64, i, 2);
            let r = lab.add_node(&router_name, Role::Router, vec![home_wan], vec![])?;
            veth(&r, "wan", &c, "h0")?;
            c.ip_batch(&["link set h0 master lan up".into()])?;
            r.sysctl(&["net.ipv4.ip_forward=1"])?;
            r.ip_batch(&[
                "link set wan up".into(),
                format!("addr add {home_wan}/24 dev wan"),
                format!("route add default via 100.64.{i}.1"),
                "link add lan type bridge".into(),
                "link set lan up".into(),
                format!("addr add {v4_gw}/24 dev lan"),
            ])?;
            r.nft(&nft::firewall("wan", Inbound::Stateful))?;
            apply_nat(&r, home, site)?;
            hosts(lab, &host_names, &r, |j| HostAddr {
                v4: Some((v4_lan(j), 24, v4_gw)),
                v6: None,
            })?;
            apply_timers(&r, site)?;
            apply_timers(&c, site)?;
            apply_knobs(lab, &c, site, i)?;
        }
        SiteKind::DsLite { aftr } => {
            if site.hosts != 1 {
                return Err(Error::Topology(format!(
                    "site {s}: a DS-Lite site models the B4 inside its host, so it has exactly one host"
                )));
            }
            let r = edge_router(lab, &router_name, i)?;
            r.ip_batch(&[format!("addr add {v6_gw}/64 dev lan nodad")])?;
            r.nft(&nft::firewall("wan", Inbound::Stateful))?;
            route_from_core(lab, i, None, true)?;
            let b4_v6 = lan_v6(i, 0x10);
            let h = host(
                lab,
                &host_names[0],
                &r,
                1,
                HostAddr {
                    v4: None,
                    v6: Some((b4_v6, v6_gw)),
                },
            )?;
            // The softwire: IPv4 in VXLAN in IPv6, B4 (host) <-> AFTR (router).
            r.ip_batch(&[
                format!("link add softwire type vxlan id 1 local {v6_gw} remote {b4_v6} dstport 4789 dev lan"),
                "link set softwire up".into(),
                "addr add 192.0.0.1/29 dev softwire".into(),
            ])?;
            h.ip_batch(&[
                format!("link add softwire type vxlan id 1 local {b4_v6} remote {v6_gw} dstport 4789 dev eth0"),
                "link set softwire up".into(),
                "addr add 192.0.0.2/29 dev softwire".into(),
                "route add default via 192.0.0.1 dev softwire".into(),
            ])?;
            if let Some(n) = lab.nodes_mut(&host_names[0]) {
                n.ipv4.push(Ipv4Addr::new(192, 0, 0, 2));
            }
            apply_nat(&r, aftr, site)?;
            apply_timers(&r, site)?;
            apply_knobs(lab, &r, site, i)?;
        }
    }
    Ok(SiteInfo {
        spec: site.clone(),
        index: i,
        public_v4,
        edge_router: edge_name,
        hosts: host_names,
    })
}
