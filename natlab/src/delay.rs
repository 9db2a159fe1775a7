//! Added one-way delay without netem: an NFQUEUE consumer that holds packets.
//!
//! The kernel here has no `netem` qdisc and no nft `queue` statement, but the iptables
//! `NFQUEUE` target works. [`install_rules`] sends UDP forwarded through the router's WAN
//! interface, in both directions, to an NFQUEUE; a [`Delayer`] bound to that queue holds
//! every packet for the configured delay (plus optional uniform jitter) and then lets it
//! go with an `NF_ACCEPT` verdict.
//!
//! **Each direction gets the full delay**: a request leaving through `wan` and its
//! reply coming back in through `wan` are both held, so a round trip through the router
//! grows by `2 × delay` (plus up to `2 × jitter`).
//!
//! The consumer speaks nfnetlink directly (`NETLINK_NETFILTER`, `NFQNL_MSG_CONFIG`
//! bind, copy mode `NFQNL_COPY_META`: only the packet id is needed for the verdict). Its
//! socket is opened on a thread that has joined the namespace with `setns(2)`, so it
//! serves the queue of that namespace. [`Delayer::start`] returns only after the kernel
//! has acknowledged the bind, so rules installed afterwards never see an unbound queue.
//!
//! The rules use no `--queue-bypass`: with no consumer bound, queued packets are
//! dropped. That is an honest failure (the path is dead) rather than a silent loss of
//! the delay.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Error;
use crate::netns::{self, Netns};

/// How long [`Delayer::start`] waits for the kernel to acknowledge the bind.
pub const START_TIMEOUT: Duration = Duration::from_secs(5);
/// How long dropping a [`Delayer`] waits for its thread to finish.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// Default kernel-side queue length (packets held at once); the kernel default is 1024.
pub const DEFAULT_MAX_QUEUE_LEN: u32 = 65_536;

/// The iptables program used for the rules. Both `iptables-legacy` and `iptables-nft`
/// install a working `NFQUEUE` rule inside a namespace on Debian 12; the nft backend is
/// Debian's default and coexists with the lab's own nftables tables (it creates
/// `table ip mangle`; an `nft flush ruleset` run later removes the rules too, so
/// install them after the router's nftables setup).
pub const IPTABLES: &str = "iptables-nft";
/// The IPv6 counterpart of [`IPTABLES`].
pub const IP6TABLES: &str = "ip6tables-nft";
/// Tried when [`IPTABLES`] fails (the legacy xtables backend also works here).
pub const IPTABLES_FALLBACK: &str = "iptables-legacy";

// nfnetlink / nfnetlink_queue constants (linux/netfilter/nfnetlink*.h).
const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_CFG_CMD_UNBIND: u8 = 2;
const NFQNL_COPY_META: u8 = 1;
const NF_ACCEPT: u32 = 1;
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
/// One verdict message: nlmsghdr + nfgenmsg + nlattr(verdict hdr, 8 bytes).
const VERDICT_MSG_LEN: usize = NLMSG_HDRLEN + NFGENMSG_LEN + 4 + 8;
/// Flush verdicts once a batch buffer reaches this size.
const VERDICT_BATCH_BYTES: usize = 32 * 1024;
/// Datagrams read per wake-up before verdicts get a turn.
const MAX_RECV_PER_ROUND: usize = 1024;
/// Receive buffer asked for on the netlink socket.
const RCVBUF_BYTES: libc::c_int = 8 * 1024 * 1024;
/// Poll at least this often even with nothing held (the wake-up fd ends the wait
/// earlier; this only bounds the wait if it were ever missed).
const IDLE_POLL: Duration = Duration::from_millis(500);
const SEQ_BIND: u32 = 1;
const SEQ_PARAMS: u32 = 2;

/// How long to hold packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelayConfig {
    /// Fixed delay added to every packet, in each direction.
    pub delay: Duration,
    /// Extra delay drawn uniformly from `[0, jitter]` per packet. With jitter 0 the
    /// packets leave in the order they arrived (so every flow stays FIFO); with jitter
    /// they may be reordered, as netem's jitter does.
    pub jitter: Duration,
    /// Kernel queue length; packets beyond it are dropped by the kernel.
    pub max_queue_len: u32,
}

impl DelayConfig {
    /// A fixed delay without jitter.
    pub fn fixed(delay: Duration) -> DelayConfig {
        DelayConfig {
            delay,
            jitter: Duration::ZERO,
            max_queue_len: DEFAULT_MAX_QUEUE_LEN,
        }
    }
}

/// Counters of a running [`Delayer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DelayStats {
    /// Packets received from the queue.
    pub queued: u64,
    /// Packets released with an ACCEPT verdict.
    pub released: u64,
    /// Times the netlink socket overran (`ENOBUFS`): the kernel dropped packets it
    /// could not hand over.
    pub overruns: u64,
    /// Verdict sends that failed or that the kernel answered with an error.
    pub verdict_errors: u64,
    /// Netlink messages that could not be parsed and were skipped.
    pub malformed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    released: AtomicU64,
    overruns: AtomicU64,
    verdict_errors: AtomicU64,
    malformed: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> DelayStats {
        DelayStats {
            queued: self.queued.load(Ordering::Relaxed),
            released: self.released.load(Ordering::Relaxed),
            overruns: self.overruns.load(Ordering::Relaxed),
            verdict_errors: self.verdict_errors.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
        }
    }
}

/// An NFQUEUE consumer inside one namespace that delays every queued packet.
///
/// Dropping it stops its thread (within [`STOP_TIMEOUT`]), releases the packets it
/// still holds at once and unbinds the queue; packets queued after that are dropped by
/// the kernel until the rules are removed or another consumer binds.
#[derive(Debug)]
pub struct Delayer {
    netns: String,
    queue_num: u16,
    config: DelayConfig,
    wake: Arc<OwnedFd>,
    counters: Arc<Counters>,
    running: Arc<AtomicBool>,
    done: mpsc::Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl Delayer {
    /// Binds NFQUEUE `queue_num` inside `ns` and holds each packet for `delay`.
    /// Returns once the kernel has acknowledged the bind.
    pub fn start(ns: &Netns, queue_num: u16, delay: Duration) -> Result<Delayer, Error> {
        Delayer::start_with(ns, queue_num, DelayConfig::fixed(delay))
    }

    /// Like [`Delayer::start`] with jitter and queue length.
    pub fn start_with(ns: &Netns, queue_num: u16, config: DelayConfig) -> Result<Delayer, Error> {
        let err = |reason: String| Error::Delay {
            netns: ns.name().to_owned(),
            queue: queue_num,
            reason,
        };
        let file = File::open(ns.path())
            .map_err(|e| err(format!("cannot open {}: {e}", ns.path().display())))?;
        let wake = Arc::new(eventfd().map_err(|e| err(format!("eventfd: {e}")))?);
        let counters = Arc::new(Counters::default());
        let running = Arc::new(AtomicBool::new(true));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), Error>>();
        let (done_tx, done_rx) = mpsc::channel::<()>();

        let ctx = LoopCtx {
            netns: ns.name().to_owned(),
            queue_num,
            config,
            wake: Arc::clone(&wake),
            counters: Arc::clone(&counters),
        };
        let thread_running = Arc::clone(&running);
        let thread = std::thread::Builder::new()
            .name(format!("natlab-delay-q{queue_num}"))
            .spawn(move || {
                // Dropped when the thread ends, however it ends: tells Drop we are done.
                let _done = done_tx;
                let result = netns::enter(&file, &ctx.netns).and_then(|()| {
                    drop(file);
                    ctx.serve(&ready_tx)
                });
                thread_running.store(false, Ordering::SeqCst);
                if let Err(e) = result {
                    // Either start() is still waiting and gets the error, or the
                    // delayer was running and the error is logged.
                    if let Err(mpsc::SendError(Err(e))) = ready_tx.send(Err(e)) {
                        tracing::error!(error = %e, "delayer stopped");
                    }
                }
            })
            .map_err(|e| err(format!("cannot spawn thread: {e}")))?;

        let delayer = Delayer {
            netns: ns.name().to_owned(),
            queue_num,
            config,
            wake,
            counters,
            running,
            done: done_rx,
            thread: Some(thread),
        };
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(())) => Ok(delayer),
            Ok(Err(e)) => Err(e),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(Error::Timeout {
                what: format!("binding NFQUEUE {queue_num} in {}", ns.name()),
                after: START_TIMEOUT,
            }),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(err("delayer thread ended before binding".into()))
            }
        }
    }

    /// The queue this delayer serves.
    pub fn queue_num(&self) -> u16 {
        self.queue_num
    }

    /// The configuration it runs with.
    pub fn config(&self) -> DelayConfig {
        self.config
    }

    /// Whether the consumer thread is still serving the queue.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Current counters.
    pub fn stats(&self) -> DelayStats {
        self.counters.snapshot()
    }
}

impl Drop for Delayer {
    fn drop(&mut self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our own eventfd.
        let _ = unsafe {
            libc::write(
                self.wake.as_raw_fd(),
                (&raw const one).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        match self.done.recv_timeout(STOP_TIMEOUT) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                tracing::warn!(
                    netns = %self.netns,
                    queue = self.queue_num,
                    "delayer thread did not stop within {STOP_TIMEOUT:?}; leaving it detached"
                );
            }
            _ => {
                if let Some(thread) = self.thread.take() {
                    let _ = thread.join();
                }
            }
        }
    }
}

/// Puts UDP forwarded through `wan_iface` of `ns`, in both directions, into NFQUEUE
/// `queue_num` (`iptables -t mangle -A FORWARD -i/-o wan -p udp -j NFQUEUE`).
///
/// Start the [`Delayer`] first: without a consumer the queued packets are dropped
/// (no `--queue-bypass`). Only forwarded traffic is delayed, not traffic to or from
/// the router itself. Both rules queue to the same consumer, so a round trip grows by
/// twice the delay.
pub fn install_rules(ns: &Netns, wan_iface: &str, queue_num: u16) -> Result<(), Error> {
    for dir in ["-i", "-o"] {
        iptables(ns, &rule_args("-A", dir, wan_iface, queue_num))?;
        // IPv6 goes to the same queue: the kernel ignores the family of a queue binding,
        // and verdicts name packets by id only.
        ns.exec(IP6TABLES, rule_args("-A", dir, wan_iface, queue_num))?;
    }
    Ok(())
}

/// Removes the rules [`install_rules`] added.
pub fn remove_rules(ns: &Netns, wan_iface: &str, queue_num: u16) -> Result<(), Error> {
    for dir in ["-i", "-o"] {
        iptables(ns, &rule_args("-D", dir, wan_iface, queue_num))?;
        ns.exec(IP6TABLES, rule_args("-D", dir, wan_iface, queue_num))?;
    }
    Ok(())
}

/// Runs [`IPTABLES`], falling back to [`IPTABLES_FALLBACK`] if it fails.
fn iptables(ns: &Netns, args: &[String]) -> Result<(), Error> {
    match ns.exec(IPTABLES, args) {
        Ok(_) => Ok(()),
        Err(first) => match ns.exec(IPTABLES_FALLBACK, args) {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::debug!(error = %e, "{IPTABLES_FALLBACK} failed too");
                Err(first)
            }
        },
    }
}

fn rule_args(op: &str, dir: &str, iface: &str, queue_num: u16) -> Vec<String> {
    [
        "-w",
        "5",
        "-t",
        "mangle",
        op,
        "FORWARD",
        dir,
        iface,
        "-p",
        "udp",
        "-j",
        "NFQUEUE",
        "--queue-num",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([queue_num.to_string()])
    .collect()
}

// ---------------------------------------------------------------------------------
// The consumer thread.

struct LoopCtx {
    netns: String,
    queue_num: u16,
    config: DelayConfig,
    wake: Arc<OwnedFd>,
    counters: Arc<Counters>,
}

/// A held packet, ordered by release time, then arrival.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Held {
    release_at: Instant,
    seq: u64,
    packet_id: u32,
}

struct State {
    held: BinaryHeap<Reverse<Held>>,
    seq: u64,
    rng: XorShift,
    bind_acked: bool,
    params_acked: bool,
    bind_error: Option<String>,
}

impl State {
    /// Nothing held, nothing acknowledged yet.
    fn new() -> State {
        State {
            held: BinaryHeap::new(),
            seq: 0,
            rng: XorShift::seeded(),
            bind_acked: false,
            params_acked: false,
            bind_error: None,
        }
    }
}

impl LoopCtx {
    fn err(&self, reason: String) -> Error {
        Error::Delay {
            netns: self.netns.clone(),
            queue: self.queue_num,
            reason,
        }
    }

    /// Binds, reports readiness, then serves until woken. Runs inside the namespace.
    fn serve(&self, ready: &mpsc::Sender<Result<(), Error>>) -> Result<(), Error> {
        let sock = NlSocket::open().map_err(|e| self.err(format!("netlink socket: {e}")))?;
        let mut state = State::new();
        let mut buf = vec![0u8; 64 * 1024];

        // Bind and configure, asking for acknowledgements.
        let q = self.queue_num;
        let bind = config_msg(
            SEQ_BIND,
            q,
            &[(NFQA_CFG_CMD, &cmd_payload(NFQNL_CFG_CMD_BIND))],
        );
        sock.send(&bind)
            .map_err(|e| self.err(format!("sending bind: {e}")))?;
        let mut params = Vec::with_capacity(5);
        params.extend_from_slice(&0xffffu32.to_be_bytes()); // copy_range (unused for META)
        params.push(NFQNL_COPY_META);
        let maxlen = self.config.max_queue_len.to_be_bytes();
        let cfg = config_msg(
            SEQ_PARAMS,
            q,
            &[(NFQA_CFG_PARAMS, &params), (NFQA_CFG_QUEUE_MAXLEN, &maxlen)],
        );
        sock.send(&cfg)
            .map_err(|e| self.err(format!("sending config: {e}")))?;

        let deadline = Instant::now() + START_TIMEOUT;
        while !(state.bind_acked && state.params_acked) {
            if let Some(reason) = state.bind_error.take() {
                return Err(self.err(reason));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.err("no acknowledgement from the kernel for the bind".into()));
            }
            let (sock_ready, woken) = self.poll(&sock, Some(deadline - now))?;
            if woken {
                return Err(self.err("stopped before the bind was acknowledged".into()));
            }
            if sock_ready {
                self.drain(&sock, &mut buf, &mut state)?;
            }
        }
        if let Some(reason) = state.bind_error.take() {
            return Err(self.err(reason));
        }
        // start() is waiting for this; if it gave up, stop quietly.
        if ready.send(Ok(())).is_err() {
            self.shutdown(&sock, &mut state);
            return Ok(());
        }
        tracing::debug!(netns = %self.netns, queue = q, "delayer bound");

        let mut out = Vec::with_capacity(VERDICT_BATCH_BYTES + VERDICT_MSG_LEN);
        let result = loop {
            let timeout = state
                .held
                .peek()
                .map(|Reverse(h)| h.release_at.saturating_duration_since(Instant::now()))
                .map_or(IDLE_POLL, |d| d.min(IDLE_POLL));
            let (sock_ready, woken) = match self.poll(&sock, Some(timeout)) {
                Ok(r) => r,
                Err(e) => break Err(e),
            };
            if woken {
                break Ok(());
            }
            if sock_ready && let Err(e) = self.drain(&sock, &mut buf, &mut state) {
                break Err(e);
            }
            self.release(&sock, &mut state, &mut out, Some(Instant::now()));
        };
        self.shutdown(&sock, &mut state);
        result
    }

    /// Releases everything still held and unbinds.
    fn shutdown(&self, sock: &NlSocket, state: &mut State) {
        let mut out = Vec::with_capacity(VERDICT_BATCH_BYTES + VERDICT_MSG_LEN);
        self.release(sock, state, &mut out, None);
        let unbind = config_msg(
            0,
            self.queue_num,
            &[(NFQA_CFG_CMD, &cmd_payload(NFQNL_CFG_CMD_UNBIND))],
        );
        if let Err(e) = sock.send(&unbind) {
            tracing::debug!(error = %e, "unbind failed; closing the socket unbinds anyway");
        }
    }

    /// Waits for the socket or the wake-up fd, at most `timeout`.
    /// Returns (socket readable, woken).
    fn poll(&self, sock: &NlSocket, timeout: Option<Duration>) -> Result<(bool, bool), Error> {
        let mut fds = [
            libc::pollfd {
                fd: sock.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: t.subsec_nanos() as libc::c_long, // < 1e9, fits any c_long
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: fds is a live array of two pollfd; ts_ptr is null or points to a live
        // timespec; the signal mask pointer is null (unchanged).
        let rc = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, ts_ptr, std::ptr::null()) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok((false, false));
            }
            return Err(self.err(format!("ppoll: {e}")));
        }
        let woken = fds[1].revents != 0;
        let sock_ready = fds[0].revents != 0;
        if fds[0].revents & (libc::POLLNVAL | libc::POLLHUP) != 0 {
            return Err(self.err("netlink socket closed".into()));
        }
        Ok((sock_ready, woken))
    }

    /// Reads pending datagrams (bounded per call) and handles their messages.
    fn drain(&self, sock: &NlSocket, buf: &mut [u8], state: &mut State) -> Result<(), Error> {
        for _ in 0..MAX_RECV_PER_ROUND {
            match sock.recv(buf) {
                Ok(n) => {
                    let now = Instant::now();
                    let data = buf.get(..n).unwrap_or(&[]);
                    self.handle_datagram(data, now, state);
                }
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(()),
                    Some(libc::EINTR) => continue,
                    Some(libc::ENOBUFS) => {
                        self.counters.overruns.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    _ => return Err(self.err(format!("netlink recv: {e}"))),
                },
            }
        }
        Ok(())
    }

    fn handle_datagram(&self, data: &[u8], now: Instant, state: &mut State) {
        let mut off = 0usize;
        while let Some(hdr) = data.get(off..off + NLMSG_HDRLEN) {
            let len = read_u32_ne(hdr, 0) as usize;
            let ty = read_u16_ne(hdr, 4);
            let seq = read_u32_ne(hdr, 8);
            let Some(msg) = (len >= NLMSG_HDRLEN)
                .then(|| data.get(off..off + len))
                .flatten()
            else {
                self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let payload = msg.get(NLMSG_HDRLEN..).unwrap_or(&[]);
            match ty {
                t if t == libc::NLMSG_ERROR as u16 => self.handle_ack(payload, seq, state),
                t if t == libc::NLMSG_NOOP as u16 || t == libc::NLMSG_DONE as u16 => {}
                t if t == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET => match packet_id(payload) {
                    Some(id) => self.hold(id, now, state),
                    None => {
                        self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                    }
                },
                _ => {
                    self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                }
            }
            off = off.saturating_add(align4(len));
        }
    }

    fn handle_ack(&self, payload: &[u8], seq: u32, state: &mut State) {
        let Some(code) = payload.get(..4).map(|b| read_i32_ne(b, 0)) else {
            self.counters.malformed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let describe = |what: &str| {
            format!(
                "kernel refused {what}: {}",
                std::io::Error::from_raw_os_error(-code)
            )
        };
        match seq {
            SEQ_BIND if !state.bind_acked => {
                if code == 0 {
                    state.bind_acked = true;
                } else if state.bind_error.is_none() {
                    let mut reason = describe("the bind");
                    // The kernel answers EPERM (older kernels EBUSY) when another
                    // socket owns the queue.
                    if code == -libc::EPERM || code == -libc::EBUSY {
                        reason.push_str(" (another consumer is bound to this queue)");
                    }
                    state.bind_error = Some(reason);
                }
            }
            SEQ_PARAMS if !state.params_acked => {
                if code == 0 {
                    state.params_acked = true;
                } else if state.bind_error.is_none() {
                    state.bind_error = Some(describe("the queue configuration"));
                }
            }
            _ => {
                if code != 0 {
                    self.counters.verdict_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn hold(&self, packet_id: u32, now: Instant, state: &mut State) {
        let mut extra = Duration::ZERO;
        let jitter_ns = u64::try_from(self.config.jitter.as_nanos()).unwrap_or(u64::MAX);
        if jitter_ns > 0 {
            extra = Duration::from_nanos(state.rng.next() % jitter_ns.saturating_add(1));
        }
        let release_at = now + self.config.delay + extra;
        state.seq = state.seq.wrapping_add(1);
        state.held.push(Reverse(Held {
            release_at,
            seq: state.seq,
            packet_id,
        }));
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
    }

    /// Issues ACCEPT verdicts for every packet due by `now` (all of them if `None`),
    /// several verdict messages per send.
    fn release(&self, sock: &NlSocket, state: &mut State, out: &mut Vec<u8>, now: Option<Instant>) {
        out.clear();
        let mut count = 0u64;
        while let Some(Reverse(h)) = state.held.peek() {
            if now.is_some_and(|now| h.release_at > now) {
                break;
            }
            let id = h.packet_id;
            state.held.pop();
            push_verdict(out, self.queue_num, id);
            count += 1;
            if out.len() >= VERDICT_BATCH_BYTES {
                self.flush(sock, out, count);
                count = 0;
            }
        }
        if count > 0 {
            self.flush(sock, out, count);
        }
    }

    fn flush(&self, sock: &NlSocket, out: &mut Vec<u8>, count: u64) {
        let mut result = sock.send(out);
        // A send to the kernel fails only on memory pressure or a signal; retry briefly.
        for _ in 0..3 {
            match &result {
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR | libc::ENOBUFS | libc::ENOMEM)
                    ) =>
                {
                    std::thread::sleep(Duration::from_millis(1));
                    result = sock.send(out);
                }
                _ => break,
            }
        }
        match result {
            Ok(_) => {
                self.counters.released.fetch_add(count, Ordering::Relaxed);
            }
            Err(e) => {
                self.counters
                    .verdict_errors
                    .fetch_add(count, Ordering::Relaxed);
                tracing::warn!(error = %e, count, "sending verdicts failed");
            }
        }
        out.clear();
    }
}

// ---------------------------------------------------------------------------------
// Netlink plumbing.

struct NlSocket {
    fd: OwnedFd,
}

impl NlSocket {
    /// Opens a `NETLINK_NETFILTER` socket in the calling thread's namespace.
    fn open() -> std::io::Result<NlSocket> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a freshly created descriptor that nothing else owns.
        let sock = NlSocket {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        };
        // A large receive buffer absorbs bursts; FORCE works as root, else fall back.
        let size: libc::c_int = RCVBUF_BYTES;
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            // SAFETY: setsockopt with a pointer to a live c_int and its size.
            let rc = unsafe {
                libc::setsockopt(
                    sock.fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&raw const size).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                break;
            }
        }
        // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: bind(2) with a pointer to a live sockaddr_nl and its size.
        let rc = unsafe {
            libc::bind(
                sock.fd(),
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(sock)
    }

    fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn send(&self, data: &[u8]) -> std::io::Result<usize> {
        // SAFETY: send(2) reads data.len() bytes from a live slice; the unconnected
        // netlink socket sends to the kernel (port 0).
        let n = unsafe { libc::send(self.fd(), data.as_ptr().cast(), data.len(), 0) };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Non-blocking receive of one datagram.
    fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        // SAFETY: recv(2) writes at most buf.len() bytes into a live mutable slice.
        let n = unsafe {
            libc::recv(
                self.fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            // recv never reports more than the buffer; clamp anyway.
            Ok((n as usize).min(buf.len()))
        }
    }
}

fn eventfd() -> std::io::Result<OwnedFd> {
    // SAFETY: plain eventfd(2) call; the result is checked before use.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a freshly created descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

fn read_u16_ne(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        a.copy_from_slice(s);
    }
    u16::from_ne_bytes(a)
}

fn read_u32_ne(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_ne_bytes(a)
}

fn read_i32_ne(b: &[u8], at: usize) -> i32 {
    read_u32_ne(b, at) as i32
}

/// Appends an nlmsghdr + nfgenmsg for a queue message of type `msg`.
fn push_header(out: &mut Vec<u8>, msg: u16, flags: u16, seq: u32, queue: u16, payload_len: usize) {
    let len = (NLMSG_HDRLEN + NFGENMSG_LEN + payload_len) as u32;
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | msg).to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    out.push(libc::AF_UNSPEC as u8); // nfgen_family
    out.push(0); // NFNETLINK_V0
    out.extend_from_slice(&queue.to_be_bytes()); // res_id
}

fn push_attr(out: &mut Vec<u8>, ty: u16, data: &[u8]) {
    let len = (4 + data.len()) as u16;
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(data);
    out.resize(align4(out.len()), 0);
}

fn config_msg(seq: u32, queue: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let payload: usize = attrs.iter().map(|(_, d)| align4(4 + d.len())).sum();
    let mut out = Vec::with_capacity(NLMSG_HDRLEN + NFGENMSG_LEN + payload);
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
    push_header(&mut out, NFQNL_MSG_CONFIG, flags, seq, queue, payload);
    for (ty, data) in attrs {
        push_attr(&mut out, *ty, data);
    }
    out
}

/// `struct nfqnl_msg_config_cmd { u8 command; u8 pad; be16 pf; }`
fn cmd_payload(command: u8) -> [u8; 4] {
    let pf = (libc::AF_INET as u16).to_be_bytes();
    [command, 0, pf[0], pf[1]]
}

fn push_verdict(out: &mut Vec<u8>, queue: u16, packet_id: u32) {
    push_header(
        out,
        NFQNL_MSG_VERDICT,
        libc::NLM_F_REQUEST as u16,
        0,
        queue,
        12,
    );
    let mut hdr = [0u8; 8];
    hdr[..4].copy_from_slice(&NF_ACCEPT.to_be_bytes());
    hdr[4..].copy_from_slice(&packet_id.to_be_bytes());
    push_attr(out, NFQA_VERDICT_HDR, &hdr);
}

/// The packet id from an `NFQNL_MSG_PACKET` payload (after the nlmsghdr), if the
/// message carries a well-formed `NFQA_PACKET_HDR`.
fn packet_id(payload: &[u8]) -> Option<u32> {
    let mut attrs = payload.get(NFGENMSG_LEN..)?;
    while attrs.len() >= 4 {
        let len = usize::from(read_u16_ne(attrs, 0));
        let ty = read_u16_ne(attrs, 2) & NLA_TYPE_MASK;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if ty == NFQA_PACKET_HDR {
            // struct nfqnl_msg_packet_hdr { be32 packet_id; be16 hw_protocol; u8 hook; }
            let id = attrs.get(4..8)?;
            return Some(u32::from_be_bytes([id[0], id[1], id[2], id[3]]));
        }
        attrs = attrs.get(align4(len).min(attrs.len())..)?;
    }
    None
}

/// A small xorshift64* generator for jitter (no cryptographic use).
struct XorShift(u64);

impl XorShift {
    fn seeded() -> XorShift {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut s = t ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15;
        if s == 0 {
            s = 1;
        }
        XorShift(s)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet_msg(id: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let mut hdr = Vec::new();
        hdr.extend_from_slice(&id.to_be_bytes());
        hdr.extend_from_slice(&0x0800u16.to_be_bytes());
        hdr.push(2);
        let payload = align4(4 + hdr.len()) + 8;
        push_header(&mut out, NFQNL_MSG_PACKET, 0, 0, 3, payload);
        push_attr(&mut out, 11, &[0, 0, 0, 5]); // some other attribute first
        push_attr(&mut out, NFQA_PACKET_HDR, &hdr);
        out
    }

    #[test]
    fn parses_packet_id_after_other_attributes() {
        let msg = packet_msg(0xdead_beef);
        assert_eq!(read_u32_ne(&msg, 0) as usize, msg.len());
        assert_eq!(packet_id(&msg[NLMSG_HDRLEN..]), Some(0xdead_beef));
    }

    #[test]
    fn malformed_input_is_rejected_without_panicking() {
        let msg = packet_msg(7);
        for cut in 0..msg.len() {
            let _ = packet_id(msg.get(NLMSG_HDRLEN.min(cut)..cut).unwrap_or(&[]));
        }
        // Attribute length pointing past the end, and zero length.
        let mut bad = vec![0u8; 4];
        bad.extend_from_slice(&200u16.to_ne_bytes());
        bad.extend_from_slice(&NFQA_PACKET_HDR.to_ne_bytes());
        assert_eq!(packet_id(&bad), None);
        let mut zero = vec![0u8; 4];
        zero.extend_from_slice(&[0, 0, 1, 0, 1, 2, 3, 4]);
        assert_eq!(packet_id(&zero), None);
        // Arbitrary bytes through the whole datagram path.
        let ctx = LoopCtx {
            netns: "x".into(),
            queue_num: 3,
            config: DelayConfig::fixed(Duration::from_millis(1)),
            wake: Arc::new(eventfd().expect("eventfd")),
            counters: Arc::new(Counters::default()),
        };
        let mut state = State::new();
        let mut rng = XorShift::seeded();
        for _ in 0..2000 {
            let n = (rng.next() % 96) as usize;
            let mut junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            if junk.len() >= 4 && rng.next().is_multiple_of(2) {
                let len = junk.len() as u32;
                junk[..4].copy_from_slice(&len.to_ne_bytes());
            }
            ctx.handle_datagram(&junk, Instant::now(), &mut state);
        }
        let mut two = packet_msg(1);
        two.extend_from_slice(&packet_msg(2));
        let before = state.held.len();
        ctx.handle_datagram(&two, Instant::now(), &mut state);
        assert_eq!(state.held.len(), before + 2);
    }

    #[test]
    fn verdict_message_layout() {
        let mut out = Vec::new();
        push_verdict(&mut out, 0x0102, 42);
        assert_eq!(out.len(), VERDICT_MSG_LEN);
        assert_eq!(read_u32_ne(&out, 0) as usize, VERDICT_MSG_LEN);
        assert_eq!(read_u16_ne(&out, 4), (3 << 8) | 1);
        assert_eq!(&out[18..20], &[0x01, 0x02]);
        assert_eq!(&out[24..28], &1u32.to_be_bytes());
        assert_eq!(&out[28..32], &42u32.to_be_bytes());
    }

    #[test]
    fn fixed_delay_keeps_arrival_order() {
        let mut heap = BinaryHeap::new();
        let t = Instant::now();
        for (seq, id) in [(1u64, 10u32), (2, 11), (3, 12)] {
            heap.push(Reverse(Held {
                release_at: t,
                seq,
                packet_id: id,
            }));
        }
        let order: Vec<u32> =
            std::iter::from_fn(|| heap.pop().map(|Reverse(h)| h.packet_id)).collect();
        assert_eq!(order, vec![10, 11, 12]);
    }
}
