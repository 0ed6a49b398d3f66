//! `up`, `up` again, `plan`, `status`, `down`, `kill -9` of `up`, and Ctrl-C of `up` in its
//! libvirt part and while it waits for the nodes over SSH, against the real QEMU driver, in a
//! network namespace this test creates (libvirtd started by the test bed).
//!
//! The cluster is `examples/minimal.yaml` with its state directory moved to a scratch
//! directory and its image replaced by an empty qcow2 disk booted by SeaBIOS: the guest image
//! build is a later step, and what is tested here is libvirt's side (every VM defined and
//! running under TCG).
#![allow(clippy::unwrap_used)] // test helpers panic on failure, as tests do

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use common::{assert_gone, names};
use hpc_tests::libvirt_bed::LibvirtBed;

mod common;

fn hpc_up(cfg: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hpc-up"))
        .args(args)
        .arg(cfg)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "hpc-up failed: {err}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(o)).unwrap()
}

/// The minimal example, pointed at `dir`, booting an empty disk.
fn config(dir: &Path) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = fs_err::read_to_string(repo.join("examples/minimal.yaml")).unwrap();
    let base = dir.join("base.qcow2");
    let status = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&base)
        .arg("1G")
        .status()
        .unwrap();
    assert!(status.success(), "qemu-img create failed");
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("kernel:") || t.starts_with("initrd:") || t.starts_with("cmdline:") {
            continue;
        }
        if t.starts_with("base:") {
            out.push_str(&format!("  base: {}\n", base.display()));
        } else if t.starts_with("state-dir:") {
            out.push_str(&format!("state-dir: {}\n", dir.join("state").display()));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    let cfg = dir.join("minimal.yaml");
    fs_err::write(&cfg, out).unwrap();
    cfg
}

#[test]
fn up_up_down_and_kill_9_on_the_real_qemu_driver() {
    let Some(bed) = LibvirtBed::start("lifecycle").unwrap() else {
        return;
    };
    let dir = bed.scratch_dir("lifecycle");
    let cfg = config(&dir);

    // preflight: a share whose host directory is missing stops `up` before anything exists
    let broken = dir.join("broken.yaml");
    let text = fs_err::read_to_string(&cfg).unwrap().replace(
        "controller:\n",
        &format!(
            "virtiofs:\n  - {{tag: shared, host-path: {}, mount-point: /shared}}\ncontroller:\n",
            dir.join("no-such-dir").display()
        ),
    );
    fs_err::write(&broken, text).unwrap();
    let o = hpc_up(&broken, &["up", "--no-ssh"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("preflight") && err.contains("no-such-dir"),
        "{err}"
    );
    assert_gone(&bed, &dir, "after a failed preflight");

    // up: every VM defined and running
    let t0 = Instant::now();
    let up = json(&hpc_up(&cfg, &["--output", "json", "up", "--no-ssh"]));
    let up_time = t0.elapsed();
    assert_eq!(up["ok"], true);
    assert!(up["changes"].as_u64().unwrap() >= 8, "{up}");
    let mut running = names(&bed, &["list", "--name"]);
    running.sort();
    assert_eq!(running, ["minimal-cn1", "minimal-cn2", "minimal-ctl"]);

    // up again: zero changes, and plan agrees for libvirt; the nodes, never reached over
    // SSH (`--no-ssh`), are known after apply
    let again = json(&hpc_up(&cfg, &["--output", "json", "up", "--no-ssh"]));
    assert_eq!(again["changes"], 0, "{again}");
    let plan = ok(&hpc_up(&cfg, &["plan"]));
    assert!(
        plan.ends_with(
            "0 libvirt change(s), 0 node step change(s), 3 node(s) known after apply or unreachable\n"
        ),
        "{plan}"
    );
    let plan = json(&hpc_up(&cfg, &["--output", "json", "plan"]));
    let objects = plan["libvirt"].as_array().unwrap();
    assert_eq!(objects.len(), 8, "{plan}");
    assert!(objects.iter().all(|o| o["action"] == "unchanged"), "{plan}");
    let nodes = plan["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{plan}");
    assert!(
        nodes.iter().all(|n| n["state"] == "known-after-apply"),
        "{plan}"
    );
    assert_eq!(plan["changes"], 0, "{plan}");

    // status from libvirt, addresses from the plan
    let status = json(&hpc_up(&cfg, &["--output", "json", "status"]));
    let nodes = status["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    assert!(nodes.iter().all(|n| n["state"] == "running"), "{status}");
    assert_eq!(nodes[0]["ip"], "10.77.0.10");

    // down: nothing left
    let down = json(&hpc_up(&cfg, &["--output", "json", "down"]));
    assert!(down["removed"].as_array().unwrap().len() >= 8, "{down}");
    assert_gone(&bed, &dir, "after down");

    // kill -9 of `up` at points spread over its run, then down (once without the journal)
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let span = up_time.as_millis().max(200) as u64;
    for (i, fraction) in [10u64, 45, 80].into_iter().enumerate() {
        let jitter = (seed >> (i * 8)) % (span / 10 + 1);
        let delay = Duration::from_millis(span * fraction / 100 + jitter);
        eprintln!("kill -9 of up after {delay:?} (up took {up_time:?})");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hpc-up"))
            .arg("-q")
            .args(["up", "--no-ssh"])
            .arg(&cfg)
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if i == 1 {
            let _ = fs_err::remove_file(dir.join("state/journal.json"));
        }
        ok(&hpc_up(&cfg, &["down"]));
        assert_gone(&bed, &dir, &format!("after kill -9 at {delay:?} and down"));
    }

    // Ctrl-C during up: the run undoes what it created, so nothing is left even without down.
    let delay = Duration::from_millis(span * 30 / 100);
    let child = Command::new(env!("CARGO_BIN_EXE_hpc-up"))
        .args(["-q", "up", "--no-ssh"])
        .arg(&cfg)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        // It finished before the signal arrived: nothing to unwind.
        eprintln!("up finished before SIGINT at {delay:?}");
        ok(&hpc_up(&cfg, &["down"]));
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cancelled"), "{err}");
    }
    assert_gone(&bed, &dir, &format!("after SIGINT at {delay:?}"));

    // Ctrl-C while up waits for the nodes over SSH (their empty disks never answer): it
    // stops at once, says where, and leaves the VMs for down (only libvirt's part unwinds).
    let (stopped, error) = sigint_during_ssh_wait(&bed, &cfg);
    eprintln!("up exited {stopped:?} after SIGINT during the SSH wait: {error}");
    let down = json(&hpc_up(&cfg, &["--output", "json", "down"]));
    assert!(down["removed"].as_array().unwrap().len() >= 8, "{down}");
    assert_gone(&bed, &dir, "after SIGINT during the SSH wait and down");
    let _ = fs_err::remove_dir_all(&dir);
}

/// `up --output json` with SSH, SIGINT at its first `ssh wait` phase: it exits within 10 s
/// of the signal, with status 130 and an error on stdout naming `ssh wait`. Returns how long
/// it took to exit, and its error.
fn sigint_during_ssh_wait(bed: &LibvirtBed, cfg: &Path) -> (Duration, String) {
    // In the bed's namespace, so that the SSH attempts reach the VMs' bridge and nothing
    // else. `ip netns exec` execs hpc-up (no fork, no shell): the child's PID is hpc-up's.
    let mut child = Command::new("ip")
        .args(["netns", "exec", bed.netns(), env!("CARGO_BIN_EXE_hpc-up")])
        .args(["--output", "json", "up"])
        .arg(cfg)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    let ssh_wait = |line: &str| {
        serde_json::from_str::<serde_json::Value>(line)
            .is_ok_and(|e| e["event"] == "phase-started" && e["phase"] == "ssh wait")
    };
    // The libvirt part comes first; the bound only keeps a stuck run from hanging the test.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let found = ssh_wait(&line);
                log.push(line);
                if found {
                    break;
                }
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no ssh wait phase ({e}); stderr:\n{}", log.join("\n"));
            }
        }
    }
    let pid = child.id();
    let exe = fs_err::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(
        exe.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("hpc-up")),
        "the signal would go to {exe:?}, not hpc-up"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let signalled = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if signalled.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            reader.join().unwrap();
            log.extend(rx.try_iter());
            panic!(
                "up still ran 10 s after SIGINT; stderr:\n{}",
                log.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stopped = signalled.elapsed();
    reader.join().unwrap();
    log.extend(rx.try_iter());
    let log = log.join("\n");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert_eq!(status.code(), Some(130), "{status}; stderr:\n{log}");
    let out: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}\nstderr:\n{log}"));
    assert_eq!(out["ok"], false, "{out}");
    let error = out["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("cancelled during") && error.contains("ssh wait"),
        "{out}\nstderr:\n{log}"
    );
    (stopped, error.to_owned())
}
