//! The host-step vocabulary: plain data that planners produce and executors apply.

use std::fmt;

/// One host's work: its name and its steps, applied in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPlan {
    /// Host name as the executor knows it (inventory name, not necessarily a DNS name).
    pub host: String,
    /// Steps in the order they are applied. A failed step stops the host; later steps are skipped.
    pub steps: Vec<Step>,
}

impl HostPlan {
    /// An empty plan for `host`.
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            steps: Vec::new(),
        }
    }

    /// Appends a step (builder style).
    #[must_use]
    pub fn step(mut self, id: impl Into<String>, kind: impl Into<StepKind>) -> Self {
        self.steps.push(Step {
            id: id.into(),
            kind: kind.into(),
        });
        self
    }
}

/// One named step. Ids are unique within a host; commands and services name earlier
/// steps by id to run "only when one of these changed" (like an Ansible handler).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Unique id within the host plan, used in reports and triggers.
    pub id: String,
    /// What the step ensures.
    pub kind: StepKind,
}

/// What a step ensures on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    /// A directory with mode and owner.
    Directory(EnsureDirectory),
    /// A regular file with exact content, mode and owner; written atomically.
    File(EnsureFile),
    /// A command (argv), always or only when named earlier steps changed.
    Command(RunCommand),
    /// A systemd service's enabled/active state, restarted when named steps changed.
    Service(EnsureService),
    /// An `/etc/fstab` line, and optionally that it is mounted.
    Mount(EnsureMount),
}

impl StepKind {
    /// Short label of the kind, for reports.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Directory(_) => "directory",
            Self::File(_) => "file",
            Self::Command(_) => "command",
            Self::Service(_) => "service",
            Self::Mount(_) => "mount",
        }
    }
}

/// Ownership of a path: user and group names, resolved on the target. `None` leaves the
/// current value alone (new files then belong to the connecting user).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    /// User name (or numeric uid).
    pub user: Option<String>,
    /// Group name (or numeric gid).
    pub group: Option<String>,
}

impl Owner {
    /// Leave ownership as it is.
    pub fn keep() -> Self {
        Self::default()
    }

    /// User and group by name.
    pub fn new(user: impl Into<String>, group: impl Into<String>) -> Self {
        Self {
            user: Some(user.into()),
            group: Some(group.into()),
        }
    }
}

/// Ensure a directory exists (parents are created with mode 0755) with mode and owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnsureDirectory {
    /// Absolute path.
    pub path: String,
    /// Permission bits, e.g. `0o750`.
    pub mode: u32,
    /// Owner and group.
    pub owner: Owner,
}

impl EnsureDirectory {
    /// Directory `path` with `mode`, ownership kept.
    pub fn new(path: impl Into<String>, mode: u32) -> Self {
        Self {
            path: path.into(),
            mode,
            owner: Owner::keep(),
        }
    }

    /// Sets the owner (builder style).
    #[must_use]
    pub fn owner(mut self, owner: Owner) -> Self {
        self.owner = owner;
        self
    }
}

impl From<EnsureDirectory> for StepKind {
    fn from(v: EnsureDirectory) -> Self {
        Self::Directory(v)
    }
}

/// Ensure a regular file has exactly `content`, `mode` and owner. The parent directory
/// must exist. A changed file is written to a temporary file in the same directory,
/// fsynced, chmod/chowned and renamed over the old one; an unchanged file is not touched.
#[derive(Clone, PartialEq, Eq)]
pub struct EnsureFile {
    /// Absolute path.
    pub path: String,
    /// Exact content.
    pub content: Vec<u8>,
    /// Permission bits, e.g. `0o600`.
    pub mode: u32,
    /// Owner and group.
    pub owner: Owner,
    /// Secret content is never logged, diffed or shown in errors.
    pub secret: bool,
}

impl EnsureFile {
    /// File `path` with `content` and `mode`, ownership kept, not secret.
    pub fn new(path: impl Into<String>, content: impl Into<Vec<u8>>, mode: u32) -> Self {
        Self {
            path: path.into(),
            content: content.into(),
            mode,
            owner: Owner::keep(),
            secret: false,
        }
    }

    /// Sets the owner (builder style).
    #[must_use]
    pub fn owner(mut self, owner: Owner) -> Self {
        self.owner = owner;
        self
    }

    /// Marks the content secret (builder style).
    #[must_use]
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }
}

impl fmt::Debug for EnsureFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let content: &dyn fmt::Debug = if self.secret {
            &"<secret>"
        } else {
            &String::from_utf8_lossy(&self.content)
        };
        f.debug_struct("EnsureFile")
            .field("path", &self.path)
            .field("content", content)
            .field("mode", &format_args!("{:#o}", self.mode))
            .field("owner", &self.owner)
            .field("secret", &self.secret)
            .finish()
    }
}

impl From<EnsureFile> for StepKind {
    fn from(v: EnsureFile) -> Self {
        Self::File(v)
    }
}

/// When a command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunWhen {
    /// Every time.
    Always,
    /// Only when at least one of the named earlier steps changed in this run.
    Changed(Vec<String>),
    /// Only when this absolute path does not exist on the host (what the command creates,
    /// like Ansible's `creates`); the step is unchanged when it exists.
    Missing(String),
    /// Every time, also in check mode, as a read-only check: success is no change, a
    /// non-zero exit fails the host (e.g. "are these packages installed").
    Check,
    /// Every time, as a read-only check of what the steps before it bring about (e.g. "is
    /// the filesystem mounted" after the service that mounts it): success is no change; a
    /// non-zero exit fails the host, except in check mode, where the earlier steps have
    /// not run yet and it is reported as a change to come.
    Verify,
}

/// Run a command given as argv (quoted by this crate; never a shell string). Its stdin is
/// `/dev/null`; its output is kept only to report a failure (non-zero exit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCommand {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Condition.
    pub when: RunWhen,
}

impl RunCommand {
    /// Runs `argv` every time.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            when: RunWhen::Always,
        }
    }

    /// Runs only when `path` does not exist on the host (builder style): a command that
    /// creates `path` runs once, and a re-run reports it unchanged.
    #[must_use]
    pub fn unless_exists(mut self, path: impl Into<String>) -> Self {
        self.when = RunWhen::Missing(path.into());
        self
    }

    /// A read-only check (builder style): runs every time, also in check mode; success is
    /// no change.
    #[must_use]
    pub fn check_only(mut self) -> Self {
        self.when = RunWhen::Check;
        self
    }

    /// A read-only check of what the earlier steps bring about (builder style): runs every
    /// time; success is no change; in check mode a failure is a change to come, not an
    /// error.
    #[must_use]
    pub fn verify(mut self) -> Self {
        self.when = RunWhen::Verify;
        self
    }

    /// Runs only when one of the named steps changed (builder style).
    #[must_use]
    pub fn when_changed<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.when = RunWhen::Changed(ids.into_iter().map(Into::into).collect());
        self
    }
}

impl From<RunCommand> for StepKind {
    fn from(v: RunCommand) -> Self {
        Self::Command(v)
    }
}

/// Desired run state of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    /// Running (`systemctl start`; `restart` when a trigger changed).
    Started,
    /// Not running (`systemctl stop`).
    Stopped,
}

/// Ensure a service's state via `systemctl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnsureService {
    /// Unit name, e.g. `munge` or `slurmd.service`.
    pub name: String,
    /// `Some(true)`: enabled; `Some(false)`: disabled; `None`: left alone.
    pub enabled: Option<bool>,
    /// Run state; `None` leaves it alone (a trigger then means `try-restart`).
    pub state: Option<ServiceState>,
    /// Restart when one of these earlier steps changed (no restart right after a start).
    pub restart_on: Vec<String>,
}

impl EnsureService {
    /// Service `name`, enabled and started.
    pub fn started(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            enabled: Some(true),
            state: Some(ServiceState::Started),
            restart_on: Vec::new(),
        }
    }

    /// Restart when one of the named steps changed (builder style).
    #[must_use]
    pub fn restart_on<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.restart_on = ids.into_iter().map(Into::into).collect();
        self
    }
}

impl From<EnsureService> for StepKind {
    fn from(v: EnsureService) -> Self {
        Self::Service(v)
    }
}

/// Ensure a line in `/etc/fstab` for `target` (replacing any other line for the same
/// mount point) and, when `mounted`, that it is mounted (`mount TARGET`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnsureMount {
    /// What to mount (device, `tag` for virtio-fs, `host:/path`…).
    pub source: String,
    /// Absolute mount point.
    pub target: String,
    /// Filesystem type, e.g. `virtiofs`.
    pub fstype: String,
    /// Mount options, e.g. `defaults,nofail`.
    pub options: String,
    /// Mount it now when it is not mounted.
    pub mounted: bool,
}

impl EnsureMount {
    /// The fstab line (fields escaped the way `getmntent(3)` reads them).
    pub fn fstab_line(&self) -> String {
        format!(
            "{} {} {} {} 0 0",
            fstab_escape(&self.source),
            fstab_escape(&self.target),
            fstab_escape(&self.fstype),
            fstab_escape(if self.options.is_empty() {
                "defaults"
            } else {
                &self.options
            }),
        )
    }
}

impl From<EnsureMount> for StepKind {
    fn from(v: EnsureMount) -> Self {
        Self::Mount(v)
    }
}

/// Escapes space, tab, newline and backslash as octal, as fstab and /proc/mounts do.
pub(crate) fn fstab_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}
