//! `tsunagi token` mints a token that `tsunagi-relay --auth-secret` accepts.

// Test code: failing loudly, with the reason, is the point.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use tsunagi::relay::{Credentials, rest_password};
use tsunagi::stun::{
    Attribute, AttributeType, Class, IntegrityKey, Message, MessageBuilder, Method, TransactionId,
};
use tsunagi_relay::{Server, ServerConfig, TurnConfig};

fn mint(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tsunagi"))
        .arg("token")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn token_is_one_line_and_the_relay_accepts_it() {
    let out = mint(&["--secret", "S3", "--name", "player42", "--ttl", "600"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let c = Credentials::from_token(stdout.trim()).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry = c.expires_at_unix().unwrap();
    assert!((now + 595..=now + 605).contains(&expiry), "{}", c.username);
    assert!(c.username.ends_with(":player42"));
    assert_eq!(c.password, rest_password("S3", &c.username));
    assert_eq!(c.realm_hint.as_deref(), Some("tsunagi"));

    // The relay core authenticates an Allocate with it.
    let turn = TurnConfig {
        auth_secrets: vec!["S3".into()],
        relay_ips: vec!["192.0.2.1".parse().unwrap()],
        ..TurnConfig::default()
    };
    let mut server = Server::with_virtual_turn(ServerConfig::default(), turn);
    let (local, client) = (
        "192.0.2.1:3478".parse().unwrap(),
        "198.51.100.1:5000".parse().unwrap(),
    );
    let mut out = Vec::new();
    let mut b = MessageBuilder::new(
        Class::Request,
        Method::ALLOCATE,
        TransactionId::new([1; 12]),
    );
    b.add(&Attribute::RequestedTransport(17)).unwrap();
    server.handle(local, client, &b.finish(), &mut out);
    let challenge = Message::decode(&out[0].payload).unwrap();
    let Some(Attribute::Nonce(nonce)) = challenge.get(AttributeType::NONCE) else {
        panic!("no nonce")
    };
    let key = IntegrityKey::long_term_md5(&c.username, "tsunagi", &c.password);
    let mut b = MessageBuilder::new(
        Class::Request,
        Method::ALLOCATE,
        TransactionId::new([2; 12]),
    );
    b.add(&Attribute::RequestedTransport(17)).unwrap();
    b.add(&Attribute::Username(&c.username)).unwrap();
    b.add(&Attribute::Realm("tsunagi")).unwrap();
    b.add(&Attribute::Nonce(nonce)).unwrap();
    b.add_integrity(&key);
    let mut out2 = Vec::new();
    server.handle(local, client, &b.finish(), &mut out2);
    let m = Message::decode(&out2[0].payload).unwrap();
    assert_eq!(m.class(), Class::SuccessResponse, "{:?}", m.error_code());
}

#[test]
fn bad_arguments_say_what_to_do() {
    let out = mint(&["--secret", "", "--name", "x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--auth-secret"));
    let out = mint(&["--secret", "s", "--name", "x", "--show-credentials"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.lines().nth(1).unwrap().starts_with("username "));
}
