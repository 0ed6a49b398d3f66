//! Config files as checked key lists: `key = value` for the C++ daemons and the client,
//! TOML for the 8.x management service. Rendering refuses what the daemon would refuse
//! (or, for the 8.x client, silently ignore).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::keys::{Daemon, accepted_keys, deprecated_replacement, hint};
use crate::release::Release;

/// Why a config file cannot be rendered. Every message names the key, the daemon and the
/// release.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfError {
    /// A key the daemon of this release does not accept.
    #[error("`{key}` is not a key {daemon} {release} accepts{}", hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    UnknownKey {
        /// The daemon.
        daemon: Daemon,
        /// The release.
        release: Release,
        /// The key.
        key: String,
        /// Why, when it is a known mistake.
        hint: Option<String>,
    },
    /// An 8.x deprecated port key.
    #[error("`{key}` is deprecated in {daemon} {release}: write `{replacement}`")]
    Deprecated {
        /// The daemon.
        daemon: Daemon,
        /// The release.
        release: Release,
        /// The key.
        key: String,
        /// Its replacement.
        replacement: &'static str,
    },
    /// A key hpc-up sets itself.
    #[error(
        "`{key}` of {daemon} {release} is set by hpc-up ({why}); remove it from `extra-config`"
    )]
    Reserved {
        /// The daemon.
        daemon: Daemon,
        /// The release.
        release: Release,
        /// The key.
        key: String,
        /// Where hpc-up takes it from.
        why: &'static str,
    },
    /// One key twice.
    #[error("`{key}` is set twice in the {daemon} {release} config")]
    Duplicate {
        /// The daemon.
        daemon: Daemon,
        /// The release.
        release: Release,
        /// The key.
        key: String,
    },
    /// A value the daemon rejects or misreads.
    #[error("`{key} = {value}` is not valid for {daemon} {release}: {reason}")]
    BadValue {
        /// The daemon.
        daemon: Daemon,
        /// The release.
        release: Release,
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
    /// A key the daemon needs is missing or empty.
    #[error("{daemon} {release} needs `{key}`: {why}")]
    Missing {
        /// The daemon.
        daemon: Daemon,
        /// The release.
        release: Release,
        /// The key (or keys).
        key: &'static str,
        /// What the daemon does without it.
        why: &'static str,
    },
}

/// One value in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
}

impl Value {
    fn kv(&self) -> String {
        match self {
            Self::Bool(b) => b.to_string(),
            Self::Int(i) => i.to_string(),
            Self::Text(s) => s.clone(),
        }
    }

    fn toml(&self) -> String {
        match self {
            Self::Bool(b) => b.to_string(),
            Self::Int(i) => i.to_string(),
            Self::Text(s) => toml_string(s),
        }
    }

    fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            // StringTk::strToBool: "1", "y…", "t…" (any case) are true.
            Self::Text(s) => Some(matches!(
                s.chars().next().map(|c| c.to_ascii_lowercase()),
                Some('1' | 'y' | 't')
            )),
            Self::Int(i) => Some(*i != 0),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}
impl From<u16> for Value {
    fn from(i: u16) -> Self {
        Self::Int(i64::from(i))
    }
}

impl From<&hpc_config::file::BeegfsValue> for Value {
    fn from(v: &hpc_config::file::BeegfsValue) -> Self {
        use hpc_config::file::BeegfsValue as B;
        match v {
            B::Bool(b) => Self::Bool(*b),
            B::Int(i) => Self::Int(*i),
            B::Text(s) => Self::Text(s.clone()),
        }
    }
}

/// A daemon's config, key by key, in the order it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conf {
    /// The daemon.
    pub daemon: Daemon,
    /// The release.
    pub release: Release,
    /// Keys and values in file order.
    pub entries: Vec<(String, Value)>,
}

impl Conf {
    /// An empty config for `daemon` of `release`.
    pub fn new(daemon: Daemon, release: Release) -> Self {
        Self {
            daemon,
            release,
            entries: Vec::new(),
        }
    }

    /// Appends a key (builder style).
    #[must_use]
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.entries.push((key.to_owned(), value.into()));
        self
    }

    /// The value of `key`, when set.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Whether the file is TOML (the 8.x management service).
    pub fn is_toml(&self) -> bool {
        self.daemon == Daemon::Mgmtd && self.release.is_v8()
    }

    /// Checks every rule, collecting all problems.
    pub fn check(&self) -> Vec<ConfError> {
        let mut errors = Vec::new();
        let accepted = accepted_keys(self.daemon, self.release);
        let mut seen = BTreeSet::new();
        for (key, value) in &self.entries {
            if !seen.insert(key.as_str()) {
                errors.push(self.duplicate(key));
            }
            if let Some(replacement) = deprecated_replacement(key, self.release)
                && self.daemon != Daemon::Mgmtd
            {
                errors.push(ConfError::Deprecated {
                    daemon: self.daemon,
                    release: self.release,
                    key: key.clone(),
                    replacement,
                });
            } else if !accepted.contains(key.as_str()) {
                errors.push(ConfError::UnknownKey {
                    daemon: self.daemon,
                    release: self.release,
                    key: key.clone(),
                    hint: hint(self.daemon, key, self.release),
                });
            }
            if let Some(reason) = self.value_problem(key, value) {
                errors.push(self.bad(key, value, reason));
            }
        }
        if self.is_toml() {
            self.check_mgmtd_toml(&mut errors);
        } else {
            self.check_required(&mut errors);
        }
        errors
    }

    /// The file's text, or every problem.
    pub fn render(&self, header: &str) -> Result<String, Vec<ConfError>> {
        let errors = self.check();
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut out = String::new();
        for line in header.lines() {
            let _ = writeln!(out, "# {line}");
        }
        for (k, v) in &self.entries {
            if self.is_toml() {
                let _ = writeln!(out, "{k} = {}", v.toml());
            } else {
                let _ = writeln!(out, "{k} = {}", v.kv());
            }
        }
        Ok(out)
    }

    fn duplicate(&self, key: &str) -> ConfError {
        ConfError::Duplicate {
            daemon: self.daemon,
            release: self.release,
            key: key.to_owned(),
        }
    }

    fn bad(&self, key: &str, value: &Value, reason: impl Into<String>) -> ConfError {
        ConfError::BadValue {
            daemon: self.daemon,
            release: self.release,
            key: key.to_owned(),
            value: value.kv(),
            reason: reason.into(),
        }
    }

    fn missing(&self, key: &'static str, why: &'static str) -> ConfError {
        ConfError::Missing {
            daemon: self.daemon,
            release: self.release,
            key,
            why,
        }
    }

    fn value_problem(&self, key: &str, value: &Value) -> Option<String> {
        let text = value.kv();
        if text.contains(['\n', '\r']) {
            return Some("a value is one line".into());
        }
        if self.is_toml() {
            return self.toml_value_problem(key, value);
        }
        if text.contains('#') {
            return Some(
                "BeeGFS config files have no inline comments: `#` and what follows would be part of the value"
                    .into(),
            );
        }
        if text != text.trim() {
            return Some("BeeGFS trims values; leading or trailing blanks are lost".into());
        }
        let server_log = ["logfile", "syslog"];
        match key {
            "logType" => {
                let allowed: &[&str] = if self.daemon == Daemon::Client {
                    &["helperd", "syslog"]
                } else {
                    &server_log
                };
                (!allowed.contains(&text.as_str()))
                    .then(|| format!("it is one of {}", allowed.join(", ")))
            }
            k if k.starts_with("conn") && (k.contains("Port") && k != "connPortShift") => {
                match text.parse::<u32>() {
                    Ok(p) if (1..=65535).contains(&p) => None,
                    _ => Some(
                        "a port is 1 to 65535 (a value of 0 or less is silently ignored by the daemons)"
                            .into(),
                    ),
                }
            }
            "sysTargetOfflineTimeoutSecs" if self.daemon != Daemon::Client => {
                match text.parse::<u32>() {
                    Ok(s) if s >= 30 => None,
                    _ => Some("it must be at least 30".into()),
                }
            }
            "tuneTargetChooser" => {
                let allowed = ["randomized", "roundrobin", "randomrobin", "randominternode"];
                (!allowed.contains(&text.as_str()))
                    .then(|| format!("it is one of {}", allowed.join(", ")))
            }
            "tuneFileCacheType" => {
                let allowed = ["buffered", "paged", "native", "none"];
                (!allowed.contains(&text.as_str()))
                    .then(|| format!("it is one of {}", allowed.join(", ")))
            }
            "storeMetaDirectory" | "storeMgmtdDirectory" | "connAuthFile"
                if !text.is_empty() && !text.starts_with('/') =>
            {
                Some("it must be an absolute path".into())
            }
            "storeStorageDirectory" => text
                .split(',')
                .any(|d| !d.trim().starts_with('/'))
                .then(|| "it is a comma-separated list of absolute paths".into()),
            _ => None,
        }
    }

    fn toml_value_problem(&self, key: &str, value: &Value) -> Option<String> {
        let text = value.kv();
        match (key, value) {
            ("log-target", Value::Text(_)) => (!["journald", "stderr", "std"]
                .contains(&text.as_str()))
            .then(|| "it is journald or stderr".into()),
            ("log-level", Value::Text(_)) => (!["off", "error", "warn", "info", "debug", "trace"]
                .contains(&text.as_str()))
            .then(|| "it is off, error, warn, info, debug or trace".into()),
            (
                "tls-disable"
                | "auth-disable"
                | "license-disable"
                | "registration-disable"
                | "quota-enable"
                | "quota-enforce"
                | "daemonize"
                | "ipv6-disable",
                v,
            ) if !matches!(v, Value::Bool(_)) => Some("it is true or false".into()),
            (
                "beemsg-port"
                | "grpc-port"
                | "port-shift"
                | "connection-limit"
                | "max-blocking-threads",
                v,
            ) if !matches!(v, Value::Int(i) if *i >= 0 && *i <= 65535) => {
                Some("it is a whole number".into())
            }
            ("db-file" | "auth-file" | "tls-cert-file" | "tls-key-file", _)
                if !text.starts_with('/') =>
            {
                Some("it must be an absolute path".into())
            }
            _ => None,
        }
    }

    fn check_required(&self, errors: &mut Vec<ConfError>) {
        let auth_file = self
            .get("connAuthFile")
            .map(|v| !v.kv().is_empty())
            .unwrap_or(false);
        let auth_off = self
            .get("connDisableAuthentication")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !auth_file && !auth_off {
            errors.push(self.missing(
                "connAuthFile",
                "without it or `connDisableAuthentication = true` the daemon exits with \"No connAuthFile configured\"",
            ));
        }
        if auth_file && auth_off && !self.release.is_v8() {
            errors.push(self.bad(
                "connDisableAuthentication",
                &Value::Bool(true),
                "7.4 still opens connAuthFile when authentication is disabled; set only one of them",
            ));
        }
        let nonempty = |k: &str| self.get(k).map(|v| !v.kv().is_empty()).unwrap_or(false);
        if matches!(self.daemon, Daemon::Meta | Daemon::Storage | Daemon::Client)
            && !nonempty("sysMgmtdHost")
        {
            errors.push(self.missing("sysMgmtdHost", "\"Management host undefined\""));
        }
        match self.daemon {
            Daemon::Meta if !nonempty("storeMetaDirectory") => errors.push(self.missing(
                "storeMetaDirectory",
                "\"No metadata storage directory specified\"",
            )),
            Daemon::Storage if !nonempty("storeStorageDirectory") => errors
                .push(self.missing("storeStorageDirectory", "the storage service has no target")),
            Daemon::Mgmtd if !nonempty("storeMgmtdDirectory") => errors.push(self.missing(
                "storeMgmtdDirectory",
                "the management daemon has no data directory",
            )),
            _ => {}
        }
        if self.daemon == Daemon::Meta
            && self.get("storeClientACLs").and_then(Value::as_bool) == Some(true)
            && self.get("storeClientXAttrs").and_then(Value::as_bool) != Some(true)
        {
            errors.push(self.bad(
                "storeClientACLs",
                &Value::Bool(true),
                "client ACLs need `storeClientXAttrs = true`",
            ));
        }
    }

    fn check_mgmtd_toml(&self, errors: &mut Vec<ConfError>) {
        let flag = |k: &str| matches!(self.get(k), Some(Value::Bool(true)));
        if self.get("auth-file").is_none() && !flag("auth-disable") {
            // The default is /etc/beegfs/conn.auth; hpc-up always says which.
            errors.push(self.missing(
                "auth-file",
                "hpc-up names the auth file (or sets `auth-disable = true`) so that every node agrees",
            ));
        }
        if self.get("auth-file").is_some() && flag("auth-disable") {
            errors.push(self.bad(
                "auth-disable",
                &Value::Bool(true),
                "set either `auth-file` or `auth-disable = true`",
            ));
        }
        let tls_files = self.get("tls-cert-file").is_some() && self.get("tls-key-file").is_some();
        if !flag("tls-disable") && !tls_files {
            errors.push(self.missing(
                "tls-cert-file",
                "TLS is on by default and the service exits without a certificate: set `tls-cert-file` and `tls-key-file`, or `tls-disable = true`",
            ));
        }
        if self.get("db-file").is_none() {
            errors.push(self.missing("db-file", "`--init` and the service must agree on it"));
        }
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string("a\"b\\c\u{1}"), "\"a\\\"b\\\\c\\u0001\"");
    }

    #[test]
    fn bools_read_like_beegfs() {
        assert_eq!(Value::from("yes").as_bool(), Some(true));
        assert_eq!(Value::from("false").as_bool(), Some(false));
    }
}
