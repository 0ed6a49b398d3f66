//! Hostile cluster files, run through `hpc-up validate` as a user would: every case of
//! issue 16's list (kept as fixtures in `crates/hpc-config/tests/hostile/`, the large ones
//! made here) and every input the fuzzer ever found (`crates/hpc-config/tests/fuzz/found/`).
//!
//! Each must end with exit 0 or 1 — never 101 (a panic), 134 (an abort) or a hang — inside an
//! address-space limit of [`MEMORY_LIMIT`] (`prlimit --as`: an allocation past it fails and
//! aborts), with the problem located (`file:line:column`) in text and in JSON output. Run
//! times are printed, not asserted (these machines are shared); a run that has not ended
//! after [`HANG`] is a hang.
#![allow(clippy::unwrap_used)] // test helpers panic on failure, as tests do

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::repo;

/// Address space the binary may use (the debug binary's own mappings included).
const MEMORY_LIMIT: u64 = 768 << 20;
/// Longer than any case takes by two orders of magnitude: past it, the run is a hang.
const HANG: Duration = Duration::from_secs(60);

/// What a case must give.
struct Expect {
    /// Exit status.
    code: i32,
    /// Line of the first problem, for a file that is read and invalid.
    line: Option<usize>,
    /// Text the first problem's message (or the error) contains.
    message: &'static str,
}

fn invalid(line: usize, message: &'static str) -> Expect {
    Expect {
        code: 1,
        line: Some(line),
        message,
    }
}

fn unreadable(message: &'static str) -> Expect {
    Expect {
        code: 1,
        line: None,
        message,
    }
}

/// The committed fixtures and what each must give.
fn fixtures() -> Vec<(&'static str, Expect)> {
    vec![
        ("pad-width", invalid(8, "pads the index to 65536 digits")),
        ("hostlist-zeros", invalid(12, "has more than 63 digits")),
        ("wide-column", invalid(7, "`lots` is not a size")),
        ("max-time-overflow", invalid(10, "213503982334602-00")),
        (
            "first-index-wrap",
            invalid(8, "first-index 4294967295 is out of range"),
        ),
        ("alias-bomb", invalid(6, "grows past 250000 values")),
        ("deep-flow", invalid(1, "recursion limit exceeded")),
        ("deep-block", invalid(1, "nest more than 64 deep")),
        ("huge-hostlist", invalid(10, "names more than 8192 nodes")),
        (
            "million-problems",
            invalid(10, "names more than 8192 nodes"),
        ),
        (
            "groups-250",
            invalid(9, "all groups together: at most 8192"),
        ),
    ]
}

const BASE: &str = "\
name: t
network: {cidr: 10.77.0.0/16, bridge: hpcbr-t}
image: {base: /var/lib/hpc-up/base.qcow2}
state-dir: /var/lib/hpc-up/t
controller:
  nodes: [{name: ctl}]
";

/// The large cases, made here rather than committed, and what each must give.
fn generated(dir: &Path) -> Vec<(PathBuf, Expect)> {
    let mut out = Vec::new();
    let mut file = |name: &str, text: &[u8], expect: Expect| {
        let path = dir.join(format!("{name}.yaml"));
        fs_err::write(&path, text).unwrap();
        out.push((path, expect));
    };

    let mut keys = String::new();
    for i in 0..50_000 {
        writeln!(keys, "k{i}: {i}").unwrap();
    }
    file(
        "many-keys",
        keys.as_bytes(),
        invalid(1, "missing `controller`"),
    );

    let mut merges = String::from("base: &b {");
    merges.push_str(
        &(0..500)
            .map(|i| format!("k{i}: {i}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    merges.push_str("}\n");
    for i in 0..2000 {
        writeln!(merges, "m{i}: {{<<: *b, z: 1}}").unwrap();
    }
    file(
        "many-merges",
        merges.as_bytes(),
        invalid(249, "grows past 250000 values"),
    );

    let names: Vec<String> = (0..100_000).map(|i| format!("cn{i}")).collect();
    let partition = format!(
        "{BASE}compute:\n  - {{name: \"cn{{index}}\", count: 2}}\nslurm:\n  partitions:\n    - name: p\n      nodes: [{}]\n",
        names.join(",")
    );
    file(
        "partition-100k",
        partition.as_bytes(),
        invalid(12, "no node is called `cn0`"),
    );

    let names: Vec<String> = (0..20_000).map(|i| format!("xq{i}")).collect();
    let unknown = format!(
        "{BASE}compute:\n  - {{name: \"cn{{index}}\", count: 4096}}\nslurm:\n  partitions:\n    - name: p\n      nodes: [{}]\n",
        names.join(",")
    );
    file(
        "unknown-20k",
        unknown.as_bytes(),
        invalid(12, "no node is called `xq0`"),
    );

    // The fuzzer's first finding: one flow mapping on one line, as long as the file may be.
    // saphyr tokenizes it whole before its first event (the file-size limit bounds that).
    let mut flow =
        String::from("# é\n{name: flow, network: {cidr: 10.91.0.0/24, bridge: hpcbr-f}, ");
    while flow.len() < hpc_config::limits::MAX_FILE_BYTES - 100 {
        flow.push_str("image: {base: /b, bridge: hpcbr-f}, ");
    }
    flow.push_str("controller: {nodes: [{name: ctl}]}}\n");
    file(
        "flow-line",
        flow.as_bytes(),
        invalid(2, "duplicate key `image`"),
    );

    let mut large = String::from(BASE);
    while large.len() <= 3 << 20 {
        large.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    file(
        "too-large",
        large.as_bytes(),
        unreadable("is larger than 2097152 bytes"),
    );

    let mut latin1 = format!("{BASE}# caf").into_bytes();
    latin1.extend_from_slice(b"\xe9\n");
    file("not-utf8", &latin1, unreadable(":7:6: not UTF-8 text"));

    // Generous but legitimate: a thousand nodes, each listed with its own address.
    let mut thousand = String::from(
        "name: t\nnetwork: {cidr: 10.77.0.0/16, bridge: hpcbr-t}\nimage: {base: /var/lib/hpc-up/base.qcow2}\nstate-dir: /var/lib/hpc-up/t\ncontroller:\n  nodes: [{name: ctl}]\ncompute:\n  - nodes:\n",
    );
    for i in 0..1000 {
        writeln!(
            thousand,
            "      - {{name: n{i}, ip: 10.77.{}.{}}}",
            10 + i / 200,
            10 + i % 200
        )
        .unwrap();
    }
    file(
        "thousand-nodes",
        thousand.as_bytes(),
        Expect {
            code: 0,
            line: None,
            message: "valid (1001 nodes)",
        },
    );
    out
}

/// Run `hpc-up ARGS` under the memory limit; the output and how long it took.
fn run(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new("prlimit")
        .arg(format!("--as={MEMORY_LIMIT}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_hpc-up"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) runs");
    // Drain the pipes on threads so that a large report cannot block the child.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut v).unwrap();
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut v).unwrap();
        v
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > HANG {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("hpc-up {args:?} hung: still running after {HANG:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    (output, started.elapsed())
}

/// Check both outputs of one case; a line for the timing table.
fn check(path: &Path, expect: &Expect) -> String {
    let file = path.to_str().unwrap();
    let (text, t_text) = run(&["validate", file]);
    let stderr = String::from_utf8_lossy(&text.stderr);
    let short = |s: &str| s.chars().take(2000).collect::<String>();
    assert_eq!(
        text.status.code(),
        Some(expect.code),
        "{file}: exit status (text output); stderr:\n{}",
        short(&stderr)
    );
    if let Some(line) = expect.line {
        // The drawing's header `[file:line:col]` or the plain `file:line:col: message`.
        assert!(
            stderr.contains(&format!("{file}:{line}:")),
            "{file}: no problem at line {line} in text output:\n{}",
            short(&stderr)
        );
    }
    let all = format!("{stderr}{}", String::from_utf8_lossy(&text.stdout));
    assert!(
        all.contains(expect.message),
        "{file}: `{}` not in text output:\n{}",
        expect.message,
        short(&all)
    );

    let (json, t_json) = run(&["--output", "json", "validate", file]);
    assert_eq!(
        json.status.code(),
        Some(expect.code),
        "{file}: exit status (JSON output); stderr:\n{}",
        short(&String::from_utf8_lossy(&json.stderr))
    );
    let v: serde_json::Value = serde_json::from_slice(&json.stdout)
        .unwrap_or_else(|e| panic!("{file}: JSON output does not parse: {e}"));
    match expect.line {
        Some(line) => {
            let first = &v["problems"][0];
            assert_eq!(
                first["line"], line,
                "{file}: first problem in JSON: {first}"
            );
            assert!(first["column"].as_u64().unwrap() >= 1, "{file}: {first}");
            let message = first["message"].as_str().unwrap();
            assert!(message.contains(expect.message), "{file}: {message}");
            let listed = v["problems"].as_array().unwrap().len();
            assert!(
                listed <= hpc_config::limits::MAX_PROBLEMS,
                "{file}: {listed} listed"
            );
            assert!(v["more"].is_u64(), "{file}: {v}");
        }
        None if expect.code == 0 => assert_eq!(v["valid"], true, "{file}: {v}"),
        None => {
            let error = v["error"].as_str().unwrap_or_default();
            assert!(error.contains(expect.message), "{file}: {v}");
        }
    }
    format!(
        "{:<28} exit {}  text {:>6.2}s  json {:>6.2}s",
        path.file_name().unwrap().to_string_lossy(),
        expect.code,
        t_text.as_secs_f64(),
        t_json.as_secs_f64()
    )
}

#[test]
fn hostile_files_end_with_a_located_problem_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let dir_of_fixtures = repo().join("crates/hpc-config/tests/hostile");
    let mut cases: Vec<(PathBuf, Expect)> = fixtures()
        .into_iter()
        .map(|(name, expect)| (dir_of_fixtures.join(format!("{name}.yaml")), expect))
        .collect();
    cases.extend(generated(dir.path()));
    let mut table = Vec::new();
    for (path, expect) in &cases {
        table.push(check(path, expect));
    }
    println!("{}", table.join("\n"));
}

#[test]
fn what_is_not_a_regular_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("cluster.yaml");
    nix::unistd::mkfifo(
        &fifo,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
    )
    .unwrap();
    // A FIFO nobody writes to: reading it would block for ever.
    check(
        &fifo,
        &unreadable("is a FIFO (named pipe), not a regular file"),
    );
    // A device that never ends.
    check(
        Path::new("/dev/zero"),
        &unreadable("/dev/zero is a character device"),
    );
    check(
        dir.path(),
        &unreadable("is a directory, not a regular file"),
    );
}

#[test]
fn every_input_the_fuzzer_found_ends_with_exit_0_or_1() {
    let found = repo().join("crates/hpc-config/tests/fuzz/found");
    let entries: Vec<_> = fs_err::read_dir(&found).unwrap().collect();
    assert!(
        !entries.is_empty(),
        "{} holds the fuzzer's findings",
        found.display()
    );
    for entry in entries {
        let path = entry.unwrap().path();
        let (o, _) = run(&["validate", path.to_str().unwrap()]);
        let code = o.status.code();
        assert!(
            matches!(code, Some(0 | 1)),
            "{}: exit {code:?}:\n{}",
            path.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        if code == Some(1) {
            let (o, _) = run(&["--output", "json", "validate", path.to_str().unwrap()]);
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert!(!v["valid"].as_bool().unwrap_or(false), "{v}");
        }
    }
}
