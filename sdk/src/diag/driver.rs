//! The thin driver: real UDP sockets (tokio) around the sans-IO [`Prober`].
//!
//! ```no_run
//! use tsunagi::diag::{CancelFlag, DiagConfig, run_blocking};
//! let config = DiagConfig { quick: true, ..DiagConfig::new("stun.example.net:3478") };
//! let report = run_blocking(&config, |p| eprintln!("{p:?}"), &CancelFlag::default())?;
//! println!("{}", report.to_json_pretty());
//! # Ok::<(), tsunagi::diag::DiagError>(())
//! ```

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::probe::{Output, ProbeConfig, Prober, Progress};
use super::report::Report;
use super::txn::{MAIN_SOCKET, SocketId};

/// What to diagnose and how.
#[derive(Debug, Clone, PartialEq)]
pub struct DiagConfig {
    /// The RFC 5780 STUN server, `host:port`.
    pub server: String,
    /// Skip the binding-lifetime search (a few seconds instead of a minute or more).
    pub quick: bool,
    /// The main socket's local address; `None` = any address, any port, of the
    /// server's family.
    pub bind: Option<SocketAddr>,
    /// Timers and limits of the probes (`quick` above overrides `probe.quick`).
    pub probe: ProbeConfig,
}

impl DiagConfig {
    /// Defaults for `server`.
    pub fn new(server: &str) -> DiagConfig {
        DiagConfig {
            server: server.to_owned(),
            quick: false,
            bind: None,
            probe: ProbeConfig::default(),
        }
    }
}

/// Stops a running diagnosis from another thread or task; the report keeps what was
/// learnt so far.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// Asks the diagnosis to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    /// Whether [`CancelFlag::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Why a diagnosis could not run at all (a network that drops everything is not an
/// error: the report says UDP is blocked).
#[derive(Debug, thiserror::Error)]
pub enum DiagError {
    /// The server name did not resolve.
    #[error("cannot resolve STUN server {server:?}: {source}; check the name and the DNS settings")]
    Resolve {
        /// The server as given.
        server: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// The server name resolved to nothing usable.
    #[error("STUN server {server:?} has no address; give it as host:port")]
    NoAddress {
        /// The server as given.
        server: String,
    },
    /// A local UDP socket could not be opened.
    #[error(
        "cannot open a UDP socket on {addr}: {source}; is the address local and the port free?"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// There is no route to the server.
    #[error("no route to {server}: {source}; is the network up?")]
    NoRoute {
        /// The server's address.
        server: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The async runtime could not start ([`run_blocking`] only).
    #[error("cannot start the I/O runtime: {0}")]
    Runtime(std::io::Error),
}

/// Runs a diagnosis on the current thread (it builds a single-threaded tokio
/// runtime): sockets are created on this thread, so in this thread's network
/// namespace.
pub fn run_blocking(
    config: &DiagConfig,
    progress: impl FnMut(&Progress),
    cancel: &CancelFlag,
) -> Result<Report, DiagError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DiagError::Runtime)?;
    rt.block_on(run(config, progress, cancel))
}

/// Runs a diagnosis; `progress` is called for every [`Progress`] event.
pub async fn run(
    config: &DiagConfig,
    mut progress: impl FnMut(&Progress),
    cancel: &CancelFlag,
) -> Result<Report, DiagError> {
    let resolve = |source| DiagError::Resolve {
        server: config.server.clone(),
        source,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(config.server.as_str())
        .await
        .map_err(resolve)?
        .collect();
    // IPv4 first: the NATs this diagnosis is about are IPv4 NATs.
    let server = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| DiagError::NoAddress {
            server: config.server.clone(),
        })?;
    let bind = config.bind.unwrap_or_else(|| {
        let any = if server.is_ipv4() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        };
        SocketAddr::new(any, 0)
    });
    let local_ip = if bind.ip().is_unspecified() {
        route_source(server, bind)?
    } else {
        bind.ip()
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut sockets: HashMap<SocketId, (Arc<UdpSocket>, JoinHandle<()>)> = HashMap::new();
    let main = open(bind, MAIN_SOCKET, &tx).await?;
    let main_port = main
        .0
        .local_addr()
        .map_err(|source| DiagError::Bind { addr: bind, source })?
        .port();
    sockets.insert(MAIN_SOCKET, main);

    let mut cfg = config.probe.clone();
    cfg.quick |= config.quick;
    cfg.seed = seed();
    let local = SocketAddr::new(local_ip, main_port);
    tracing::info!(%server, %local, quick = cfg.quick, "NAT diagnosis starting");
    let mut prober = Prober::new(cfg, &config.server, server, local, Instant::now());
    loop {
        while let Some(out) = prober.poll_output() {
            match out {
                Output::Transmit {
                    socket,
                    destination,
                    payload,
                } => {
                    if let Some((s, _)) = sockets.get(&socket)
                        && let Err(e) = s.send_to(&payload, destination).await
                    {
                        tracing::debug!(%destination, error = %e, "send failed; the probe will time out");
                    }
                }
                Output::OpenSocket(id) => {
                    let opened = match open(SocketAddr::new(bind.ip(), 0), id, &tx).await {
                        Ok(s) => {
                            let port = s.0.local_addr().map(|a| a.port()).unwrap_or(0);
                            sockets.insert(id, s);
                            Ok(SocketAddr::new(local_ip, port))
                        }
                        Err(e) => Err(e.to_string()),
                    };
                    prober.handle_socket_opened(Instant::now(), id, opened);
                }
                Output::CloseSocket(id) => {
                    if let Some((_, reader)) = sockets.remove(&id) {
                        reader.abort();
                    }
                }
                Output::Progress(p) => progress(&p),
            }
        }
        if prober.is_finished() {
            break;
        }
        if cancel.is_cancelled() {
            prober.cancel(Instant::now());
            continue;
        }
        // Wake at least every 100 ms to notice cancellation.
        let now = Instant::now();
        let wake = prober
            .poll_timeout()
            .unwrap_or(now)
            .min(now + Duration::from_millis(100));
        tokio::select! {
            got = rx.recv() => {
                if let Some((id, from, data)) = got {
                    prober.handle_datagram(Instant::now(), id, from, &data);
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                prober.handle_timeout(Instant::now());
            }
        }
    }
    let mut report = prober.into_report();
    if let Some((main, reader)) = sockets.remove(&MAIN_SOCKET)
        && report.mapped_address.is_some()
        && !cancel.is_cancelled()
    {
        // The trace reads the main socket itself: stop its reader first.
        reader.abort();
        let _ = reader.await;
        let started = Instant::now();
        let wait = (config.probe.retransmit.initial_rto * 2).max(Duration::from_millis(200));
        trace_path(&mut report, main, server, wait, cancel).await;
        report.duration_ms += u64::try_from(started.elapsed().as_millis()).unwrap_or(0);
    }
    for (_, (_, reader)) in sockets {
        reader.abort();
    }
    report.update_nat_layers();
    Ok(report)
}

/// Traces the path to the server from the main socket (its mapping exists in every
/// NAT already, so this costs no new external port) and stores it in the report.
#[cfg(target_os = "linux")]
async fn trace_path(
    report: &mut Report,
    main: Arc<UdpSocket>,
    server: SocketAddr,
    wait: Duration,
    cancel: &CancelFlag,
) {
    use std::os::fd::AsFd as _;
    let cancel = cancel.clone();
    let seed = seed();
    let traced = tokio::task::spawn_blocking(move || {
        let path = super::hops::trace(
            main.as_fd(),
            server,
            super::hops::TraceConfig::default(),
            wait,
            seed,
            &|| cancel.is_cancelled(),
        );
        // Returned so that the socket is dropped on the runtime, not on this thread.
        (path, main)
    })
    .await;
    match traced {
        Ok((Ok(path), _)) => report.path = Some(path),
        Ok((Err(e), _)) => report.warnings.push(format!(
            "the path to the server could not be traced ({e}); NAT layers come from the addresses alone"
        )),
        Err(e) => report.warnings.push(format!(
            "the path to the server could not be traced ({e}); NAT layers come from the addresses alone"
        )),
    }
}

/// Tracing needs Linux's `IP_RECVERR`; elsewhere NAT layers come from the addresses.
#[cfg(not(target_os = "linux"))]
async fn trace_path(
    report: &mut Report,
    _main: Arc<UdpSocket>,
    _server: SocketAddr,
    _wait: Duration,
    _cancel: &CancelFlag,
) {
    report.warnings.push(
        "the path to the server was not traced (TTL-limited probes are implemented on Linux only); NAT layers come from the addresses alone".into(),
    );
}

type Datagram = (SocketId, SocketAddr, Vec<u8>);

/// Binds a socket and starts a task forwarding what it receives.
async fn open(
    addr: SocketAddr,
    id: SocketId,
    tx: &mpsc::UnboundedSender<Datagram>,
) -> Result<(Arc<UdpSocket>, JoinHandle<()>), DiagError> {
    let sock = Arc::new(
        UdpSocket::bind(addr)
            .await
            .map_err(|source| DiagError::Bind { addr, source })?,
    );
    let reader = sock.clone();
    let tx = tx.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        loop {
            match reader.recv_from(&mut buf).await {
                Ok((n, from)) => {
                    let data = buf.get(..n).unwrap_or_default().to_vec();
                    if tx.send((id, from, data)).is_err() {
                        break;
                    }
                }
                // ICMP errors surface as these on some systems; the probe times out.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionRefused
                    ) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "UDP receive failed; socket closed");
                    break;
                }
            }
        }
    });
    Ok((sock, task))
}

/// The local address the OS would use towards `server` (no packet is sent).
fn route_source(server: SocketAddr, bind: SocketAddr) -> Result<IpAddr, DiagError> {
    let no_route = |source| DiagError::NoRoute { server, source };
    let probe = std::net::UdpSocket::bind(SocketAddr::new(bind.ip(), 0))
        .map_err(|source| DiagError::Bind { addr: bind, source })?;
    probe.connect(server).map_err(no_route)?;
    Ok(probe.local_addr().map_err(no_route)?.ip())
}

/// A transaction-ID seed; IDs need not be secret here, only unpredictable enough not
/// to collide with other clients' transactions.
fn seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}
