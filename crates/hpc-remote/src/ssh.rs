//! The SSH executor: russh + tokio, one connection per host, pinned host keys.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect};
use tokio::sync::Semaphore;

use crate::executor::{CommandOutput, Executor, Mode};
use crate::known_hosts::{self, Pin};
use crate::outcome::parse;
use crate::report::HostReport;
use crate::script::{Target, compile};
use crate::{HostError, HostPlan};

/// How the runner is started on the target: POSIX sh reading the program from stdin.
const RUNNER_COMMAND: &str = "/bin/sh -s";

/// One SSH host: inventory name and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshHost {
    /// Inventory name (matches [`HostPlan::host`] and the known_hosts entry).
    pub name: String,
    /// IP address or DNS name to connect to.
    pub addr: String,
    /// TCP port.
    pub port: u16,
}

impl SshHost {
    /// Host `name` at `addr`, port 22.
    pub fn new(name: impl Into<String>, addr: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            addr: addr.into(),
            port: 22,
        }
    }

    /// Sets the port (builder style).
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The names its known_hosts entries may use: `name`, and `addr` when it differs.
    fn names(&self) -> Vec<&str> {
        let mut names = vec![self.name.as_str()];
        if self.addr != self.name {
            names.push(self.addr.as_str());
        }
        names
    }

    /// known_hosts patterns for an entry of this host (its names; `[x]:port` off port 22).
    fn patterns(&self) -> Vec<String> {
        self.names()
            .into_iter()
            .map(|n| {
                if self.port == 22 {
                    n.to_owned()
                } else {
                    format!("[{n}]:{}", self.port)
                }
            })
            .collect()
    }
}

/// Options of the SSH executor. Defaults: user `root`, 8 hosts at once, 10 channels per
/// connection (sshd's `MaxSessions`), 4 connect attempts of at most 10 s with backoff from
/// 200 ms, 10 minutes per host.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// Remote user.
    pub user: String,
    /// Private key file (OpenSSH format, ed25519 recommended; unencrypted).
    pub key: PathBuf,
    /// Pinned host keys (OpenSSH known_hosts format), read with russh's parser: plain and
    /// hashed (`|1|…`, `HashKnownHosts yes`) host fields, `[host]:port` off port 22, an entry
    /// for the host's name or its address. A key listed `@revoked` is refused; wildcard and
    /// negated host patterns are not matched (such a host counts as unknown), and a line
    /// whose fields are separated by tabs or several spaces is refused rather than misread.
    /// When `None`, keys are trusted on first use and recorded in `state_dir/known_hosts`.
    pub known_hosts: Option<PathBuf>,
    /// Directory for the trust-on-first-use file.
    pub state_dir: PathBuf,
    /// Hosts worked on at once.
    pub parallel: usize,
    /// Channels open at once on one connection.
    pub max_sessions: usize,
    /// Timeout of one connect attempt (TCP + handshake + auth).
    pub connect_timeout: Duration,
    /// Connect attempts before a host counts as unreachable.
    pub connect_attempts: u32,
    /// First retry delay; doubled after each attempt.
    pub retry_backoff: Duration,
    /// Overall time for one host's apply (including connecting).
    pub host_timeout: Duration,
}

impl SshOptions {
    /// Defaults with the given key and state directory.
    pub fn new(key: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            user: "root".to_owned(),
            key: key.into(),
            known_hosts: None,
            state_dir: state_dir.into(),
            parallel: 8,
            max_sessions: 10,
            connect_timeout: Duration::from_secs(10),
            connect_attempts: 4,
            retry_backoff: Duration::from_millis(200),
            host_timeout: Duration::from_secs(600),
        }
    }

    fn pin_file(&self) -> PathBuf {
        self.known_hosts
            .clone()
            .unwrap_or_else(|| self.state_dir.join("known_hosts"))
    }
}

struct Conn {
    handle: Handle<Client>,
    sessions: Semaphore,
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<Conn>>>>;

/// Applies plans over SSH (russh): one connection per host, reused for every channel;
/// at most `parallel` hosts at once; host keys pinned.
pub struct SshExecutor {
    opts: SshOptions,
    hosts: HashMap<String, SshHost>,
    key: Arc<PrivateKey>,
    parallel: Semaphore,
    conns: Mutex<HashMap<String, Slot>>,
    pin_lock: Arc<Mutex<()>>,
}

impl std::fmt::Debug for SshExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshExecutor")
            .field("opts", &self.opts)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

/// The private key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("cannot load private key {}: {reason}", path.display())]
pub struct KeyError {
    /// Key file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

impl SshExecutor {
    /// An executor for `hosts`; loads the private key now.
    pub fn new(
        opts: SshOptions,
        hosts: impl IntoIterator<Item = SshHost>,
    ) -> Result<Self, KeyError> {
        let key_err = |reason: String| KeyError {
            path: opts.key.clone(),
            reason,
        };
        let text = fs_err::read_to_string(&opts.key).map_err(|e| key_err(e.to_string()))?;
        let key =
            russh::keys::decode_secret_key(&text, None).map_err(|e| key_err(e.to_string()))?;
        Ok(Self {
            parallel: Semaphore::new(opts.parallel.max(1)),
            hosts: hosts.into_iter().map(|h| (h.name.clone(), h)).collect(),
            key: Arc::new(key),
            conns: Mutex::new(HashMap::new()),
            pin_lock: Arc::new(Mutex::new(())),
            opts,
        })
    }

    /// Closes every open connection.
    pub async fn close(&self) {
        let slots: Vec<Slot> = match self.conns.lock() {
            Ok(mut m) => m.drain().map(|(_, v)| v).collect(),
            Err(_) => return,
        };
        for slot in slots {
            if let Some(conn) = slot.lock().await.take() {
                let _ = conn
                    .handle
                    .disconnect(Disconnect::ByApplication, "", "en")
                    .await;
            }
        }
    }

    fn host(&self, name: &str) -> Result<&SshHost, HostError> {
        self.hosts.get(name).ok_or_else(|| HostError::UnknownHost {
            host: name.to_owned(),
        })
    }

    /// The host's connection, opened on first use (and again if it was closed).
    async fn conn(&self, host: &SshHost) -> Result<Arc<Conn>, HostError> {
        let slot = {
            let mut m = self.conns.lock().map_err(|_| HostError::Ssh {
                host: host.name.clone(),
                detail: "connection table poisoned".to_owned(),
            })?;
            m.entry(host.name.clone()).or_default().clone()
        };
        let mut guard = slot.lock().await;
        if let Some(c) = guard.as_ref()
            && !c.handle.is_closed()
        {
            return Ok(c.clone());
        }
        let conn = Arc::new(self.connect(host).await?);
        *guard = Some(conn.clone());
        Ok(conn)
    }

    async fn connect(&self, host: &SshHost) -> Result<Conn, HostError> {
        let config = Arc::new(client::Config {
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(15)),
            nodelay: true,
            ..Default::default()
        });
        let addr = format!("{}:{}", host.addr, host.port);
        let mut last = String::new();
        let mut delay = self.opts.retry_backoff;
        let attempts = self.opts.connect_attempts.max(1);
        for attempt in 1..=attempts {
            let verdict = Arc::new(Mutex::new(None));
            let handler = Client {
                host: host.clone(),
                file: self.opts.pin_file(),
                tofu: self.opts.known_hosts.is_none(),
                verdict: verdict.clone(),
                lock: self.pin_lock.clone(),
            };
            let started = std::time::Instant::now();
            let fut = client::connect(config.clone(), (host.addr.as_str(), host.port), handler);
            match tokio::time::timeout(self.opts.connect_timeout, fut).await {
                Ok(Ok(mut handle)) => {
                    tracing::debug!(host = %host.name, attempt, ms = started.elapsed().as_millis() as u64, "ssh connected");
                    self.authenticate(host, &mut handle).await?;
                    return Ok(Conn {
                        handle,
                        sessions: Semaphore::new(self.opts.max_sessions.max(1)),
                    });
                }
                Ok(Err(e)) => {
                    if let Some(err) = verdict.lock().ok().and_then(|mut v| v.take()) {
                        return Err(err);
                    }
                    last = e.to_string();
                }
                Err(_) => last = format!("timed out after {:?}", self.opts.connect_timeout),
            }
            tracing::debug!(host = %host.name, attempt, error = %last, "ssh connect failed");
            if attempt < attempts {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        Err(HostError::Unreachable {
            host: host.name.clone(),
            addr,
            attempts,
            last,
        })
    }

    async fn authenticate(
        &self,
        host: &SshHost,
        handle: &mut Handle<Client>,
    ) -> Result<(), HostError> {
        let ssh = |e: russh::Error| HostError::Ssh {
            host: host.name.clone(),
            detail: e.to_string(),
        };
        let hash = if self.key.algorithm().is_rsa() {
            handle
                .best_supported_rsa_hash()
                .await
                .map_err(ssh)?
                .flatten()
        } else {
            None
        };
        let res = handle
            .authenticate_publickey(
                self.opts.user.clone(),
                PrivateKeyWithHashAlg::new(self.key.clone(), hash),
            )
            .await
            .map_err(ssh)?;
        if res.success() {
            Ok(())
        } else {
            Err(HostError::AuthRefused {
                host: host.name.clone(),
                user: self.opts.user.clone(),
            })
        }
    }

    /// Runs `command` in one exec channel, feeding `input` to its stdin.
    async fn exec(
        &self,
        host: &SshHost,
        command: &str,
        input: &[u8],
    ) -> Result<CommandOutput, HostError> {
        let conn = self.conn(host).await?;
        let ssh = |e: russh::Error| HostError::Ssh {
            host: host.name.clone(),
            detail: e.to_string(),
        };
        let _permit = conn.sessions.acquire().await.map_err(|_| HostError::Ssh {
            host: host.name.clone(),
            detail: "session limiter closed".to_owned(),
        })?;
        let channel = conn.handle.channel_open_session().await.map_err(ssh)?;
        channel.exec(true, command).await.map_err(ssh)?;
        let (mut read, write) = channel.split();
        let writer = async {
            write.data(input).await?;
            write.eof().await
        };
        let reader = async {
            let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), None);
            while let Some(msg) = read.wait().await {
                match msg {
                    ChannelMsg::Data { data } => out.extend_from_slice(&data),
                    ChannelMsg::ExtendedData { data, ext: 1 } => err.extend_from_slice(&data),
                    ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                    ChannelMsg::Close => break,
                    _ => {}
                }
            }
            CommandOutput {
                status,
                stdout: out,
                stderr: err,
            }
        };
        let (w, out) = tokio::join!(writer, reader);
        // A runner that stops reading early (e.g. mktemp failed) closes the channel under
        // the writer; its report says why, so a write error only matters without one.
        if let Err(e) = w
            && out.status.is_none()
        {
            return Err(ssh(e));
        }
        Ok(out)
    }

    async fn apply_inner(&self, plan: &HostPlan, mode: Mode) -> Result<HostReport, HostError> {
        let program = compile(plan, mode, &Target::default())?;
        let host = self.host(&plan.host)?;
        let _slot = self.parallel.acquire().await.map_err(|_| HostError::Ssh {
            host: host.name.clone(),
            detail: "host limiter closed".to_owned(),
        })?;
        let started = std::time::Instant::now();
        let out = self.exec(host, RUNNER_COMMAND, &program).await?;
        tracing::debug!(host = %host.name, bytes = program.len(), ms = started.elapsed().as_millis() as u64, "runner finished");
        parse(plan, mode, &out.stdout, &out.stderr, out.status)
    }
}

impl Executor for SshExecutor {
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
        let h = self.host(host)?;
        let line = crate::quote::quote_argv(argv);
        self.exec(h, &line, &[]).await
    }
}

/// The russh handler: verifies the server key against the pin file.
struct Client {
    host: SshHost,
    file: PathBuf,
    tofu: bool,
    verdict: Arc<Mutex<Option<HostError>>>,
    lock: Arc<Mutex<()>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            self.refuse(HostError::Ssh {
                host: self.host.name.clone(),
                detail: "server offered a host certificate; only pinned plain keys are accepted"
                    .to_owned(),
            });
            return Ok(false);
        };
        match self.verify(key) {
            Ok(()) => Ok(true),
            Err(e) => {
                self.refuse(e);
                Ok(false)
            }
        }
    }
}

impl Client {
    fn refuse(&self, e: HostError) {
        tracing::warn!(host = %self.host.name, error = %e, "host key refused");
        if let Ok(mut v) = self.verdict.lock() {
            *v = Some(e);
        }
    }

    fn verify(&self, key: &PublicKey) -> Result<(), HostError> {
        let io = |source| HostError::KnownHostsIo {
            host: self.host.name.clone(),
            file: self.file.clone(),
            source,
        };
        let _guard = self
            .lock
            .lock()
            .map_err(|_| io(std::io::Error::other("lock poisoned")))?;
        let names = self.host.names();
        let changed = |line| HostError::HostKeyChanged {
            host: self.host.name.clone(),
            algorithm: key.algorithm().to_string(),
            file: self.file.clone(),
            line,
        };
        match known_hosts::check(&self.file, &names, self.host.port, key).map_err(io)? {
            Pin::Known => Ok(()),
            Pin::Changed { line } => Err(changed(line)),
            Pin::Revoked { line } => Err(HostError::HostKeyRevoked {
                host: self.host.name.clone(),
                algorithm: key.algorithm().to_string(),
                file: self.file.clone(),
                line,
            }),
            Pin::Unknown if !self.tofu => Err(HostError::UnknownHostKey {
                host: self.host.name.clone(),
                file: self.file.clone(),
            }),
            Pin::Unknown => {
                known_hosts::learn(&self.file, &self.host.patterns(), key).map_err(io)?;
                tracing::info!(host = %self.host.name, file = %self.file.display(), "host key recorded (trust on first use)");
                Ok(())
            }
        }
    }
}
