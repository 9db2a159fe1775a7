//! `tsunagi mape`: which IPv4 address and ports a MAP-E home router owns.

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::Context as _;
use clap::Args;
use serde_json::{Value, json};
use tsunagi::mape::{CeAssignment, Ipv4Assignment, Ipv4Prefix, Ipv6Prefix, MapRule};

/// Compute the MAP-E port set (RFC 7597) that a MAP rule gives your IPv6 prefix.
///
/// Shows the IPv4 address, the PSID, the MAP IPv6 address and every usable port range.
/// The rule values come from your ISP (or your router's MAP-E status page); the
/// End-user prefix is the IPv6 prefix delegated to your router, such as a /56.
///
/// Example (RFC 7597 Appendix A, Example 1):
///
///   tsunagi mape --rule-ipv6 2001:db8::/40 --rule-ipv4 192.0.2.0/24 --ea-len 16 --prefix 2001:db8:12:3400::/56
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct MapeArgs {
    /// Rule IPv6 prefix of the MAP rule, e.g. 2001:db8::/40.
    #[arg(long, value_name = "PREFIX")]
    rule_ipv6: Ipv6Prefix,

    /// Rule IPv4 prefix of the MAP rule, e.g. 192.0.2.0/24.
    #[arg(long, value_name = "PREFIX")]
    rule_ipv4: Ipv4Prefix,

    /// EA-bits length of the MAP rule: how many bits of your IPv6 prefix, right after the
    /// rule IPv6 prefix, carry the IPv4 address suffix and the PSID.
    #[arg(long, value_name = "BITS")]
    ea_len: u8,

    /// PSID offset `a`: high bits of each port before the PSID. Ports whose first `a`
    /// bits are zero belong to nobody.
    #[arg(long, value_name = "BITS", default_value_t = tsunagi::mape::DEFAULT_PSID_OFFSET)]
    psid_offset: u8,

    /// End-user IPv6 prefix: the prefix delegated to your router, e.g. 2001:db8:12:3400::/56.
    #[arg(long, value_name = "PREFIX")]
    prefix: Ipv6Prefix,

    /// PSID provisioned separately (e.g. by DHCPv6), for rules with a full IPv4 address
    /// (EA-bits length + IPv4 prefix length = 32). Needs --psid-len.
    #[arg(long, value_name = "PSID", requires = "psid_len", value_parser = parse_u16)]
    psid: Option<u16>,

    /// Length in bits of the PSID given with --psid.
    #[arg(long, value_name = "BITS", requires = "psid")]
    psid_len: Option<u8>,

    /// Also tell whether this port is yours, and which PSID owns it.
    #[arg(long, value_name = "PORT")]
    port: Option<u16>,

    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// A PSID in decimal or `0x` hexadecimal, as RFC 7597 writes them.
fn parse_u16(s: &str) -> Result<u16, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| format!("{s:?} is not a number from 0 to 65535 (decimal or 0x hex)"))
}

/// Runs the subcommand and prints its result.
pub fn run(args: &MapeArgs) -> anyhow::Result<()> {
    let rule = MapRule::with_psid_offset(
        args.rule_ipv6,
        args.rule_ipv4,
        args.ea_len,
        args.psid_offset,
    )
    .context("the MAP rule is not valid")?;
    let ce = match (args.psid_len, args.psid) {
        (Some(len), Some(psid)) => rule.apply_with_psid(args.prefix, len, psid),
        _ => rule.apply(args.prefix),
    }
    .with_context(|| format!("cannot apply the MAP rule to {}", args.prefix))?;
    let report = if args.json {
        let mut text = serde_json::to_string_pretty(&to_json(&ce, args.port))?;
        text.push('\n');
        text
    } else {
        to_text(&ce, args.port)
    };
    // `tsunagi mape ... | head` closes the pipe early; that is not an error.
    match std::io::stdout().lock().write_all(report.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn sharing(ce: &CeAssignment) -> &'static str {
    match ce.ipv4() {
        Ipv4Assignment::SharedAddress(_) => "shared_address",
        Ipv4Assignment::FullAddress(_) => "full_address",
        Ipv4Assignment::Prefix(_) => "prefix",
    }
}

/// Human-readable report.
pub fn to_text(ce: &CeAssignment, port: Option<u16>) -> String {
    let rule = ce.rule();
    let set = ce.port_set();
    let format = set.format();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "MAP-E (RFC 7597) for End-user IPv6 prefix {}",
        ce.end_user_prefix()
    );
    let _ = writeln!(
        out,
        "  MAP rule       {} -> {}, EA-bits length {}, PSID offset {}",
        rule.ipv6_prefix(),
        rule.ipv4_prefix(),
        rule.ea_bits_len(),
        format.offset()
    );
    let _ = writeln!(
        out,
        "  EA bits        {:#0width$x} ({} bits)",
        ce.ea_bits(),
        rule.ea_bits_len(),
        // "0x" plus one hex digit per started nibble, so 0x05a7 shows all 16 bits.
        width = 2 + usize::from(rule.ea_bits_len().div_ceil(4).max(1)),
    );
    let ipv4 = match ce.ipv4() {
        Ipv4Assignment::SharedAddress(a) => format!(
            "IPv4 address   {a} (shared by {} CEs)",
            format.sharing_ratio()
        ),
        Ipv4Assignment::FullAddress(a) => format!("IPv4 address   {a} (not shared)"),
        Ipv4Assignment::Prefix(p) => format!("IPv4 prefix    {p} (not shared)"),
    };
    let _ = writeln!(out, "  {ipv4}");
    let _ = writeln!(
        out,
        "  PSID           {:#x} ({}), length {}",
        set.psid(),
        set.psid(),
        format.psid_len()
    );
    let _ = writeln!(out, "  MAP address    {}", ce.map_ipv6_address());
    let _ = writeln!(out, "  Ports          {set}");
    let ranges: Vec<String> = set
        .blocks()
        .map(|b| format!("{}-{}", b.start(), b.end()))
        .collect();
    for line in ranges.chunks(6) {
        let cells: Vec<String> = line.iter().map(|r| format!("{r:<13}")).collect();
        let _ = writeln!(out, "    {}", cells.concat().trim_end());
    }
    if let Some(port) = port {
        let owner = format.psid_of_port(port);
        let verdict = match owner {
            _ if set.contains(port) => format!("port {port} is yours (PSID {:#x})", set.psid()),
            Some(psid) => format!("port {port} is not yours: it belongs to PSID {psid:#x}"),
            None => format!(
                "port {port} is not yours: no CE owns ports whose first {} bits are zero",
                format.offset()
            ),
        };
        let _ = writeln!(out, "  {verdict}");
    }
    out
}

/// Machine-readable report.
pub fn to_json(ce: &CeAssignment, port: Option<u16>) -> Value {
    let rule = ce.rule();
    let set = ce.port_set();
    let format = set.format();
    let blocks: Vec<Value> = set
        .blocks()
        .map(|b| json!({ "first": b.start(), "last": b.end() }))
        .collect();
    let mut report = json!({
        "rule": {
            "ipv6_prefix": rule.ipv6_prefix().to_string(),
            "ipv4_prefix": rule.ipv4_prefix().to_string(),
            "ea_bits_len": rule.ea_bits_len(),
            "psid_offset": format.offset(),
        },
        "end_user_prefix": ce.end_user_prefix().to_string(),
        "ea_bits": ce.ea_bits(),
        "ipv4": ce.ipv4().to_string(),
        "sharing": sharing(ce),
        "sharing_ratio": format.sharing_ratio(),
        "psid": set.psid(),
        "psid_len": format.psid_len(),
        "map_ipv6_address": ce.map_ipv6_address().to_string(),
        "port_count": set.port_count(),
        "block_count": set.block_count(),
        "block_size": set.block_size(),
        "port_blocks": blocks,
    });
    if let (Some(port), Some(obj)) = (port, report.as_object_mut()) {
        obj.insert(
            "port_check".into(),
            json!({
                "port": port,
                "in_set": set.contains(port),
                "owner_psid": format.psid_of_port(port),
            }),
        );
    }
    report
}
