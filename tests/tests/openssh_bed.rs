//! hpc-remote's `OpenSshExecutor` against a real bed of SSH hosts (`tests/testbed`): built
//! from the `qemu+ssh://root@<ip>/system?keyfile=<bed key>` URIs a deployer writes for
//! hypervisor hosts, run as a client of the bed's ctl host (`SshBed::in_ctl_home`: OpenSSH
//! reads the bed's known_hosts and config from `/root/.ssh`). Applies a plan on two hosts,
//! re-applies it (no change), runs commands, and is refused by a host whose pinned key is
//! wrong. Needs root, iproute2, OpenSSH and util-linux: skips without them outside CI, fails
//! in CI.
#![allow(clippy::unwrap_used)] // tests panic on failure

use std::future::Future;

use hpc_remote::{
    EnsureDirectory, EnsureFile, Executor, HostError, HostPlan, Mode, OpenSshExecutor,
    OpenSshTarget, Owner, RunCommand, StepStatus, Summary, apply_all,
};
use hpc_tests::ssh_bed::SshBed;

const DIR: &str = "/opt/osbed";
const FILE: &str = "/opt/osbed/bridge.conf";
const MARK: &str = "/opt/osbed/applied";

/// An executor for every host of the bed, built from its libvirt URI.
fn executor(bed: &SshBed) -> OpenSshExecutor {
    OpenSshExecutor::new(bed.hosts().iter().map(|h| {
        let uri = bed.libvirt_uri(&h.name);
        let target = OpenSshTarget::from_libvirt_uri(&uri).unwrap();
        assert_eq!(target.host, h.ip.to_string());
        assert_eq!(target.user.as_deref(), Some("root"));
        assert_eq!(target.keyfile.as_deref(), Some(bed.key_path().as_path()));
        (h.name.clone(), target)
    }))
}

/// A directory, a file naming the host, and a command that runs when the file changed.
fn plan(host: &str) -> HostPlan {
    HostPlan::new(host)
        .step(
            "dir",
            EnsureDirectory::new(DIR, 0o755).owner(Owner::new("root", "root")),
        )
        .step(
            "file",
            EnsureFile::new(FILE, format!("bridge for {host}\n"), 0o640)
                .owner(Owner::new("root", "root")),
        )
        .step(
            "mark",
            RunCommand::new(["sh", "-c", "hostname > \"$0\"", MARK]).when_changed(["file"]),
        )
}

/// Runs `f`'s future on a current-thread runtime as a client on the bed's ctl host, with
/// `known_hosts` instead of the bed's when given.
fn as_client<T: Send, F: Future<Output = T>>(
    bed: &SshBed,
    known_hosts: Option<&std::path::Path>,
    f: impl FnOnce() -> F + Send,
) -> T {
    let run = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f())
    };
    match known_hosts {
        None => bed.in_ctl_home(run),
        Some(kh) => bed.in_ctl_home_with(kh, run),
    }
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

fn changed(s: &Summary, host: &str) -> usize {
    match s.host(host) {
        Some(Ok(r)) => r.changed(),
        other => panic!("{host}: {other:?}\n{s}"),
    }
}

#[test]
fn apply_rerun_run_and_wrong_host_key() {
    let Some(bed) = SshBed::start(2).unwrap() else {
        return;
    };
    let plans: Vec<HostPlan> = bed.hosts().iter().map(|h| plan(&h.name)).collect();
    let exec = executor(&bed);

    // First apply: every step of both hosts changes.
    let s = as_client(&bed, None, || apply_all(&exec, &plans, Mode::APPLY));
    assert!(s.is_success(), "{s}");
    for h in bed.hosts() {
        assert_eq!(changed(&s, &h.name), 3, "{s}");
        assert_eq!(
            on(&bed, &h.name, &["cat", FILE]),
            format!("bridge for {}\n", h.name)
        );
        assert_eq!(
            on(&bed, &h.name, &["stat", "-c", "%a %U:%G", FILE]),
            "640 root:root\n"
        );
        assert_eq!(on(&bed, &h.name, &["cat", MARK]), format!("{}\n", h.name));
        on(&bed, &h.name, &["rm", MARK]);
    }

    // Second apply: nothing changes, the command is skipped.
    let s = as_client(&bed, None, || apply_all(&exec, &plans, Mode::APPLY));
    assert!(s.is_success(), "{s}");
    assert_eq!(s.changed(), 0, "{s}");
    for h in bed.hosts() {
        let Some(Ok(r)) = s.host(&h.name) else {
            panic!("{s}")
        };
        assert_eq!(r.step("mark").unwrap().status, StepStatus::Skipped, "{r:?}");
        assert!(!bed.exec_on(&h.name, &["test", "-e", MARK]).status.success());
    }

    // `run`: a command's output and status, argv quoted (no shell injection), its own exit
    // status 255 kept apart from ssh's failures.
    let argv = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
    let (hostname, quoted, status255) = as_client(&bed, None, || async {
        (
            exec.run("h02", &argv(&["hostname"])).await,
            exec.run("h01", &argv(&["printf", "%s|", "a b", "$(id)", "'"]))
                .await,
            exec.run("h01", &argv(&["sh", "-c", "echo oops >&2; exit 255"]))
                .await,
        )
    });
    let hostname = hostname.unwrap();
    assert_eq!(hostname.status, Some(0));
    assert_eq!(hostname.stdout, b"h02\n");
    assert_eq!(hostname.stderr, b"");
    assert_eq!(quoted.unwrap().stdout, b"a b|$(id)|'|");
    let status255 = status255.unwrap();
    assert_eq!(status255.status, Some(255));
    assert_eq!(status255.stderr, b"oops\n");

    // A known_hosts that pins h01's key for h02: h02 is refused by ssh's host key check,
    // named in the error; h01 is still applied.
    let known = fs_err::read_to_string(bed.known_hosts_path()).unwrap();
    let key_of = |name: &str| {
        known
            .lines()
            .find(|l| l.split(',').next() == Some(name))
            .and_then(|l| l.split_once(' '))
            .map(|(_, key)| key.to_owned())
            .unwrap()
    };
    let (h01_key, h02_key) = (key_of("h01"), key_of("h02"));
    assert_ne!(h01_key, h02_key);
    let forged: String = known
        .lines()
        .map(|l| {
            if l.split(',').next() == Some("h02") {
                l.replace(&h02_key, &h01_key)
            } else {
                l.to_owned()
            }
        })
        .fold(String::new(), |acc, l| acc + &l + "\n");
    let wrong = bed.state_dir().join("known_hosts.openssh-wrong");
    fs_err::write(&wrong, forged).unwrap();
    on(&bed, "h01", &["rm", FILE]);
    on(&bed, "h02", &["rm", FILE]);
    let (s, run) = as_client(&bed, Some(&wrong), || async {
        (
            apply_all(&exec, &plans, Mode::APPLY).await,
            exec.run("h02", &argv(&["true"])).await,
        )
    });
    assert!(!s.is_success(), "{s}");
    assert_eq!(changed(&s, "h01"), 2, "{s}");
    for e in [s.host("h02").unwrap().as_ref().err(), run.as_ref().err()] {
        match e {
            Some(e @ HostError::Ssh { host, detail }) => {
                assert_eq!(host, "h02");
                assert!(
                    detail.contains("Host key verification failed"),
                    "not refused for the host key: {e}"
                );
                let text = e.to_string();
                assert!(text.starts_with("host h02: ssh: root@"), "{text}");
                assert!(text.contains("(ssh exit 255)"), "{text}");
            }
            other => panic!("h02: expected a host key failure, got {other:?}"),
        }
    }
    assert!(!bed.exec_on("h02", &["test", "-e", FILE]).status.success());

    // A known_hosts without h02: refused too (never trusted on first use, never prompted).
    let only_h01 = bed.state_dir().join("known_hosts.openssh-h01");
    let h01_line = known
        .lines()
        .find(|l| l.split(',').next() == Some("h01"))
        .unwrap();
    fs_err::write(&only_h01, format!("{h01_line}\n")).unwrap();
    let run = as_client(&bed, Some(&only_h01), || async {
        exec.run("h02", &argv(&["true"])).await
    });
    match run {
        Err(HostError::Ssh { host, detail }) => {
            assert_eq!(host, "h02");
            assert!(detail.contains("Host key verification failed"), "{detail}");
        }
        other => panic!("h02: expected a host key failure, got {other:?}"),
    }
    assert!(s.to_string().contains("host h02: ssh: root@"), "{s}");
}
