//! NAT64 with tayga on a site router: the router's hosts reach IPv4 through
//! `2001:db8:46::/96`, and the translated IPv4 is then masqueraded out of `wan`. A DNS64
//! responder on the router's LAN address ([`crate::dns64`]) synthesizes AAAA records.

use std::time::{Duration, Instant};

use crate::Error;
use crate::lab::{Lab, NAT64_PREFIX};

/// How long tayga may take to attach to its tun device.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts tayga on `router` (site number `index`) and routes the NAT64 prefix to it.
pub(crate) fn start(lab: &mut Lab, router: &str, index: u8) -> Result<(), Error> {
    let ns = lab.node(router)?.ns.clone();
    let dir = lab.workdir().join(format!("tayga-{index}"));
    std::fs::create_dir_all(&dir).map_err(|e| io_err(router, &e))?;
    let conf = dir.join("tayga.conf");
    let text = format!(
        "tun-device nat64\nipv4-addr 192.168.255.1\nprefix {NAT64_PREFIX}/96\n\
         dynamic-pool 192.168.255.0/24\ndata-dir {}\n",
        dir.display()
    );
    std::fs::write(&conf, text).map_err(|e| io_err(router, &e))?;
    let conf = conf.to_string_lossy().into_owned();
    ns.exec("tayga", ["-c", &conf, "--mktun"])?;
    ns.ip_batch(&[
        "link set nat64 up".into(),
        "route add 192.168.255.0/24 dev nat64".into(),
        format!("route add {NAT64_PREFIX}/96 dev nat64"),
    ])?;
    lab.spawn(router, "tayga", &["-c", &conf, "--nodetach"])?;
    let pid = lab.children.last().map(|(_, c)| c.id()).unwrap_or(0);
    wait_attached(pid, router)?;
    crate::dns64::start(lab, router, index)
}

/// Waits until process `pid` holds the tun device open (its fdinfo names `nat64`).
fn wait_attached(pid: u32, router: &str) -> Result<(), Error> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let fd_dir = format!("/proc/{pid}/fdinfo");
    while Instant::now() < deadline {
        if let Ok(dir) = std::fs::read_dir(&fd_dir) {
            for entry in dir.flatten() {
                if std::fs::read_to_string(entry.path()).is_ok_and(|t| t.contains("iff:\tnat64")) {
                    return Ok(());
                }
            }
        } else {
            return Err(Error::Netns {
                name: router.to_owned(),
                reason: "tayga exited during start-up (run it by hand with -d to see why)".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(Error::Timeout {
        what: format!("tayga attaching to its tun device on {router}"),
        after: READY_TIMEOUT,
    })
}

fn io_err(router: &str, e: &std::io::Error) -> Error {
    Error::Netns {
        name: router.to_owned(),
        reason: format!("tayga set-up: {e}"),
    }
}
