//! The OpenSSH executor: host steps on libvirt hypervisor hosts, reached with the `ssh`
//! client exactly as libvirt's `qemu+ssh://` transport reaches them (the user's
//! `~/.ssh/config`, agent, keys and `known_hosts`).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::Semaphore;

use crate::child::communicate;
use crate::executor::{CommandOutput, Executor, Mode};
use crate::outcome::parse;
use crate::report::HostReport;
use crate::script::{Target, compile};
use crate::{HostError, HostPlan};

/// How the runner is started on the target, as [`SshExecutor`](crate::SshExecutor) starts it.
const RUNNER_COMMAND: &str = "/bin/sh -s";

/// What [`OpenSshExecutor::run`] has the remote shell write to stderr before the command, so
/// that exit status 255 from `ssh` (its own failure) can be told from a command's 255.
const STARTED: &[u8] = b"@@HPC-started\n";

/// `ssh`'s exit status when it failed itself (connection, host key, authentication).
const SSH_FAILED: u32 = 255;

/// Where one hypervisor host is reached with OpenSSH: what `ssh` gets as `-l`, `-p`, `-i`
/// and destination. Fields left `None` are left to the user's SSH configuration, as libvirt
/// leaves them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSshTarget {
    /// Remote user (`-l`); `None`: the user's SSH config, else the local user name.
    pub user: Option<String>,
    /// Host name, address or `Host` alias of the user's SSH config (an IPv6 address
    /// without brackets).
    pub host: String,
    /// TCP port (`-p`); `None`: the user's SSH config, else 22.
    pub port: Option<u16>,
    /// Private key (`-i`), in addition to those of the agent and the SSH config.
    pub keyfile: Option<PathBuf>,
}

/// A libvirt URI that cannot name an OpenSSH target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// The URI's transport is not `ssh` (`qemu:///system`, `qemu+tls://…`, `qemu+libssh://…`).
    #[error(
        "libvirt URI {uri:?} does not use the ssh transport: host steps on a hypervisor host need a driver+ssh:// URI (qemu+ssh://user@host/system)"
    )]
    NotSsh {
        /// The URI.
        uri: String,
    },
    /// The URI is malformed or names no usable host, user or port.
    #[error("libvirt URI {uri:?}: {reason}")]
    Invalid {
        /// The URI (a password in it replaced by `***`).
        uri: String,
        /// What is wrong.
        reason: String,
    },
}

impl OpenSshTarget {
    /// `host` with everything else left to the user's SSH configuration.
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            user: None,
            host: host.into(),
            port: None,
            keyfile: None,
        }
    }

    /// The target of a libvirt URI with the ssh transport,
    /// `driver+ssh://[user@]host[:port]/path[?keyfile=…&…]`: the user, host (an IPv6 address
    /// in brackets), port and `keyfile` parameter, percent-decoded as libvirt decodes them.
    /// The path and the other parameters are libvirt's business (`no_verify`, `command`,
    /// `netcat`, `socket`, … do not change how hpc-up's own `ssh` runs: host keys are always
    /// checked against the user's `known_hosts`).
    pub fn from_libvirt_uri(uri: &str) -> Result<Self, UriError> {
        let invalid = |reason: String| UriError::Invalid {
            uri: redact(uri),
            reason,
        };
        let (scheme, rest) = uri
            .split_once("://")
            .ok_or_else(|| invalid("not a URI (no `://`)".to_owned()))?;
        let transport = scheme.split_once('+').map(|(_, t)| t);
        if !transport.is_some_and(|t| t.eq_ignore_ascii_case("ssh")) {
            return Err(UriError::NotSsh { uri: redact(uri) });
        }
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let user = match user {
            None => None,
            Some(u) if u.contains(':') => {
                return Err(invalid(
                    "a password in the URI is not used by the ssh transport; remove it".to_owned(),
                ));
            }
            Some(u) => {
                let u = decode(u).map_err(invalid)?;
                check_word("user", &u).map_err(invalid)?;
                Some(u)
            }
        };
        let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let (h, after) = bracketed
                .split_once(']')
                .ok_or_else(|| invalid("an IPv6 address without its closing `]`".to_owned()))?;
            match after {
                "" => (h, None),
                p => match p.strip_prefix(':') {
                    Some(p) => (h, Some(p)),
                    None => return Err(invalid(format!("unexpected {p:?} after the host"))),
                },
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        let host = decode(host).map_err(invalid)?;
        if host.is_empty() {
            return Err(invalid(
                "names no host (driver+ssh://[user@]host[:port]/…)".to_owned(),
            ));
        }
        check_word("host", &host).map_err(invalid)?;
        let port = match port {
            None | Some("") => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|&n| n != 0 && p.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| invalid(format!("port {p:?} is not a number in 1..=65535")))?,
            ),
        };
        let mut keyfile = None;
        for param in query.split(['&', ';']).filter(|p| !p.is_empty()) {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            if decode(name).map_err(invalid)? == "keyfile" {
                let value = decode(value).map_err(invalid)?;
                if value.contains('\0') {
                    return Err(invalid("keyfile contains a NUL byte".to_owned()));
                }
                // libvirt takes the last one; an empty value is no key.
                keyfile = (!value.is_empty()).then(|| PathBuf::from(value));
            }
        }
        Ok(Self {
            user,
            host,
            port,
            keyfile,
        })
    }

    /// `[user@]host[:port]`, for messages.
    fn destination(&self) -> String {
        let mut s = String::new();
        if let Some(u) = &self.user {
            s.push_str(u);
            s.push('@');
        }
        if self.host.contains(':') {
            s.push('[');
            s.push_str(&self.host);
            s.push(']');
        } else {
            s.push_str(&self.host);
        }
        if let Some(p) = self.port {
            s.push(':');
            s.push_str(&p.to_string());
        }
        s
    }
}

/// A user or host `ssh` can take as it is: not empty, no whitespace or control characters,
/// not starting with `-` (it would read as an option).
fn check_word(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || s.starts_with('-') || s.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{what} {s:?} is empty, starts with `-` or holds whitespace or control characters"
        ));
    }
    Ok(())
}

/// Percent-decoding (`%2F` → `/`), as libxml2 unescapes a libvirt URI; `+` stays `+`.
fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} does not decode to UTF-8"))
}

/// The URI with a password in its user part replaced by `***`.
fn redact(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => uri.to_owned(),
    }
}

/// Options of the OpenSSH executor. Defaults: `ssh` from `PATH`, 8 `ssh` processes at
/// once, 10 s to connect, a keepalive every 15 s (a host silent for 45 s is gone),
/// 10 minutes per host's apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSshOptions {
    /// The OpenSSH client.
    pub program: PathBuf,
    /// `ssh` processes at once (applies and commands together).
    pub parallel: usize,
    /// `ConnectTimeout` (whole seconds, at least 1).
    pub connect_timeout: Duration,
    /// `ServerAliveInterval` (whole seconds, at least 1; `ServerAliveCountMax` is 3).
    pub server_alive_interval: Duration,
    /// Overall time for one host's apply (connecting included).
    pub host_timeout: Duration,
}

impl Default for OpenSshOptions {
    fn default() -> Self {
        Self {
            program: PathBuf::from("ssh"),
            parallel: 8,
            connect_timeout: Duration::from_secs(10),
            server_alive_interval: Duration::from_secs(15),
            host_timeout: Duration::from_secs(600),
        }
    }
}

/// Applies plans and runs commands with the OpenSSH client: one `ssh` process per apply or
/// command, the runner program on its stdin (the same program [`SshExecutor`] and
/// [`LocalExecutor`] run, so the same semantics), at most [`OpenSshOptions::parallel`] at
/// once. Host keys, keys, agent and everything else come from the user's SSH configuration,
/// as for libvirt's `qemu+ssh://`; `BatchMode` is on, so nothing ever prompts.
///
/// [`SshExecutor`]: crate::SshExecutor
/// [`LocalExecutor`]: crate::LocalExecutor
#[derive(Debug)]
pub struct OpenSshExecutor {
    opts: OpenSshOptions,
    hosts: HashMap<String, OpenSshTarget>,
    parallel: Semaphore,
}

impl OpenSshExecutor {
    /// An executor for `hosts` (inventory name → target), with default options.
    pub fn new(hosts: impl IntoIterator<Item = (String, OpenSshTarget)>) -> Self {
        let opts = OpenSshOptions::default();
        Self {
            parallel: Semaphore::new(opts.parallel.max(1)),
            hosts: hosts.into_iter().collect(),
            opts,
        }
    }

    /// Uses `opts` (builder style).
    #[must_use]
    pub fn with_options(mut self, opts: OpenSshOptions) -> Self {
        self.parallel = Semaphore::new(opts.parallel.max(1));
        self.opts = opts;
        self
    }

    /// The target of host `name`, if the executor has it.
    pub fn target(&self, name: &str) -> Option<&OpenSshTarget> {
        self.hosts.get(name)
    }

    fn host(&self, name: &str) -> Result<&OpenSshTarget, HostError> {
        self.hosts.get(name).ok_or_else(|| HostError::UnknownHost {
            host: name.to_owned(),
        })
    }

    /// `ssh`'s arguments to run `command` (one remote shell line) on `t`.
    fn args(&self, t: &OpenSshTarget, command: &str) -> Vec<OsString> {
        let secs = |d: Duration| d.as_secs().max(1);
        let mut a: Vec<OsString> = [
            // No pty, no escape character (the program on stdin is binary), no agent or X11
            // forwarding and no port forwardings from the config: a plain exec channel.
            "-T",
            "-e",
            "none",
            "-a",
            "-x",
            "-o",
            "ClearAllForwardings=yes",
            // Never prompt (password, passphrase, unknown host key): fail instead.
            "-o",
            "BatchMode=yes",
            // ssh's warnings ("Permanently added …") stay out of stderr; errors stay in.
            "-o",
            "LogLevel=ERROR",
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        a.push("-o".into());
        a.push(format!("ConnectTimeout={}", secs(self.opts.connect_timeout)).into());
        a.push("-o".into());
        a.push(
            format!(
                "ServerAliveInterval={}",
                secs(self.opts.server_alive_interval)
            )
            .into(),
        );
        a.push("-o".into());
        a.push("ServerAliveCountMax=3".into());
        if let Some(p) = t.port {
            a.push("-p".into());
            a.push(p.to_string().into());
        }
        if let Some(u) = &t.user {
            a.push("-l".into());
            a.push(u.into());
        }
        if let Some(k) = &t.keyfile {
            a.push("-i".into());
            a.push(k.into());
        }
        a.push("--".into());
        a.push((&t.host).into());
        a.push(command.into());
        a
    }

    /// Runs `ssh` for `command` on `t`, feeding `input` (or nothing) to its stdin.
    async fn ssh(
        &self,
        name: &str,
        t: &OpenSshTarget,
        command: &str,
        input: Option<&[u8]>,
    ) -> Result<CommandOutput, HostError> {
        let failed = |what: &str, e: std::io::Error| HostError::Ssh {
            host: name.to_owned(),
            detail: format!("{}: {what}: {e}", self.opts.program.display()),
        };
        let _slot = self.parallel.acquire().await.map_err(|_| HostError::Ssh {
            host: name.to_owned(),
            detail: "process limiter closed".to_owned(),
        })?;
        let mut cmd = Command::new(&self.opts.program);
        cmd.args(self.args(t, command))
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let started = std::time::Instant::now();
        let mut child = cmd.spawn().map_err(|e| failed("cannot start", e))?;
        let (out, err) = communicate(&mut child, input)
            .await
            .map_err(|e| failed("reading its output", e))?;
        let status = child
            .wait()
            .await
            .map_err(|e| failed("waiting for it", e))?;
        tracing::debug!(host = name, to = %t.destination(), status = ?status.code(), ms = started.elapsed().as_millis() as u64, "ssh finished");
        Ok(CommandOutput {
            status: status.code().and_then(|c| u32::try_from(c).ok()),
            stdout: out,
            stderr: err,
        })
    }

    /// `ssh` failed itself (exit 255 before the remote side ran): which host, and ssh's word.
    fn unreachable(name: &str, t: &OpenSshTarget, stderr: &[u8]) -> HostError {
        let said = String::from_utf8_lossy(stderr);
        let said: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
        let said = said[said.len().saturating_sub(20)..].join("\n");
        HostError::Ssh {
            host: name.to_owned(),
            detail: if said.is_empty() {
                format!(
                    "{}: connection or authentication failed (ssh exit 255, nothing on stderr)",
                    t.destination()
                )
            } else {
                format!(
                    "{}: connection or authentication failed (ssh exit 255): {said}",
                    t.destination()
                )
            },
        }
    }

    async fn apply_inner(&self, plan: &HostPlan, mode: Mode) -> Result<HostReport, HostError> {
        let program = compile(plan, mode, &Target::default())?;
        let t = self.host(&plan.host)?;
        tracing::debug!(host = %plan.host, to = %t.destination(), steps = plan.steps.len(), bytes = program.len(), "openssh runner");
        let out = self
            .ssh(&plan.host, t, RUNNER_COMMAND, Some(&program))
            .await?;
        match parse(plan, mode, &out.stdout, &out.stderr, out.status) {
            // The runner never reported: ssh's own failure, unless the runner spoke at all.
            Err(HostError::Runner { .. })
                if out.status == Some(SSH_FAILED)
                    && !out.stdout.windows(6).any(|w| w == b"@@HPC ") =>
            {
                Err(Self::unreachable(&plan.host, t, &out.stderr))
            }
            r => r,
        }
    }
}

/// The shell line of [`OpenSshExecutor::run`]: the marker to stderr, then the quoted argv.
fn run_line(argv: &[String]) -> String {
    format!(
        "printf '%s\\n' {} >&2; {}",
        String::from_utf8_lossy(STARTED.strip_suffix(b"\n").unwrap_or(STARTED)),
        crate::quote::quote_argv(argv)
    )
}

/// Removes the first [`STARTED`] line from `stderr`; whether it was there.
fn strip_started(stderr: &mut Vec<u8>) -> bool {
    let at = stderr
        .windows(STARTED.len())
        .enumerate()
        .find(|&(i, w)| w == STARTED && (i == 0 || stderr[i - 1] == b'\n'))
        .map(|(i, _)| i);
    match at {
        Some(i) => {
            stderr.drain(i..i + STARTED.len());
            true
        }
        None => false,
    }
}

impl Executor for OpenSshExecutor {
    async fn apply_host(&self, plan: &HostPlan, mode: Mode) -> Result<HostReport, HostError> {
        let limit = self.opts.host_timeout;
        tokio::time::timeout(limit, self.apply_inner(plan, mode))
            .await
            .unwrap_or_else(|_| {
                Err(HostError::Timeout {
                    host: plan.host.clone(),
                    secs: limit.as_secs(),
                })
            })
    }

    async fn run(&self, host: &str, argv: &[String]) -> Result<CommandOutput, HostError> {
        let t = self.host(host)?;
        let mut out = self.ssh(host, t, &run_line(argv), None).await?;
        let started = strip_started(&mut out.stderr);
        if out.status == Some(SSH_FAILED) && !started {
            return Err(Self::unreachable(host, t, &out.stderr));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests panic on failure

    use super::*;

    fn parse(uri: &str) -> OpenSshTarget {
        OpenSshTarget::from_libvirt_uri(uri).unwrap_or_else(|e| panic!("{uri}: {e}"))
    }

    fn target(
        user: Option<&str>,
        host: &str,
        port: Option<u16>,
        key: Option<&str>,
    ) -> OpenSshTarget {
        OpenSshTarget {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
            keyfile: key.map(PathBuf::from),
        }
    }

    #[test]
    fn uri_with_everything() {
        assert_eq!(
            parse("qemu+ssh://root@10.0.0.2:2222/system?keyfile=/path/id_ed25519&no_verify=1"),
            target(
                Some("root"),
                "10.0.0.2",
                Some(2222),
                Some("/path/id_ed25519")
            )
        );
    }

    #[test]
    fn uri_minimal_and_variants() {
        assert_eq!(
            parse("qemu+ssh://hv1/system"),
            target(None, "hv1", None, None)
        );
        assert_eq!(parse("qemu+ssh://hv1"), target(None, "hv1", None, None));
        assert_eq!(
            parse("QEMU+SSH://hv1:/system"),
            target(None, "hv1", None, None)
        );
        assert_eq!(
            parse("lxc+ssh://admin@hv.example.org/?no_tty=1"),
            target(Some("admin"), "hv.example.org", None, None)
        );
        assert_eq!(
            parse("qemu+ssh://root@[fd00::2]:22/system"),
            target(Some("root"), "fd00::2", Some(22), None)
        );
        assert_eq!(
            parse("qemu+ssh://[fd00::2]/system"),
            target(None, "fd00::2", None, None)
        );
        // Percent-decoded as libvirt does, `+` kept, `;` separates, the last keyfile wins,
        // an empty keyfile is none, a fragment is ignored.
        assert_eq!(
            parse("qemu+ssh://a%2Eb@h/system?keyfile=/k%20ey+1;mode=legacy#x"),
            target(Some("a.b"), "h", None, Some("/k ey+1"))
        );
        assert_eq!(
            parse("qemu+ssh://h/system?keyfile=/a&keyfile=/b"),
            target(None, "h", None, Some("/b"))
        );
        assert_eq!(
            parse("qemu+ssh://h/system?keyfile="),
            target(None, "h", None, None)
        );
        assert_eq!(
            parse("qemu+ssh://h/system?keyfile"),
            target(None, "h", None, None)
        );
    }

    #[test]
    fn non_ssh_uris_are_refused() {
        for uri in [
            "qemu:///system",
            "qemu+tls://hv1/system",
            "qemu+libssh://root@hv1/system",
            "qemu+unix:///system",
            "ssh://hv1",
        ] {
            assert_eq!(
                OpenSshTarget::from_libvirt_uri(uri),
                Err(UriError::NotSsh {
                    uri: uri.to_owned()
                }),
                "{uri}"
            );
        }
        let e = OpenSshTarget::from_libvirt_uri("qemu:///system").unwrap_err();
        assert!(e.to_string().contains("ssh transport"), "{e}");
    }

    #[test]
    fn malformed_uris_are_refused() {
        for (uri, why) in [
            ("qemu+ssh:///system", "names no host"),
            ("qemu+ssh://root@/system", "names no host"),
            ("qemu+ssh://h:0/system", "port \"0\""),
            ("qemu+ssh://h:65536/system", "port \"65536\""),
            ("qemu+ssh://h:+22/system", "port \"+22\""),
            ("qemu+ssh://h:ssh/system", "port \"ssh\""),
            ("qemu+ssh://[fd00::2/system", "closing `]`"),
            ("qemu+ssh://[fd00::2]x/system", "after the host"),
            ("qemu+ssh://-oProxyCommand=x/system", "starts with `-`"),
            ("qemu+ssh://-l@h/system", "starts with `-`"),
            ("qemu+ssh://a%20b/system", "whitespace"),
            ("qemu+ssh://h%0a/system", "control"),
            ("qemu+ssh://h%zz/system", "bad percent escape"),
            ("qemu+ssh://h%ff/system", "UTF-8"),
            ("qemu+ssh://h/system?keyfile=/a%00b", "NUL"),
            ("hv1", "no `://`"),
        ] {
            match OpenSshTarget::from_libvirt_uri(uri) {
                Err(e @ UriError::Invalid { .. }) => {
                    assert!(e.to_string().contains(why), "{uri}: {e}");
                }
                other => panic!("{uri}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_password_is_refused_and_never_shown() {
        let e = OpenSshTarget::from_libvirt_uri("qemu+ssh://root:s3cret@h/system").unwrap_err();
        let text = e.to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("root:***@h/system"), "{text}");
        assert!(text.contains("password"), "{text}");
    }

    fn args(t: &OpenSshTarget, command: &str) -> Vec<String> {
        OpenSshExecutor::new([])
            .args(t, command)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    const COMMON: [&str; 19] = [
        "-T",
        "-e",
        "none",
        "-a",
        "-x",
        "-o",
        "ClearAllForwardings=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        "ServerAliveCountMax=3",
        "--",
        "hv1",
    ];

    #[test]
    fn argv_of_a_bare_host() {
        let mut want = COMMON.to_vec();
        want.push("/bin/sh -s");
        assert_eq!(args(&target(None, "hv1", None, None), RUNNER_COMMAND), want);
    }

    #[test]
    fn argv_with_port_user_and_key() {
        let t = parse("qemu+ssh://root@hv1:2222/system?keyfile=/srv/k%20ey&no_verify=1");
        let got = args(&t, "/bin/sh -s");
        let mut want = COMMON[..17].to_vec();
        want.extend([
            "-p",
            "2222",
            "-l",
            "root",
            "-i",
            "/srv/k ey",
            "--",
            "hv1",
            "/bin/sh -s",
        ]);
        assert_eq!(got, want);
        assert!(!got.iter().any(|a| a.contains("StrictHostKeyChecking")));
    }

    #[test]
    fn timeouts_are_whole_seconds_of_at_least_one() {
        let exec = OpenSshExecutor::new([]).with_options(OpenSshOptions {
            connect_timeout: Duration::from_millis(300),
            server_alive_interval: Duration::from_millis(2500),
            ..OpenSshOptions::default()
        });
        let a: Vec<String> = exec
            .args(&target(None, "h", None, None), "true")
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert!(a.contains(&"ConnectTimeout=1".to_owned()), "{a:?}");
        assert!(a.contains(&"ServerAliveInterval=2".to_owned()), "{a:?}");
    }

    #[test]
    fn run_line_marks_the_start_then_runs_the_quoted_argv() {
        let argv = ["printf".to_owned(), "%s\n".to_owned(), "a b'c".to_owned()];
        assert_eq!(
            run_line(&argv),
            "printf '%s\\n' @@HPC-started >&2; printf '%s\n' 'a b'\\''c'"
        );
    }

    #[test]
    fn the_start_marker_is_stripped_once() {
        let mut err = b"warning\n@@HPC-started\nboom\n@@HPC-started\n".to_vec();
        assert!(strip_started(&mut err));
        assert_eq!(err, b"warning\nboom\n@@HPC-started\n");
        let mut err = b"x@@HPC-started\n".to_vec();
        assert!(!strip_started(&mut err));
        let mut err = b"Host key verification failed.\r\n".to_vec();
        assert!(!strip_started(&mut err));
    }

    #[test]
    fn destination_for_messages() {
        assert_eq!(target(None, "h", None, None).destination(), "h");
        assert_eq!(
            target(Some("root"), "fd00::2", Some(2222), None).destination(),
            "root@[fd00::2]:2222"
        );
    }

    /// A fake `ssh` in `dir` whose script is `body` (`"$@"` is what the executor passes).
    fn fake_ssh(dir: &std::path::Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("ssh");
        fs_err::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn exec_with(program: PathBuf) -> OpenSshExecutor {
        OpenSshExecutor::new([("hv1".to_owned(), parse("qemu+ssh://root@10.0.0.2/system"))])
            .with_options(OpenSshOptions {
                program,
                ..OpenSshOptions::default()
            })
    }

    #[tokio::test]
    async fn exit_255_without_the_marker_is_ssh_failing() {
        let dir = tempfile::tempdir().unwrap();
        let exec = exec_with(fake_ssh(
            dir.path(),
            "echo 'Host key verification failed.' >&2; exit 255",
        ));
        let e = exec.run("hv1", &["true".to_owned()]).await.unwrap_err();
        assert!(
            matches!(&e, HostError::Ssh { host, .. } if host == "hv1"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "host hv1: ssh: root@10.0.0.2: connection or authentication failed (ssh exit 255): Host key verification failed."
        );
        let e = exec
            .apply_host(&HostPlan::new("hv1"), Mode::APPLY)
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("Host key verification failed."),
            "{e}"
        );
    }

    #[tokio::test]
    async fn run_runs_the_line_in_a_shell_and_keeps_its_255() {
        let dir = tempfile::tempdir().unwrap();
        // The fake runs the last argument, the remote command, in a local shell.
        let exec = exec_with(fake_ssh(
            dir.path(),
            "for a; do c=$a; done; exec /bin/sh -c \"$c\"",
        ));
        let out = exec
            .run(
                "hv1",
                &[
                    "sh".into(),
                    "-c".into(),
                    "echo \"$0\"; echo e >&2; exit 255".into(),
                    "a b'c".into(),
                ],
            )
            .await
            .unwrap();
        assert_eq!(out.status, Some(255));
        assert_eq!(out.stdout, b"a b'c\n");
        assert_eq!(out.stderr, b"e\n");
        let e = exec.run("nope", &["true".into()]).await.unwrap_err();
        assert!(matches!(e, HostError::UnknownHost { host } if host == "nope"));
    }

    #[tokio::test]
    async fn apply_feeds_the_runner_to_the_remote_shell() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs_err::create_dir(&root).unwrap();
        let exec = exec_with(fake_ssh(
            dir.path(),
            "for a; do c=$a; done; exec /bin/sh -c \"$c\"",
        ));
        let file = root.join("f");
        let plan = HostPlan::new("hv1").step(
            "f",
            crate::EnsureFile::new(file.to_string_lossy().as_ref(), "x\n", 0o644),
        );
        let r = exec.apply_host(&plan, Mode::APPLY).await.unwrap();
        assert_eq!(r.changed(), 1, "{r:?}");
        assert_eq!(fs_err::read(&file).unwrap(), b"x\n");
        let r = exec.apply_host(&plan, Mode::APPLY).await.unwrap();
        assert_eq!(r.changed(), 0, "{r:?}");
    }

    #[tokio::test]
    async fn a_missing_ssh_is_named() {
        let e = exec_with(PathBuf::from("/nonexistent/ssh"))
            .run("hv1", &["true".into()])
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("host hv1: ssh: /nonexistent/ssh: cannot start: "),
            "{e}"
        );
    }
}
