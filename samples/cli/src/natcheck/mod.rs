//! `tsunagi natcheck`: what NAT sits between this machine and the internet, and what
//! it means for P2P games, in plain English or Japanese, or as versioned JSON.
//!
//! The measuring is `tsunagi::diag`; this module resolves the server, shows progress,
//! handles Ctrl-C, and renders the [`Report`](tsunagi::diag::Report).

use std::io::IsTerminal as _;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};

mod driver;
mod progress;
mod render;
mod render_en;
mod render_ja;
#[cfg(test)]
mod tests;
mod verdict;

pub use render::render;

/// The standard STUN port, used when `--server` has none.
const STUN_PORT: u16 = 3478;

/// Exit code when the server did not answer.
pub const EXIT_UNREACHABLE: u8 = 2;
/// Exit code when the user stopped the check (the partial report is still printed).
pub const EXIT_CANCELLED: u8 = 130;

/// The report's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// English.
    En,
    /// Japanese (日本語).
    Ja,
}

impl Lang {
    /// The language of the environment: Japanese when the first set of `LC_ALL`,
    /// `LC_MESSAGES`, `LANG` starts with `ja`, else English.
    pub fn from_env() -> Lang {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let locale = var("LC_ALL")
            .or_else(|| var("LC_MESSAGES"))
            .or_else(|| var("LANG"));
        Lang::from_locale(locale.as_deref())
    }

    /// The language for a locale name such as `ja_JP.UTF-8`.
    pub fn from_locale(locale: Option<&str>) -> Lang {
        match locale {
            Some(l) if l.to_ascii_lowercase().starts_with("ja") => Lang::Ja,
            _ => Lang::En,
        }
    }

    fn text(self) -> &'static dyn render::Text {
        match self {
            Lang::En => &render_en::English,
            Lang::Ja => &render_ja::Japanese,
        }
    }
}

/// Check your NAT: can this machine host a game, which players can it reach directly,
/// and what goes through the relay.
///
/// Needs a STUN server that supports RFC 5780 (two IP addresses), such as
/// tsunagi-relay started with --rfc5780-alt, or coturn with two addresses.
///
/// Example:
///
///   tsunagi natcheck --server stun.example.net:3478
///   tsunagi natcheck --server 198.18.0.10:3478 --json > report.json
///
/// Exit status: 0 when the check ran (whatever the NAT), 2 when the server did not
/// answer, 130 when stopped with Ctrl-C (the partial report is still printed), 1 for
/// other errors.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct NatcheckArgs {
    /// The STUN server, HOST:PORT (the port defaults to 3478). IPv6 literals in
    /// brackets: [2001:db8::1]:3478.
    #[arg(long, value_name = "HOST:PORT")]
    server: String,

    /// Print the report as JSON (schema version 1) instead of text.
    #[arg(long)]
    json: bool,

    /// Language of the text report [default: from LC_ALL / LANG; ja if it starts
    /// with "ja", else en].
    #[arg(long, value_enum)]
    lang: Option<Lang>,

    /// Skip the session-timer test (which takes up to a few minutes).
    #[arg(long)]
    quick: bool,

    /// The STUN server's IPv6 address for the IPv6 test, when --server has none
    /// (e.g. [2001:db8::10]:3478).
    #[arg(long, value_name = "[ADDR]:PORT")]
    server6: Option<SocketAddr>,

    /// DNS64 server for NAT64 discovery [default: the system's resolver].
    #[arg(long, value_name = "ADDR")]
    dns64: Option<IpAddr>,

    /// How long to wait for the server's first answer, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    timeout: f64,

    /// The longest idle time the session-timer test tries, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 180)]
    max_lifetime: u64,
}

/// The server to check, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// As the user wrote it.
    pub name: String,
    /// The address used for the NAT tests (IPv4 preferred: that is where NATs are).
    pub primary: SocketAddr,
    /// An IPv6 address of the server, for the IPv6 test.
    pub v6: Option<SocketAddr>,
}

/// Splits `HOST[:PORT]` and resolves it. IPv6 literals may be bare or in brackets.
pub fn resolve(server: &str) -> anyhow::Result<Target> {
    let server = server.trim();
    if server.is_empty() {
        bail!("--server is empty: give the STUN server as HOST:PORT, e.g. stun.example.net:3478");
    }
    let addresses: Vec<SocketAddr> = if let Ok(a) = server.parse::<SocketAddr>() {
        vec![a]
    } else if let Ok(ip) = server.trim_matches(['[', ']']).parse::<IpAddr>() {
        vec![SocketAddr::new(ip, STUN_PORT)]
    } else {
        let (host, port) = match server.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => {
                let port = p.parse::<u16>().ok().filter(|&p| p != 0).with_context(|| {
                    format!("{p:?} in --server {server} is not a port (1 to 65535)")
                })?;
                (h, port)
            }
            _ => (server, STUN_PORT),
        };
        (host, port)
            .to_socket_addrs()
            .with_context(|| {
                format!(
                    "cannot resolve {host}: check the name and your DNS, or give an IP \
                     address such as 198.18.0.10:{port}"
                )
            })?
            .collect()
    };
    let primary = addresses
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addresses.first())
        .copied()
        .with_context(|| format!("{server} resolved to no address"))?;
    let v6 = addresses.iter().find(|a| a.is_ipv6()).copied();
    Ok(Target {
        name: server.to_owned(),
        primary,
        v6,
    })
}

/// How the check is run, validated from the arguments.
#[derive(Debug, Clone)]
pub struct Options {
    /// Skip the lifetime test.
    pub quick: bool,
    /// First-answer timeout.
    pub timeout: Duration,
    /// Longest idle time tried.
    pub max_lifetime: Duration,
    /// DNS64 server.
    pub dns64: Option<IpAddr>,
}

fn options(args: &NatcheckArgs) -> anyhow::Result<Options> {
    if !(args.timeout.is_finite() && args.timeout >= 0.1 && args.timeout <= 60.0) {
        bail!(
            "--timeout {} is not usable: give seconds between 0.1 and 60",
            args.timeout
        );
    }
    if !(2..=3600).contains(&args.max_lifetime) {
        bail!(
            "--max-lifetime {} is not usable: give seconds between 2 and 3600",
            args.max_lifetime
        );
    }
    Ok(Options {
        quick: args.quick,
        timeout: Duration::from_secs_f64(args.timeout),
        max_lifetime: Duration::from_secs(args.max_lifetime),
        dns64: args.dns64,
    })
}

/// Runs the subcommand. Exits the process with [`EXIT_UNREACHABLE`] or
/// [`EXIT_CANCELLED`] after printing, so scripts can tell those cases apart.
pub fn run(args: &NatcheckArgs) -> anyhow::Result<()> {
    let code = check(args)?;
    if code != 0 {
        // Exiting skips destructors: flush what was printed first.
        let _ = std::io::stdout().flush();
        std::process::exit(i32::from(code));
    }
    Ok(())
}

fn check(args: &NatcheckArgs) -> anyhow::Result<u8> {
    let lang = args.lang.unwrap_or_else(Lang::from_env);
    let opts = options(args)?;
    let mut target = resolve(&args.server)?;
    if let Some(v6) = args.server6 {
        if !v6.is_ipv6() {
            bail!("--server6 {v6} is not an IPv6 address: give it as [ADDR]:PORT");
        }
        target.v6 = Some(v6);
    }

    let cancel = Arc::new(AtomicBool::new(false));
    // The first Ctrl-C asks the check to stop and print what it has; a second one,
    // with the flag already set, exits at once.
    signal_hook::flag::register_conditional_shutdown(
        signal_hook::consts::SIGINT,
        i32::from(EXIT_CANCELLED),
        Arc::clone(&cancel),
    )
    .context("cannot install the Ctrl-C handler")?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&cancel))
        .context("cannot install the Ctrl-C handler")?;

    let show_progress = !args.json || std::io::stderr().is_terminal();
    let view = progress::ProgressView::new(lang, show_progress);
    let result = driver::diagnose(&target, &opts, &cancel, &mut |p| {
        if cancel.load(Ordering::Relaxed) {
            view.stopping();
        }
        view.update(p);
    });
    view.finish();
    let cancelled = cancel.load(Ordering::Relaxed);

    let mut report = result?;
    if cancelled && !report.warnings.iter().any(|w| w.contains("cancel")) {
        report
            .warnings
            .push("the check was cancelled by the user (Ctrl-C); later tests did not run".into());
    }
    if args.json {
        println!("{}", report.to_json_pretty());
    } else {
        let bold = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        print!("{}", render(&report, lang.text(), cancelled, bold));
    }
    if cancelled {
        return Ok(EXIT_CANCELLED);
    }
    if !report.udp_works() {
        eprintln!("{}", unreachable_message(&target, opts.timeout));
        return Ok(EXIT_UNREACHABLE);
    }
    Ok(0)
}

/// The message for a server that did not answer.
pub fn unreachable_message(target: &Target, timeout: Duration) -> String {
    let server = if target.name == target.primary.to_string() {
        target.name.clone()
    } else {
        format!("{} ({})", target.name, target.primary)
    };
    format!(
        "no answer from {server} over UDP within {} s: is the server running, and is UDP \
         allowed out?",
        render::secs(timeout.as_secs_f64())
    )
}
