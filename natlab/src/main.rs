//! `natlab`: bring up, show and tear down NAT labs of real kernel NATs.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use natlab::probe::{Reflector, observed_address, udp_socket};
use natlab::{Lab, SERVER_V4, SERVER_V6, Site, Topology, catalog};

#[derive(Debug, Parser)]
#[command(
    name = "natlab",
    version,
    about = "Real kernel NATs in network namespaces (needs root)."
)]
struct Args {
    /// Log level (error, warn, info, debug, trace).
    #[arg(long, default_value = "warn", global = true)]
    log: String,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build a sample lab, show it, probe every host's public address, tear it down.
    Demo,
    /// Build a lab of the named site kinds (default: all) and keep it until Ctrl-C.
    Up {
        /// Site kinds from `natlab kinds`.
        sites: Vec<String>,
    },
    /// List the site kinds the lab can build.
    Kinds,
    /// List running labs and their namespaces.
    Show,
    /// Remove labs left behind by crashed runs (owner process gone).
    Down {
        /// Remove every lab, including ones whose owner still runs.
        #[arg(long)]
        all: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .init();
    match args.command {
        Cmd::Kinds => {
            for s in catalog() {
                println!("{:<10} {}", s.name, s.kind.describe());
            }
            Ok(())
        }
        Cmd::Show => {
            show();
            Ok(())
        }
        Cmd::Down { all } => {
            let gone = if all {
                natlab::reap_all()
            } else {
                natlab::reap_stale()
            };
            println!("removed {} namespace(s)", gone.len());
            for n in gone {
                println!("  {n}");
            }
            Ok(())
        }
        Cmd::Up { sites } => up(&sites),
        Cmd::Demo => demo(),
    }
}

fn pick(names: &[String]) -> anyhow::Result<Vec<Site>> {
    let all = catalog();
    if names.is_empty() {
        return Ok(all);
    }
    names
        .iter()
        .map(|n| {
            all.iter().find(|s| &s.name == n).cloned().with_context(|| {
                let known: Vec<_> = all.iter().map(|s| s.name.as_str()).collect();
                format!("unknown site kind {n:?}; known: {}", known.join(", "))
            })
        })
        .collect()
}

fn build(sites: Vec<Site>) -> anyhow::Result<Lab> {
    if !natlab::is_root() {
        bail!("natlab needs root to create network namespaces; run it with sudo");
    }
    let topo = sites.into_iter().fold(Topology::new(), Topology::site);
    Ok(Lab::build(topo)?)
}

fn up(names: &[String]) -> anyhow::Result<()> {
    let sites = pick(names)?;
    // Block SIGINT/SIGTERM before any thread starts so that sigwait below receives them.
    let set = signal_set();
    // SAFETY: pthread_sigmask on a set initialised by signal_set.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    let lab = build(sites)?;
    print!("{}", lab.describe());
    println!("run commands in a node with: ip netns exec <namespace> <command>");
    for n in lab.nodes() {
        println!("  {:<20} {}", n.name, n.ns.name());
    }
    println!("press Ctrl-C to tear the lab down");
    let mut sig = 0;
    // SAFETY: sigwait with the same initialised set.
    unsafe { libc::sigwait(&set, &mut sig) };
    drop(lab);
    println!("lab removed");
    Ok(())
}

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a zeroed sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

fn show() {
    let mut labs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in natlab::netns::list() {
        if let Some(pid) = natlab::owner_pid(&name) {
            let lab: String = name.splitn(4, '-').take(3).collect::<Vec<_>>().join("-");
            labs.entry(format!("{lab} (pid {pid})"))
                .or_default()
                .push(name);
        }
    }
    if labs.is_empty() {
        println!("no labs are running");
    }
    for (lab, mut names) in labs {
        names.sort();
        println!("{lab}: {} namespace(s)", names.len());
        for n in names {
            println!("  {n}");
        }
    }
}

fn demo() -> anyhow::Result<()> {
    let sites = pick(
        &[
            "public",
            "dualstack",
            "fullcone",
            "symmetric",
            "mapesym",
            "cgn",
            "dslite",
            "nat64",
        ]
        .map(String::from),
    )?;
    println!("building a sample lab of {} sites…", sites.len());
    let started = Instant::now();
    let lab = build(sites)?;
    print!("{}", lab.describe());
    let server = lab.server()?;
    let v4 = Reflector::start(&server.ns, SocketAddr::new(IpAddr::V4(SERVER_V4[0]), 3478))?;
    let v6 = Reflector::start(&server.ns, SocketAddr::new(IpAddr::V6(SERVER_V6[0]), 3478))?;
    let nat64_server: IpAddr = natlab::nat64_address(SERVER_V4[0]).into();
    println!("\nprobes: each host asks the server which address it is seen from");
    for site in lab.sites() {
        let host = lab.host(&site.spec.name)?;
        let mut targets: Vec<(&str, SocketAddr, IpAddr)> = Vec::new();
        if host.v4().is_some() {
            targets.push(("IPv4", v4.addr(), IpAddr::from([0, 0, 0, 0])));
        }
        if host.v6().is_some() {
            targets.push(("IPv6", v6.addr(), IpAddr::from([0u16; 8])));
        }
        if site.spec.kind == natlab::SiteKind::Nat64 {
            targets.push((
                "NAT64",
                SocketAddr::new(nat64_server, 3478),
                IpAddr::from([0u16; 8]),
            ));
        }
        for (what, to, bind) in targets {
            let sock = udp_socket(&host.ns, SocketAddr::new(bind, 40000))?;
            let seen = observed_address(&sock, to, Duration::from_secs(2))?;
            let seen = seen.map_or("no answer".to_string(), |a| a.to_string());
            println!("  {:<18} {what:<6} -> {to:<28} seen as {seen}", host.name);
        }
    }
    drop((v4, v6));
    let prefix = lab.prefix().to_owned();
    let down = Instant::now();
    drop(lab);
    println!(
        "\nlab torn down in {:?} (whole demo {:?}); leftover namespaces: {}",
        down.elapsed(),
        started.elapsed(),
        natlab::netns::list()
            .iter()
            .filter(|n| n.starts_with(&prefix))
            .count()
    );
    Ok(())
}
