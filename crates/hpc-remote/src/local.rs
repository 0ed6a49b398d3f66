//! Applying plans to this machine, optionally under a root directory.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::process::Command;

use crate::child::communicate;
use crate::executor::{CommandOutput, Executor, Mode};
use crate::outcome::parse;
use crate::report::HostReport;
use crate::script::{Target, compile};
use crate::{HostError, HostPlan};

/// Applies plans to the local machine by piping the same runner program the SSH executor
/// sends into `/bin/sh -s`. Every plan path is prefixed with `root` (when set), so tests
/// can work in a temporary directory; services and mounts still call the (configurable)
/// `systemctl` and `mount` programs.
#[derive(Debug, Clone, Default)]
pub struct LocalExecutor {
    root: Option<String>,
    systemctl: Option<String>,
    mount: Option<String>,
    env: Vec<(String, String)>,
}

impl LocalExecutor {
    /// Works on `/`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Works under `root`: plan path `/etc/x` becomes `ROOT/etc/x`.
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        let root = root
            .into()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_owned();
        Self {
            root: Some(root),
            ..Self::default()
        }
    }

    /// Uses `program` instead of `systemctl` (builder style).
    #[must_use]
    pub fn systemctl(mut self, program: impl Into<String>) -> Self {
        self.systemctl = Some(program.into());
        self
    }

    /// Uses `program` instead of `mount` (builder style).
    #[must_use]
    pub fn mount_program(mut self, program: impl Into<String>) -> Self {
        self.mount = Some(program.into());
        self
    }

    /// Sets an environment variable for the runner (builder style; tests use
    /// `HPC_REMOTE_TEST_FAIL_BEFORE_RENAME=<path>` to inject a failure).
    #[must_use]
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    fn target(&self) -> Target<'_> {
        let d = Target::default();
        Target {
            root: self.root.as_deref().unwrap_or(d.root),
            systemctl: self.systemctl.as_deref().unwrap_or(d.systemctl),
            mount: self.mount.as_deref().unwrap_or(d.mount),
        }
    }

    async fn sh(
        &self,
        host: &str,
        command: &[&str],
        input: Vec<u8>,
    ) -> Result<CommandOutput, HostError> {
        let spawn = |source| HostError::Spawn {
            host: host.to_owned(),
            source,
        };
        let mut cmd = Command::new(command[0]);
        cmd.args(&command[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(spawn)?;
        let (out, err) = communicate(&mut child, Some(&input)).await.map_err(spawn)?;
        let status = child.wait().await.map_err(spawn)?;
        Ok(CommandOutput {
            status: status.code().and_then(|c| u32::try_from(c).ok()),
            stdout: out,
            stderr: err,
        })
    }
}

impl Executor for LocalExecutor {
    async fn apply_host(&self, plan: &HostPlan, mode: Mode) -> Result<HostReport, HostError> {
        let program = compile(plan, mode, &self.target())?;
        tracing::debug!(host = %plan.host, steps = plan.steps.len(), bytes = program.len(), "local runner");
        let out = self.sh(&plan.host, &["/bin/sh", "-s"], program).await?;
        parse(plan, mode, &out.stdout, &out.stderr, out.status)
    }

    async fn run(&self, host: &str, argv: &[String]) -> Result<CommandOutput, HostError> {
        let line = crate::quote::quote_argv(argv);
        self.sh(host, &["/bin/sh", "-c", &line], Vec::new()).await
    }
}
