//! [`SimIo`]: the simulated network as the path layer's datagram I/O, on
//! tokio's clock (pause it with `tokio::time::pause` for simulated time).

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use super::net::SimNet;
use crate::socket::{DatagramIo, LocalAddrs, RecvMeta, Transmit, WritableFuture};

/// A simulated network shared by several [`SimIo`]s.
pub type SharedNet = Arc<Mutex<SimNet>>;

/// One host's sockets (one address per family) on a [`SimNet`].
#[derive(Debug)]
pub struct SimIo {
    net: SharedNet,
    addrs: LocalAddrs,
    sleep: Mutex<Option<Pin<Box<tokio::time::Sleep>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl SimIo {
    /// Binds `addrs` (at most one per family) on the network.
    pub fn new(net: &SharedNet, addrs: &[SocketAddr]) -> Arc<SimIo> {
        let mut local = LocalAddrs::default();
        {
            let mut n = lock(net);
            for &a in addrs {
                n.bind(a);
                if a.is_ipv6() {
                    local.v6 = Some(a);
                } else {
                    local.v4 = Some(a);
                }
            }
        }
        Arc::new(SimIo {
            net: net.clone(),
            addrs: local,
            sleep: Mutex::new(None),
        })
    }

    /// The network.
    pub fn net(&self) -> &SharedNet {
        &self.net
    }
}

impl DatagramIo for SimIo {
    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            let next = {
                let mut net = lock(&self.net);
                net.advance(now());
                let mut n = 0;
                for (buf, m) in bufs.iter_mut().zip(meta.iter_mut()) {
                    let d = [self.addrs.v4, self.addrs.v6]
                        .into_iter()
                        .flatten()
                        .find_map(|a| net.recv(a));
                    let Some(d) = d else { break };
                    let len = d.bytes.len().min(buf.len());
                    if let (Some(dst), Some(src)) = (buf.get_mut(..len), d.bytes.get(..len)) {
                        dst.copy_from_slice(src);
                    }
                    *m = RecvMeta {
                        addr: d.from,
                        len,
                        stride: len,
                        dst_ip: Some(d.to.ip()),
                        ..RecvMeta::default()
                    };
                    n += 1;
                }
                if n > 0 {
                    return Poll::Ready(Ok(n));
                }
                net.register_waker(cx.waker());
                net.next_arrival()
            };
            let Some(at) = next else {
                return Poll::Pending;
            };
            let mut sleep = lock(&self.sleep);
            let s = sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at.into())));
            s.as_mut().reset(at.into());
            if s.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        let from = if transmit.destination.is_ipv6() {
            self.addrs.v6
        } else {
            self.addrs.v4
        };
        let Some(from) = from else {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "this simulated host has no address of that family",
            ));
        };
        let size = transmit
            .segment_size
            .unwrap_or(transmit.contents.len())
            .max(1);
        let now = now();
        let mut net = lock(&self.net);
        for segment in transmit.contents.chunks(size) {
            net.send(now, from, transmit.destination, segment.to_vec());
        }
        Ok(())
    }

    fn writable(self: Arc<Self>) -> WritableFuture {
        Box::pin(async { Ok(()) })
    }

    fn local_addrs(&self) -> LocalAddrs {
        self.addrs
    }

    fn may_fragment(&self) -> bool {
        false
    }
}
