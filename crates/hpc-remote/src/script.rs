//! Compiles a [`HostPlan`] into one POSIX-sh program (the runner plus generated step calls,
//! file contents inline as `printf` literals); `outcome.rs` parses the runner's report back.
//!
//! Both executors use this: the local one pipes the program into `/bin/sh -s`, the SSH one
//! into an exec channel running the same command. One program per host, one round trip.

use std::collections::HashMap;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::quote::{printf_literal, quote};
use crate::step::{HostPlan, RunWhen, ServiceState, StepKind, fstab_escape};
use crate::{Mode, PlanError};

const RUNNER: &str = include_str!("runner.sh");

/// Where the runner runs and with which helper commands.
#[derive(Debug, Clone)]
pub(crate) struct Target<'a> {
    /// Prefix for every path (local executor under a root directory); empty for `/`.
    pub root: &'a str,
    /// `systemctl` program.
    pub systemctl: &'a str,
    /// `mount` program.
    pub mount: &'a str,
}

impl Default for Target<'_> {
    fn default() -> Self {
        Self {
            root: "",
            systemctl: "systemctl",
            mount: "mount",
        }
    }
}

/// Checks a plan before anything runs: unique ids, known earlier triggers, absolute
/// paths, no NUL bytes, non-empty argv.
pub fn validate(plan: &HostPlan) -> Result<(), PlanError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let host = || plan.host.clone();
    for (i, step) in plan.steps.iter().enumerate() {
        let sid = || step.id.clone();
        let nul = |field: &'static str, s: &str| {
            if s.contains('\0') {
                Err(PlanError::NulByte {
                    host: host(),
                    step: sid(),
                    field,
                })
            } else {
                Ok(())
            }
        };
        let invalid = |field: &'static str, reason: &'static str| PlanError::Invalid {
            host: host(),
            step: sid(),
            field,
            reason,
        };
        let path = |p: &str| {
            nul("path", p)?;
            let ok = p.starts_with('/')
                && (p == "/" || !p.ends_with('/'))
                && !p.split('/').any(|c| c == ".." || c == ".")
                && !p.contains("//");
            if ok {
                Ok(())
            } else {
                Err(PlanError::BadPath {
                    host: host(),
                    step: sid(),
                    path: p.to_owned(),
                })
            }
        };
        let owner = |o: &crate::Owner| {
            for (field, v) in [("owner", &o.user), ("group", &o.group)] {
                if let Some(v) = v {
                    nul(field, v)?;
                    if v.is_empty() || v.starts_with('-') || v.contains([':', ' ', '\n']) {
                        return Err(invalid(field, "empty, or contains `:`, space or newline"));
                    }
                }
            }
            Ok(())
        };
        let triggers = |ids: &[String]| {
            for t in ids {
                if !seen.contains_key(t.as_str()) {
                    return Err(PlanError::UnknownTrigger {
                        host: host(),
                        step: sid(),
                        trigger: t.clone(),
                    });
                }
            }
            Ok(())
        };
        match &step.kind {
            StepKind::Directory(d) => {
                path(&d.path)?;
                owner(&d.owner)?;
            }
            StepKind::File(f) => {
                path(&f.path)?;
                owner(&f.owner)?;
                if f.path == "/" {
                    return Err(invalid("path", "`/` is not a file"));
                }
            }
            StepKind::Command(c) => {
                if c.argv.is_empty() || c.argv[0].is_empty() {
                    return Err(invalid("argv", "empty program"));
                }
                for a in &c.argv {
                    nul("argv", a)?;
                }
                match &c.when {
                    RunWhen::Changed(ids) => triggers(ids)?,
                    RunWhen::Missing(p) => path(p)?,
                    RunWhen::Always | RunWhen::Check | RunWhen::Verify => {}
                }
            }
            StepKind::Service(s) => {
                nul("name", &s.name)?;
                if s.name.is_empty() || s.name.starts_with('-') {
                    return Err(invalid("name", "empty or starts with `-`"));
                }
                triggers(&s.restart_on)?;
            }
            StepKind::Mount(m) => {
                path(&m.target)?;
                for (field, v) in [("source", &m.source), ("fstype", &m.fstype)] {
                    nul(field, v)?;
                    if v.is_empty() {
                        return Err(invalid(field, "empty"));
                    }
                }
                nul("options", &m.options)?;
            }
        }
        if seen.insert(&step.id, i).is_some() {
            return Err(PlanError::DuplicateStep {
                host: host(),
                step: sid(),
            });
        }
        nul("id", &step.id)?;
    }
    Ok(())
}

/// The program that applies `plan` while the target boots, from a oneshot unit ordered
/// before the services the plan starts (the node's seed, read from a disk at boot): the same
/// steps and on-target code as [`crate::apply_all`] with [`Mode::APPLY`], except that service
/// starts and restarts are queued (`systemctl --no-block`) instead of awaited, since the
/// services are ordered after the unit that runs this. Run as `sh PROGRAM >REPORT 2>LOG`:
/// report lines go to standard output (`@@HPC <step> changed|unchanged|…`; a failed step
/// prints `@@HPC <step> failed` and skips the rest of the plan; the last line is
/// `@@HPC - done`), everything else to standard error. The result may contain secret file
/// content.
pub fn boot_program(plan: &HostPlan) -> Result<Vec<u8>, PlanError> {
    compile(
        plan,
        Mode::APPLY,
        &Target {
            systemctl: "hpc_systemctl_boot",
            ..Target::default()
        },
    )
}

/// Builds the runner program for `plan`. The result may contain secret file content:
/// it is never logged.
pub(crate) fn compile(
    plan: &HostPlan,
    mode: Mode,
    target: &Target<'_>,
) -> Result<Vec<u8>, PlanError> {
    validate(plan)?;
    let index: HashMap<&str, usize> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let list = |ids: &[String]| {
        ids.iter()
            .filter_map(|id| index.get(id.as_str()))
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let p = |path: &str| format!("{}{}", target.root, path);
    let own = |o: &Option<String>| quote(o.as_deref().unwrap_or("")).into_owned();

    let mut out = Vec::with_capacity(RUNNER.len() + 4096);
    out.extend_from_slice(RUNNER.as_bytes());
    let mut main = String::new();
    // What hpc_probe looks at: kind and path of every directory and file step.
    let mut paths = String::new();
    for (i, step) in plan.steps.iter().enumerate() {
        match &step.kind {
            StepKind::Directory(d) => {
                let _ = writeln!(paths, "K{i}=d P{i}={}", quote(&p(&d.path)));
                let _ = writeln!(
                    main,
                    "hpc_dir {i} {} {:o} {} {}",
                    quote(&p(&d.path)),
                    d.mode & 0o7777,
                    own(&d.owner.user),
                    own(&d.owner.group),
                );
            }
            StepKind::File(f) => {
                let _ = writeln!(paths, "K{i}=f P{i}={}", quote(&p(&f.path)));
                out.extend_from_slice(format!("hpc_c{i}() {{\n").as_bytes());
                printf_literal(&f.content, &mut out);
                out.extend_from_slice(b"\n}\n");
                let sha = Sha256::digest(&f.content);
                let mut hex = String::with_capacity(64);
                for b in sha {
                    let _ = write!(hex, "{b:02x}");
                }
                let _ = writeln!(
                    main,
                    "hpc_file {i} {} {:o} {} {} {hex} hpc_c{i} {}",
                    quote(&p(&f.path)),
                    f.mode & 0o7777,
                    own(&f.owner.user),
                    own(&f.owner.group),
                    u8::from(f.secret),
                );
            }
            StepKind::Command(c) => {
                let (when, ids) = match &c.when {
                    RunWhen::Always => ("always", String::new()),
                    RunWhen::Changed(ids) => ("onchange", list(ids)),
                    RunWhen::Missing(path) => ("missing", p(path)),
                    RunWhen::Check => ("check", String::new()),
                    RunWhen::Verify => ("verify", String::new()),
                };
                let _ = writeln!(
                    main,
                    "hpc_cmd {i} {when} {} {}",
                    quote(&ids),
                    crate::quote::quote_argv(&c.argv)
                );
            }
            StepKind::Service(s) => {
                let enabled = match s.enabled {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "-",
                };
                let state = match s.state {
                    Some(ServiceState::Started) => "started",
                    Some(ServiceState::Stopped) => "stopped",
                    None => "-",
                };
                let _ = writeln!(
                    main,
                    "hpc_svc {i} {} {enabled} {state} {}",
                    quote(&s.name),
                    quote(&list(&s.restart_on)),
                );
            }
            StepKind::Mount(m) => {
                let _ = writeln!(
                    main,
                    "hpc_mount {i} {} {} {} {} {}",
                    quote(&p("/etc/fstab")),
                    quote(&fstab_escape(&m.target)),
                    quote(&m.fstab_line()),
                    if m.mounted { "yes" } else { "no" },
                    quote(&p(&m.target)),
                );
            }
        }
    }
    let header = format!(
        "hpc_main() {{\nCHECK={} DIFF={} SYSTEMCTL={} MOUNT={}\n",
        u8::from(mode.check),
        u8::from(mode.check && mode.diff),
        quote(target.systemctl),
        quote(target.mount),
    );
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(paths.as_bytes());
    out.extend_from_slice(main.as_bytes());
    out.extend_from_slice(b"hpc_flush\nprintf '@@HPC - done\\n' >&3\n}\nhpc_init && hpc_main\n");
    Ok(out)
}
