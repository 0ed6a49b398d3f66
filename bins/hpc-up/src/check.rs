//! `hpc-up check virtiofs`: per node and share — mounted, right options, a host→guest and
//! guest→host round trip, `ro` enforced, throughput next to the node's local disk.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use hpc_config::{Mount, Node};
use hpc_remote::Executor;
use hpc_virtiofs::{MountCheck, check_argv, parse_check, probe_name};
use miette::{IntoDiagnostic, Result};
use serde_json::json;

use crate::apply::{Target, load};
use crate::output::Output;

struct Row<'a> {
    node: &'a Node,
    mount: &'a Mount,
    check: MountCheck,
    /// For read-write shares: the host read back what the node wrote (`None`: not applicable).
    host_saw_guest: Option<bool>,
    error: Option<String>,
}

impl Row<'_> {
    fn passed(&self) -> bool {
        self.error.is_none() && self.check.passed() && self.host_saw_guest != Some(false)
    }
}

fn yes(b: bool) -> &'static str {
    if b { "ok" } else { "FAIL" }
}

fn rates(r: Option<(f64, f64)>) -> String {
    r.map_or_else(|| "-".to_owned(), |(w, r)| format!("{w:.0}/{r:.0}"))
}

pub(crate) fn virtiofs(out: &Output, t: &Target<'_>) -> Result<ExitCode> {
    let Some(l) = load(out, t)? else {
        return Ok(ExitCode::from(1));
    };
    let cluster = &l.cluster;
    let token = format!(
        "hpc-up-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    // The host writes its file once per shared directory (several nodes share one).
    let local = |n: &Node| n.uri.remote_host().is_none();
    let mut host_dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for n in cluster.nodes.iter().filter(|n| local(n)) {
        for m in &n.virtiofs {
            if host_dirs.insert(m.host_path.clone()) {
                let f = m.host_path.join(".hpc-up-check-host");
                // A read-only share may still be writable on the host; if not, the
                // host→guest check fails and says so.
                let _ = fs_err::write(&f, &token);
            }
        }
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .into_diagnostic()?;
    let exec = crate::nodes::executor(cluster, None)?;
    let per_node = rt.block_on(async {
        let futs = cluster.nodes.iter().map(|n| {
            let exec = &exec;
            let token = &token;
            async move {
                let mut rows = Vec::new();
                for m in &n.virtiofs {
                    let argv = check_argv(n.name.as_str(), m, token);
                    let (check, error) = match exec.run(n.name.as_str(), &argv).await {
                        Ok(o) => {
                            let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
                            let err = (o.status != Some(0)).then(|| {
                                format!(
                                    "check exited with {:?}: {}",
                                    o.status,
                                    String::from_utf8_lossy(&o.stderr).trim()
                                )
                            });
                            (parse_check(m, &stdout), err)
                        }
                        Err(e) => (MountCheck::default(), Some(e.to_string())),
                    };
                    rows.push((n, m, check, error));
                }
                rows
            }
        });
        let r = futures_util::future::join_all(futs).await;
        exec.close().await;
        r
    });

    let mut rows: Vec<Row<'_>> = Vec::new();
    for (n, m, check, error) in per_node.into_iter().flatten() {
        let host_saw_guest = if m.readonly {
            None
        } else if local(n) {
            let probe = m.host_path.join(probe_name(n.name.as_str()));
            let seen = fs_err::read_to_string(&probe)
                .map(|s| s.trim() == token)
                .unwrap_or(false);
            let _ = fs_err::remove_file(&probe);
            Some(seen)
        } else {
            None
        };
        rows.push(Row {
            node: n,
            mount: m,
            check,
            host_saw_guest,
            error,
        });
    }
    for d in &host_dirs {
        let _ = fs_err::remove_file(d.join(".hpc-up-check-host"));
    }

    let failed = rows.iter().filter(|r| !r.passed()).count();
    if out.json() {
        let v: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "node": r.node.name.as_str(), "tag": r.mount.tag.as_str(),
                    "mount-point": r.mount.mount_point, "readonly": r.mount.readonly,
                    "mounted": r.check.mounted, "options-ok": r.check.mode_ok,
                    "host-to-guest": r.check.host_to_guest, "guest-to-host": r.host_saw_guest,
                    "write-refused": r.check.write_refused,
                    "share-mib-per-s": r.check.share_mibps.map(|(w, r)| json!({"write": w, "read": r})),
                    "local-mib-per-s": r.check.local_mibps.map(|(w, r)| json!({"write": w, "read": r})),
                    "error": r.error, "passed": r.passed(),
                })
            })
            .collect();
        out.json_value(&json!({"ok": failed == 0, "mounts": v}));
    } else {
        let mut s = format!(
            "{:<10} {:<12} {:<18} {:<7} {:<7} {:<5} {:<5} {:<8} {:>14} {:>14}\n",
            "node",
            "tag",
            "mount point",
            "mounted",
            "options",
            "h→g",
            "g→h",
            "ro",
            "share MiB/s",
            "local MiB/s"
        );
        for r in &rows {
            s.push_str(&format!(
                "{:<10} {:<12} {:<18} {:<7} {:<7} {:<5} {:<5} {:<8} {:>14} {:>14}\n",
                r.node.name.as_str(),
                r.mount.tag.as_str(),
                r.mount.mount_point,
                yes(r.check.mounted),
                yes(r.check.mode_ok),
                yes(r.check.host_to_guest),
                r.host_saw_guest.map_or("-", yes),
                match r.check.write_refused {
                    Some(true) => "enforced",
                    Some(false) => "FAIL",
                    None => "-",
                },
                rates(r.check.share_mibps),
                rates(r.check.local_mibps),
            ));
        }
        s.push_str(&format!(
            "(throughput: write/read of {} MiB, sequential, caches dropped before reading)\n",
            hpc_virtiofs::BENCH_MIB
        ));
        for r in rows.iter().filter(|r| r.error.is_some()) {
            s.push_str(&format!(
                "{} {}: {}\n",
                r.node.name,
                r.mount.tag,
                r.error.as_deref().unwrap_or_default()
            ));
        }
        s.push_str(&if failed == 0 {
            format!("virtio-fs: all {} mount(s) pass\n", rows.len())
        } else {
            format!("virtio-fs: {failed} of {} mount(s) FAIL\n", rows.len())
        });
        out.data(&s);
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
