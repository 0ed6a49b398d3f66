//! The `hpc-up` binary on the SSH test bed: its nodes are the bed's hosts (namespaces running
//! the real Debian sshd, munged, slurmctld and slurmd), its libvirt is the in-process test
//! driver (`test:///default`: every run starts from an empty hypervisor, which the journal
//! copes with). The binary runs inside the bed's network namespace, as a user runs it:
//!
//! - `up` on a pseudo-terminal draws the live display and ends with the node × phase table;
//! - Ctrl-C (SIGINT) during the SLURM phases stops the run within 10 s, exit 130, naming
//!   what ran; `down`, then `up` again, recover;
//! - a second Ctrl-C exits at once, even when the first one's orderly exit is stuck.
//!
//! Needs root, iproute2, OpenSSH, util-linux, munge and SLURM (`scripts/install-deps`):
//! skips without them outside CI, fails in CI.
#![allow(clippy::unwrap_used, clippy::print_stderr)] // tests panic on failure and log

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hpc_tests::ssh_bed::SshBed;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

const PACKAGES: [&str; 3] = ["munged", "slurmctld", "slurmd"];

/// The bound: a Ctrl-C'd run exits within 10 s.
const CANCEL_BOUND: Duration = Duration::from_secs(10);

/// How long any one `up`/`down` on the bed may take before the test gives up on it.
const RUN_BOUND: Duration = Duration::from_secs(300);

/// A bed of 3 hosts, or `None` (skip) outside CI when a daemon is missing.
fn bed() -> Option<SshBed> {
    SshBed::with_daemons(
        3,
        &PACKAGES,
        "munge, slurmctld and slurmd (scripts/install-deps)",
        "hpc-up on the SSH test bed",
    )
}

/// The cluster file for the bed, written to `<bed state>/<file>`: h01 controller, h02–h03
/// compute (h03 at `h03_ip` when given, else its bed address), SLURM with one partition
/// whose time limit is `limit`; libvirt is the test driver, the image an empty file (the
/// test driver boots nothing).
fn cluster_file(bed: &SshBed, file: &str, limit: &str, h03_ip: Option<Ipv4Addr>) -> PathBuf {
    let ip = |n: &str| bed.host(n).unwrap().ip;
    let net = ip("h01").octets();
    let base = bed.state_dir().join("base.qcow2");
    if !base.exists() {
        fs_err::write(&base, b"").unwrap();
    }
    let yaml = format!(
        "name: bedcli
libvirt:
  uri: test:///default
  domain-type: qemu
network:
  cidr: {}.{}.{}.0/24
  bridge: hpcbr-bedcli
  mode: isolated
  domain: bed.test
image:
  base: {base}
state-dir: {state}
ssh:
  key: {key}
controller:
  memory: 1GiB
  nodes:
    - name: h01
      ip: {h01}
compute:
  - nodes:
      - name: h02
        ip: {h02}
      - name: h03
        ip: {h03}
    vcpus: 1
    memory: 1GiB
slurm:
  partitions:
    - name: debug
      nodes: [\"h[02-03]\"]
      default: true
      max-time: \"{limit}\"
",
        net[0],
        net[1],
        net[2],
        base = base.display(),
        state = bed.state_dir().join("cluster").display(),
        key = bed.key_path().display(),
        h01 = ip("h01"),
        h02 = ip("h02"),
        h03 = h03_ip.unwrap_or_else(|| ip("h03")),
    );
    let path = bed.state_dir().join(file);
    fs_err::write(&path, yaml).unwrap();
    path
}

/// `hpc-up ARGS…` inside the bed's network namespace. `ip netns exec` execs the binary in
/// its own process, so the child's PID is hpc-up's (checked where it matters).
fn hpc_up(bed: &SshBed, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args([
        "netns",
        "exec",
        bed.ctl_netns(),
        env!("CARGO_BIN_EXE_hpc-up"),
    ])
    .args(args)
    .env_remove("RUST_LOG");
    c
}

/// Waits for `child` until `bound`; kills it (and fails) when it takes longer.
fn wait_within(child: &mut Child, bound: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cmd` to completion (bounded), its stdout and stderr captured.
fn run(mut cmd: Command, what: &str) -> (ExitStatus, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let mut e = String::new();
    err.read_to_string(&mut e).unwrap();
    let status = wait_within(&mut child, RUN_BOUND, what);
    (status, t.join().unwrap(), e)
}

/// `cmd` on the slave side of a new 40×120 pseudo-terminal (stdin, stdout and stderr);
/// everything it wrote, read from the master side until it exited.
fn run_in_pty(mut cmd: Command, what: &str) -> (ExitStatus, String) {
    let size = nix::pty::Winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).unwrap();
    let mut child = cmd
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::from(pty.slave))
        .spawn()
        .unwrap();
    // The command holds copies of the slave: without them the master reads EIO once the
    // child (the last holder) exits.
    drop(cmd);
    let mut master = std::fs::File::from(pty.master);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match master.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // EIO: the slave side is closed, the child is gone.
                Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => break,
                Err(e) => panic!("reading the pty: {e}"),
            }
        }
        let _ = tx.send(all);
    });
    let status = wait_within(&mut child, RUN_BOUND, what);
    let bytes = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{what}: the pty stayed open after the child exited"));
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Terminal output as plain text: ANSI escape sequences removed, `\r` as a line break.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                // CSI: parameters and intermediates, then one final byte @..~
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: up to BEL or ESC \
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\r' => out.push('\n'),
            c => out.push(c),
        }
    }
    out
}

/// Whether some frame of the live display has `node`'s spinner line showing `phase`:
/// `<spinner> <node> <elapsed>s <phase>`. indicatif pads each line to the terminal's width
/// and lets the terminal wrap, so frames are not split into lines here.
fn spinner_shows(text: &str, node: &str, phase: &str) -> bool {
    text.match_indices(&format!(" {node} ")).any(|(i, m)| {
        let rest = text[i + m.len()..].trim_start();
        let Some((elapsed, rest)) = rest.split_once(' ') else {
            return false;
        };
        elapsed
            .strip_suffix('s')
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            && rest.starts_with(phase)
    })
}

/// The node × phase table at the end of `up`'s text: its rows' cells, by node.
fn timing_rows(text: &str) -> Vec<Vec<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let header = lines
        .iter()
        .rposition(|l| {
            l.split_whitespace().collect::<Vec<_>>()
                == [
                    "node", "ssh", "ready", "seed", "base", "slurm", "done", "changed",
                ]
        })
        .unwrap_or_else(|| panic!("no timing table:\n{text}"));
    lines[header + 1..]
        .iter()
        .filter(|l| !l.trim().is_empty())
        .take_while(|l| l.starts_with('h'))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// Seconds of a table cell (`12.3s`).
fn secs(cell: &str) -> f64 {
    cell.strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a duration: {cell:?}"))
}

/// Reads `stderr` line by line on a thread; every line goes to the channel.
fn lines_of(stderr: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Reads JSON event lines until one satisfies `hit` (other lines are kept in `log`).
fn wait_for_event(
    rx: &mpsc::Receiver<String>,
    log: &mut Vec<String>,
    what: &str,
    hit: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + RUN_BOUND;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|e| {
            panic!("no {what} event ({e}); stderr so far:\n{}", log.join("\n"))
        });
        log.push(line.clone());
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && hit(&v)
        {
            return v;
        }
    }
}

fn sigint(child: &Child) {
    kill(
        Pid::from_raw(i32::try_from(child.id()).unwrap()),
        Signal::SIGINT,
    )
    .unwrap();
}

/// The child is hpc-up itself (not `ip` waiting for it), so signals reach the binary.
fn assert_is_hpc_up(child: &Child) {
    let comm = fs_err::read_to_string(format!("/proc/{}/comm", child.id())).unwrap();
    assert_eq!(comm.trim(), "hpc-up", "the signals would go to {comm:?}");
}

#[test]
fn up_on_a_terminal_ctrl_c_in_slurm_then_twice() {
    let Some(bed) = bed() else { return };
    let first = cluster_file(&bed, "bedcli.yaml", "1:00:00", None);
    let first_s = first.to_str().unwrap();

    // a. On a terminal: the live display, then the node × phase table.
    let t = Instant::now();
    let (status, raw) = run_in_pty(hpc_up(&bed, &["up", first_s]), "up on a pty");
    let text = strip_ansi(&raw);
    eprintln!("up on a pty ({:.1}s):\n{text}", t.elapsed().as_secs_f64());
    assert!(status.success(), "up failed ({status}):\n{text}");
    // indicatif drew: cursor movement / line erasing, and the spinner lines' phase text.
    assert!(
        raw.contains("\x1b[2K") || raw.contains("\x1b[1A"),
        "no live display:\n{raw:?}"
    );
    // Frames come with the spinners' 120 ms tick, so only phases that last longer are sure
    // to be seen: each node in some node phase (ssh wait, seed, base) and some SLURM phase, the
    // daemons' starts, and the cluster line in the node layer.
    for (node, phase) in [
        ("h01", "node "),
        ("h02", "node "),
        ("h03", "node "),
        ("h01", "slurm "),
        ("h02", "slurm "),
        ("h03", "slurm "),
        ("h01", "slurm slurmctld"),
        ("h02", "slurm slurmd"),
        ("h03", "slurm slurmd"),
        ("cluster", "node …"),
    ] {
        assert!(
            spinner_shows(&text, node, phase),
            "no live line `{node} <elapsed> {phase}`:\n{text}"
        );
    }
    let rows = timing_rows(&text);
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["h01", "h02", "h03"], "{text}");
    for r in &rows {
        assert_eq!(r.len(), 7, "{r:?}");
        // Every phase timed. A node's phases run one after the other, so it is done no
        // earlier than it answered plus its own seed, base and SLURM durations (each cell is
        // rounded to 0.1 s): the cells are that node's own times, not another's or a sum
        // over the cluster.
        let [ssh_ready, seed, base, slurm, done] = [1, 2, 3, 4, 5].map(|i| secs(&r[i]));
        assert!(slurm > 0.0, "{r:?}");
        assert!(
            done + 0.25 >= ssh_ready + seed + base + slurm,
            "{}: done at {done}s, before its own phases could end:\n{text}",
            r[0]
        );
        let changed: usize = r[6].parse().unwrap();
        assert!(changed > 0, "a fresh bed host changed nothing: {r:?}");
    }
    // The rows differ where the nodes did: the compute nodes start slurmd only once h01's
    // slurmctld answers, which is h01's last phase, so h01 is done first.
    let done = |i: usize| secs(&rows[i][5]);
    assert!(
        done(0) < done(1) && done(0) < done(2),
        "h01 (controller) is not done before the compute nodes:\n{text}"
    );

    // b. Ctrl-C as soon as h01's slurmctld phase starts: a new time limit gives it work
    //    (slurm.conf, a restart), so the run is stopped with that work under way.
    let second = cluster_file(&bed, "bedcli-2h.yaml", "2:00:00", None);
    let second_s = second.to_str().unwrap();
    let mut child = hpc_up(&bed, &["--output", "json", "up", second_s])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let events = lines_of(child.stderr.take().unwrap());
    let mut log = Vec::new();
    let started = wait_for_event(&events, &mut log, "slurmctld phase-started", |v| {
        v["event"] == "phase-started" && v["layer"] == "slurm" && v["phase"] == "slurmctld"
    });
    assert_is_hpc_up(&child);
    sigint(&child);
    let signalled = Instant::now();
    let status = wait_within(&mut child, CANCEL_BOUND, "up after Ctrl-C in a SLURM phase");
    let took = signalled.elapsed();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    log.extend(events.try_iter());
    eprintln!(
        "Ctrl-C at {started} ended the run in {took:?} ({status}):\n{stdout}\nstderr:\n{}",
        log.join("\n")
    );
    assert_eq!(status.code(), Some(130), "{stdout}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["ok"], false, "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(
        error.starts_with("cancelled during ") && error.contains("slurm "),
        "the error does not name the SLURM phase: {error}"
    );

    let (status, out, err) = run(hpc_up(&bed, &["down", second_s]), "down");
    assert!(status.success(), "down after the cancel failed:\n{err}");
    eprintln!("down after the cancel:\n{out}{err}");
    // The next run completes what the cancelled one left half-done: a file the cancelled
    // run already replaced must still restart its daemon (else `config hash` fails here,
    // slurmctld running the old slurm.conf while every node has the new one).
    let t = Instant::now();
    let (status, out, err) = run(
        hpc_up(&bed, &["--output", "json", "up", second_s]),
        "up after the cancel",
    );
    assert!(
        status.success(),
        "up after the cancel failed:\n{out}\n{err}"
    );
    let report: Value = serde_json::from_str(&out).unwrap();
    eprintln!(
        "up after the cancel ({:.1}s):\n{}",
        t.elapsed().as_secs_f64(),
        report["timing_table"].as_str().unwrap()
    );
    // It finished what the cancelled run had left: the new slurm.conf on the compute nodes.
    assert!(report["node_changes"].as_u64().unwrap() > 0, "{report}");
    let part = bed.exec_on("h01", &["scontrol", "show", "partition", "debug"]);
    let part = String::from_utf8_lossy(&part.stdout);
    assert!(part.contains("MaxTime=02:00:00"), "{part}");
    let sinfo = bed.exec_on("h01", &["sinfo", "-h", "-N", "-o", "%N %T"]);
    assert_eq!(
        String::from_utf8_lossy(&sinfo.stdout).trim(),
        "h02 idle\nh03 idle"
    );

    // c. Two Ctrl-Cs: the second one exits at once, whatever the first one's exit is
    //    waiting for. h03 is at an address nothing answers, so the run waits for its SSH;
    //    standard output is a full pipe nobody reads, so the first Ctrl-C's orderly exit
    //    blocks writing the JSON error, and only the second can end the process.
    let net = bed.host("h01").unwrap().ip.octets();
    let nowhere = Ipv4Addr::new(net[0], net[1], net[2], 250);
    assert!(bed.hosts().iter().all(|h| h.ip != nowhere));
    let third = cluster_file(&bed, "bedcli-h03-gone.yaml", "2:00:00", Some(nowhere));
    let (reader, mut writer) = std::io::pipe().unwrap();
    fill(&mut writer);
    let mut cmd = hpc_up(
        &bed,
        &[
            "--output",
            "json",
            "up",
            "--ssh-timeout",
            "600",
            third.to_str().unwrap(),
        ],
    );
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    let events = lines_of(child.stderr.take().unwrap());
    let mut log = Vec::new();
    wait_for_event(&events, &mut log, "h03 ssh wait", |v| {
        v["event"] == "phase-started" && v["phase"] == "ssh wait" && v["node"] == "h03"
    });
    assert_is_hpc_up(&child);
    sigint(&child);
    // The first Ctrl-C was taken: the run stopped and now blocks on standard output.
    let wchan = format!("/proc/{}/wchan", child.id());
    let deadline = Instant::now() + CANCEL_BOUND;
    while !fs_err::read_to_string(&wchan).is_ok_and(|w| w.contains("pipe_write")) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "hpc-up exited on the first Ctrl-C although its output was blocked"
        );
        assert!(
            Instant::now() < deadline,
            "the first Ctrl-C did not stop the run within {CANCEL_BOUND:?} (wchan {:?})",
            fs_err::read_to_string(&wchan)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    sigint(&child);
    let status = wait_within(&mut child, CANCEL_BOUND, "up after two Ctrl-Cs");
    log.extend(events.try_iter());
    eprintln!("two Ctrl-Cs: {status}; stderr:\n{}", log.join("\n"));
    assert_eq!(status.code(), Some(130), "{status}");
    drop(reader);
}

/// Fills a pipe so that the next blocking write to it blocks.
fn fill(writer: &mut std::io::PipeWriter) {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(writer.as_fd(), FcntlArg::F_GETFL).unwrap());
    fcntl(writer.as_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).unwrap();
    // Whole pages, then single bytes into whatever room is left.
    for size in [4096, 1] {
        let chunk = vec![b'.'; size];
        loop {
            match writer.write(&chunk) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("filling the pipe: {e}"),
            }
        }
    }
    // Blocking again: hpc-up shares this open file, and must block rather than see EAGAIN.
    fcntl(writer.as_fd(), FcntlArg::F_SETFL(flags)).unwrap();
}
