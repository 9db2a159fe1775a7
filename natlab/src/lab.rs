//! A running lab: namespaces, links, addresses, rules and daemons, torn down on drop.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::netns::{self, Netns};
use crate::topology::{Site, SiteKind, Topology};
use crate::{Error, site};

/// Every lab namespace starts with this, then `<pid>-<run>-`.
pub const NS_PREFIX: &str = "natlab-";

/// The server's primary and alternate IPv4 addresses (for RFC 5780 servers).
pub const SERVER_V4: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 0, 10), Ipv4Addr::new(198, 18, 0, 11)];
/// The server's primary and alternate IPv6 addresses.
pub const SERVER_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10),
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11),
];
/// The internet core's addresses (the default gateway of routers and the server).
pub const CORE_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The internet core's IPv6 address.
pub const CORE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// The NAT64 prefix used by NAT64 sites (a /96).
pub const NAT64_PREFIX: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x46, 0, 0, 0, 0, 0);

/// The IPv6 address through which NAT64 sites reach IPv4 address `v4`.
pub fn nat64_address(v4: Ipv4Addr) -> Ipv6Addr {
    let [a, b, c, d] = v4.octets();
    let p = NAT64_PREFIX.segments();
    Ipv6Addr::new(
        p[0],
        p[1],
        p[2],
        p[3],
        p[4],
        p[5],
        u16::from_be_bytes([a, b]),
        u16::from_be_bytes([c, d]),
    )
}

/// What a node is in the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The internet segment's router and bridge.
    Core,
    /// The server on the internet with two IPv4 and two IPv6 addresses.
    Server,
    /// A site's router (CPE, CGN, AFTR).
    Router,
    /// A host behind a site's router.
    Host,
}

/// One namespace of the lab with the addresses it was given.
#[derive(Debug, Clone)]
pub struct Node {
    /// Logical name: `core`, `server`, `<site>.router`, `<site>.cgn`, `<site>.host1`…
    pub name: String,
    /// The node's role.
    pub role: Role,
    /// Its namespace.
    pub ns: Netns,
    /// Its IPv4 addresses, the one facing the internet first.
    pub ipv4: Vec<Ipv4Addr>,
    /// Its global IPv6 addresses.
    pub ipv6: Vec<Ipv6Addr>,
}

impl Node {
    /// The first IPv4 address, if any.
    pub fn v4(&self) -> Option<Ipv4Addr> {
        self.ipv4.first().copied()
    }
    /// The first IPv6 address, if any.
    pub fn v6(&self) -> Option<Ipv6Addr> {
        self.ipv6.first().copied()
    }
}

/// Facts about a built site, for tests that check its behaviour.
#[derive(Debug, Clone)]
pub struct SiteInfo {
    /// The description it was built from.
    pub spec: Site,
    /// Its number (1-based), which appears in its addresses.
    pub index: u8,
    /// The address its IPv4 traffic appears from on the internet, if it has IPv4.
    pub public_v4: Option<Ipv4Addr>,
    /// The logical name of the router that faces the internet.
    pub edge_router: String,
    /// Logical names of its hosts.
    pub hosts: Vec<String>,
}

impl SiteInfo {
    /// The DNS64 server of a NAT64 site: its router's LAN IPv6 address, port 53 (see
    /// [`crate::dns64`]). `None` for other kinds of site, which have no DNS64.
    pub fn dns64(&self) -> Option<SocketAddr> {
        (self.spec.kind == SiteKind::Nat64).then(|| {
            SocketAddr::new(
                crate::dns64::router_lan_v6(self.index).into(),
                crate::dns64::DNS_PORT,
            )
        })
    }
}

/// A running lab. Everything it created is removed when it is dropped — also when a
/// test panics. A lab killed outright is cleaned by the next lab or by `natlab down`.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    created: Vec<Netns>,
    nodes: BTreeMap<String, Node>,
    sites: Vec<SiteInfo>,
    pub(crate) children: Vec<(String, Child)>,
    pub(crate) guards: Vec<Box<dyn std::fmt::Debug + Send>>,
    workdir: PathBuf,
    build_time: Duration,
}

static RUN: AtomicU32 = AtomicU32::new(0);

impl Lab {
    /// Builds `topology`. Needs root. Removes leftovers of crashed labs first.
    pub fn build(topology: Topology) -> Result<Lab, Error> {
        if !crate::is_root() {
            return Err(Error::NotRoot);
        }
        topology.validate()?;
        reap_stale();
        let started = Instant::now();
        let pid = std::process::id();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let run = RUN.fetch_add(1, Ordering::Relaxed);
        let tag = (nanos ^ run.wrapping_mul(0x9e37_79b9)) & 0xffff;
        let prefix = format!("{NS_PREFIX}{pid}-{run}{tag:04x}-");
        let workdir = std::env::temp_dir().join(prefix.trim_end_matches('-'));
        std::fs::create_dir_all(&workdir).map_err(|e| Error::Netns {
            name: prefix.clone(),
            reason: format!("cannot create {}: {e}", workdir.display()),
        })?;
        let mut lab = Lab {
            prefix,
            created: Vec::new(),
            nodes: BTreeMap::new(),
            sites: Vec::new(),
            children: Vec::new(),
            guards: Vec::new(),
            workdir,
            build_time: Duration::ZERO,
        };
        site::build_internet(&mut lab)?;
        for (i, spec) in topology.sites.iter().enumerate() {
            let index =
                u8::try_from(i + 1).map_err(|_| Error::Topology("too many sites".into()))?;
            let info = site::build_site(&mut lab, spec, index)?;
            lab.sites.push(info);
        }
        lab.build_time = started.elapsed();
        tracing::info!(prefix = %lab.prefix, took = ?lab.build_time, "lab is up");
        Ok(lab)
    }

    /// The namespace-name prefix of this lab (`natlab-<pid>-<run>-`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How long building took.
    pub fn build_time(&self) -> Duration {
        self.build_time
    }

    /// A node by logical name (`server`, `fullcone.host1`, …).
    pub fn node(&self, name: &str) -> Result<&Node, Error> {
        self.nodes
            .get(name)
            .ok_or_else(|| Error::Topology(format!("no node {name:?} in this lab")))
    }

    /// All nodes, by logical name.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    /// The server node.
    pub fn server(&self) -> Result<&Node, Error> {
        self.node("server")
    }

    /// A site by name.
    pub fn site(&self, name: &str) -> Result<&SiteInfo, Error> {
        self.sites
            .iter()
            .find(|s| s.spec.name == name)
            .ok_or_else(|| Error::Topology(format!("no site {name:?} in this lab")))
    }

    /// All sites in build order.
    pub fn sites(&self) -> &[SiteInfo] {
        &self.sites
    }

    /// The first host of a site.
    pub fn host(&self, site: &str) -> Result<&Node, Error> {
        let info = self.site(site)?;
        let first = info
            .hosts
            .first()
            .ok_or_else(|| Error::Topology(format!("{site} has no host")))?;
        self.node(first)
    }

    /// A scratch directory of this lab (configs, daemon state), removed on drop.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// Starts a daemon in a node's namespace; it is killed when the lab is dropped.
    /// Its output goes to `<workdir>/<node>-<program>.log` (see [`Lab::log`]).
    pub fn spawn(&mut self, node: &str, program: &str, args: &[&str]) -> Result<(), Error> {
        let ns = self.node(node)?.ns.clone();
        let log_path = self.workdir.join(format!("{node}-{program}.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| Error::Spawn {
            program: format!("{program} (log file {})", log_path.display()),
            source: e,
        })?;
        let err = log.try_clone().map_err(|e| Error::Spawn {
            program: program.into(),
            source: e,
        })?;
        let mut cmd = ns.command(program, args);
        cmd.stdin(Stdio::null()).stdout(log).stderr(err);
        let child = cmd.spawn().map_err(|e| Error::Spawn {
            program: program.to_owned(),
            source: e,
        })?;
        self.children.push((program.to_owned(), child));
        Ok(())
    }

    /// What a daemon started with [`Lab::spawn`] has printed so far.
    pub fn log(&self, node: &str, program: &str) -> String {
        std::fs::read_to_string(self.workdir.join(format!("{node}-{program}.log")))
            .unwrap_or_default()
    }

    /// Keeps `guard` alive as long as the lab; it is dropped before the namespaces are
    /// deleted (threads in namespaces, helpers with their own teardown).
    pub fn keep(&mut self, guard: Box<dyn std::fmt::Debug + Send>) {
        self.guards.push(guard);
    }

    pub(crate) fn add_node(
        &mut self,
        name: &str,
        role: Role,
        ipv4: Vec<Ipv4Addr>,
        ipv6: Vec<Ipv6Addr>,
    ) -> Result<Netns, Error> {
        let ns_name = format!("{}{}", self.prefix, name.replace('.', "-"));
        let ns = Netns::create(&ns_name)?;
        self.created.push(ns.clone());
        ns.sysctl(&[
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.conf.all.accept_ra=0",
            "net.ipv6.conf.default.accept_ra=0",
        ])?;
        let node = Node {
            name: name.to_owned(),
            role,
            ns: ns.clone(),
            ipv4,
            ipv6,
        };
        self.nodes.insert(name.to_owned(), node);
        Ok(ns)
    }

    pub(crate) fn nodes_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.nodes.get_mut(name)
    }

    /// A human-readable description of the lab: sites, nodes, addresses.
    pub fn describe(&self) -> String {
        let mut out = format!("lab {} (built in {:?})\n", self.prefix, self.build_time);
        let addrs = |n: &Node| {
            let mut v: Vec<String> = n.ipv4.iter().map(|a| a.to_string()).collect();
            v.extend(n.ipv6.iter().map(|a| a.to_string()));
            v.join(", ")
        };
        for name in ["core", "server"] {
            if let Some(n) = self.nodes.get(name) {
                out.push_str(&format!("  {:<20} {}\n", n.name, addrs(n)));
            }
        }
        for s in &self.sites {
            out.push_str(&format!(
                "site {} — {}\n",
                s.spec.name,
                s.spec.kind.describe()
            ));
            if let Some(ip) = s.public_v4 {
                out.push_str(&format!("  appears on the internet as {ip}\n"));
            }
            for n in self
                .nodes
                .values()
                .filter(|n| n.name.starts_with(&format!("{}.", s.spec.name)))
            {
                out.push_str(&format!("  {:<20} {}\n", n.name, addrs(n)));
            }
        }
        out
    }

    /// Whether `ip` belongs to some node of this lab.
    pub fn owns(&self, ip: IpAddr) -> bool {
        self.nodes.values().any(|n| match ip {
            IpAddr::V4(a) => n.ipv4.contains(&a),
            IpAddr::V6(a) => n.ipv6.contains(&a),
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.guards.clear();
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in self.created.iter().rev() {
            ns.delete();
        }
        let _ = std::fs::remove_dir_all(&self.workdir);
        tracing::info!(prefix = %self.prefix, "lab is down");
    }
}

/// The pid that owns a lab namespace name, if it follows our naming.
pub fn owner_pid(ns_name: &str) -> Option<u32> {
    ns_name
        .strip_prefix(NS_PREFIX)?
        .split('-')
        .next()?
        .parse()
        .ok()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Deletes namespaces of labs whose process is gone (a killed test or `natlab up`).
/// Returns the names deleted.
pub fn reap_stale() -> Vec<String> {
    // Their scratch directories too (`<tmp>/natlab-<pid>-<run>`).
    if let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if owner_pid(&name).is_some_and(|pid| !alive(pid)) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    remove_matching(|name| owner_pid(name).is_some_and(|pid| !alive(pid)))
}

/// Deletes every lab namespace, live or not (`natlab down --all`).
pub fn reap_all() -> Vec<String> {
    remove_matching(|name| name.starts_with(NS_PREFIX))
}

fn remove_matching(pred: impl Fn(&str) -> bool) -> Vec<String> {
    let mut gone = Vec::new();
    for name in netns::list() {
        if pred(&name) {
            Netns::existing(&name).delete();
            gone.push(name);
        }
    }
    gone.sort();
    gone
}
