//! Configuration from flags, environment variables and a TOML file.
//!
//! Every command-line flag is also a configuration key and an environment
//! variable, derived from the flag's long name, so a flag added to the server
//! is configurable everywhere without touching this module:
//!
//! | flag                | TOML key (in `--config FILE`) | environment                  |
//! |---------------------|-------------------------------|------------------------------|
//! | `--listen A`        | `listen = ["A", "B"]`         | `TSUNAGI_RELAY_LISTEN=A,B`   |
//! | `--min-port N`      | `min-port = 49152`            | `TSUNAGI_RELAY_MIN_PORT=N`   |
//! | `--some-switch`     | `some-switch = true`          | `TSUNAGI_RELAY_SOME_SWITCH=1`|
//!
//! Precedence, per key: flags > environment > file > built-in defaults. A
//! repeatable flag given at a higher level replaces all values of lower levels
//! (it does not add to them). In the environment, repeatable flags take several
//! values separated by commas. The file is flat (no sections); an unknown key,
//! a bad value or a wrong type is an error that names the line.
//!
//! The implementation re-uses clap for everything: it parses the command line
//! once to learn which flags were given, turns each environment variable and
//! file key of the other flags into `--flag=value` tokens (each checked alone,
//! so an error can name its source), and parses again.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, Command, CommandFactory, FromArgMatches};

/// Prefix of the environment variables: `TSUNAGI_RELAY_` + the flag's long
/// name in upper case with `-` as `_`.
pub const ENV_PREFIX: &str = "TSUNAGI_RELAY_";

/// The id (and long name) of the flag that names the configuration file.
const CONFIG_ID: &str = "config";

/// Why the configuration cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key that is not the long name of any flag.
    #[error("config file {path}{at}: unknown key `{key}`{hint}")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// `, line N` when the key's line was found.
        at: String,
        /// The key.
        key: String,
        /// ` — did you mean `X`?` when a known key is close.
        hint: String,
    },
    /// A key whose value the flag does not accept.
    #[error("config file {path}{at}: key `{key}`: {message}")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// `, line N` when the key's line was found.
        at: String,
        /// The key.
        key: String,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// An environment variable whose value the flag does not accept.
    #[error("environment variable {var}: {message}")]
    BadEnv {
        /// The variable.
        var: String,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// The command line itself (also `--help` and `--version`: call
    /// [`clap::Error::exit`] on it to print and exit as clap does).
    #[error(transparent)]
    Cli(#[from] clap::Error),
}

/// The environment variable for a flag's long name (`min-port` → `TSUNAGI_RELAY_MIN_PORT`).
pub fn env_var(long: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        long.replace('-', "_").to_ascii_uppercase()
    )
}

/// Parses `P` from the process's arguments, environment and `--config` file.
pub fn load<P: CommandFactory + FromArgMatches>() -> Result<P, ConfigError> {
    load_from(std::env::args_os().collect(), &|name| {
        std::env::var(name).ok()
    })
}

/// Parses `P` from `args` (program name first), the variables `env` returns,
/// and the `--config` file (flag or `TSUNAGI_RELAY_CONFIG`).
pub fn load_from<P: CommandFactory + FromArgMatches>(
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<P, ConfigError> {
    let command = command::<P>();
    // First pass: which flags the command line sets. Nothing is required yet,
    // since a required value may come from the environment or the file.
    let first = command
        .clone()
        .mut_args(|a| a.required(false))
        .try_get_matches_from(&args)?;
    let file_path = first
        .get_one::<PathBuf>(CONFIG_ID)
        .cloned()
        .or_else(|| env(&env_var(CONFIG_ID)).map(PathBuf::from));
    let file = match &file_path {
        Some(path) => Some(ConfigFile::read(path)?),
        None => None,
    };
    let settable: Vec<&Arg> = command
        .get_arguments()
        .filter(|a| a.get_long().is_some_and(|l| l != CONFIG_ID) && takes_config(a))
        .collect();
    if let Some(file) = &file {
        file.check_keys(&settable)?;
    }

    let mut injected: Vec<OsString> = Vec::new();
    for arg in &settable {
        let (id, Some(long)) = (arg.get_id().as_str(), arg.get_long()) else {
            continue;
        };
        if first.value_source(id) == Some(ValueSource::CommandLine) {
            continue;
        }
        let var = env_var(long);
        if let Some(value) = env(&var) {
            let tokens = env_tokens(arg, long, &value);
            check_alone(&command, &tokens).map_err(|message| ConfigError::BadEnv {
                var: var.clone(),
                message,
            })?;
            injected.extend(tokens.into_iter().map(OsString::from));
        } else if let Some(file) = &file
            && let Some(value) = file.table.get(long)
        {
            let tokens = toml_tokens(arg, long, value)
                .and_then(|tokens| check_alone(&command, &tokens).map(|()| tokens))
                .map_err(|message| ConfigError::BadValue {
                    path: file.path.clone(),
                    at: file.at(long),
                    key: long.to_string(),
                    message,
                })?;
            injected.extend(tokens.into_iter().map(OsString::from));
        }
    }
    // Injected tokens go right after the program name, before anything the
    // user typed (which may end with `--`).
    let mut merged = Vec::with_capacity(args.len() + injected.len());
    let mut user = args.into_iter();
    merged.extend(user.next());
    merged.extend(injected);
    merged.extend(user);
    let matches = command.try_get_matches_from(merged)?;
    Ok(P::from_arg_matches(&matches)?)
}

/// `P`'s command plus `--config` and a note on the other sources.
fn command<P: CommandFactory>() -> Command {
    let mut command = P::command();
    if command.get_arguments().all(|a| a.get_id() != CONFIG_ID) {
        command = command.arg(
            Arg::new(CONFIG_ID)
                .long(CONFIG_ID)
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help("TOML file of settings: `flag-name = value` per line"),
        );
    }
    command.after_help(format!(
        "Every flag is also a key of the --config file (`listen = [\"0.0.0.0:3478\"]`) and \
         an environment variable ({ENV_PREFIX}LISTEN=0.0.0.0:3478; repeated values \
         separated by commas). Precedence: flags > environment > file > defaults."
    ))
}

/// Whether a flag is a setting (not `--help`, `--version` or a positional).
fn takes_config(arg: &Arg) -> bool {
    !matches!(
        arg.get_action(),
        ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
    )
}

fn is_switch(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse)
}

fn env_tokens(arg: &Arg, long: &str, value: &str) -> Vec<String> {
    if is_switch(arg) {
        let on = matches!(
            value.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        );
        return if on {
            vec![format!("--{long}")]
        } else {
            vec![]
        };
    }
    if matches!(arg.get_action(), ArgAction::Append) {
        return value
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| format!("--{long}={v}"))
            .collect();
    }
    vec![format!("--{long}={value}")]
}

fn toml_tokens(arg: &Arg, long: &str, value: &toml::Value) -> Result<Vec<String>, String> {
    if is_switch(arg) {
        return match value {
            toml::Value::Boolean(true) => Ok(vec![format!("--{long}")]),
            toml::Value::Boolean(false) => Ok(vec![]),
            _ => Err("expects true or false".to_string()),
        };
    }
    match value {
        toml::Value::Array(items) if matches!(arg.get_action(), ArgAction::Append) => items
            .iter()
            .map(|item| scalar(item).map(|v| format!("--{long}={v}")))
            .collect(),
        toml::Value::Array(_) => Err("expects a single value, not a list".to_string()),
        other => Ok(vec![format!("--{long}={}", scalar(other)?)]),
    }
}

fn scalar(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Datetime(d) => Ok(d.to_string()),
        toml::Value::Array(_) => Err("expects a value, not a nested list".to_string()),
        toml::Value::Table(_) => {
            Err("expects a value, not a table (the file has no sections)".to_string())
        }
    }
}

/// Parses `tokens` (one flag's) alone, to report a bad value against its
/// source (line or variable) rather than as a flag. Relations between flags
/// (`requires`, conflicts) are left to the final parse.
fn check_alone(command: &Command, tokens: &[String]) -> Result<(), String> {
    let argv = std::iter::once("tsunagi-relay").chain(tokens.iter().map(String::as_str));
    match command
        .clone()
        .mut_args(|a| a.required(false))
        .try_get_matches_from(argv)
    {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::MissingRequiredArgument | ErrorKind::ArgumentConflict
            ) =>
        {
            Ok(())
        }
        Err(e) => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            Err(first.strip_prefix("error: ").unwrap_or(first).to_string())
        }
    }
}

/// A parsed configuration file and its text (to find a key's line).
#[derive(Debug)]
struct ConfigFile {
    path: PathBuf,
    text: String,
    table: toml::Table,
}

impl ConfigFile {
    fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let table = text
            .parse::<toml::Table>()
            .map_err(|e| ConfigError::Syntax {
                path: path.to_path_buf(),
                message: e.to_string().trim().replace('\n', " "),
            })?;
        Ok(ConfigFile {
            path: path.to_path_buf(),
            text,
            table,
        })
    }

    /// Errors on the first key (in file order) that is no flag's long name.
    fn check_keys(&self, settable: &[&Arg]) -> Result<(), ConfigError> {
        let known: Vec<&str> = settable.iter().filter_map(|a| a.get_long()).collect();
        let mut unknown: Vec<&String> = self
            .table
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .collect();
        unknown.sort_by_key(|k| self.line_of(k).unwrap_or(usize::MAX));
        let Some(key) = unknown.first() else {
            return Ok(());
        };
        Err(ConfigError::UnknownKey {
            path: self.path.clone(),
            at: self.at(key),
            key: (*key).clone(),
            hint: suggestion(key, &known),
        })
    }

    /// The 1-based line where `key` is assigned, if it is found.
    fn line_of(&self, key: &str) -> Option<usize> {
        self.text
            .lines()
            .position(|line| {
                let line = line.trim_start();
                let rest = line
                    .strip_prefix(key)
                    .or_else(|| line.strip_prefix(&format!("\"{key}\"")))
                    .or_else(|| line.strip_prefix(&format!("'{key}'")));
                rest.is_some_and(|r| r.trim_start().starts_with('='))
            })
            .map(|i| i + 1)
    }

    fn at(&self, key: &str) -> String {
        self.line_of(key)
            .map(|line| format!(", line {line}"))
            .unwrap_or_default()
    }
}

/// ` — did you mean `X`?` for the closest known key, if it is close.
fn suggestion(key: &str, known: &[&str]) -> String {
    let dashed = key.replace('_', "-");
    if known.contains(&dashed.as_str()) {
        return format!(
            " — did you mean `{dashed}`? (keys are spelled like the flags, with dashes)"
        );
    }
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| format!(" — did you mean `{k}`?"))
        .unwrap_or_default()
}

/// Levenshtein distance (keys are short ASCII, so bytes are fine).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row.first().copied().unwrap_or(0);
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let above = row.get(j + 1).copied().unwrap_or(usize::MAX);
            let left = row.get(j).copied().unwrap_or(usize::MAX);
            let value = (diagonal + usize::from(ca != *cb))
                .min(above.saturating_add(1))
                .min(left.saturating_add(1));
            diagonal = above;
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = value;
            }
        }
    }
    row.last().copied().unwrap_or(0)
}

/// Why privileges could not be dropped.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// No such user (name or numeric id) in the user database.
    #[error("no user {0:?} on this system (give a name from /etc/passwd or a numeric id)")]
    NoUser(String),
    /// No such group.
    #[error("no group {0:?} on this system (give a name from /etc/group or a numeric id)")]
    NoGroup(String),
    /// The system refused a call (not running as root?).
    #[error("cannot {what}: {source} (the relay must start as root to change user)")]
    Call {
        /// Which call.
        what: &'static str,
        /// The OS error.
        source: nix::Error,
    },
}

/// Switches the process to `user` (a name or numeric id) and `group` (default:
/// the user's primary group), dropping supplementary groups. Call it after
/// every privileged socket is bound; every thread of the process changes
/// (glibc applies set*id to all threads). Returns the uid and gid now in force.
pub fn drop_privileges(user: &str, group: Option<&str>) -> Result<(u32, u32), PrivilegeError> {
    use nix::unistd::{Gid, Group, Uid, User, setgid, setgroups, setuid};
    let call = |what| move |source| PrivilegeError::Call { what, source };
    let found = match user.parse::<u32>() {
        Ok(id) => User::from_uid(Uid::from_raw(id)).map_err(call("look up the user"))?,
        Err(_) => User::from_name(user).map_err(call("look up the user"))?,
    };
    let (uid, primary_gid) = match (&found, user.parse::<u32>()) {
        (Some(u), _) => (u.uid, u.gid),
        // A numeric id with no passwd entry is fine (containers); its group is
        // then the same number unless one is given.
        (None, Ok(id)) => (Uid::from_raw(id), Gid::from_raw(id)),
        (None, Err(_)) => return Err(PrivilegeError::NoUser(user.to_string())),
    };
    let gid = match group {
        None => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(id) => Gid::from_raw(id),
            Err(_) => Group::from_name(g)
                .map_err(call("look up the group"))?
                .map(|g| g.gid)
                .ok_or_else(|| PrivilegeError::NoGroup(g.to_string()))?,
        },
    };
    // Order matters: groups first, while still allowed to change them.
    setgroups(&[gid]).map_err(call("set supplementary groups"))?;
    setgid(gid).map_err(call("set the group id"))?;
    setuid(uid).map_err(call("set the user id"))?;
    Ok((uid.as_raw(), gid.as_raw()))
}
