//! Shared helpers of the NAT lab's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use natlab::netns::run_with_timeout;
use natlab::{Lab, Node, Site, Topology};

/// Builds a lab of `sites`, or prints `SKIPPED(not root)` and returns `None`.
pub fn lab(test: &str, sites: Vec<Site>) -> Option<Lab> {
    if !natlab::is_root() {
        println!("SKIPPED(not root): {test} needs root for network namespaces");
        return None;
    }
    let topo = sites.into_iter().fold(Topology::new(), Topology::site);
    Some(Lab::build(topo).expect("building the lab"))
}

/// What `turnutils_natdiscovery` concluded.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Discovery {
    pub mapping: Option<String>,
    pub filtering: Option<String>,
    pub reflexive: Vec<SocketAddr>,
    pub output: String,
}

/// Runs coturn's `turnutils_natdiscovery FLAGS 198.18.0.10` on `host` (coturn must be
/// running in the server namespace) and parses its verdicts.
pub fn natdiscovery(host: &Node, flags: &[&str]) -> Discovery {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", host.ns.name(), "turnutils_natdiscovery"]);
    cmd.args(flags).arg(natlab::SERVER_V4[0].to_string());
    let out = run_with_timeout(&mut cmd, Duration::from_secs(30))
        .expect("turnutils_natdiscovery (package coturn) must run");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let mut d = Discovery {
        output: text.clone(),
        ..Default::default()
    };
    for line in text.lines() {
        let verdict = |kind: &str| {
            let l = line.trim();
            let body = l
                .strip_prefix("NAT with ")?
                .strip_suffix(&format!(" {kind}!"))?;
            Some(body.to_owned())
        };
        if let Some(v) = verdict("Mapping") {
            d.mapping = Some(v);
        }
        if let Some(v) = verdict("Filtering") {
            d.filtering = Some(v);
        }
        if line.contains("No NAT!") {
            d.mapping.get_or_insert_with(|| "No NAT".into());
        }
        if let Some(addr) = line.split("UDP reflexive addr: ").nth(1)
            && let Ok(a) = addr.trim().parse()
        {
            d.reflexive.push(a);
        }
    }
    d
}

/// A UDP socket in `node` bound to `ip:port`.
pub fn sock(node: &Node, ip: IpAddr, port: u16) -> UdpSocket {
    natlab::probe::udp_socket(&node.ns, SocketAddr::new(ip, port)).expect("binding a probe socket")
}

/// Sends `payload` from `from` to `to` and reports whether `to_sock` received it within
/// `wait` (ignoring other datagrams).
pub fn delivered(from: &UdpSocket, to: SocketAddr, to_sock: &UdpSocket, payload: &[u8]) -> bool {
    from.send_to(payload, to).expect("send");
    let deadline = std::time::Instant::now() + Duration::from_millis(500);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match natlab::probe::receive(to_sock, left) {
            Some((p, _)) if p == payload => return true,
            Some(_) => continue,
            None => return false,
        }
    }
    false
}

/// `conntrack -L -p udp` in a node, one line per flow.
pub fn conntrack(node: &Node) -> Vec<String> {
    let out = node
        .ns
        .exec_unchecked("conntrack", ["-L", "-p", "udp"])
        .expect("conntrack (package conntrack) must run");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The value of `key=` in the reply direction of a conntrack line (the second
/// occurrence), e.g. the external port as `dport` of the reply tuple.
pub fn reply_field(line: &str, key: &str) -> Option<String> {
    line.split_whitespace()
        .filter_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .nth(1)
        .map(str::to_owned)
}

/// The remaining timeout (seconds) of a conntrack line.
pub fn ct_timeout(line: &str) -> Option<u64> {
    line.split_whitespace().nth(2)?.parse().ok()
}
