//! Many datagrams from one socket in one system call: `sendmmsg(2)`, with each
//! run of equal-size datagrams to one destination as a single GSO message
//! (`UDP_SEGMENT`), gathered from where the payloads lie (no copy).
//!
//! `quinn-udp` sends one destination per call; a relay's listening socket
//! answers many clients at once, and a relayed socket sends a burst of its
//! client's data to one peer, so both are batched here.

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use socket2::SockAddr;

/// Messages per `sendmmsg` call (the kernel's UIO_MAXIOV is far above).
const MESSAGES: usize = 32;
/// Payload slices per call, over all its messages.
const SLICES: usize = 128;
/// Largest GSO message (one UDP datagram of at most 64 KiB).
const GSO_MAX_BYTES: usize = 60 * 1024;
/// Room for one `UDP_SEGMENT` control message (CMSG_SPACE of a u16, aligned).
const CONTROL: usize = 24;

/// One datagram to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outgoing<'a> {
    /// Where to.
    pub destination: SocketAddr,
    /// The datagram.
    pub payload: &'a [u8],
}

/// What a [`send`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sent {
    /// Datagrams the kernel accepted.
    pub datagrams: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Datagrams dropped because a send failed (full buffer, ICMP error, …).
    pub errors: u64,
    /// A GSO message was refused as such (the datagrams were then sent one by
    /// one): the caller should stop using GSO on this socket.
    pub gso_refused: bool,
}

/// One message being planned: a run of `count` datagrams from `first`.
#[derive(Debug, Clone, Copy)]
struct Planned {
    first: usize,
    count: usize,
}

/// Sends `datagrams` from `socket`, in order per destination. Runs of
/// consecutive equal-size datagrams to one destination become one GSO message of
/// up to `max_segments` (1 disables GSO). Never blocks: datagrams the kernel
/// refuses are dropped and counted, as UDP would.
pub(crate) fn send(
    socket: BorrowedFd<'_>,
    datagrams: &[Outgoing<'_>],
    max_segments: usize,
) -> Sent {
    if let [only] = datagrams {
        // The common case with many allocations (one datagram per relayed
        // socket per batch): `sendto` skips building the message arrays here
        // and copying the header and iovec in the kernel.
        return send_one(socket, only);
    }
    let mut sent = Sent::default();
    // At most MESSAGES messages per call, planned on the stack.
    let mut planned = [Planned { first: 0, count: 0 }; MESSAGES];
    let mut at = 0;
    let mut max_segments = max_segments.max(1);
    while at < datagrams.len() {
        let mut len = 0;
        let mut slices = 0;
        let mut next = at;
        while let Some(first) = datagrams.get(next) {
            if len == MESSAGES || slices == SLICES {
                break;
            }
            let size = first.payload.len();
            let limit = max_segments
                .min(GSO_MAX_BYTES / size.max(1))
                .min(SLICES - slices)
                .max(1);
            let count = datagrams
                .get(next..)
                .unwrap_or_default()
                .iter()
                .take(limit)
                .take_while(|d| d.destination == first.destination && d.payload.len() == size)
                .count()
                .max(1);
            if let Some(p) = planned.get_mut(len) {
                *p = Planned { first: next, count };
            }
            len += 1;
            slices += count;
            next += count;
        }
        let plan = planned.get(..len).unwrap_or_default();
        let mut done = 0;
        while done < plan.len() {
            let rest = plan.get(done..).unwrap_or_default();
            match send_planned(socket, datagrams, rest) {
                Ok(0) => break,
                Ok(messages) => {
                    for p in rest.iter().take(messages) {
                        count_sent(&mut sent, datagrams, p);
                    }
                    done += messages;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // The first message failed; the others may still go.
                    let Some(&failed) = rest.first() else { break };
                    let gso_error = matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL));
                    if failed.count > 1 && gso_error {
                        // Some devices cannot segment (no checksum offload):
                        // send this run one by one and tell the caller.
                        sent.gso_refused = true;
                        max_segments = 1;
                        for i in failed.first..failed.first + failed.count {
                            let single = [Planned { first: i, count: 1 }];
                            match send_planned(socket, datagrams, &single) {
                                Ok(1) => count_sent(&mut sent, datagrams, &single[0]),
                                _ => sent.errors += 1,
                            }
                        }
                    } else {
                        sent.errors += failed.count as u64;
                        tracing::trace!(to = %datagrams.get(failed.first).map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |d| d.destination), error = %e, "send failed");
                    }
                    done += 1;
                }
            }
        }
        at = next;
    }
    sent
}

/// One datagram with `sendto(2)`.
fn send_one(socket: BorrowedFd<'_>, datagram: &Outgoing<'_>) -> Sent {
    let name = SockAddr::from(datagram.destination);
    loop {
        // SAFETY: the payload and the address are valid for the lengths given
        // and outlive the call; the kernel only reads them.
        let result = unsafe {
            libc::sendto(
                socket.as_raw_fd(),
                datagram.payload.as_ptr().cast(),
                datagram.payload.len(),
                libc::MSG_DONTWAIT,
                name.as_ptr().cast(),
                name.len(),
            )
        };
        if result >= 0 {
            return Sent {
                datagrams: 1,
                bytes: datagram.payload.len() as u64,
                ..Sent::default()
            };
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            tracing::trace!(to = %datagram.destination, error = %e, "send failed");
            return Sent {
                errors: 1,
                ..Sent::default()
            };
        }
    }
}

fn count_sent(sent: &mut Sent, datagrams: &[Outgoing<'_>], planned: &Planned) {
    let run = datagrams
        .get(planned.first..planned.first + planned.count)
        .unwrap_or_default();
    sent.datagrams += run.len() as u64;
    sent.bytes += run.iter().map(|d| d.payload.len() as u64).sum::<u64>();
}

/// One `sendmmsg` call for `plan` (at most [`MESSAGES`] messages and
/// [`SLICES`] slices, as [`send`] plans them). Returns how many messages the
/// kernel accepted.
fn send_planned(
    socket: BorrowedFd<'_>,
    datagrams: &[Outgoing<'_>],
    plan: &[Planned],
) -> io::Result<usize> {
    let plan = plan.get(..plan.len().min(MESSAGES)).unwrap_or_default();
    let mut names: [MaybeUninit<SockAddr>; MESSAGES] = [const { MaybeUninit::uninit() }; MESSAGES];
    // SAFETY: iovec and mmsghdr are plain C structs for which all-zero bytes
    // are valid (null pointers, zero lengths).
    let mut slices: [libc::iovec; SLICES] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut headers: [libc::mmsghdr; MESSAGES] = unsafe { std::mem::zeroed() };
    let mut control = [[0u64; CONTROL / 8]; MESSAGES];
    let mut slice = 0;
    for (i, p) in plan.iter().enumerate() {
        let run = datagrams
            .get(p.first..p.first + p.count)
            .unwrap_or_default();
        let (Some(first), Some(name_slot), Some(header), Some(control)) = (
            run.first(),
            names.get_mut(i),
            headers.get_mut(i),
            control.get_mut(i),
        ) else {
            return Ok(0);
        };
        let Some(iov) = slices.get_mut(slice..slice + run.len()) else {
            return Ok(0);
        };
        for (iov, d) in iov.iter_mut().zip(run) {
            // sendmmsg only reads through iov_base; the cast to *mut is the C API's.
            iov.iov_base = d.payload.as_ptr().cast_mut().cast();
            iov.iov_len = d.payload.len();
        }
        let name = name_slot.write(SockAddr::from(first.destination));
        let hdr = &mut header.msg_hdr;
        hdr.msg_name = name.as_ptr().cast_mut().cast();
        hdr.msg_namelen = name.len();
        hdr.msg_iov = iov.as_mut_ptr();
        hdr.msg_iovlen = run.len();
        if run.len() > 1 {
            let Ok(segment) = u16::try_from(first.payload.len()) else {
                return Ok(0);
            };
            write_segment_size(hdr, control, segment);
        }
        slice += run.len();
    }
    let count = u32::try_from(plan.len()).unwrap_or(0);
    // SAFETY: `headers[..count]` are initialised above and point into `names`,
    // `slices`, `control` and the payloads, all of which outlive the call; the
    // kernel only reads them (and writes `msg_len`, which we own).
    let result = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr(),
            count,
            libc::MSG_DONTWAIT,
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(result).unwrap_or(0))
}

/// Adds a `UDP_SEGMENT` control message (GSO segment size) to `hdr`, in `buffer`.
fn write_segment_size(hdr: &mut libc::msghdr, buffer: &mut [u64; CONTROL / 8], segment: u16) {
    // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic.
    let (space, len) = unsafe {
        (
            libc::CMSG_SPACE(size_of::<u16>() as u32) as usize,
            libc::CMSG_LEN(size_of::<u16>() as u32) as usize,
        )
    };
    if space > size_of_val(buffer) {
        return;
    }
    hdr.msg_control = buffer.as_mut_ptr().cast();
    hdr.msg_controllen = space;
    // SAFETY: msg_control points at `space` bytes (u64-aligned, as cmsghdr
    // needs), so CMSG_FIRSTHDR is non-null and the header and its u16 payload
    // fit; the writes stay inside `buffer`.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(hdr);
        if cmsg.is_null() {
            return;
        }
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = libc::UDP_SEGMENT;
        (*cmsg).cmsg_len = len;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), segment);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsFd;
    use std::time::Duration;

    fn receive_all(socket: &UdpSocket, expected: usize) -> Vec<Vec<u8>> {
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buf = [0u8; 2048];
        (0..expected)
            .map_while(|_| socket.recv(&mut buf).ok().map(|n| buf[..n].to_vec()))
            .collect()
    }

    #[test]
    fn sends_runs_as_gso_and_other_destinations_in_the_same_call() {
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (to_a, to_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let payloads: Vec<Vec<u8>> = (0u8..70).map(|i| vec![i; 100]).collect();
        let mut datagrams: Vec<Outgoing<'_>> = payloads
            .iter()
            .map(|p| Outgoing {
                destination: to_a,
                payload: p,
            })
            .collect();
        // A different size ends a run; another destination is its own message.
        datagrams.push(Outgoing {
            destination: to_a,
            payload: b"short",
        });
        datagrams.push(Outgoing {
            destination: to_b,
            payload: b"to b",
        });
        for segments in [1, 64] {
            let sent = send(sender.as_fd(), &datagrams, segments);
            assert_eq!(sent.datagrams, 72, "GSO segments {segments}");
            assert_eq!(sent.bytes, 7000 + 5 + 4);
            assert_eq!(sent.errors, 0);
            let got = receive_all(&a, 71);
            assert_eq!(got.len(), 71);
            assert!(
                got.iter()
                    .take(70)
                    .enumerate()
                    .all(|(i, d)| d == &vec![i as u8; 100])
            );
            assert_eq!(got[70], b"short");
            assert_eq!(receive_all(&b, 1), vec![b"to b".to_vec()]);
        }
    }

    #[test]
    fn a_failed_destination_is_counted_and_the_rest_still_go() {
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to_a = a.local_addr().unwrap();
        // IPv6 destination from an IPv4 socket: EAFNOSUPPORT / EINVAL for that message.
        let bad: SocketAddr = "[::1]:9".parse().unwrap();
        let datagrams = [
            Outgoing {
                destination: bad,
                payload: b"x",
            },
            Outgoing {
                destination: to_a,
                payload: b"y",
            },
        ];
        let sent = send(sender.as_fd(), &datagrams, 1);
        assert_eq!((sent.datagrams, sent.errors), (1, 1));
        assert_eq!(receive_all(&a, 1), vec![b"y".to_vec()]);
        // One datagram alone takes the `sendto` path: same outcomes.
        let sent = send(sender.as_fd(), &datagrams[..1], 8);
        assert_eq!((sent.datagrams, sent.bytes, sent.errors), (0, 0, 1));
        let sent = send(sender.as_fd(), &datagrams[1..], 8);
        assert_eq!((sent.datagrams, sent.bytes, sent.errors), (1, 1, 0));
        assert_eq!(receive_all(&a, 1), vec![b"y".to_vec()]);
        assert_eq!(send(sender.as_fd(), &[], 8), Sent::default());
    }
}
