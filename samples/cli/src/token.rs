//! `tsunagi token`: mints a TURN credential token from a shared secret, as a
//! game backend would, for the SDK and `tsunagi peer --token`.
//!
//! The token carries a coturn-compatible REST username (`EXPIRY:NAME`) and
//! password (base64(HMAC-SHA1(secret, username))), so `tsunagi-relay
//! --auth-secret S` and coturn with `use-auth-secret` both accept it; the
//! format is documented in [`tsunagi::relay::Credentials`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tsunagi::relay::rest_credentials;

/// Arguments of `tsunagi token`.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The shared secret, as given to the relay with --auth-secret.
    #[arg(long)]
    secret: String,
    /// Who the credential is for (the NAME in `EXPIRY:NAME`), e.g. a player id.
    #[arg(long)]
    name: String,
    /// How long the credential is accepted, in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
    /// The realm to record in the token (the relay's --realm).
    #[arg(long, default_value = "tsunagi")]
    realm: String,
    /// Print the TURN username and password on two more lines (for coturn's
    /// tools and other clients that take them separately).
    #[arg(long)]
    show_credentials: bool,
}

/// Prints one token line (and, on request, the username and password).
pub fn run(args: &TokenArgs) -> anyhow::Result<()> {
    if args.secret.is_empty() {
        anyhow::bail!("--secret is empty; pass the secret the relay was given with --auth-secret");
    }
    if args.name.contains(char::is_whitespace) {
        anyhow::bail!(
            "--name {:?} contains whitespace; use a plain identifier",
            args.name
        );
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970; fix the clock to mint credentials")?
        .as_secs();
    let mut credentials =
        rest_credentials(&args.secret, &args.name, Duration::from_secs(args.ttl), now);
    credentials.realm_hint = Some(args.realm.clone());
    println!("{}", credentials.to_token());
    if args.show_credentials {
        println!("username {}", credentials.username);
        println!("password {}", credentials.password);
    }
    Ok(())
}
