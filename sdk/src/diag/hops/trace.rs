//! The Linux driver of the path trace: TTL-limited sends on an existing UDP socket,
//! ICMP Time Exceeded read from its error queue (`IP_RECVERR` / `IPV6_RECVERR` and
//! `recvmsg(MSG_ERRQUEUE)`, no privileges needed), the router's address taken from
//! `SO_EE_OFFENDER`. The socket's TTL and error reporting are restored afterwards.

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use libc::c_int;

use super::{PathTrace, TraceConfig, Tracer};

/// Why the path could not be traced.
#[derive(Debug, thiserror::Error)]
#[error("{what} failed: {source}")]
pub(crate) struct TraceError {
    what: &'static str,
    source: io::Error,
}

fn err(what: &'static str) -> impl FnOnce(io::Error) -> TraceError {
    move |source| TraceError { what, source }
}

fn setsockopt_int(fd: c_int, level: c_int, name: c_int, value: c_int) -> io::Result<()> {
    // SAFETY: `fd` is an open socket borrowed for the whole trace; the option value is
    // a c_int living on this stack frame, passed with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const c_int).cast(),
            size_of::<c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Traces the path from `socket` to `server` (see the parent module), waiting `wait`
/// for each probe's answer, until done or `cancelled()`.
pub(crate) fn trace(
    socket: BorrowedFd<'_>,
    server: SocketAddr,
    cfg: TraceConfig,
    wait: Duration,
    seed: u64,
    cancelled: &dyn Fn() -> bool,
) -> Result<PathTrace, TraceError> {
    let fd = socket.as_raw_fd();
    let (level, recverr, ttl_opt) = if server.is_ipv6() {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_RECVERR,
            libc::IPV6_UNICAST_HOPS,
        )
    } else {
        (libc::IPPROTO_IP, libc::IP_RECVERR, libc::IP_TTL)
    };
    setsockopt_int(fd, level, recverr, 1).map_err(err("enabling IP_RECVERR"))?;
    let mut tracer = Tracer::new(cfg, server, seed);
    let result = run(fd, &mut tracer, server, (level, ttl_opt), wait, cancelled);
    // -1 restores the route's default TTL / hop limit.
    let _ = setsockopt_int(fd, level, ttl_opt, -1);
    let _ = setsockopt_int(fd, level, recverr, 0);
    result.map(|()| tracer.into_path())
}

fn run(
    fd: c_int,
    tracer: &mut Tracer,
    server: SocketAddr,
    (level, ttl_opt): (c_int, c_int),
    wait: Duration,
    cancelled: &dyn Fn() -> bool,
) -> Result<(), TraceError> {
    let dest = socket2::SockAddr::from(server);
    while let Some((ttl, payload)) = tracer.next_probe() {
        if cancelled() {
            break;
        }
        setsockopt_int(fd, level, ttl_opt, c_int::from(ttl)).map_err(err("setting the TTL"))?;
        if send(fd, &payload, &dest).is_err() {
            // A pending ICMP error is reported by the next send; read it and retry.
            drain(fd, tracer, server);
            send(fd, &payload, &dest).map_err(err("sending a TTL-limited probe"))?;
        }
        let settled = tracer.settled();
        let deadline = Instant::now() + wait;
        loop {
            drain(fd, tracer, server);
            if tracer.is_done() || tracer.settled() != settled {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracer.on_timeout();
                break;
            }
            poll(fd, left.min(Duration::from_millis(100)));
        }
    }
    Ok(())
}

fn send(fd: c_int, payload: &[u8], dest: &socket2::SockAddr) -> io::Result<usize> {
    // SAFETY: the buffer and the address are valid for the call's duration.
    let n = unsafe {
        libc::sendto(
            fd,
            payload.as_ptr().cast(),
            payload.len(),
            0,
            dest.as_ptr().cast(),
            dest.len(),
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Waits until the socket has a datagram or an error queued, or `timeout`.
fn poll(fd: c_int, timeout: Duration) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = c_int::try_from(timeout.as_millis())
        .unwrap_or(c_int::MAX)
        .max(1);
    // SAFETY: one valid pollfd for the call's duration. POLLERR is always reported.
    unsafe { libc::poll(&mut p, 1, ms) };
}

/// Feeds everything queued (errors first, then datagrams) to the tracer.
fn drain(fd: c_int, tracer: &mut Tracer, server: SocketAddr) {
    for errqueue in [true, false] {
        // Bounded: a pending socket error is reported once, then the queue drains.
        for _ in 0..64 {
            match recv(fd, errqueue) {
                Ok(Some(r)) => handle(tracer, server, r),
                Ok(None) => break,
                Err(_) if !errqueue => continue,
                Err(_) => break,
            }
        }
    }
}

fn handle(tracer: &mut Tracer, server: SocketAddr, r: Received) {
    match r.icmp {
        None => {
            if let Some(from) = r.from {
                tracer.on_datagram(from, &r.data);
            }
        }
        Some(icmp) => {
            let v4 = icmp.origin == libc::SO_EE_ORIGIN_ICMP;
            let v6 = icmp.origin == libc::SO_EE_ORIGIN_ICMP6;
            let time_exceeded = (v4 && icmp.kind == 11) || (v6 && icmp.kind == 3);
            let unreachable = (v4 && icmp.kind == 3) || (v6 && icmp.kind == 1);
            match icmp.offender {
                Some(o) if time_exceeded => tracer.on_time_exceeded(o, &r.data),
                Some(o) if unreachable && o == server.ip() => tracer.on_destination_error(&r.data),
                _ => {}
            }
        }
    }
}

#[derive(Debug)]
struct Icmp {
    origin: u8,
    kind: u8,
    offender: Option<IpAddr>,
}

#[derive(Debug)]
struct Received {
    from: Option<SocketAddr>,
    data: Vec<u8>,
    icmp: Option<Icmp>,
}

/// One `recvmsg` without blocking; `None` when nothing is queued.
fn recv(fd: c_int, errqueue: bool) -> io::Result<Option<Received>> {
    let mut buf = [0u8; 2048];
    // SAFETY: sockaddr_storage and msghdr are plain C structs for which all-zero is valid.
    let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut control = [0u64; 64];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let flags = libc::MSG_DONTWAIT | if errqueue { libc::MSG_ERRQUEUE } else { 0 };
    // SAFETY: msg points at buffers that outlive the call, with their true sizes.
    let n = unsafe { libc::recvmsg(fd, &mut msg, flags) };
    let Ok(n) = usize::try_from(n) else {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(e)
        };
    };
    let data = buf.get(..n).unwrap_or_default().to_vec();
    let from = sockaddr(
        (&name as *const libc::sockaddr_storage).cast(),
        msg.msg_namelen as usize,
    );
    let mut icmp = None;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled, bounded by
    // msg_controllen; each header is checked for its type and length before its data
    // is read (unaligned reads: the buffer gives no alignment guarantee to the data).
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let h = std::ptr::read_unaligned(c);
            let ours = (h.cmsg_level == libc::IPPROTO_IP && h.cmsg_type == libc::IP_RECVERR)
                || (h.cmsg_level == libc::IPPROTO_IPV6 && h.cmsg_type == libc::IPV6_RECVERR);
            let data = libc::CMSG_DATA(c);
            let header = data as usize - c as usize;
            let len = (h.cmsg_len as usize).saturating_sub(header);
            let ee_len = size_of::<libc::sock_extended_err>();
            if ours && len >= ee_len {
                let ee: libc::sock_extended_err = std::ptr::read_unaligned(data.cast());
                icmp = Some(Icmp {
                    origin: ee.ee_origin,
                    kind: ee.ee_type,
                    offender: sockaddr(data.add(ee_len).cast(), len - ee_len).map(|a| a.ip()),
                });
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(Some(Received { from, data, icmp }))
}

/// Reads an IPv4 or IPv6 socket address of at most `len` bytes at `p`.
fn sockaddr(p: *const libc::sockaddr, len: usize) -> Option<SocketAddr> {
    if len < size_of::<libc::sa_family_t>() {
        return None;
    }
    // SAFETY: the caller guarantees `len` readable bytes at `p`; each struct is read
    // only when that many bytes are there.
    unsafe {
        let family = std::ptr::read_unaligned(p.cast::<libc::sa_family_t>());
        match c_int::from(family) {
            libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
                let a: libc::sockaddr_in = std::ptr::read_unaligned(p.cast());
                Some(SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))),
                    u16::from_be(a.sin_port),
                ))
            }
            libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
                let a: libc::sockaddr_in6 = std::ptr::read_unaligned(p.cast());
                Some(SocketAddr::new(
                    IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr)),
                    u16::from_be(a.sin6_port),
                ))
            }
            _ => None,
        }
    }
}
