//! One network namespace: create, run commands and code inside it, delete.
//!
//! Commands run through `ip netns exec`, always with a deadline. Rust code runs on a
//! short-lived thread that has joined the namespace with `setns(2)`; a socket opened
//! there stays in the namespace for its whole life, whichever thread uses it later.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::Error;

/// How long one setup command may take before the lab gives up on it.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// A named network namespace (`/run/netns/<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace with loopback up.
    pub fn create(name: &str) -> Result<Netns, Error> {
        run_checked(Command::new("ip").args(["netns", "add", name]))?;
        let ns = Netns {
            name: name.to_owned(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Refers to an existing namespace by name without creating it.
    pub fn existing(name: &str) -> Netns {
        Netns {
            name: name.to_owned(),
        }
    }

    /// The namespace's name as `ip netns list` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's file, for `setns(2)`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs `ip -n <ns> ARGS…`.
    pub fn ip(&self, args: &[&str]) -> Result<Output, Error> {
        run_checked(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// Runs several `ip` commands (one per line, without the leading `ip`) in one
    /// process: `ip -n <ns> -batch -`.
    pub fn ip_batch(&self, lines: &[String]) -> Result<(), Error> {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &self.name, "-batch", "-"]);
        run_with_stdin(&mut cmd, lines.join("\n").as_bytes()).map(|_| ())
    }

    /// Runs a program inside the namespace and waits for it (bounded by
    /// [`COMMAND_TIMEOUT`]); fails if it exits non-zero.
    pub fn exec<I, S>(&self, program: &str, args: I) -> Result<Output, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_checked(&mut self.command(program, args))
    }

    /// Like [`Netns::exec`] but returns the output whatever the exit status.
    pub fn exec_unchecked<I, S>(&self, program: &str, args: I) -> Result<Output, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_with_timeout(&mut self.command(program, args), COMMAND_TIMEOUT)
    }

    /// Feeds `script` to `nft -f -` inside the namespace.
    pub fn nft(&self, script: &str) -> Result<(), Error> {
        let mut cmd = self.command("nft", ["-f", "-"]);
        run_with_stdin(&mut cmd, script.as_bytes()).map(|_| ())
    }

    /// Sets sysctls (`key=value`) inside the namespace.
    pub fn sysctl(&self, settings: &[&str]) -> Result<(), Error> {
        let mut args = vec!["-q", "-w"];
        args.extend_from_slice(settings);
        self.exec("sysctl", args).map(|_| ())
    }

    /// A `Command` that runs `program` inside the namespace; the caller spawns it.
    /// The child gets SIGKILL if the thread that spawns it dies, so a crashed lab
    /// leaves no daemons behind.
    pub fn command<I, S>(&self, program: &str, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]).args(args);
        kill_with_parent(&mut cmd);
        cmd
    }

    /// Starts a long-running program inside the namespace (a daemon in the
    /// foreground); the lab kills it on teardown.
    pub fn spawn<I, S>(&self, program: &str, args: I) -> Result<Child, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(program, args);
        cmd.stdin(Stdio::null());
        cmd.spawn().map_err(|e| Error::Spawn {
            program: program.to_owned(),
            source: e,
        })
    }

    /// Runs `f` on a thread that has joined this namespace and returns its result.
    /// Sockets created by `f` belong to the namespace.
    pub fn run<F, R>(&self, f: F) -> Result<R, Error>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let file = File::open(self.path()).map_err(|e| Error::Netns {
            name: self.name.clone(),
            reason: format!("cannot open {}: {e}", self.path().display()),
        })?;
        let name = self.name.clone();
        let handle = std::thread::Builder::new()
            .name(format!("netns-{name}"))
            .spawn(move || -> Result<R, Error> {
                enter(&file, &name)?;
                Ok(f())
            })
            .map_err(|e| Error::Netns {
                name: self.name.clone(),
                reason: e.to_string(),
            })?;
        handle.join().map_err(|_| Error::Netns {
            name: self.name.clone(),
            reason: "code panicked".into(),
        })?
    }

    /// Gives programs run with [`Netns::command`] (`ip netns exec`) `nameserver`
    /// as their resolver: `ip netns exec` mounts `/etc/netns/<name>/resolv.conf`
    /// over `/etc/resolv.conf`. Removed by [`Netns::delete`].
    pub fn set_resolver(&self, nameserver: std::net::IpAddr) -> Result<(), Error> {
        let dir = self.etc_dir();
        std::fs::create_dir_all(&dir)
            .and_then(|()| {
                std::fs::write(
                    dir.join("resolv.conf"),
                    format!("nameserver {nameserver}\n"),
                )
            })
            .map_err(|e| Error::Netns {
                name: self.name.clone(),
                reason: format!("cannot write {}/resolv.conf: {e}", dir.display()),
            })
    }

    /// The per-namespace configuration directory `ip netns exec` reads.
    fn etc_dir(&self) -> PathBuf {
        PathBuf::from("/etc/netns").join(&self.name)
    }

    /// Kills every process still inside the namespace, then deletes it.
    /// Errors are logged, not returned: teardown must go on.
    pub fn delete(&self) {
        if let Ok(out) = run_with_timeout(
            Command::new("ip").args(["netns", "pids", &self.name]),
            COMMAND_TIMEOUT,
        ) {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    // SAFETY: kill(2) with a pid read from the kernel; no memory is touched.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        if let Err(e) = run_checked(Command::new("ip").args(["netns", "del", &self.name])) {
            tracing::warn!(netns = %self.name, error = %e, "could not delete namespace");
        }
        let etc = self.etc_dir();
        if etc.exists()
            && let Err(e) = std::fs::remove_dir_all(&etc)
        {
            tracing::warn!(netns = %self.name, error = %e, "could not remove {}", etc.display());
        }
    }
}

/// Joins the calling thread to the namespace in `file`.
pub(crate) fn enter(file: &File, name: &str) -> Result<(), Error> {
    // SAFETY: setns(2) on an open namespace file descriptor; affects only this thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(Error::Netns {
            name: name.to_owned(),
            reason: format!("setns failed: {}", std::io::Error::last_os_error()),
        });
    }
    Ok(())
}

/// Lists the names of all network namespaces.
pub fn list() -> Vec<String> {
    match std::fs::read_dir("/run/netns") {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn kill_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and allowed between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs a command to completion within `timeout`, capturing its output.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output, Error> {
    let (child, what) = spawn_captured(cmd, Stdio::null())?;
    wait_output(child, &what, timeout)
}

/// Spawns `cmd` with `stdin` and its stdout and stderr captured; returns the child
/// and the command line (for errors).
fn spawn_captured(cmd: &mut Command, stdin: Stdio) -> Result<(Child, String), Error> {
    let what = describe(cmd);
    let child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Spawn {
            program: what.clone(),
            source: e,
        })?;
    Ok((child, what))
}

fn wait_output(child: Child, what: &str, timeout: Duration) -> Result<Output, Error> {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(Error::Spawn {
            program: what.to_owned(),
            source: e,
        }),
        Err(_) => {
            // SAFETY: kill(2) on our own child's pid; the waiting thread reaps it.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            Err(Error::Timeout {
                what: what.to_owned(),
                after: timeout,
            })
        }
    }
}

fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Result<Output, Error> {
    use std::io::Write;
    let (mut child, what) = spawn_captured(cmd, Stdio::piped())?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).map_err(|e| Error::Spawn {
            program: what.clone(),
            source: e,
        })?;
    }
    let out = wait_output(child, &what, COMMAND_TIMEOUT)?;
    check(out, &what, Some(input))
}

/// Runs a command within [`COMMAND_TIMEOUT`] and fails unless it exits 0.
pub fn run_checked(cmd: &mut Command) -> Result<Output, Error> {
    let what = describe(cmd);
    let out = run_with_timeout(cmd, COMMAND_TIMEOUT)?;
    check(out, &what, None)
}

fn check(out: Output, what: &str, input: Option<&[u8]>) -> Result<Output, Error> {
    if out.status.success() {
        return Ok(out);
    }
    let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if let Some(input) = input {
        stderr.push_str("\n--- input ---\n");
        stderr.push_str(&String::from_utf8_lossy(input));
    }
    Err(Error::Command {
        command: what.to_owned(),
        status: out.status.to_string(),
        stderr,
    })
}
