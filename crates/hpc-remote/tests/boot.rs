//! `boot_program`: the same runner, run unattended with `sh` while a node boots. Service
//! starts are queued (`systemctl --no-block`), never awaited. Runs the real program with
//! /bin/sh; `systemctl` is a logging stand-in on PATH (there is no systemd here to queue
//! jobs in, and a real one would start services on this machine).
#![allow(clippy::unwrap_used)] // test helpers panic on failure, as tests do

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use hpc_remote::{EnsureFile, EnsureService, HostPlan, RunCommand, boot_program};

#[test]
fn boot_program_writes_files_and_queues_service_starts() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    fs_err::create_dir_all(&bin).unwrap();
    let log = dir.path().join("systemctl.log");
    // is-active/is-enabled: "no"; everything else succeeds; every call is logged
    let fake = format!(
        "#!/bin/sh\necho \"$*\" >>'{}'\ncase \"$1\" in is-active|is-enabled) exit 3;; esac\nexit 0\n",
        log.display()
    );
    fs_err::write(bin.join("systemctl"), fake).unwrap();
    fs_err::set_permissions(
        bin.join("systemctl"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();

    fs_err::create_dir_all(dir.path().join("etc")).unwrap();
    let conf = dir.path().join("etc/demo.conf");
    let plan = HostPlan::new("n1")
        .step(
            "conf",
            EnsureFile::new(conf.to_str().unwrap(), "a = 1\n", 0o640),
        )
        .step(
            "touch",
            RunCommand::new(["touch", dir.path().join("ran").to_str().unwrap()])
                .when_changed(["conf"]),
        )
        .step("demo", EnsureService::started("demo").restart_on(["conf"]));
    let program = dir.path().join("seed.sh");
    fs_err::write(&program, boot_program(&plan).unwrap()).unwrap();

    let run = || {
        Command::new("sh")
            .arg(&program)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .output()
            .unwrap()
    };
    let out = run();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "@@HPC 0 changed",
        "@@HPC 1 changed",
        "@@HPC 2 changed",
        "@@HPC - done",
    ] {
        assert!(
            report.lines().any(|l| l == line),
            "no `{line}` in:\n{report}"
        );
    }
    assert_eq!(fs_err::read_to_string(&conf).unwrap(), "a = 1\n");
    let mode = fs_err::metadata(&conf).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640);
    assert!(dir.path().join("ran").exists());
    let calls = fs_err::read_to_string(&log).unwrap();
    assert!(
        calls.lines().any(|l| l == "--no-reload enable demo"),
        "{calls}"
    );
    assert!(
        calls.lines().any(|l| l == "--no-block start demo"),
        "{calls}"
    );
    assert!(!calls.lines().any(|l| l == "start demo"), "{calls}");

    // a second boot with the same seed changes nothing and starts nothing new
    fs_err::remove_file(&log).unwrap();
    let out = run();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(report.lines().any(|l| l == "@@HPC 0 unchanged"), "{report}");
    assert!(
        report.lines().any(|l| l == "@@HPC 1 skipped")
            || report
                .lines()
                .any(|l| l.starts_with("@@HPC 1 ") && !l.ends_with("changed")),
        "{report}"
    );
    let calls = fs_err::read_to_string(&log).unwrap_or_default();
    assert!(!calls.contains("restart"), "{calls}");
}
