//! The NFQUEUE delayer in a real three-namespace topology:
//! client (192.168.77.2) — router (lan 192.168.77.1, wan 198.18.77.1) — server (198.18.77.2).
//!
//! Only lower bounds on timing are asserted (a delayed round trip cannot be faster than
//! twice the delay); every wait is bounded by a socket read timeout or a deadline.

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use natlab::delay::{self, DelayConfig, DelayStats, Delayer};
use natlab::netns::Netns;

const SERVER: &str = "198.18.77.2:7777";
const QUEUE: u16 = 7;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

macro_rules! require_root {
    () => {
        if !natlab::is_root() {
            println!("SKIPPED(not root)");
            return;
        }
    };
}

/// Deletes its namespaces when dropped, also when the test panics.
struct NsGuard(Vec<Netns>);

impl Drop for NsGuard {
    fn drop(&mut self) {
        for ns in self.0.iter().rev() {
            ns.delete();
        }
    }
}

struct Lab {
    client: Netns,
    router: Netns,
    server: Netns,
    _guard: NsGuard,
}

fn build_lab() -> Lab {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let prefix = format!("natlab-{}-dly{n}", std::process::id());
    let mut guard = NsGuard(Vec::new());
    let mut make = |role: &str| {
        let ns = Netns::create(&format!("{prefix}-{role}")).expect("create namespace");
        guard.0.push(ns.clone());
        ns
    };
    let client = make("c");
    let router = make("r");
    let server = make("s");

    // The router's LAN faces the client, its WAN the server.
    for (dev, peer, addr) in [
        ("lan", &client, "192.168.77.1/24"),
        ("wan", &server, "198.18.77.1/24"),
    ] {
        router
            .ip(&[
                "link",
                "add",
                dev,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                peer.name(),
            ])
            .expect("veth");
        router
            .ip(&["addr", "add", addr, "dev", dev])
            .expect("router addr");
        router
            .ip(&["link", "set", dev, "up"])
            .expect("router link up");
    }
    router
        .sysctl(&["net.ipv4.ip_forward=1"])
        .expect("ip_forward");

    for (ns, addr, gw) in [
        (&client, "192.168.77.2/24", "192.168.77.1"),
        (&server, "198.18.77.2/24", "198.18.77.1"),
    ] {
        ns.ip(&["addr", "add", addr, "dev", "eth0"]).expect("addr");
        ns.ip(&["link", "set", "eth0", "up"]).expect("eth0 up");
        ns.ip(&["route", "add", "default", "via", gw])
            .expect("default route");
    }
    Lab {
        client,
        router,
        server,
        _guard: guard,
    }
}

/// A UDP socket bound inside `ns`, with a read timeout and large buffers.
fn udp_in(ns: &Netns, addr: &str) -> UdpSocket {
    let addr: SocketAddr = addr.parse().expect("address");
    let sock = ns
        .run(move || UdpSocket::bind(addr))
        .expect("run in namespace")
        .expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    let size: libc::c_int = 4 * 1024 * 1024;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        // SAFETY: setsockopt with a pointer to a live c_int and its size.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&raw const size).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    sock
}

/// Echoes every datagram back until stopped.
struct Echo {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    fn start(server: &Netns) -> Echo {
        let sock = udp_in(server, SERVER);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::SeqCst) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(&buf[..n], from);
                }
            }
        });
        Echo {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends `n` numbered datagrams one at a time and returns each round-trip time;
/// `None` for a datagram whose echo did not come back within `wait`.
fn ping(sock: &UdpSocket, n: u32, wait: Duration) -> Vec<Option<Duration>> {
    let server: SocketAddr = SERVER.parse().expect("address");
    let mut rtts = Vec::new();
    let mut buf = [0u8; 64];
    for seq in 0..n {
        let mut msg = [0u8; 32];
        msg[..4].copy_from_slice(&seq.to_be_bytes());
        let sent = Instant::now();
        sock.send_to(&msg, server).expect("send");
        let deadline = sent + wait;
        let mut rtt = None;
        while Instant::now() < deadline {
            match sock.recv_from(&mut buf) {
                Ok((len, _)) if len >= 4 && buf[..4] == seq.to_be_bytes() => {
                    rtt = Some(sent.elapsed());
                    break;
                }
                _ => {}
            }
        }
        rtts.push(rtt);
    }
    rtts
}

fn all_arrived(rtts: &[Option<Duration>]) -> Vec<Duration> {
    let lost = rtts.iter().filter(|r| r.is_none()).count();
    assert_eq!(lost, 0, "{lost} of {} datagrams got no echo", rtts.len());
    rtts.iter().flatten().copied().collect()
}

/// Waits (bounded) until the delayer's counters satisfy `ok`: a verdict is counted
/// just after it is sent, so the last echo can arrive before its count.
fn settled_stats(delayer: &Delayer, ok: impl Fn(&DelayStats) -> bool) -> DelayStats {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let stats = delayer.stats();
        if ok(&stats) || Instant::now() >= deadline {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn summary(rtts: &[Duration]) -> String {
    let mut v = rtts.to_vec();
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "min {:.2} ms, median {:.2} ms, max {:.2} ms (n={})",
        ms(v[0]),
        ms(v[v.len() / 2]),
        ms(v[v.len() - 1]),
        v.len()
    )
}

/// The lab with the echo server running in its server namespace, and a client socket.
fn lab_with_echo() -> (Lab, Echo, UdpSocket) {
    let lab = build_lab();
    let echo = Echo::start(&lab.server);
    let client = udp_in(&lab.client, "192.168.77.2:0");
    (lab, echo, client)
}

/// Starts a delayer with `config` on the router's queue and sends the router's
/// WAN traffic through it.
fn delay_wan(lab: &Lab, config: DelayConfig) -> Delayer {
    let delayer = Delayer::start_with(&lab.router, QUEUE, config).expect("start delayer");
    delay::install_rules(&lab.router, "wan", QUEUE).expect("install rules");
    delayer
}

#[test]
fn fixed_delay_applies_in_both_directions() {
    require_root!();
    let (lab, _echo, client) = lab_with_echo();
    let delay = Duration::from_millis(50);

    let baseline = all_arrived(&ping(&client, 20, Duration::from_secs(2)));
    println!("RTT without delayer: {}", summary(&baseline));

    let delayer = Delayer::start(&lab.router, QUEUE, delay).expect("start delayer");
    // The queue is bound: a second consumer on the same queue is refused.
    let second = Delayer::start(&lab.router, QUEUE, delay);
    assert!(second.is_err(), "a second consumer bound the same queue");
    println!(
        "second bind refused: {}",
        second.err().map(|e| e.to_string()).unwrap_or_default()
    );

    delay::install_rules(&lab.router, "wan", QUEUE).expect("install rules");
    let delayed = all_arrived(&ping(&client, 20, Duration::from_secs(3)));
    println!("RTT with 50 ms delayer: {}", summary(&delayed));
    let stats = settled_stats(&delayer, |s| s.released >= 40);
    println!("delayer stats: {stats:?}");

    let min_delayed = delayed.iter().min().copied().expect("samples");
    let min_baseline = baseline.iter().min().copied().expect("samples");
    assert!(
        min_delayed >= 2 * delay,
        "a delayed round trip took only {min_delayed:?}"
    );
    assert!(
        min_baseline < delay,
        "reference RTT {min_baseline:?} is not far below the delay"
    );
    assert!(stats.queued >= 40 && stats.released >= 40, "{stats:?}");
    assert!(delayer.is_running());

    // Drop stops the consumer in bounded time; with the rules still in place and no
    // consumer, forwarded UDP is dropped (no --queue-bypass).
    let t = Instant::now();
    drop(delayer);
    let stop_took = t.elapsed();
    println!("Delayer drop took {stop_took:?}");
    assert!(stop_took < Duration::from_secs(5));
    let after = ping(&client, 3, Duration::from_millis(500));
    assert!(
        after.iter().all(Option::is_none),
        "packets passed an unbound queue: {after:?}"
    );

    // Rules removed: traffic flows undelayed again.
    delay::remove_rules(&lab.router, "wan", QUEUE).expect("remove rules");
    all_arrived(&ping(&client, 5, Duration::from_secs(2)));

    // A new consumer can bind the queue again after the old one unbound.
    let again = Delayer::start(&lab.router, QUEUE, delay).expect("rebind");
    drop(again);
}

#[test]
fn jitter_adds_at_least_the_fixed_delay() {
    require_root!();
    let (lab, _echo, client) = lab_with_echo();
    let config = DelayConfig {
        delay: Duration::from_millis(20),
        jitter: Duration::from_millis(20),
        ..DelayConfig::fixed(Duration::ZERO)
    };
    let delayer = delay_wan(&lab, config);
    let rtts = all_arrived(&ping(&client, 20, Duration::from_secs(3)));
    println!("RTT with 20 ms + U[0,20] ms jitter: {}", summary(&rtts));
    let min = rtts.iter().min().copied().expect("samples");
    assert!(
        min >= 2 * config.delay,
        "a delayed round trip took only {min:?}"
    );
    drop(delayer);
}

#[test]
fn handles_thousands_of_packets_per_second_in_order() {
    require_root!();
    let (lab, _echo, client) = lab_with_echo();
    let delay = Duration::from_millis(20);
    let delayer = delay_wan(&lab, DelayConfig::fixed(delay));

    // 3000 datagrams paced at about 6000 per second; every echo passes the queue twice.
    const N: u32 = 3000;
    let receiver = client.try_clone().expect("clone socket");
    let collect = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = HashSet::new();
        let mut order = Vec::new();
        let mut buf = [0u8; 64];
        while seen.len() < N as usize && Instant::now() < deadline {
            if let Ok((len, _)) = receiver.recv_from(&mut buf) {
                if len < 4 {
                    continue;
                }
                let seq = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                if seen.insert(seq) {
                    order.push(seq);
                }
            }
        }
        order
    });
    let server: SocketAddr = SERVER.parse().expect("address");
    let started = Instant::now();
    for seq in 0..N {
        let mut msg = [0u8; 100];
        msg[..4].copy_from_slice(&seq.to_be_bytes());
        client.send_to(&msg, server).expect("send");
        if seq % 30 == 29 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let send_time = started.elapsed();
    let order = collect.join().expect("receiver thread");
    let stats = settled_stats(&delayer, |s| s.released >= 2 * u64::from(N));
    println!(
        "sent {N} in {send_time:?} ({:.0}/s), echoed back {}; delayer stats: {stats:?}",
        f64::from(N) / send_time.as_secs_f64(),
        order.len()
    );
    assert_eq!(
        order.len(),
        N as usize,
        "lost echoes; delayer stats: {stats:?}"
    );
    assert!(stats.released >= 2 * u64::from(N), "{stats:?}");
    // Without jitter the delayer keeps FIFO order (the veths and sockets do too).
    let inversions = order.windows(2).filter(|w| w[1] < w[0]).count();
    assert_eq!(inversions, 0, "reordered datagrams with a fixed delay");
}
