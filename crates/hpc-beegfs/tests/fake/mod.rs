//! A fake [`Executor`]: a mock of BeeGFS nodes and their daemons.
//!
//! The real daemons run on the SSH test bed (tests/tests/beegfs_bed.rs), but clients cannot
//! (kernel module), so the check's client logic and the error paths run against this mock. It
//! records every host plan applied and every command run, answers the node probe with a
//! Debian 12 VM's facts, the release's tools with `tests/fixtures/fake` (the cluster of
//! `examples/full-stack.yaml` in the exact formats of the real tools' output captured in
//! `tests/fixtures/output/<release>/`), and the round trip, peer read and cleanup programs as a
//! shared mount would: a token written by one client is read by the others, unless a
//! client's mount is "broken" (it writes to and reads from a local directory only).
#![allow(dead_code, clippy::unwrap_used)] // not every test uses every knob; tests panic

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use hpc_beegfs::{
    BENCH_MIB, cleanup_argv, compare_argv, peer_read_argv, probe_argv, roundtrip_argv,
};
use hpc_remote::{
    CommandOutput, Executor, HostError, HostPlan, HostReport, Mode, StepReport, StepStatus,
};

/// A Debian 12 VM as the probe sees it (the node's IP is put in).
pub(crate) fn vm_probe(ip: &str) -> String {
    format!(
        "kernel=6.1.0-28-cloud-amd64\ninet=lo 127.0.0.1/8\ninet=enp1s0 {ip}/24\n\
         dmi-uuid=4c4c4544-0038-3510-8052-b4c04f4e3732\nheaders=yes\n"
    )
}

/// A container on a Debian 13 kernel: no NIC, no headers, no machine UUID.
pub(crate) const CONTAINER_PROBE: &str =
    "kernel=6.12.117+deb13-amd64\ninet=lo 127.0.0.1/8\nheaders=no\n";

pub(crate) fn fixture(name: &str) -> String {
    fs_err::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/fake")
            .join(name),
    )
    .unwrap()
}

pub(crate) fn out(status: u32, stdout: impl Into<String>, stderr: &str) -> CommandOutput {
    CommandOutput {
        status: Some(status),
        stdout: stdout.into().into_bytes(),
        stderr: stderr.as_bytes().to_vec(),
    }
}

fn gone(host: &str) -> HostError {
    HostError::UnknownHost {
        host: host.to_owned(),
    }
}

#[derive(Default)]
pub(crate) struct FakeBeegfs {
    /// Probe output per node (nodes not here answer as a Debian 12 VM at 10.79.0.99).
    pub(crate) probe: BTreeMap<String, String>,
    /// Nodes that cannot be reached at all.
    pub(crate) unreachable: BTreeSet<String>,
    /// Nodes that answer the probe and are gone when their plan is sent.
    pub(crate) lost_after_probe: BTreeSet<String>,
    /// How long applying a plan takes on a node (default: no time).
    pub(crate) slow: BTreeMap<String, Duration>,
    /// `(node, step id)` that fails when applied, with this stderr.
    pub(crate) fail_step: Option<(String, String, String)>,
    /// How many times `fail_step` fails (`None`: every time).
    pub(crate) fail_times: Mutex<Option<usize>>,
    /// Output of each tool, by the first argument that names it: `beegfs-check-servers`,
    /// `--listtargets`, `beegfs-df`, `node`, `target`, `health`.
    pub(crate) tools: BTreeMap<&'static str, CommandOutput>,
    /// A tool's first answer, when it differs from its later ones (`tools`).
    pub(crate) first_answer: Mutex<BTreeMap<&'static str, CommandOutput>>,
    /// Clients whose round trip fails (the disk is full).
    pub(crate) roundtrip_fails: BTreeSet<String>,
    /// Clients whose mount point is a local directory, not BeeGFS.
    pub(crate) broken_mount: BTreeSet<String>,

    /// Every host plan applied: (host, step ids), in the order they were applied.
    pub(crate) applied: Mutex<Vec<(String, Vec<String>)>>,
    /// Every command run: (host, argv).
    pub(crate) ran: Mutex<Vec<(String, Vec<String>)>>,
    /// Steps applied before (a second run finds them unchanged).
    done: Mutex<BTreeSet<(String, String)>>,
    /// The shared mount: node → its token.
    shared: Mutex<BTreeMap<String, String>>,
    /// Broken mounts' local directories: (node, file owner) → token.
    local: Mutex<BTreeMap<(String, String), String>>,
}

impl FakeBeegfs {
    /// Healthy 7.4 tools: every server reachable, every target online and good.
    pub(crate) fn healthy_7() -> Self {
        let mut f = Self::default();
        let servers = fixture("check-servers-7.txt").replace(
            "cn03 [ID: 3]: UNREACHABLE",
            "cn03 [ID: 3]: reachable at 10.79.0.23:8003 (protocol: TCP)",
        );
        let targets = fixture("listtargets-7.txt").replace(
            "301  Probably-offline  Needs-resync",
            "301            Online         Good",
        );
        f.tools.insert("beegfs-check-servers", out(0, servers, ""));
        f.tools.insert("--listtargets", out(0, targets, ""));
        f.tools.insert("beegfs-df", out(0, fixture("df-7.txt"), ""));
        f
    }

    /// The fixtures as they are: 7.4 with cn03 unreachable and target 301 offline.
    pub(crate) fn fixtures_7() -> Self {
        let mut f = Self::default();
        f.tools.insert(
            "beegfs-check-servers",
            out(0, fixture("check-servers-7.txt"), ""),
        );
        f.tools
            .insert("--listtargets", out(0, fixture("listtargets-7.txt"), ""));
        f.tools.insert("beegfs-df", out(0, fixture("df-7.txt"), ""));
        f
    }

    /// The 8.x fixtures as they are: storage 2 unreachable, target 201 offline, a degraded
    /// health check, two of three storage nodes registered.
    pub(crate) fn fixtures_8() -> Self {
        let mut f = Self::default();
        f.tools
            .insert("node", out(0, fixture("node-list-8.json"), ""));
        f.tools
            .insert("target", out(0, fixture("target-list-8.json"), ""));
        f.tools
            // As the real one: exit 1 whenever a check is not healthy (the low capacity
            // pool included), "Error: one or more checks failed" on stderr.
            .insert(
                "health",
                out(
                    1,
                    fixture("health-8.txt"),
                    "Error: one or more checks failed",
                ),
            );
        f
    }

    pub(crate) fn applied_hosts(&self) -> Vec<String> {
        self.applied
            .lock()
            .unwrap()
            .iter()
            .map(|(h, _)| h.clone())
            .collect()
    }

    pub(crate) fn ran_on(&self, host: &str) -> Vec<Vec<String>> {
        self.ran
            .lock()
            .unwrap()
            .iter()
            .filter(|(h, _)| h == host)
            .map(|(_, a)| a.clone())
            .collect()
    }

    /// What the management node's tools say while `deploy` waits for registration, unless
    /// a test set the tool's output: every server of `examples/full-stack.yaml` (meta 1 on
    /// ctl, storage 1–3 on cn01–cn03, targets 101–301) registered, reachable, online.
    fn registered(&self, argv: &[String]) -> Option<CommandOutput> {
        let has = |w: &str| argv.iter().any(|a| a == w);
        if argv.first().is_some_and(|a| a == hpc_beegfs::CTL_7)
            && argv.iter().any(|a| a.starts_with("--sysMgmtdHost="))
        {
            let text = if has("--listtargets") {
                "TargetID     Reachability  Consistency   NodeID\n\
                 ========     ============  ===========   ======\n\
                 \x20    101           Online         Good        1\n\
                 \x20    201           Online         Good        2\n\
                 \x20    301           Online         Good        3\n"
                    .to_owned()
            } else if has("--nodetype=meta") {
                "ctl [ID: 1]\n   Reachable: <yes>\n".to_owned()
            } else {
                (1..=3)
                    .map(|i| format!("cn0{i} [ID: {i}]\n   Reachable: <yes>\n"))
                    .collect()
            };
            return Some(out(0, text, ""));
        }
        if argv.first().is_some_and(|a| a == hpc_beegfs::CLI_8) {
            if has("node") && !self.tools.contains_key("node") {
                let mut rows = vec![
                    r#"{"alias":"node_meta_1","id":{"num_id":1,"node_type":2},"reachable":"yes","type":2}"#.to_owned(),
                ];
                rows.extend((1..=3).map(|i| {
                    format!(r#"{{"alias":"node_storage_{i}","id":{{"num_id":{i},"node_type":3}},"reachable":"yes","type":3}}"#)
                }));
                return Some(out(0, format!("[{}]", rows.join(",")), ""));
            }
            if has("target") && !self.tools.contains_key("target") {
                let rows: Vec<String> = (1..=3)
                    .map(|i| {
                        format!(r#"{{"consistency":"Good","id":{{"num_id":{i}01,"node_type":3}},"reachability":"Online","type":3}}"#)
                    })
                    .collect();
                return Some(out(0, format!("[{}]", rows.join(",")), ""));
            }
        }
        None
    }

    fn tool(&self, argv: &[String]) -> Option<CommandOutput> {
        if let Some(o) = self.registered(argv) {
            return Some(o);
        }
        let key = if argv.first().is_some_and(|a| a == hpc_beegfs::CLI_8) {
            // beegfs --mgmtd-addr ADDR [--tls-disable] [--auth-disable] <command> …
            argv.iter().skip(3).find(|a| !a.starts_with("--"))?.as_str()
        } else if argv.iter().any(|a| a == "--listtargets") {
            "--listtargets"
        } else {
            argv.first()?.as_str()
        };
        if let Some(o) = self.first_answer.lock().unwrap().remove(key) {
            return Some(o);
        }
        self.tools.get(key).cloned()
    }

    fn script_is(argv: &[String], model: &[String]) -> bool {
        argv.len() == model.len() && argv[..3] == model[..3]
    }
}

impl Executor for FakeBeegfs {
    async fn apply_host(&self, plan: &HostPlan, mode: Mode) -> Result<HostReport, HostError> {
        assert!(!mode.check, "deploy applies for real");
        // Let the other hosts of the phase start first, as a real host would.
        tokio::task::yield_now().await;
        if let Some(d) = self.slow.get(&plan.host) {
            tokio::time::sleep(*d).await;
        }
        if self.unreachable.contains(&plan.host) || self.lost_after_probe.contains(&plan.host) {
            return Err(gone(&plan.host));
        }
        self.applied.lock().unwrap().push((
            plan.host.clone(),
            plan.steps.iter().map(|s| s.id.clone()).collect(),
        ));
        let mut done = self.done.lock().unwrap();
        let mut failed = false;
        let steps = plan
            .steps
            .iter()
            .map(|s| {
                let status = if failed {
                    StepStatus::Skipped
                } else if self
                    .fail_step
                    .as_ref()
                    .is_some_and(|(h, id, _)| *h == plan.host && *id == s.id)
                    && match &mut *self.fail_times.lock().unwrap() {
                        None => true,
                        Some(0) => false,
                        Some(n) => {
                            *n -= 1;
                            true
                        }
                    }
                {
                    failed = true;
                    StepStatus::Failed {
                        stderr_tail: self.fail_step.as_ref().unwrap().2.clone(),
                    }
                } else if done.insert((plan.host.clone(), s.id.clone())) {
                    StepStatus::Changed
                } else {
                    StepStatus::Unchanged
                };
                StepReport {
                    id: s.id.clone(),
                    kind: s.kind.label(),
                    status,
                    diff: None,
                }
            })
            .collect();
        Ok(HostReport {
            host: plan.host.clone(),
            check: false,
            steps,
        })
    }

    async fn run(&self, host: &str, argv: &[String]) -> Result<CommandOutput, HostError> {
        self.ran
            .lock()
            .unwrap()
            .push((host.to_owned(), argv.to_vec()));
        if self.unreachable.contains(host) {
            return Err(gone(host));
        }
        if argv == probe_argv().as_slice() {
            let probe = self
                .probe
                .get(host)
                .cloned()
                .unwrap_or_else(|| vm_probe("10.79.0.99"));
            return Ok(out(0, probe, ""));
        }
        if argv.first().is_some_and(|a| a == "findmnt") {
            // A broken mount is a plain directory: findmnt finds no BeeGFS there.
            return Ok(if self.broken_mount.contains(host) {
                out(1, "", "")
            } else {
                out(
                    0,
                    "TARGET SOURCE FSTYPE OPTIONS\n/mnt/beegfs beegfs_nodev beegfs rw\n",
                    "",
                )
            });
        }
        if argv.len() == 3 && argv[0] == "systemctl" && argv[1] == "is-active" {
            // Every service the check asks about has died (its journal says why, below).
            return Ok(out(3, "failed\n", ""));
        }
        if argv.first().is_some_and(|a| a == "journalctl") {
            return Ok(out(
                0,
                format!("{host} {}[812]: Couldn't find any usable NIC", argv[2]),
                "",
            ));
        }
        if Self::script_is(argv, &roundtrip_argv("m", "n", "t", BENCH_MIB)) {
            let (node, token) = (&argv[5], &argv[6]);
            if self.broken_mount.contains(host) {
                self.local
                    .lock()
                    .unwrap()
                    .insert((host.to_owned(), node.clone()), token.clone());
            } else {
                self.shared
                    .lock()
                    .unwrap()
                    .insert(node.clone(), token.clone());
            }
            if self.roundtrip_fails.contains(node) {
                // The token fits; the test file does not.
                return Ok(out(
                    1,
                    "roundtrip=ok\n",
                    "dd: error writing '/mnt/beegfs/.hpc-up-check/x.bin': No space left on device",
                ));
            }
            return Ok(out(
                0,
                "roundtrip=ok\nwrite-ns=500000000\nread-ns=250000000\n",
                "",
            ));
        }
        if Self::script_is(argv, &peer_read_argv("m", "p")) {
            let peer = &argv[5];
            let seen = if self.broken_mount.contains(host) {
                self.local
                    .lock()
                    .unwrap()
                    .get(&(host.to_owned(), peer.clone()))
                    .cloned()
            } else {
                self.shared.lock().unwrap().get(peer).cloned()
            };
            return Ok(match seen {
                Some(token) => out(0, format!("{token}\n"), ""),
                None => out(
                    1,
                    "",
                    &format!(
                        "cat: /mnt/beegfs/.hpc-up-check/{peer}.tok: No such file or directory"
                    ),
                ),
            });
        }
        if Self::script_is(argv, &cleanup_argv("m", "n")) {
            return Ok(out(0, "", ""));
        }
        // local disk (and with a share, the share) beside BeeGFS
        let compare = compare_argv("n", BENCH_MIB, None);
        if argv.len() >= compare.len() && argv[..3] == compare[..3] {
            let mut o = "local-ns=250000000 125000000\n".to_owned();
            if argv.len() > compare.len() {
                o.push_str("share-ns=1000000000 500000000\n");
            }
            return Ok(out(0, o, ""));
        }
        if let Some(o) = self.tool(argv) {
            return Ok(o);
        }
        Ok(out(127, "", &format!("{}: command not found", argv[0])))
    }
}
