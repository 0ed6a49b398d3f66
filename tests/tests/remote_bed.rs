//! hpc-remote's `SshExecutor` against a real bed of SSH hosts (`tests/testbed`, one network
//! namespace, sshd and host key per host): apply to all hosts, idempotent re-run (nothing
//! rewritten), an unreachable host among reachable ones, a changed host key, and hostile
//! file names and values. Needs root, iproute2, OpenSSH and util-linux: skips without them
//! outside CI, fails in CI.
#![allow(clippy::unwrap_used)] // tests panic on failure

use std::future::Future;

use hpc_remote::{
    EnsureDirectory, EnsureFile, HostError, HostPlan, Mode, Owner, RunCommand, SshExecutor,
    StepStatus, Summary, apply_all,
};
use hpc_tests::ssh_bed::SshBed;

fn block_in<T: Send, F: Future<Output = T>>(bed: &SshBed, f: impl FnOnce() -> F + Send) -> T {
    bed.block_on(f)
}

/// An executor for every host of the bed, pinned to `known_hosts` (the bed's by default).
fn executor(bed: &SshBed, known_hosts: Option<std::path::PathBuf>) -> SshExecutor {
    bed.executor("remote-bed-test", known_hosts)
}

const FILES: [&str; 2] = ["/opt/rbed/app.conf", "/opt/rbed/conf.d/secret.key"];

/// Two directories, two files (one secret, binary), a handler that leaves a marker.
fn plan(host: &str) -> HostPlan {
    let root = Owner::new("root", "root");
    HostPlan::new(host)
        .step(
            "dir",
            EnsureDirectory::new("/opt/rbed", 0o755).owner(root.clone()),
        )
        .step(
            "confd",
            EnsureDirectory::new("/opt/rbed/conf.d", 0o750).owner(root.clone()),
        )
        .step(
            "app",
            EnsureFile::new(FILES[0], format!("host = {host}\n"), 0o644).owner(root.clone()),
        )
        .step(
            "key",
            EnsureFile::new(FILES[1], vec![0u8, 1, 2, 255, b'\n'], 0o600)
                .owner(root)
                .secret(),
        )
        .step(
            "handler",
            RunCommand::new(["touch", "/opt/rbed/handler-ran"]).when_changed(["app", "key"]),
        )
}

fn plans(bed: &SshBed) -> Vec<HostPlan> {
    bed.hosts().iter().map(|h| plan(&h.name)).collect()
}

/// Runs `argv` on host `name` (nsenter, no SSH) and returns its stdout; panics on failure.
fn on(bed: &SshBed, name: &str, argv: &[&str]) -> String {
    let out = bed.exec_on(name, argv);
    assert!(
        out.status.success(),
        "{name}: {argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Whether `path` exists on host `name`.
fn exists_on(bed: &SshBed, name: &str, path: &str) -> bool {
    bed.exec_on(name, &["test", "-e", path]).status.success()
}

/// Mode, owner, mtime (ns) and inode of the plan's files on host `name`.
fn file_stats(bed: &SshBed, name: &str) -> String {
    let mut argv = vec!["stat", "-c", "%n %a %U:%G %.9Y %i"];
    argv.extend(FILES);
    on(bed, name, &argv)
}

fn reports<'a>(s: &'a Summary, host: &str) -> &'a hpc_remote::HostReport {
    match s.host(host).unwrap() {
        Ok(r) => r,
        Err(e) => panic!("{host}: {e}\n{s}"),
    }
}

#[test]
fn apply_rerun_and_unreachable_host() {
    let Some(bed) = SshBed::start(4).unwrap() else {
        return;
    };
    let plans = plans(&bed);
    let exec = executor(&bed, None);

    // First apply: every step of every host changes, the handler runs.
    let s = block_in(&bed, || async {
        let s = apply_all(&exec, &plans, Mode::APPLY).await;
        exec.close().await;
        s
    });
    assert!(s.is_success(), "{s}");
    for h in bed.hosts() {
        let r = reports(&s, &h.name);
        assert_eq!(r.changed(), 5, "{}: {r:?}", h.name);
        assert_eq!(
            on(&bed, &h.name, &["cat", FILES[0]]),
            format!("host = {}\n", h.name)
        );
        assert_eq!(
            bed.exec_on(&h.name, &["cat", FILES[1]]).stdout,
            [0u8, 1, 2, 255, b'\n']
        );
        let stats = file_stats(&bed, &h.name);
        assert!(stats.contains("app.conf 644 root:root "), "{stats}");
        assert!(stats.contains("secret.key 600 root:root "), "{stats}");
        assert_eq!(
            on(&bed, &h.name, &["stat", "-c", "%a", "/opt/rbed/conf.d"]),
            "750\n"
        );
        assert!(exists_on(&bed, &h.name, "/opt/rbed/handler-ran"));
        on(&bed, &h.name, &["rm", "/opt/rbed/handler-ran"]);
    }

    // Re-run: zero changes, the handler is skipped, files are not rewritten (same mtime and
    // inode).
    let before: Vec<String> = bed
        .hosts()
        .iter()
        .map(|h| file_stats(&bed, &h.name))
        .collect();
    let s = block_in(&bed, || async {
        let s = apply_all(&exec, &plans, Mode::APPLY).await;
        exec.close().await;
        s
    });
    assert!(s.is_success(), "{s}");
    assert_eq!(s.changed(), 0, "{s}");
    for (h, before) in bed.hosts().iter().zip(&before) {
        let r = reports(&s, &h.name);
        assert_eq!(r.step("handler").unwrap().status, StepStatus::Skipped);
        assert!(
            r.steps
                .iter()
                .filter(|st| st.id != "handler")
                .all(|st| st.status == StepStatus::Unchanged),
            "{r:?}"
        );
        assert_eq!(&file_stats(&bed, &h.name), before, "{} rewritten", h.name);
        assert!(!exists_on(&bed, &h.name, "/opt/rbed/handler-ran"));
    }

    // One host down: it is reported unreachable and named in the summary; the others are
    // worked on (a changed file on each proves it).
    bed.stop_host("h03").unwrap();
    let plans2: Vec<HostPlan> = bed
        .hosts()
        .iter()
        .map(|h| plan(&h.name).step("extra", EnsureFile::new("/opt/rbed/extra", "x\n", 0o644)))
        .collect();
    let exec = executor(&bed, None);
    let s = block_in(&bed, || async {
        let s = apply_all(&exec, &plans2, Mode::APPLY).await;
        exec.close().await;
        s
    });
    assert!(!s.is_success());
    assert!(
        matches!(s.host("h03").unwrap(), Err(HostError::Unreachable { host, .. }) if host == "h03"),
        "{s}"
    );
    assert!(s.to_string().contains("host h03: unreachable"), "{s}");
    for h in ["h01", "h02", "h04"] {
        let r = reports(&s, h);
        assert_eq!(r.changed(), 1, "{h}: {r:?}");
        assert_eq!(r.step("extra").unwrap().status, StepStatus::Changed);
        assert_eq!(on(&bed, h, &["cat", "/opt/rbed/extra"]), "x\n");
        assert!(!s.to_string().contains(&format!("host {h}:")), "{s}");
    }
}

#[test]
fn changed_host_key_is_refused() {
    let Some(bed) = SshBed::start(4).unwrap() else {
        return;
    };
    // A known_hosts where h02's line carries h03's key.
    let pinned = fs_err::read_to_string(bed.known_hosts_path()).unwrap();
    let key_of = |name: &str| {
        pinned
            .lines()
            .find(|l| l.split(',').next() == Some(name))
            .and_then(|l| l.split_once(' '))
            .map(|(_, key)| key.to_owned())
            .unwrap()
    };
    let (h02_key, h03_key) = (key_of("h02"), key_of("h03"));
    assert_ne!(h02_key, h03_key);
    let forged: String = pinned
        .lines()
        .map(|l| {
            if l.split(',').next() == Some("h02") {
                l.replace(&h02_key, &h03_key)
            } else {
                l.to_owned()
            }
        })
        .fold(String::new(), |acc, l| acc + &l + "\n");
    let kh = bed.state_dir().join("known_hosts.forged");
    fs_err::write(&kh, forged).unwrap();

    let plans = plans(&bed);
    let exec = executor(&bed, Some(kh.clone()));
    let s = block_in(&bed, || async {
        let s = apply_all(&exec, &plans, Mode::APPLY).await;
        exec.close().await;
        s
    });
    assert!(!s.is_success());
    match s.host("h02").unwrap() {
        Err(e @ HostError::HostKeyChanged { host, file, .. }) => {
            assert_eq!(host, "h02");
            assert_eq!(file, &kh);
            assert!(e.to_string().contains("HOST KEY CHANGED"), "{e}");
        }
        other => panic!("h02: expected HostKeyChanged, got {other:?}"),
    }
    assert!(s.to_string().contains("host h02: HOST KEY CHANGED"), "{s}");
    // Nothing was done on h02; the others were applied.
    assert!(!exists_on(&bed, "h02", "/opt/rbed"));
    for h in ["h01", "h03", "h04"] {
        assert_eq!(reports(&s, h).changed(), 5, "{s}");
    }
}

#[test]
fn hostile_names_and_values_do_not_inject() {
    let Some(bed) = SshBed::start(4).unwrap() else {
        return;
    };
    let evil = "$(touch /tmp/pwned)";
    let dir = format!("/opt/evil dir 'single' \"double\" {evil} `touch /tmp/pwned`");
    // `dir` nests (its `/`s are separators); a file name cannot hold a `/`, so the names
    // inject a relative `touch pwned`, which would land in the runner's working directory.
    let file = format!(
        "{dir}/name with spaces; touch pwned; 'q' \"d\" $(touch pwned) `touch pwned`\nline2 \\ *"
    );
    let cmd_out = format!("{dir}/handler $(touch pwned) 'x' \"y\" `z`");
    let content = format!(
        "value = '{evil}' \"`touch /tmp/pwned`\" ${{HOME}} %s %n \\n \\\\ \n\
         EOF\n'EOF'\nsecond line; rm -rf /\n"
    );
    let plans: Vec<HostPlan> = bed
        .hosts()
        .iter()
        .map(|h| {
            HostPlan::new(&h.name)
                .step(format!("dir {evil}"), EnsureDirectory::new(&dir, 0o755))
                .step(
                    format!("file 'q' \"d\" {evil}\n"),
                    EnsureFile::new(&file, content.clone(), 0o640),
                )
                .step(
                    "handler $(id)",
                    RunCommand::new(["touch", cmd_out.as_str()])
                        .when_changed([format!("file 'q' \"d\" {evil}\n")]),
                )
        })
        .collect();
    let pwned_here_before = std::path::Path::new("/tmp/pwned").exists();
    let exec = executor(&bed, None);
    let s = block_in(&bed, || async {
        let s = apply_all(&exec, &plans, Mode::APPLY).await;
        exec.close().await;
        s
    });
    assert!(s.is_success(), "{s}");
    for h in bed.hosts() {
        assert_eq!(reports(&s, &h.name).changed(), 3, "{s}");
        // Exactly the given names and bytes, and no side effect anywhere on the host.
        assert_eq!(on(&bed, &h.name, &["cat", &file]), content);
        assert_eq!(on(&bed, &h.name, &["stat", "-c", "%a", &file]), "640\n");
        assert!(exists_on(&bed, &h.name, &cmd_out), "{}", h.name);
        for p in ["/tmp/pwned", "/root/pwned", "/pwned", "/opt/pwned"] {
            assert!(!exists_on(&bed, &h.name, p), "{}: {p}", h.name);
        }
        let listing = on(&bed, &h.name, &["ls", "-A", "/opt"]);
        assert!(!listing.contains("pwned"), "{listing}");
        let mut entries = on(&bed, &h.name, &["find", &dir, "-mindepth", "1", "-print0"])
            .split('\0')
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>();
        entries.sort();
        let mut want = vec![file.clone(), cmd_out.clone()];
        want.sort();
        assert_eq!(entries, want);
    }
    assert!(pwned_here_before || !std::path::Path::new("/tmp/pwned").exists());

    // Re-run: the hostile file is recognised as unchanged.
    let s = block_in(&bed, || async {
        let s = apply_all(&exec, &plans, Mode::APPLY).await;
        exec.close().await;
        s
    });
    assert!(s.is_success(), "{s}");
    assert_eq!(s.changed(), 0, "{s}");
}

#[test]
fn a_failed_write_leaves_the_old_file_intact() {
    let Some(bed) = SshBed::start(2).unwrap() else {
        return;
    };
    let exec = executor(&bed, None);
    let all = plans(&bed);
    let first = block_in(&bed, || async { apply_all(&exec, &all, Mode::APPLY).await });
    assert!(first.is_success(), "{first}");
    let before = on(&bed, "h01", &["sha256sum", FILES[0]]);

    // h01's sshd hands its sessions a variable that makes the runner fail right before it
    // renames the new app.conf into place (as a full disk or a crash there would).
    on(
        &bed,
        "h01",
        &[
            "sh",
            "-c",
            &format!(
                "printf 'HPC_REMOTE_TEST_FAIL_BEFORE_RENAME={}\\n' > /root/.ssh/environment",
                FILES[0]
            ),
        ],
    );
    let changed: Vec<HostPlan> = bed
        .hosts()
        .iter()
        .map(|h| {
            HostPlan::new(h.name.as_str()).step(
                "app",
                EnsureFile::new(FILES[0], format!("host = {} v2\n", h.name), 0o644),
            )
        })
        .collect();
    let exec = executor(&bed, None);
    let second = block_in(&bed, || async {
        apply_all(&exec, &changed, Mode::APPLY).await
    });
    assert!(!second.is_success());
    assert!(second.to_string().contains("h01"), "{second}");
    assert!(
        matches!(
            reports(&second, "h01").step("app").unwrap().status,
            StepStatus::Failed { .. }
        ),
        "{second}"
    );
    // the old file, whole, and no temporary file beside it
    assert_eq!(on(&bed, "h01", &["sha256sum", FILES[0]]), before);
    assert_eq!(
        on(
            &bed,
            "h01",
            &["sh", "-c", "ls -A /opt/rbed | grep -c hpc-tmp || true"]
        )
        .trim(),
        "0"
    );
    // the other host took the change
    assert_eq!(on(&bed, "h02", &["cat", FILES[0]]), "host = h02 v2\n");
}
