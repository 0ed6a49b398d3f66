//! LocalExecutor: the runner program applied under a temporary root.
#![cfg(feature = "transport")]
#![allow(clippy::unwrap_used)] // test helpers panic on failure, as tests do

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use hpc_remote::{
    EnsureDirectory, EnsureFile, EnsureMount, EnsureService, Executor, HostPlan, LocalExecutor,
    Mode, PlanError, RunCommand, StepStatus, apply_all, quote, validate,
};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn bench_plan(host: &str, marker: &Path, version: &str) -> HostPlan {
    HostPlan::new(host)
        .step("dir", EnsureDirectory::new("/opt/hpcbench", 0o755))
        .step("confd", EnsureDirectory::new("/opt/hpcbench/conf.d", 0o750))
        .step(
            "app",
            EnsureFile::new(
                "/opt/hpcbench/app.conf",
                format!("host={host}\nversion={version}\n"),
                0o644,
            ),
        )
        .step(
            "node",
            EnsureFile::new("/opt/hpcbench/conf.d/node.conf", "node\n", 0o644),
        )
        .step(
            "key",
            EnsureFile::new("/opt/hpcbench/conf.d/secret.key", "TOPSECRET-1234\n", 0o600).secret(),
        )
        .step(
            "run",
            EnsureFile::new("/opt/hpcbench/run.sh", "#!/bin/sh\nexit 0\n", 0o755),
        )
        .step(
            "handler",
            RunCommand::new(["touch", marker.to_str().unwrap()])
                .when_changed(["app", "node", "key", "run"]),
        )
}

fn stat(p: &Path) -> (i64, i64, u64) {
    let m = fs_err::metadata(p).unwrap();
    (m.mtime(), m.mtime_nsec(), m.ino())
}

fn status(r: &hpc_remote::HostReport, id: &str) -> StepStatus {
    r.step(id).unwrap().status.clone()
}

#[test]
fn apply_then_rerun_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs_err::create_dir(&root).unwrap();
    let marker = dir.path().join("handler-ran");
    let exec = LocalExecutor::with_root(&root);
    let plan = bench_plan("h01", &marker, "1");

    let r = rt().block_on(exec.apply_host(&plan, Mode::APPLY)).unwrap();
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(r.changed(), 7, "{r:?}");
    let app = root.join("opt/hpcbench/app.conf");
    assert_eq!(
        fs_err::read_to_string(&app).unwrap(),
        "host=h01\nversion=1\n"
    );
    let mode = |p: &str| fs_err::metadata(root.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("opt/hpcbench"), 0o755);
    assert_eq!(mode("opt/hpcbench/conf.d"), 0o750);
    assert_eq!(mode("opt/hpcbench/conf.d/secret.key"), 0o600);
    assert_eq!(mode("opt/hpcbench/run.sh"), 0o755);
    assert!(marker.exists(), "handler ran on first apply");
    fs_err::remove_file(&marker).unwrap();

    let files = [
        "app.conf",
        "conf.d/node.conf",
        "conf.d/secret.key",
        "run.sh",
    ];
    let before: Vec<_> = files
        .iter()
        .map(|f| stat(&root.join("opt/hpcbench").join(f)))
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let r = rt().block_on(exec.apply_host(&plan, Mode::APPLY)).unwrap();
    assert_eq!(r.changed(), 0, "{r:?}");
    assert_eq!(status(&r, "handler"), StepStatus::Skipped);
    let after: Vec<_> = files
        .iter()
        .map(|f| stat(&root.join("opt/hpcbench").join(f)))
        .collect();
    assert_eq!(
        before, after,
        "an idempotent re-run must not touch files (mtime/inode)"
    );
    assert!(!marker.exists(), "handler must not run without a change");

    // One file changes: only it is rewritten, and the handler runs again.
    let plan2 = bench_plan("h01", &marker, "2");
    let r = rt().block_on(exec.apply_host(&plan2, Mode::APPLY)).unwrap();
    assert_eq!(status(&r, "app"), StepStatus::Changed);
    assert_eq!(status(&r, "node"), StepStatus::Unchanged);
    assert_eq!(status(&r, "handler"), StepStatus::Changed);
    assert!(marker.exists());
    assert_eq!(stat(&root.join("opt/hpcbench/run.sh")), before[3]);
    assert_eq!(
        fs_err::read_to_string(&app).unwrap(),
        "host=h01\nversion=2\n"
    );

    // A mode-only change is a change, fixed in place.
    fs_err::set_permissions(&app, std::fs::Permissions::from_mode(0o600)).unwrap();
    let r = rt().block_on(exec.apply_host(&plan2, Mode::APPLY)).unwrap();
    assert_eq!(status(&r, "app"), StepStatus::Changed);
    assert_eq!(mode("opt/hpcbench/app.conf"), 0o644);
    assert_no_temp_files(&root);
}

fn assert_no_temp_files(root: &Path) {
    let out = std::process::Command::new("find")
        .arg(root)
        .arg("-name")
        .arg(".hpc-tmp.*")
        .output()
        .unwrap();
    assert!(
        out.stdout.is_empty(),
        "temp files left: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn failure_before_rename_keeps_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let marker = root.join("handler-ran");
    let exec = LocalExecutor::with_root(root);
    rt().block_on(exec.apply_host(&bench_plan("h01", &marker, "1"), Mode::APPLY))
        .unwrap();
    fs_err::remove_file(&marker).unwrap();
    let app = root.join("opt/hpcbench/app.conf");
    let before = stat(&app);

    let failing = exec
        .clone()
        .env("HPC_REMOTE_TEST_FAIL_BEFORE_RENAME", app.to_str().unwrap());
    let r = rt()
        .block_on(failing.apply_host(&bench_plan("h01", &marker, "2"), Mode::APPLY))
        .unwrap();
    match status(&r, "app") {
        StepStatus::Failed { stderr_tail } => {
            assert!(stderr_tail.contains("injected failure"), "{stderr_tail}")
        }
        s => panic!("expected failure, got {s:?}"),
    }
    for later in ["node", "key", "run", "handler"] {
        assert_eq!(status(&r, later), StepStatus::Skipped, "{later}");
    }
    assert_eq!(
        fs_err::read_to_string(&app).unwrap(),
        "host=h01\nversion=1\n"
    );
    assert_eq!(stat(&app), before);
    assert!(!marker.exists());
    assert_no_temp_files(root);
    assert!(!r.is_ok());
}

/// The files written in a row are renamed one after another after one `sync`; a failed
/// rename still leaves the files before it in place, and nothing after it happens (a
/// content change, a mode-only change, the handler), as when each step finished before the
/// next one began.
#[test]
fn failed_rename_in_a_row_keeps_earlier_files_and_skips_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let marker = root.join("handler-ran");
    let plan = |v: &str| {
        HostPlan::new("h01")
            .step("dir", EnsureDirectory::new("/opt/row", 0o755))
            .step("a", EnsureFile::new("/opt/row/a", format!("a{v}\n"), 0o644))
            .step("b", EnsureFile::new("/opt/row/b", format!("b{v}\n"), 0o644))
            .step("same", EnsureFile::new("/opt/row/same", "same\n", 0o644))
            .step("meta", EnsureFile::new("/opt/row/meta", "meta\n", 0o644))
            .step("c", EnsureFile::new("/opt/row/c", format!("c{v}\n"), 0o644))
            .step(
                "handler",
                RunCommand::new(["touch", marker.to_str().unwrap()]).when_changed(["a", "b", "c"]),
            )
    };
    let exec = LocalExecutor::with_root(root);
    let r = rt()
        .block_on(exec.apply_host(&plan("1"), Mode::APPLY))
        .unwrap();
    assert_eq!(r.changed(), 7, "{r:?}");
    fs_err::remove_file(&marker).unwrap();
    let meta = root.join("opt/row/meta");
    fs_err::set_permissions(&meta, std::fs::Permissions::from_mode(0o600)).unwrap();

    let b = root.join("opt/row/b");
    let failing = exec
        .clone()
        .env("HPC_REMOTE_TEST_FAIL_BEFORE_RENAME", b.to_str().unwrap());
    let r = rt()
        .block_on(failing.apply_host(&plan("2"), Mode::APPLY))
        .unwrap();
    assert_eq!(status(&r, "a"), StepStatus::Changed, "{r:?}");
    assert!(
        matches!(status(&r, "b"), StepStatus::Failed { .. }),
        "{r:?}"
    );
    for later in ["same", "meta", "c", "handler"] {
        assert_eq!(status(&r, later), StepStatus::Skipped, "{later}: {r:?}");
    }
    let read = |f: &str| fs_err::read_to_string(root.join("opt/row").join(f)).unwrap();
    assert_eq!(read("a"), "a2\n");
    assert_eq!(read("b"), "b1\n");
    assert_eq!(read("c"), "c1\n");
    assert_eq!(
        fs_err::metadata(&meta).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!marker.exists());
    assert_no_temp_files(root);

    // Without the failure the rest follows, and the row is then in place.
    let r = rt()
        .block_on(exec.apply_host(&plan("2"), Mode::APPLY))
        .unwrap();
    assert!(r.is_ok(), "{r:?}");
    for changed in ["b", "meta", "c", "handler"] {
        assert_eq!(status(&r, changed), StepStatus::Changed, "{changed}: {r:?}");
    }
    assert_eq!(status(&r, "a"), StepStatus::Unchanged);
    assert_eq!(status(&r, "same"), StepStatus::Unchanged);
    assert_eq!(read("c"), "c2\n");
    let r = rt()
        .block_on(exec.apply_host(&plan("2"), Mode::APPLY))
        .unwrap();
    assert_eq!(r.changed(), 0, "{r:?}");
}

/// What the runner costs the target is mostly the programs it starts (a fork and an exec
/// each): a re-run that finds everything in place starts one `stat` and one `sha256sum`,
/// and an apply from clean one `install` per directory and file, one `sync` for the four
/// files, one `mv` each, the handler, and `mktemp`/`rm` for the step log.
#[test]
fn programs_a_run_starts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs_err::create_dir(&root).unwrap();
    let marker = dir.path().join("handler-ran");
    let bin = dir.path().join("bin");
    fs_err::create_dir(&bin).unwrap();
    let log = dir.path().join("programs.log");
    let path = std::env::var("PATH").unwrap();
    let log_q = quote(log.to_str().unwrap()).into_owned();
    let path_q = quote(&path).into_owned();
    for p in [
        "awk",
        "cat",
        "chmod",
        "chown",
        "cp",
        "install",
        "mkdir",
        "mktemp",
        "mv",
        "rm",
        "sed",
        "sha256sum",
        "stat",
        "sync",
        "tail",
        "touch",
        "wc",
    ] {
        let w = bin.join(p);
        fs_err::write(
            &w,
            format!("#!/bin/sh\necho {p} >>{log_q}\nPATH={path_q} exec {p} \"$@\"\n"),
        )
        .unwrap();
        fs_err::set_permissions(&w, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let exec = LocalExecutor::with_root(&root).env("PATH", format!("{}:{path}", bin.display()));
    let plan = bench_plan("h01", &marker, "1");
    let started = || {
        let mut v: Vec<String> = fs_err::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        v.sort();
        let _ = fs_err::remove_file(&log);
        v.join(" ")
    };

    let r = rt().block_on(exec.apply_host(&plan, Mode::APPLY)).unwrap();
    assert_eq!(r.changed(), 7, "{r:?}");
    assert_eq!(
        started(),
        "install install install install install install mktemp mv mv mv mv rm sync touch"
    );
    let r = rt().block_on(exec.apply_host(&plan, Mode::APPLY)).unwrap();
    assert_eq!(r.changed(), 0, "{r:?}");
    assert_eq!(started(), "sha256sum stat");
}

#[test]
fn hostile_names_and_values_are_data() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    fs_err::create_dir(&root).unwrap();
    let pwned = dir.path().join("pwned");
    let p = pwned.to_str().unwrap();
    let evil_dir = format!("/d i r/'q' \"dq\" $(touch {p})");
    // File names cannot contain `/`: this one touches a relative name if ever executed.
    let evil_file =
        format!("{evil_dir}/`touch pwned-rel` $(touch pwned-rel) -x; rm -rf $HOME\nnl %s \\ *");
    let content = format!(
        "line1 'single' \"double\" $(touch {p}) `touch {p}`\n%s %d \\n \\\\ \0 \x7f \u{e9}\n\nend"
    );
    let plan = HostPlan::new("h")
        .step("d", EnsureDirectory::new(&evil_dir, 0o700))
        .step("f", EnsureFile::new(&evil_file, content.as_bytes(), 0o640))
        // content that looks like an option to printf (an SQL comment)
        .step(
            "dash",
            EnsureFile::new(format!("{evil_dir}/dash.sql"), "-- comment\n-n\n", 0o600),
        )
        .step(
            "c",
            RunCommand::new([
                "touch".to_owned(),
                format!("{}/-created $(touch pwned-rel) 'x'", root.display()),
            ])
            .when_changed(["f"]),
        )
        .step(
            "c2",
            RunCommand::new(["-v".to_owned()]).when_changed(["nothing-changed-yet"; 0]),
        );
    // c2 has no triggers listed -> never runs.
    let exec = LocalExecutor::with_root(&root);
    let r = rt().block_on(exec.apply_host(&plan, Mode::APPLY)).unwrap();
    assert_eq!(status(&r, "d"), StepStatus::Changed);
    assert_eq!(status(&r, "f"), StepStatus::Changed);
    assert_eq!(status(&r, "c"), StepStatus::Changed, "{r:?}");
    assert_eq!(status(&r, "c2"), StepStatus::Skipped);
    let written = fs_err::read(root.join(evil_file.trim_start_matches('/'))).unwrap();
    assert_eq!(written, content.as_bytes());
    let dash = root.join(evil_dir.trim_start_matches('/')).join("dash.sql");
    assert_eq!(fs_err::read_to_string(dash).unwrap(), "-- comment\n-n\n");
    assert!(root.join("-created $(touch pwned-rel) 'x'").exists());
    assert!(!pwned.exists(), "a hostile string was executed");
    assert!(!Path::new("pwned-rel").exists() && !root.join("pwned-rel").exists());
    let r = rt().block_on(exec.apply_host(&plan, Mode::APPLY)).unwrap();
    assert_eq!(r.changed(), 0, "{r:?}");
    assert!(!pwned.exists());

    // A command whose argv[0] is a runner function name or an option is not run as such.
    let plan = HostPlan::new("h").step("x", RunCommand::new(["hpc_changed", "0"]));
    let r = rt().block_on(exec.apply_host(&plan, Mode::APPLY)).unwrap();
    assert!(
        matches!(status(&r, "x"), StepStatus::Failed { .. }),
        "{r:?}"
    );
}

#[test]
fn quoting_round_trips_hostile_strings() {
    let hostile = [
        "",
        "plain",
        "with space",
        "it's",
        "'",
        "''\\''",
        "\"$HOME\"",
        "$(touch /tmp/hpc-remote-pwned)",
        "`touch /tmp/hpc-remote-pwned`",
        "a\nb\n",
        "-rf",
        "--",
        "*",
        "~",
        "a=b",
        "; rm -rf /tmp/nothing &",
        "\t\\n\\",
        "é ünïcödé",
    ];
    for s in hostile {
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("printf '%s' {}", quote(s)))
            .output()
            .unwrap();
        assert!(out.status.success(), "{s:?}");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            s,
            "round trip of {s:?}"
        );
    }
    assert!(!Path::new("/tmp/hpc-remote-pwned").exists());
    let exec = LocalExecutor::new();
    let argv: Vec<String> = ["printf", "%s|"]
        .iter()
        .map(|s| s.to_string())
        .chain(hostile.iter().map(|s| s.to_string()))
        .collect();
    let out = rt().block_on(exec.run("local", &argv)).unwrap();
    assert_eq!(out.status, Some(0));
    let want: String = hostile.iter().map(|s| format!("{s}|")).collect();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), want);
}

#[test]
fn check_diff_changes_nothing_and_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let marker = root.join("handler-ran");
    let exec = LocalExecutor::with_root(root);

    // Check on an empty root: everything would change, nothing is created.
    let r = rt()
        .block_on(exec.apply_host(&bench_plan("h01", &marker, "1"), Mode::CHECK_DIFF))
        .unwrap();
    assert!(r.check);
    assert_eq!(r.changed(), 7, "{r:?}");
    assert!(!root.join("opt").exists());
    assert!(!marker.exists());

    rt().block_on(exec.apply_host(&bench_plan("h01", &marker, "1"), Mode::APPLY))
        .unwrap();
    fs_err::remove_file(&marker).unwrap();
    let app = root.join("opt/hpcbench/app.conf");
    let before = stat(&app);
    let plan = bench_plan("h01", &marker, "2").step(
        "key2",
        EnsureFile::new(
            "/opt/hpcbench/conf.d/secret.key",
            "NEW-SECRET-5678\n",
            0o600,
        )
        .secret(),
    );
    let r = rt()
        .block_on(exec.apply_host(&plan, Mode::CHECK_DIFF))
        .unwrap();
    assert_eq!(status(&r, "app"), StepStatus::Changed);
    assert_eq!(status(&r, "node"), StepStatus::Unchanged);
    assert_eq!(status(&r, "key2"), StepStatus::Changed);
    assert_eq!(status(&r, "handler"), StepStatus::Changed, "would run");
    let diff = r.step("app").unwrap().diff.clone().unwrap();
    assert!(
        diff.contains("-version=1") && diff.contains("+version=2"),
        "{diff}"
    );
    assert!(diff.contains("h01:/opt/hpcbench/app.conf"), "{diff}");
    let all: String = r.steps.iter().filter_map(|s| s.diff.clone()).collect();
    assert!(all.contains("secret content would change"), "{all}");
    for secret in ["TOPSECRET", "NEW-SECRET"] {
        assert!(!all.contains(secret), "secret in diff: {all}");
        assert!(!format!("{r:?}").contains(secret));
        assert!(
            !format!("{plan:?}").contains(secret),
            "secret in Debug of the plan"
        );
    }
    assert_eq!(stat(&app), before, "check mode touched a file");
    assert_eq!(
        fs_err::read_to_string(&app).unwrap(),
        "host=h01\nversion=1\n"
    );
    assert!(!marker.exists(), "check mode ran a command");
}

#[test]
fn services_restart_only_on_change_and_fstab_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs_err::create_dir_all(root.join("etc")).unwrap();
    fs_err::write(
        root.join("etc/fstab"),
        "# comment /data\nUUID=1 / ext4 defaults 0 1\n/dev/old /data ext4 defaults 0 0\n",
    )
    .unwrap();
    let log = dir.path().join("systemctl.log");
    let state = dir.path().join("active");
    let fake = dir.path().join("systemctl");
    fs_err::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{log}'\ncase \"$1\" in\n is-enabled) [ -e '{state}.enabled' ];;\n is-active) [ -e '{state}' ];;\n start) touch '{state}';;\n enable) touch '{state}.enabled';;\n *) :;;\nesac\n",
            log = log.display(),
            state = state.display()
        ),
    )
    .unwrap();
    fs_err::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exec = LocalExecutor::with_root(&root).systemctl(fake.to_str().unwrap());
    let plan = |content: &str| {
        HostPlan::new("h")
            .step(
                "conf",
                EnsureFile::new("/etc/munge.conf", content.as_bytes().to_vec(), 0o644),
            )
            .step("svc", EnsureService::started("munge").restart_on(["conf"]))
            .step(
                "mnt",
                EnsureMount {
                    source: "share tag".into(),
                    target: "/data".into(),
                    fstype: "virtiofs".into(),
                    options: "defaults,nofail".into(),
                    mounted: false,
                },
            )
    };
    let calls = || fs_err::read_to_string(&log).unwrap_or_default();
    let r = rt()
        .block_on(exec.apply_host(&plan("a"), Mode::APPLY))
        .unwrap();
    assert_eq!(r.changed(), 3, "{r:?}");
    assert!(
        calls().contains("enable munge") && calls().contains("start munge"),
        "{}",
        calls()
    );
    assert!(
        !calls().contains("restart"),
        "no restart right after a start: {}",
        calls()
    );
    let fstab = fs_err::read_to_string(root.join("etc/fstab")).unwrap();
    assert_eq!(
        fstab,
        "# comment /data\nUUID=1 / ext4 defaults 0 1\nshare\\040tag /data virtiofs defaults,nofail 0 0\n"
    );

    fs_err::remove_file(&log).unwrap();
    let r = rt()
        .block_on(exec.apply_host(&plan("a"), Mode::APPLY))
        .unwrap();
    assert_eq!(r.changed(), 0, "{r:?}");
    assert!(
        !calls().contains("restart") && !calls().contains("start"),
        "{}",
        calls()
    );

    let r = rt()
        .block_on(exec.apply_host(&plan("b"), Mode::APPLY))
        .unwrap();
    assert_eq!(status(&r, "svc"), StepStatus::Changed);
    assert!(calls().contains("restart munge"), "{}", calls());
}

#[test]
fn invalid_plans_are_refused_before_running() {
    let p = HostPlan::new("h")
        .step("c", RunCommand::new(["true"]).when_changed(["later"]))
        .step("later", EnsureFile::new("/x", "", 0o644));
    assert!(matches!(
        validate(&p),
        Err(PlanError::UnknownTrigger { .. })
    ));
    let p = HostPlan::new("h").step("f", EnsureFile::new("relative/x", "", 0o644));
    assert!(matches!(validate(&p), Err(PlanError::BadPath { .. })));
    let p = HostPlan::new("h").step("f", EnsureFile::new("/a/../b", "", 0o644));
    assert!(matches!(validate(&p), Err(PlanError::BadPath { .. })));
    let p = HostPlan::new("h")
        .step("f", EnsureFile::new("/a", "", 0o644))
        .step("f", EnsureDirectory::new("/b", 0o755));
    assert!(matches!(validate(&p), Err(PlanError::DuplicateStep { .. })));
    let p = HostPlan::new("h").step("c", RunCommand::new(["echo", "a\0b"]));
    let err = validate(&p).unwrap_err();
    assert!(
        err.to_string().contains("host h") && err.to_string().contains("\"c\""),
        "{err}"
    );
}

#[test]
fn one_failing_host_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let exec = LocalExecutor::with_root(dir.path());
    let good = HostPlan::new("good").step("d", EnsureDirectory::new("/good", 0o755));
    let bad = HostPlan::new("bad")
        .step("f", EnsureFile::new("/missing-parent/x", "x", 0o644))
        .step("d", EnsureDirectory::new("/after", 0o755));
    let s = rt().block_on(apply_all(&exec, &[bad, good], Mode::APPLY));
    assert!(!s.is_success());
    assert_eq!(s.changed(), 1);
    let text = s.to_string();
    assert!(
        text.contains("host bad: step \"f\" (file) failed")
            && text.contains("parent directory missing"),
        "{text}"
    );
    assert!(dir.path().join("good").is_dir());
    assert!(!dir.path().join("after").exists());
}

#[test]
fn unless_exists_runs_once_and_check_only_is_never_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let made = root.join("opt/made");
    let plan = |check_ok: bool| {
        HostPlan::new("h01")
            .step("dir", EnsureDirectory::new("/opt", 0o755))
            .step(
                "make",
                RunCommand::new(["touch", made.to_str().unwrap()]).unless_exists("/opt/made"),
            )
            .step(
                "verify",
                RunCommand::new([if check_ok { "true" } else { "false" }]).check_only(),
            )
    };
    let exec = LocalExecutor::with_root(root);
    let r = rt()
        .block_on(exec.apply_host(&plan(true), Mode::APPLY))
        .unwrap();
    assert_eq!(status(&r, "make"), StepStatus::Changed, "{r:?}");
    assert_eq!(status(&r, "verify"), StepStatus::Unchanged, "{r:?}");
    assert!(made.exists());
    // Again: the path exists, nothing runs, nothing changed.
    fs_err::remove_file(&made).unwrap();
    fs_err::write(&made, "kept").unwrap();
    let r = rt()
        .block_on(exec.apply_host(&plan(true), Mode::APPLY))
        .unwrap();
    assert_eq!(r.changed(), 0, "{r:?}");
    assert_eq!(fs_err::read_to_string(&made).unwrap(), "kept");
    // Check mode runs the check too; a failing check fails the host.
    let r = rt()
        .block_on(exec.apply_host(&plan(false), Mode::CHECK_DIFF))
        .unwrap();
    assert!(
        matches!(status(&r, "verify"), StepStatus::Failed { .. }),
        "{r:?}"
    );
    assert_eq!(status(&r, "make"), StepStatus::Unchanged, "{r:?}");
}

#[test]
fn verify_is_no_change_when_it_holds_and_a_change_to_come_in_check_mode() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let flag = root.join("mounted");
    // `test -e FLAG`: what the step before it (here: nothing) should have brought about.
    let plan = HostPlan::new("h01").step(
        "mounted",
        RunCommand::new(["test", "-e", flag.to_str().unwrap()]).verify(),
    );
    let exec = LocalExecutor::with_root(root);
    // Not there yet: check mode says it will change, apply mode fails the host.
    let r = rt()
        .block_on(exec.apply_host(&plan, Mode::CHECK_DIFF))
        .unwrap();
    assert_eq!(status(&r, "mounted"), StepStatus::Changed, "{r:?}");
    let r = rt().block_on(exec.apply_host(&plan, Mode::APPLY)).unwrap();
    assert!(
        matches!(status(&r, "mounted"), StepStatus::Failed { .. }),
        "{r:?}"
    );
    // There: unchanged in both modes.
    fs_err::write(&flag, "").unwrap();
    for mode in [Mode::APPLY, Mode::CHECK_DIFF] {
        let r = rt().block_on(exec.apply_host(&plan, mode)).unwrap();
        assert_eq!(status(&r, "mounted"), StepStatus::Unchanged, "{r:?}");
        assert_eq!(r.changed(), 0, "{r:?}");
    }
}
