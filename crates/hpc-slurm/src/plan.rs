//! The deployment as data: which files, directories and services go on which node, phase by
//! phase. Pure; [`crate::deploy`] applies the phases in order and waits between them.
//!
//! Every file is written with its owner by name (the `munge` UID differs per machine) and
//! atomically, and every service restarts only when one of its own files changed in this run,
//! so re-applying an unchanged plan restarts nothing.

use hpc_config::{Cluster, JobFailures, Node, Role, Slurm};
use hpc_remote::{EnsureDirectory, EnsureFile, EnsureService, HostPlan, Owner, Phase, RunCommand};

use crate::epilog::{EPILOG_MODE, FAILURE_DIR_MODE, render_epilog};
use crate::munge::{MUNGE_KEY_MODE, MUNGE_KEY_OWNER, MUNGE_KEY_PATH, MungeKeyError, munge_key};
use crate::render::{
    CGROUP_CONF_PATH, EPILOG_PATH, GRES_CONF_PATH, RenderOptions, SLURM_CONF_MODE, SLURM_CONF_PATH,
    SLURM_USER, SLURMDBD_CONF_MODE, SLURMDBD_CONF_OWNER, SLURMDBD_CONF_PATH, SLURMDBD_STORAGE_LOC,
    SlurmdbdError, render_cgroup_conf, render_gres_conf, render_slurmdbd_conf_with, slurmd_nodes,
};

/// Where the accounting host keeps the SQL that creates the database user (mode 0600, root).
pub const ACCOUNTING_SQL_PATH: &str = "/etc/slurm/hpc-up-accounting.sql";

/// Secrets the caller generated once per cluster and keeps (never logged, never in a plan's
/// diff: every step that holds one is marked secret).
#[derive(Clone, Copy, Default)]
pub struct Secrets<'a> {
    /// The munge key (at least 32 random bytes). `None` keeps the key already on the nodes
    /// (a site that distributes its own key); munged then judges it.
    pub munge_key: Option<&'a [u8]>,
    /// The MariaDB password of the `slurm` database user; needed when accounting is on.
    pub db_password: Option<&'a str>,
}

impl std::fmt::Debug for Secrets<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("munge_key", &self.munge_key.map(|_| "<secret>"))
            .field("db_password", &self.db_password.map(|_| "<secret>"))
            .finish()
    }
}

/// The phases of a deployment, in the order they must run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhaseKind {
    /// The munge key and munged, on every node.
    Munge,
    /// MariaDB, the database user and slurmdbd, on the accounting host.
    Accounting,
    /// The SLURM files and slurmctld, on the controllers.
    Controller,
    /// The SLURM files everywhere else, and slurmd on the nodes that run jobs.
    Nodes,
}

impl PhaseKind {
    /// Short name, for progress and errors.
    pub fn name(self) -> &'static str {
        match self {
            Self::Munge => "munge",
            Self::Accounting => "accounting",
            Self::Controller => "slurmctld",
            Self::Nodes => "slurmd",
        }
    }

    /// The kind whose [`name`](Self::name) is `name` (a [`Phase`]'s name).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Every kind, in the order the phases run.
    pub const ALL: [Self; 4] = [Self::Munge, Self::Accounting, Self::Controller, Self::Nodes];
}

/// The whole deployment.
#[derive(Debug, Clone)]
pub struct DeployPlan {
    /// The phases, in order (a phase with no plans is left out); each is named by its
    /// [`PhaseKind::name`].
    pub phases: Vec<Phase>,
}

impl DeployPlan {
    /// The phase of `kind`, if the plan has one.
    pub fn phase(&self, kind: PhaseKind) -> Option<&Phase> {
        self.phases.iter().find(|p| p.name == kind.name())
    }

    /// The plan of `node` in the phase of `kind`, if it has one.
    pub fn host(&self, kind: PhaseKind, node: &str) -> Option<&HostPlan> {
        self.phase(kind)?.host(node)
    }
}

/// Why a deployment cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The cluster has no `slurm:` section.
    #[error("the cluster file has no `slurm:` section, so there is no SLURM to deploy")]
    NotConfigured,
    /// The munge key is unusable.
    #[error("munge key: {0}")]
    MungeKey(#[from] MungeKeyError),
    /// Accounting is on but no database password was given.
    #[error("SLURM accounting is on, but no database password was given for slurmdbd")]
    NoDbPassword,
    /// slurmdbd.conf cannot be rendered.
    #[error(transparent)]
    Slurmdbd(#[from] SlurmdbdError),
}

/// The unit name of each service step (the step id is the unit name).
pub const SERVICES: [&str; 5] = ["munge", "mariadb", "slurmdbd", "slurmctld", "slurmd"];

const FILES: [&str; 3] = ["slurm.conf", "gres.conf", "cgroup.conf"];

fn root() -> Owner {
    Owner::new("root", "root")
}

fn slurm_owner() -> Owner {
    Owner::new(SLURM_USER, SLURM_USER)
}

/// `/etc/slurm` and the log directory, which every SLURM daemon needs.
fn config_and_log_dirs(plan: HostPlan) -> HostPlan {
    plan.step(
        "etc-slurm",
        EnsureDirectory::new("/etc/slurm", 0o755).owner(root()),
    )
    .step(
        "log-dir",
        EnsureDirectory::new("/var/log/slurm", 0o755).owner(slurm_owner()),
    )
}

/// What a node that runs slurmd needs for `slurm.job-failures`: the Epilog slurm.conf names,
/// and the bundle directory when it is on a virtio-fs share.
struct JobFailureFiles<'a> {
    failures: &'a JobFailures,
    epilog: String,
    /// Whether the plan makes the bundle directory (see [`job_failure_steps`]).
    make_dir: bool,
}

/// The steps of `slurm.job-failures` on a node that runs slurmd. They come before
/// slurm.conf, in the phase that (re)starts slurmd: slurmd drains its node when the Epilog
/// its slurm.conf names is missing, so the script is in place before any slurmd, at boot or
/// in a deployment, can read a slurm.conf naming it.
///
/// The bundle directory is made here only when it is on a virtio-fs share, which the node
/// mounts before SLURM (its base configuration). A BeeGFS mount comes after SLURM: made
/// here, the directory would land under the mount point, hidden, and be made again (a
/// change) by the next deployment; there, the Epilog makes it at the first failure. Nor is
/// it made when it is a share's mount point itself: the share's own owner and mode stand
/// (the Epilog writes only into a directory root owns).
fn job_failure_steps(plan: HostPlan, files: Option<&JobFailureFiles<'_>>) -> HostPlan {
    let Some(f) = files else { return plan };
    let plan = if f.make_dir {
        plan.step(
            "job-failures-dir",
            EnsureDirectory::new(f.failures.dir.as_str(), FAILURE_DIR_MODE).owner(root()),
        )
    } else {
        plan
    };
    plan.step(
        "epilog",
        EnsureFile::new(EPILOG_PATH, f.epilog.as_str(), EPILOG_MODE).owner(root()),
    )
}

/// Directories and the three SLURM files, as every node gets them (with the Epilog's files
/// on a node that runs slurmd, before slurm.conf).
fn slurm_files(
    plan: HostPlan,
    slurm_conf: &str,
    gres: &str,
    cgroup: &str,
    failures: Option<&JobFailureFiles<'_>>,
) -> HostPlan {
    let plan = config_and_log_dirs(plan).step(
        "lib-dir",
        EnsureDirectory::new("/var/lib/slurm", 0o755).owner(slurm_owner()),
    );
    job_failure_steps(plan, failures)
        .step(
            FILES[0],
            EnsureFile::new(SLURM_CONF_PATH, slurm_conf, SLURM_CONF_MODE).owner(root()),
        )
        .step(
            FILES[1],
            EnsureFile::new(GRES_CONF_PATH, gres, SLURM_CONF_MODE).owner(root()),
        )
        .step(
            FILES[2],
            EnsureFile::new(CGROUP_CONF_PATH, cgroup, SLURM_CONF_MODE).owner(root()),
        )
}

fn with_slurmd(plan: HostPlan) -> HostPlan {
    plan.step(
        "slurmd-spool",
        EnsureDirectory::new("/var/lib/slurm/slurmd", 0o755).owner(slurm_owner()),
    )
    .step("slurmd", EnsureService::started("slurmd").restart_on(FILES))
}

/// The SQL that creates (or updates) the `slurm` database user and creates its database.
/// Idempotent. The database is made here, not left to slurmdbd: slurmdbd 24.11 creates it
/// on a connection whose connect failed, which Debian 13's libmariadb (3.4) then refuses
/// for good (`5027 Number of columns in result … exceeds maximum allowed number of columns`,
/// then `fatal: _check_mysql_concat_is_sane`).
fn accounting_sql(password: &str) -> String {
    format!(
        "-- Generated by hpc-up: the database user slurmdbd connects as.\n\
         CREATE USER IF NOT EXISTS '{SLURM_USER}'@'localhost' IDENTIFIED BY '{password}';\n\
         ALTER USER '{SLURM_USER}'@'localhost' IDENTIFIED BY '{password}';\n\
         GRANT ALL ON {SLURMDBD_STORAGE_LOC}.* TO '{SLURM_USER}'@'localhost';\n\
         CREATE DATABASE IF NOT EXISTS {SLURMDBD_STORAGE_LOC};\n"
    )
}

fn accounting_plan(
    cluster: &Cluster,
    host: &Node,
    password: &str,
    opts: &RenderOptions,
) -> Result<HostPlan, PlanError> {
    let dbd_conf = render_slurmdbd_conf_with(cluster, password, opts)?;
    // Only when the SQL file changed; a failed run removes the file so the next run retries.
    // `mariadb`, not `mysql`: both releases have it, and MariaDB 11 (Debian 13) warns that
    // `mysql` is a deprecated program name.
    let load_sql =
        format!("mariadb <{ACCOUNTING_SQL_PATH} || {{ rm -f {ACCOUNTING_SQL_PATH}; exit 1; }}");
    let plan = HostPlan::new(host.name.as_str()).step("mariadb", EnsureService::started("mariadb"));
    Ok(config_and_log_dirs(plan)
        .step(
            "accounting-sql",
            EnsureFile::new(ACCOUNTING_SQL_PATH, accounting_sql(password), 0o600)
                .owner(root())
                .secret(),
        )
        .step(
            "database-user",
            RunCommand::new(["sh", "-c", load_sql.as_str()]).when_changed(["accounting-sql"]),
        )
        .step(
            "slurmdbd.conf",
            EnsureFile::new(SLURMDBD_CONF_PATH, dbd_conf, SLURMDBD_CONF_MODE)
                .owner(Owner::new(SLURMDBD_CONF_OWNER, SLURMDBD_CONF_OWNER))
                .secret(),
        )
        .step(
            "slurmdbd",
            EnsureService::started("slurmdbd").restart_on(["slurmdbd.conf"]),
        ))
}

/// Plan the deployment of `cluster`'s SLURM with the rendered `slurm_conf` (from
/// [`crate::render_slurm_conf`] with the nodes' real hardware).
///
/// Phases: munge on every node; MariaDB + slurmdbd on the accounting host (when accounting
/// is on); the files + slurmctld on the controllers; the files everywhere else + slurmd on
/// every node that runs jobs. Every node gets `slurm.conf`, so jobs can be submitted from any
/// of them.
pub fn plan_deploy(
    cluster: &Cluster,
    slurm_conf: &str,
    secrets: &Secrets<'_>,
    opts: &RenderOptions,
) -> Result<DeployPlan, PlanError> {
    let slurm: &Slurm = cluster.slurm.as_ref().ok_or(PlanError::NotConfigured)?;
    let gres = render_gres_conf(cluster);
    let cgroup = render_cgroup_conf(cluster);
    let key = secrets.munge_key.map(munge_key).transpose()?;
    let runs_slurmd = |n: &Node| {
        slurmd_nodes(cluster, slurm)
            .iter()
            .any(|m| m.name == n.name)
    };
    let failure_files = slurm.job_failures.as_ref().map(|f| JobFailureFiles {
        failures: f,
        epilog: render_epilog(f),
        make_dir: f.host_dir.is_some()
            && !cluster.nodes.iter().any(|n| {
                n.virtiofs
                    .iter()
                    .any(|m| m.mount_point.trim_end_matches('/') == f.dir)
            }),
    });
    // The Epilog's files go where slurmd runs it.
    let failures_on = |n: &Node| failure_files.as_ref().filter(|_| runs_slurmd(n));

    let munge = cluster
        .nodes
        .iter()
        .map(|n| {
            let mut p = HostPlan::new(n.name.as_str());
            let mut triggers: Vec<&str> = Vec::new();
            if let Some(key) = &key {
                p = p.step(
                    "munge-key",
                    EnsureFile::new(MUNGE_KEY_PATH, key.clone(), MUNGE_KEY_MODE)
                        .owner(Owner::new(MUNGE_KEY_OWNER, MUNGE_KEY_OWNER))
                        .secret(),
                );
                triggers.push("munge-key");
            }
            p.step(
                "munge",
                EnsureService::started("munge").restart_on(triggers),
            )
        })
        .collect();

    let mut phases = vec![Phase::new(PhaseKind::Munge.name(), munge)];

    if let Some(host) = &slurm.accounting_host {
        let password = secrets.db_password.ok_or(PlanError::NoDbPassword)?;
        // The validator guarantees the accounting host is a node of the cluster.
        if let Some(node) = cluster.node(host.as_str()) {
            phases.push(Phase::new(
                PhaseKind::Accounting.name(),
                vec![accounting_plan(cluster, node, password, opts)?],
            ));
        }
    }

    let controllers = cluster
        .nodes
        .iter()
        .filter(|n| n.role == Role::Controller)
        .map(|n| {
            let p = slurm_files(
                HostPlan::new(n.name.as_str()),
                slurm_conf,
                &gres,
                &cgroup,
                failures_on(n),
            )
            .step(
                "state-dir",
                EnsureDirectory::new("/var/lib/slurm/slurmctld", 0o755).owner(slurm_owner()),
            )
            .step(
                "slurmctld",
                EnsureService::started("slurmctld").restart_on(FILES),
            );
            // A controller that also runs jobs restarts slurmd with its own files, here.
            if runs_slurmd(n) { with_slurmd(p) } else { p }
        })
        .collect();
    phases.push(Phase::new(PhaseKind::Controller.name(), controllers));

    let others = cluster
        .nodes
        .iter()
        .filter(|n| n.role != Role::Controller)
        .map(|n| {
            let p = slurm_files(
                HostPlan::new(n.name.as_str()),
                slurm_conf,
                &gres,
                &cgroup,
                failures_on(n),
            );
            if runs_slurmd(n) { with_slurmd(p) } else { p }
        })
        .collect::<Vec<_>>();
    if !others.is_empty() {
        phases.push(Phase::new(PhaseKind::Nodes.name(), others));
    }
    Ok(DeployPlan { phases })
}

/// The part of `plan` that `node` can apply by itself while it boots (from a seed read at
/// boot, with service starts queued: `hpc_remote::boot_program`), in phase order: munge
/// everywhere; on the accounting host MariaDB started (the slow part of accounting; the
/// database user and slurmdbd need it running, so they wait for the deployment); on a
/// controller its files and slurmctld, elsewhere the files and slurmd. On a cluster with
/// accounting, the controller phase waits for the deployment too (slurmctld must start
/// after slurmdbd). Everything here is applied again by the deployment, which then finds it
/// in place and restarts nothing.
pub fn boot_phases(plan: &DeployPlan, cluster: &Cluster, node: &str) -> Vec<(PhaseKind, HostPlan)> {
    let accounting = cluster
        .slurm
        .as_ref()
        .is_some_and(|s| s.accounting_host.is_some());
    plan.phases
        .iter()
        .filter_map(|p| Some((PhaseKind::from_name(p.name)?, p)))
        .filter(|(kind, _)| *kind != PhaseKind::Controller || !accounting)
        .filter_map(|(kind, p)| {
            let mut h = p.host(node)?.clone();
            if kind == PhaseKind::Accounting {
                h.steps.retain(|s| s.id == "mariadb");
            }
            Some((kind, h))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use hpc_remote::StepKind;

    fn cluster(path: &str) -> Cluster {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path);
        hpc_config::load_file(&p).unwrap()
    }

    fn ids(p: &HostPlan) -> Vec<&str> {
        p.steps.iter().map(|s| s.id.as_str()).collect()
    }

    #[test]
    fn minimal_has_munge_then_controller_then_nodes() {
        let c = cluster("examples/minimal.yaml");
        let key = [7u8, 1, 2, 3].repeat(16);
        let secrets = Secrets {
            munge_key: Some(&key),
            db_password: None,
        };
        let plan = plan_deploy(&c, "conf\n", &secrets, &RenderOptions::default()).unwrap();
        let kinds: Vec<_> = plan
            .phases
            .iter()
            .map(|p| PhaseKind::from_name(p.name).unwrap())
            .collect();
        assert_eq!(
            kinds,
            [PhaseKind::Munge, PhaseKind::Controller, PhaseKind::Nodes]
        );
        assert_eq!(ids(&plan.phases[0].hosts[0]), ["munge-key", "munge"]);
        let ctl = &plan.phases[1].hosts[0];
        assert_eq!(ctl.host, "ctl");
        assert!(ids(ctl).contains(&"slurmctld"));
        assert!(!ids(ctl).contains(&"slurmd"));
        let cn1 = &plan.phases[2].hosts[0];
        assert_eq!(cn1.host, "cn1");
        assert_eq!(ids(cn1).last(), Some(&"slurmd"));
        // The key is a secret owned by munge, 0400.
        match &plan.phases[0].hosts[0].steps[0].kind {
            StepKind::File(f) => {
                assert!(f.secret);
                assert_eq!(f.mode, 0o400);
                assert_eq!(f.owner, Owner::new("munge", "munge"));
            }
            other => panic!("not a file step: {other:?}"),
        }
    }

    #[test]
    fn accounting_needs_a_password_and_runs_before_slurmctld() {
        let c = cluster("examples/full-stack.yaml");
        let key = [7u8, 1, 2, 3].repeat(16);
        let mut secrets = Secrets {
            munge_key: Some(&key),
            db_password: None,
        };
        assert_eq!(
            plan_deploy(&c, "", &secrets, &RenderOptions::default()).unwrap_err(),
            PlanError::NoDbPassword
        );
        secrets.db_password = Some("s3cret");
        let plan = plan_deploy(&c, "", &secrets, &RenderOptions::default()).unwrap();
        let kinds: Vec<_> = plan
            .phases
            .iter()
            .map(|p| PhaseKind::from_name(p.name).unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                PhaseKind::Munge,
                PhaseKind::Accounting,
                PhaseKind::Controller,
                PhaseKind::Nodes
            ]
        );
        let acc = &plan.phases[1].hosts[0];
        assert_eq!(
            ids(acc),
            [
                "mariadb",
                "etc-slurm",
                "log-dir",
                "accounting-sql",
                "database-user",
                "slurmdbd.conf",
                "slurmdbd"
            ]
        );
    }

    #[test]
    fn boot_phases_leave_out_what_needs_another_node() {
        let key = [7u8, 1, 2, 3].repeat(16);
        let secrets = Secrets {
            munge_key: Some(&key),
            db_password: Some("pw"),
        };
        let c = cluster("examples/minimal.yaml");
        let plan = plan_deploy(&c, "conf\n", &secrets, &RenderOptions::default()).unwrap();
        let kinds = |n| {
            boot_phases(&plan, &c, n)
                .into_iter()
                .map(|(k, p)| {
                    assert_eq!(p.host, n);
                    k
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds("ctl"), [PhaseKind::Munge, PhaseKind::Controller]);
        assert_eq!(kinds("cn1"), [PhaseKind::Munge, PhaseKind::Nodes]);
        assert!(kinds("nosuch").is_empty());
        // with accounting, slurmctld waits for slurmdbd: only munge at boot on the controller
        let c = cluster("examples/full-stack.yaml");
        let plan = plan_deploy(&c, "conf\n", &secrets, &RenderOptions::default()).unwrap();
        let ctl = c.controllers().next().unwrap().name.to_string();
        let acct = c.slurm.as_ref().unwrap().accounting_host.as_ref().unwrap();
        assert_eq!(acct.as_str(), ctl);
        assert_eq!(
            kinds_of(&plan, &c, &ctl),
            [PhaseKind::Munge, PhaseKind::Accounting]
        );
        // of accounting, only MariaDB: the database user and slurmdbd need it running
        let boot = boot_phases(&plan, &c, &ctl);
        assert_eq!(ids(&boot[1].1), ["mariadb"]);
    }

    fn kinds_of(plan: &DeployPlan, c: &Cluster, n: &str) -> Vec<PhaseKind> {
        boot_phases(plan, c, n)
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    /// minimal.yaml with `slurm.job-failures` in a virtio-fs share every node mounts (or,
    /// without `virtiofs`, nowhere the validator accepts).
    fn with_job_failures() -> Cluster {
        let p =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/minimal.yaml");
        let text = fs_err::read_to_string(&p).unwrap().replace(
            "\nslurm:\n",
            "\nvirtiofs:\n  - tag: shared\n    host-path: /srv/shared\n    mount-point: /shared\n\nslurm:\n",
        ) + "  job-failures:\n    dir: /shared/job-failures\n    log-lines: 20\n";
        hpc_config::load_str("jf.yaml", &text, &|_| None).unwrap()
    }

    fn step<'a>(p: &'a HostPlan, id: &str) -> &'a StepKind {
        &p.steps.iter().find(|s| s.id == id).unwrap().kind
    }

    #[test]
    fn the_epilog_is_in_place_before_slurm_conf_names_it() {
        let c = with_job_failures();
        let plan =
            plan_deploy(&c, "conf\n", &Secrets::default(), &RenderOptions::default()).unwrap();
        // The controller runs no slurmd here: no Epilog, no bundle directory.
        let ctl = plan.host(PhaseKind::Controller, "ctl").unwrap();
        assert!(!ids(ctl).contains(&"epilog"), "{:?}", ids(ctl));
        assert!(!ids(ctl).contains(&"job-failures-dir"));
        for n in ["cn1", "cn2"] {
            let p = plan.host(PhaseKind::Nodes, n).unwrap();
            let ids = ids(p);
            let at = |id| ids.iter().position(|i| *i == id).unwrap();
            assert!(at("job-failures-dir") < at("epilog"), "{ids:?}");
            assert!(at("epilog") < at("slurm.conf"), "{ids:?}");
            assert!(at("slurm.conf") < at("slurmd"), "{ids:?}");
            match step(p, "epilog") {
                StepKind::File(f) => {
                    assert_eq!(f.path, EPILOG_PATH);
                    assert_eq!(f.mode, 0o755);
                    assert_eq!(f.owner, Owner::new("root", "root"));
                    assert!(!f.secret);
                    assert_eq!(f.content, crate::epilog_script(&c).unwrap().into_bytes());
                }
                other => panic!("not a file step: {other:?}"),
            }
            match step(p, "job-failures-dir") {
                StepKind::Directory(d) => {
                    assert_eq!(d.path, "/shared/job-failures");
                    assert_eq!(d.mode, 0o755);
                    assert_eq!(d.owner, Owner::new("root", "root"));
                }
                other => panic!("not a directory step: {other:?}"),
            }
            // A node applies the Epilog at boot with its slurmd phase.
            let boot = boot_phases(&plan, &c, n);
            assert_eq!(boot[1].0, PhaseKind::Nodes);
            assert!(boot[1].1.steps.iter().any(|s| s.id == "epilog"));
        }
        // The Epilog's content does not restart slurmd (slurmd runs it afresh for each job).
        match step(plan.host(PhaseKind::Nodes, "cn1").unwrap(), "slurmd") {
            StepKind::Service(s) => assert!(!s.restart_on.iter().any(|t| t == "epilog")),
            other => panic!("not a service step: {other:?}"),
        }
    }

    #[test]
    fn a_share_s_mount_point_keeps_its_own_owner_and_mode() {
        let p =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/minimal.yaml");
        let text = fs_err::read_to_string(&p).unwrap().replace(
            "\nslurm:\n",
            "\nvirtiofs:\n  - tag: shared\n    host-path: /srv/shared\n    mount-point: /shared\n\nslurm:\n",
        ) + "  job-failures:\n    dir: /shared/\n";
        let c = hpc_config::load_str("jf.yaml", &text, &|_| None).unwrap();
        let plan = plan_deploy(&c, "", &Secrets::default(), &RenderOptions::default()).unwrap();
        let cn1 = plan.host(PhaseKind::Nodes, "cn1").unwrap();
        assert!(ids(cn1).contains(&"epilog"));
        assert!(!ids(cn1).contains(&"job-failures-dir"));
    }

    #[test]
    fn without_job_failures_there_is_no_epilog() {
        let c = cluster("examples/minimal.yaml");
        let plan = plan_deploy(&c, "", &Secrets::default(), &RenderOptions::default()).unwrap();
        let cn1 = plan.host(PhaseKind::Nodes, "cn1").unwrap();
        assert!(!ids(cn1).contains(&"epilog"));
        assert!(crate::epilog_script(&c).is_none());
    }

    #[test]
    fn a_site_managed_key_is_left_alone() {
        let c = cluster("examples/minimal.yaml");
        let plan = plan_deploy(&c, "", &Secrets::default(), &RenderOptions::default()).unwrap();
        assert_eq!(ids(&plan.phases[0].hosts[0]), ["munge"]);
    }

    #[test]
    fn a_short_key_is_refused() {
        let c = cluster("examples/minimal.yaml");
        let secrets = Secrets {
            munge_key: Some(&[1, 2, 3]),
            db_password: None,
        };
        assert!(matches!(
            plan_deploy(&c, "", &secrets, &RenderOptions::default()),
            Err(PlanError::MungeKey(_))
        ));
    }
}
