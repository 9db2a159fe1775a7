//! Runs `tsunagi mape` on RFC 7597 Appendix A, Example 1.

use std::process::{Command, Output};

const EXAMPLE_1: [&str; 9] = [
    "mape",
    "--rule-ipv6",
    "2001:db8::/40",
    "--rule-ipv4",
    "192.0.2.0/24",
    "--ea-len",
    "16",
    "--prefix",
    "2001:db8:12:3400::/56",
];

fn tsunagi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tsunagi"))
        .args(args)
        .output()
        .expect("the tsunagi binary runs")
}

#[test]
fn rfc7597_example_1_text() {
    let out = tsunagi(&EXAMPLE_1);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "IPv4 address   192.0.2.18 (shared by 256 CEs)",
        "PSID           0x34 (52), length 8",
        "MAP address    2001:db8:12:3400:0:c000:212:34",
        "Ports          252 ports in 63 blocks of 4",
        "1232-1235",
        "2256-2259",
        "63696-63699",
        "64720-64723",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn rfc7597_example_1_json_with_port_check() {
    let mut args = EXAMPLE_1.to_vec();
    args.extend(["--json", "--port", "1232"]);
    let out = tsunagi(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ipv4"], "192.0.2.18");
    assert_eq!(v["sharing"], "shared_address");
    assert_eq!(v["psid"], 0x34);
    assert_eq!(v["psid_len"], 8);
    assert_eq!(v["ea_bits"], 0x1234);
    assert_eq!(v["port_count"], 252);
    assert_eq!(v["block_count"], 63);
    assert_eq!(v["port_blocks"][0]["first"], 1232);
    assert_eq!(v["port_blocks"][62]["last"], 64723);
    assert_eq!(v["map_ipv6_address"], "2001:db8:12:3400:0:c000:212:34");
    assert_eq!(v["port_check"]["in_set"], true);
    assert_eq!(v["port_check"]["owner_psid"], 0x34);
}

#[test]
fn too_many_ea_bits_is_explained() {
    let mut args = EXAMPLE_1.to_vec();
    args[6] = "20";
    args.extend(["--psid-offset", "4"]);
    let out = tsunagi(&args);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(
            "EA-bits length 20 exceeds the delegated prefix: the End-user IPv6 prefix /56 \
             leaves only 16 bits after the /40 rule prefix"
        ),
        "{err}"
    );
}
