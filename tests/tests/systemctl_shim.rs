//! The test bed's `systemctl`/`journalctl` shims (`tests/testbed/shims`): through SSH, on a
//! real bed host, they start the real Debian daemons from their real unit files (munge,
//! mariadb, slurmd's condition) and a test unit that exercises the unit-file features.
//! Needs root, iproute2, OpenSSH, util-linux and the munge, mariadb-server and slurmd
//! packages: skips without them outside CI, fails in CI.
#![allow(clippy::unwrap_used)] // tests panic on failure

use std::path::Path;
use std::process::{Command, Output};

use hpc_tests::require;
use hpc_tests::ssh_bed::SshBed;

/// `ssh -F <bed config> <host> <cmd>` from the bed's ctl namespace (OpenSSH client), bounded:
/// a daemon that kept the session's pipes open would hang the call.
fn ssh(bed: &SshBed, host: &str, cmd: &str) -> Output {
    Command::new("timeout")
        .args(["120", "ip", "netns", "exec", bed.ctl_netns(), "ssh", "-F"])
        .arg(bed.ssh_config_path())
        .args([host, cmd])
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_owned()
}

/// Runs `cmd` on `host` and asserts that it succeeds; returns its stdout.
fn ok(bed: &SshBed, host: &str, cmd: &str) -> String {
    let out = ssh(bed, host, cmd);
    assert!(
        out.status.success(),
        "{host}: `{cmd}` failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// `systemctl is-active UNIT` on `host`: (its output, its exit code).
fn is_active(bed: &SshBed, host: &str, unit: &str) -> (String, Option<i32>) {
    let out = ssh(bed, host, &format!("systemctl is-active {unit}"));
    (stdout(&out), out.status.code())
}

/// The main PID the shim reports for `unit` (0: none).
fn main_pid(bed: &SshBed, host: &str, unit: &str) -> u32 {
    ok(
        bed,
        host,
        &format!("systemctl show -p MainPID --value {unit}"),
    )
    .parse()
    .unwrap()
}

/// Whether `pid` is a live process in `host`'s PID namespace.
fn pid_alive(bed: &SshBed, host: &str, pid: u32) -> bool {
    let out = bed.exec_on(host, &["cat", &format!("/proc/{pid}/stat")]);
    out.status.success() && !stdout(&out).contains(") Z ")
}

fn have_packages(bins: &[&str], packages: &str) -> bool {
    let ok = bins.iter().all(|b| Path::new(b).exists());
    !require(
        ok,
        packages,
        "real daemons started by the bed's systemctl shim",
    )
}

/// The shim, not the real systemctl, answers on the bed's hosts.
fn assert_shimmed(bed: &SshBed, host: &str) {
    let v = ok(bed, host, "systemctl --version");
    assert!(v.contains("hpcnet"), "{host}: not the bed's shim: {v}");
}

/// A munge key: 1024 random bytes, 0400 munge:munge (chown by name: munge's uid is dynamic).
const WRITE_KEY: &str = "head -c 1024 /dev/urandom >/etc/munge/munge.key && \
     chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key";

#[test]
fn munge_starts_restarts_stops_and_refuses_an_insecure_key() {
    if !have_packages(&["/usr/sbin/munged", "/usr/bin/munge"], "munge") {
        return;
    }
    let Some(bed) = SshBed::start(2).unwrap() else {
        return;
    };
    assert_shimmed(&bed, "h01");
    ok(&bed, "h01", WRITE_KEY);

    // enable --now: enabled (a symlink in h01's own /etc), started, answering.
    ok(&bed, "h01", "systemctl enable --now munge");
    assert_eq!(is_active(&bed, "h01", "munge"), ("active".into(), Some(0)));
    assert_eq!(
        ok(&bed, "h01", "systemctl is-enabled munge.service"),
        "enabled"
    );
    let cred = ok(&bed, "h01", "munge -n | unmunge");
    assert!(
        cred.contains("STATUS:") && cred.contains("Success"),
        "{cred}"
    );
    assert!(cred.contains("ENCODE_HOST:     h01"), "{cred}");
    let pid = main_pid(&bed, "h01", "munge");
    assert!(pid > 1, "MainPID {pid}");
    assert_eq!(
        stdout(&bed.exec_on("h01", &["cat", &format!("/proc/{pid}/comm")])),
        "munged"
    );
    assert_eq!(
        stdout(&bed.exec_on("h01", &["stat", "-c", "%U", &format!("/proc/{pid}")])),
        "munge",
        "User=munge"
    );
    assert_eq!(
        ok(
            &bed,
            "h01",
            "systemctl show -p ActiveState -p SubState,UnitFileState munge"
        ),
        "ActiveState=active\nSubState=running\nUnitFileState=enabled"
    );
    // The other host has its own processes: munge is not running there.
    assert_eq!(
        is_active(&bed, "h02", "munge"),
        ("inactive".into(), Some(3))
    );

    // restart: a new process, the old one gone.
    ok(&bed, "h01", "systemctl restart munge");
    let pid2 = main_pid(&bed, "h01", "munge");
    assert!(pid2 > 1 && pid2 != pid, "restart kept MainPID {pid}");
    assert!(!pid_alive(&bed, "h01", pid), "old munged {pid} survived");
    assert!(pid_alive(&bed, "h01", pid2));
    ok(&bed, "h01", "munge -n | unmunge >/dev/null");

    // stop: inactive, the process is gone, so is its RuntimeDirectory.
    ok(&bed, "h01", "systemctl stop munge");
    assert_eq!(
        is_active(&bed, "h01", "munge"),
        ("inactive".into(), Some(3))
    );
    assert!(!pid_alive(&bed, "h01", pid2), "munged {pid2} survived stop");
    assert!(
        !bed.exec_on("h01", &["test", "-e", "/run/munge"])
            .status
            .success()
    );
    assert!(!ssh(&bed, "h01", "munge -n >/dev/null").status.success());

    // A key readable by group and others: munged refuses it, and so does restart.
    ok(&bed, "h01", "chmod 0644 /etc/munge/munge.key");
    let out = ssh(&bed, "h01", "systemctl restart munge");
    assert!(!out.status.success(), "restart with a 0644 key succeeded");
    assert!(
        stderr(&out).contains("Keyfile is insecure"),
        "stderr: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("Job for munge.service failed"));
    assert_eq!(is_active(&bed, "h01", "munge"), ("failed".into(), Some(3)));
    assert_eq!(ok(&bed, "h01", "systemctl is-failed munge"), "failed");
    let journal = ok(&bed, "h01", "journalctl -u munge -n 20 --no-pager");
    assert!(journal.contains("Keyfile is insecure"), "{journal}");
    assert!(
        journal.contains("should not be readable or writable by group"),
        "{journal}"
    );

    // Fixed key: it starts again; disable --now stops it and removes the symlink.
    ok(&bed, "h01", "chmod 0400 /etc/munge/munge.key");
    ok(&bed, "h01", "systemctl start munge");
    assert_eq!(is_active(&bed, "h01", "munge"), ("active".into(), Some(0)));
    ok(&bed, "h01", "systemctl disable --now munge");
    assert_eq!(is_active(&bed, "h01", "munge").0, "inactive");
    let out = ssh(&bed, "h01", "systemctl is-enabled munge");
    assert_eq!(
        (stdout(&out).as_str(), out.status.code()),
        ("disabled", Some(1))
    );
    assert!(
        !bed.exec_on(
            "h01",
            &[
                "test",
                "-L",
                "/etc/systemd/system/multi-user.target.wants/munge.service"
            ]
        )
        .status
        .success()
    );
}

#[test]
fn mariadb_notify_unit_serves_queries_then_stops() {
    if !have_packages(&["/usr/sbin/mariadbd", "/usr/bin/mysql"], "mariadb-server") {
        return;
    }
    let Some(bed) = SshBed::start(1).unwrap() else {
        return;
    };
    assert_shimmed(&bed, "h01");
    // Type=notify, User=mysql, a multi-line `sh -c` ExecStart, `!`-prefixed ExecStartPost,
    // /run/mysqld from tmpfiles.d.
    ok(&bed, "h01", "systemctl start mariadb");
    assert_eq!(ok(&bed, "h01", "mysql -N -e 'select 1'"), "1");
    // The alias (mysql.service -> mariadb.service) names the same unit.
    assert_eq!(is_active(&bed, "h01", "mysql"), ("active".into(), Some(0)));
    let pid = main_pid(&bed, "h01", "mysql.service");
    assert_eq!(
        stdout(&bed.exec_on("h01", &["cat", &format!("/proc/{pid}/comm")])),
        "mariadbd"
    );
    ok(&bed, "h01", "systemctl stop mariadb");
    assert_eq!(
        is_active(&bed, "h01", "mariadb"),
        ("inactive".into(), Some(3))
    );
    assert!(!pid_alive(&bed, "h01", pid), "mariadbd {pid} survived stop");
    assert!(!ssh(&bed, "h01", "mysql -e 'select 1'").status.success());
}

/// A unit written for this test: EnvironmentFile (one missing, `-`), Environment with quotes,
/// `$VAR` split into words and `${VAR}` kept as one, `%%`, a `\` continuation, User=,
/// RuntimeDirectory= with a mode, ExecStartPre=, a drop-in, [Install].
const TEST_UNIT: &str = r#"[Unit]
Description=hpcnet shim test unit
ConditionPathExists=/etc/default/hpcshim-test

[Service]
Type=simple
EnvironmentFile=/etc/default/hpcshim-test
EnvironmentFile=-/etc/default/hpcshim-missing
Environment="GREETING=hello world" OTHER=x
User=nobody
RuntimeDirectory=hpcshim-test
RuntimeDirectoryMode=0750
ExecStartPre=/bin/sh -c 'echo pre-ran > /tmp/hpcshim-pre'
ExecStart=/bin/sh -c 'printf "%%s|" "$@" > /run/hpcshim-test/args; \
    id -un >> /run/hpcshim-test/args; exec sleep 1000' sh $OPTS ${GREETING} \
    ${SPACED} last

[Install]
WantedBy=multi-user.target
"#;

const FAILING_UNIT: &str = "[Service]\nExecStart=/bin/sh -c 'echo boom-marker >&2; exit 3'\n";

#[test]
fn unit_file_features_conditions_and_unknown_units() {
    if !have_packages(&["/usr/sbin/slurmd"], "slurmd") {
        return;
    }
    let Some(bed) = SshBed::start(1).unwrap() else {
        return;
    };
    assert_shimmed(&bed, "h01");

    // slurmd without slurm.conf: ConditionPathExists= is false, the start is skipped (exit 0).
    ok(&bed, "h01", "rm -f /etc/slurm/slurm.conf");
    ok(&bed, "h01", "systemctl start slurmd");
    assert_eq!(
        is_active(&bed, "h01", "slurmd"),
        ("inactive".into(), Some(3))
    );
    let status = ssh(&bed, "h01", "systemctl status slurmd");
    assert_eq!(status.status.code(), Some(3), "{status:?}");
    assert!(
        stdout(&status).contains("ConditionPathExists=/etc/slurm/slurm.conf was not met"),
        "{}",
        stdout(&status)
    );

    // Unknown units.
    let out = ssh(&bed, "h01", "systemctl start hpcshim-nosuch");
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert!(
        stderr(&out).contains("Unit hpcshim-nosuch.service not found."),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        is_active(&bed, "h01", "hpcshim-nosuch"),
        ("inactive".into(), Some(3))
    );
    assert_eq!(
        ssh(&bed, "h01", "systemctl status hpcshim-nosuch")
            .status
            .code(),
        Some(4)
    );

    // The test unit, its environment file and a drop-in, in h01's /etc.
    let setup = format!(
        "mkdir -p /etc/systemd/system/hpcshim-test.service.d && \
         cat >/etc/systemd/system/hpcshim-test.service <<'EOF'\n{TEST_UNIT}EOF\n\
         printf '%s\\n' '# options' 'OPTS=\"-a  -b\"' >/etc/default/hpcshim-test && \
         printf '[Service]\\nEnvironment=\"SPACED=one two\"\\n' \
           >/etc/systemd/system/hpcshim-test.service.d/override.conf && \
         printf '%s' \"{FAILING_UNIT}\" >/etc/systemd/system/hpcshim-fail.service"
    );
    ok(&bed, "h01", &setup);
    let out = ssh(&bed, "h01", "systemctl is-enabled hpcshim-test");
    assert_eq!(
        (stdout(&out).as_str(), out.status.code()),
        ("disabled", Some(1))
    );
    ok(&bed, "h01", "systemctl daemon-reload");
    // What Debian's deb-systemd-helper runs for a newly installed package: enabled, not
    // started; another root is refused.
    ok(
        &bed,
        "h01",
        "systemctl --root=/ preset hpcshim-test.service",
    );
    assert_eq!(
        ok(&bed, "h01", "systemctl is-enabled hpcshim-test"),
        "enabled"
    );
    assert_eq!(
        is_active(&bed, "h01", "hpcshim-test"),
        ("inactive".into(), Some(3))
    );
    let out = ssh(&bed, "h01", "systemctl --root=/mnt preset hpcshim-test");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    ok(&bed, "h01", "systemctl disable hpcshim-test");
    ok(&bed, "h01", "systemctl enable --now hpcshim-test.service");
    assert_eq!(
        ok(&bed, "h01", "systemctl is-enabled hpcshim-test"),
        "enabled"
    );
    assert_eq!(
        is_active(&bed, "h01", "hpcshim-test"),
        ("active".into(), Some(0))
    );
    assert_eq!(ok(&bed, "h01", "cat /tmp/hpcshim-pre"), "pre-ran");
    assert_eq!(
        ok(&bed, "h01", "cat /run/hpcshim-test/args"),
        "-a|-b|hello world|one two|last|nobody"
    );
    assert_eq!(
        ok(&bed, "h01", "stat -c '%U %a' /run/hpcshim-test"),
        "nobody 750"
    );
    let pid = main_pid(&bed, "h01", "hpcshim-test");
    ok(&bed, "h01", "systemctl stop hpcshim-test");
    assert!(!pid_alive(&bed, "h01", pid), "sleep {pid} survived stop");
    assert!(
        !bed.exec_on("h01", &["test", "-e", "/run/hpcshim-test"])
            .status
            .success()
    );

    // A simple unit whose process dies at once: start fails, with its output on stderr.
    let out = ssh(&bed, "h01", "systemctl start hpcshim-fail");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("boom-marker"), "{}", stderr(&out));
    assert_eq!(
        ok(&bed, "h01", "systemctl is-failed hpcshim-fail"),
        "failed"
    );
    assert_eq!(
        ok(
            &bed,
            "h01",
            "systemctl show -p ActiveState --value hpcshim-fail"
        ),
        "failed"
    );
    assert!(ok(&bed, "h01", "journalctl -xeu hpcshim-fail").contains("boom-marker"));

    // apt-get: installed packages are a no-op, anything else a clear error (100); logged.
    let out = ok(&bed, "h01", "apt-get install -y openssh-server");
    assert!(
        out.contains("openssh-server is already the newest version"),
        "{out}"
    );
    let out = ssh(&bed, "h01", "apt-get install -y hpcshim-no-such-package");
    assert_eq!(out.status.code(), Some(100), "{out:?}");
    assert!(
        stderr(&out).contains("packages not preinstalled: hpcshim-no-such-package"),
        "{}",
        stderr(&out)
    );
    let log = ok(&bed, "h01", "cat /var/log/hpcnet-shim/apt-get.log");
    assert!(log.contains("install -y hpcshim-no-such-package"), "{log}");
}
