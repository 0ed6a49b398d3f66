//! End to end on real VMs: build the guest image from Debian packages, `up` the 3-node
//! `examples/minimal.yaml` (TCG, 1 vCPU each) on a libvirtd in a network namespace this test
//! creates, check every node over SSH (own hostname, reaches the others by name), `status`,
//! `down` (nothing left), then `kill -9` of an `up` midway and `down` again. Every node has
//! two virtio-fs shares (read-write and read-only): files cross both ways, the read-only one
//! refuses writes, `check virtiofs` passes, and the mounts come back after a reboot. `up`
//! deploys SLURM with accounting and cgroup constraints: `srun -N2` runs on both compute
//! nodes, a step runs in its job's cgroup, and `check slurm` passes (an sbatch job's output
//! comes back through the read-write share; sacct shows it COMPLETED). A second `up`
//! changes nothing and `plan` is empty; a changed partition (`max-time`) shows as a
//! slurm.conf diff on every node in `plan` (text and JSON) with libvirt unchanged, `up`
//! applies it (`scontrol` shows the new MaxTime), and `plan` is empty again.
//!
//! The image is cached under `/var/tmp/hpc-up-e2e` (keyed by its inputs), so a second run on
//! the same machine skips the ~2 minute build. The bed (libvirtd, VMs, namespace) is removed
//! by its `Drop`, whatever happens.
#![allow(clippy::unwrap_used)] // test helpers panic on failure, as tests do

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::assert_gone;
use hpc_tests::libvirt_bed::LibvirtBed;

mod common;

const CACHE: &str = "/var/tmp/hpc-up-e2e";

fn hpc_up(bed: Option<&LibvirtBed>, args: &[&str]) -> Output {
    let mut cmd = match bed {
        // inside the namespace: the VMs' network is there
        Some(b) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", b.netns(), env!("CARGO_BIN_EXE_hpc-up")]);
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_hpc-up")),
    };
    cmd.args(args).env("NO_COLOR", "1").output().unwrap()
}

fn ok(o: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{what} failed ({}):\n{err}", o.status);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The minimal example with its images in the cache, its state in `dir`, and a key that
/// lives as long as the cached image.
fn config(dir: &Path) -> PathBuf {
    let cache = Path::new(CACHE);
    fs_err::create_dir_all(cache).unwrap();
    let key = cache.join("id_ed25519");
    if !key.exists() {
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "hpc-up-e2e", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(st.success());
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = fs_err::read_to_string(repo.join("examples/minimal.yaml"))
        .unwrap()
        .replace("/var/lib/hpc-up/images", CACHE)
        .replace(
            "state-dir: /var/lib/hpc-up/clusters/minimal",
            &format!(
                "state-dir: {}\nssh:\n  key: {}",
                dir.join("state").display(),
                key.display()
            ),
        );
    // two shares on every node: read-write (created by up) and read-only (with a file)
    let data = dir.join("data");
    fs_err::create_dir_all(&data).unwrap();
    fs_err::write(data.join("hello"), "from the host\n").unwrap();
    let text = text.replace(
        "controller:\n",
        &format!(
            "virtiofs:\n  - {{tag: shared, host-path: {}, mount-point: /shared, create: true, mode: \"0777\"}}\n  - {{tag: data, host-path: {}, mount-point: /data, readonly: true}}\ncontroller:\n",
            dir.join("shared").display(),
            data.display()
        ),
    );
    // SLURM as full-stack.yaml has it: accounting (MariaDB + slurmdbd on ctl) and cgroups
    assert!(text.trim_end().ends_with("max-time: \"1:00:00\""), "{text}");
    let text = format!(
        "{}\n  accounting: {{enabled: true, host: ctl}}\n  cgroup: {{constrain-cores: true, constrain-ram-space: true}}\n",
        text.trim_end()
    );
    let cfg = dir.join("minimal.yaml");
    fs_err::write(&cfg, text).unwrap();
    cfg
}

/// `plan`'s text after the partition's max-time went from 1:00:00 to 2:00:00: every libvirt
/// object unchanged, and every one of `nodes` checked with a slurm.conf diff that replaces
/// the partition's line by one with `MaxTime=02:00:00`.
fn assert_partition_diff(plan: &str, nodes: &[&str]) {
    let (libvirt, rest) = plan
        .split_once("\nnodes:\n")
        .unwrap_or_else(|| panic!("no nodes section: {plan}"));
    let objects: Vec<&str> = libvirt.lines().skip(1).collect();
    assert!(!objects.is_empty(), "no libvirt objects: {plan}");
    for o in &objects {
        assert!(o.trim_start().starts_with("unchanged "), "{o}\n{plan}");
    }
    // Per node: its header line (two spaces of indent) and everything under it.
    let mut sections: Vec<(String, Vec<&str>)> = Vec::new();
    for line in rest.lines() {
        if !line.starts_with("  ") {
            break; // notes and the summary line
        }
        match line.strip_prefix("  ") {
            Some(l) if !l.starts_with(' ') => {
                let node = l.split(':').next().unwrap_or_default().to_owned();
                sections.push((node, vec![l]));
            }
            _ => sections.last_mut().unwrap().1.push(line.trim_start()),
        }
    }
    let mut seen: Vec<&str> = sections.iter().map(|(n, _)| n.as_str()).collect();
    let mut want = nodes.to_vec();
    seen.sort_unstable();
    want.sort_unstable();
    assert_eq!(seen, want, "{plan}");
    for (node, lines) in &sections {
        assert!(lines[0].ends_with("would change"), "{node}: {plan}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("---") && l.contains("slurm.conf")),
            "{node}: no slurm.conf diff: {plan}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("-PartitionName=debug") && l.contains("MaxTime=01:00:00")),
            "{node}: {plan}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("+PartitionName=debug") && l.contains("MaxTime=02:00:00")),
            "{node}: {plan}"
        );
    }
    let summary = plan.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("0 libvirt change(s), ")
            && summary.ends_with(", 0 node(s) known after apply or unreachable"),
        "{summary}"
    );
}

#[test]
fn a_real_cluster_comes_up_answers_and_goes_away() {
    let Some(bed) = LibvirtBed::start("e2e").unwrap() else {
        return;
    };
    let dir = bed.scratch_dir("e2e");
    let cfg = config(&dir);
    let cfg_s = cfg.to_str().unwrap();

    // the guest image, from Debian packages (cached by its inputs)
    let t = Instant::now();
    let out = hpc_up(None, &["image", "build", cfg_s]);
    ok(&out, "image build");
    eprintln!(
        "image build ({:.0}s):\n{}",
        t.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stderr)
    );

    // up: VMs, SSH on every node, hostname and /etc/hosts; the timing table goes to the log
    let t = Instant::now();
    let out = hpc_up(Some(&bed), &["up", "--ssh-timeout", "900", cfg_s]);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("up ({:.0}s):\n{log}", t.elapsed().as_secs_f64());
    ok(&out, "up");
    assert!(log.contains("ssh ready"), "no timing table:\n{log}");

    // every node: its own hostname, the others by name
    let nodes = ["ctl", "cn1", "cn2"];
    for n in nodes {
        let o = hpc_up(Some(&bed), &["ssh", cfg_s, n, "--", "hostname"]);
        assert_eq!(ok(&o, "ssh hostname").trim(), n);
        for other in nodes.iter().filter(|o| **o != n) {
            let o = hpc_up(
                Some(&bed),
                &["ssh", cfg_s, n, "--", "ping", "-c", "1", "-W", "5", other],
            );
            ok(&o, &format!("ping {other} from {n}"));
        }
    }

    // virtio-fs: host → every node, every node → host, read-only refuses writes
    fs_err::write(dir.join("shared/from-host"), "host wrote this\n").unwrap();
    for n in nodes {
        let o = hpc_up(
            Some(&bed),
            &[
                "ssh",
                cfg_s,
                n,
                "--",
                "cat",
                "/data/hello",
                "/shared/from-host",
            ],
        );
        assert_eq!(
            ok(&o, "read shares"),
            "from the host\nhost wrote this\n",
            "{n}"
        );
        let o = hpc_up(
            Some(&bed),
            &[
                "ssh",
                cfg_s,
                n,
                "--",
                "sh",
                "-c",
                &format!("echo {n} > /shared/from-{n}"),
            ],
        );
        ok(&o, "write share");
        assert_eq!(
            fs_err::read_to_string(dir.join(format!("shared/from-{n}"))).unwrap(),
            format!("{n}\n")
        );
        let o = hpc_up(Some(&bed), &["ssh", cfg_s, n, "--", "touch", "/data/nope"]);
        assert!(
            !o.status.success(),
            "{n}: write to the read-only share succeeded"
        );
        assert!(!dir.join("data/nope").exists());
    }
    let o = hpc_up(Some(&bed), &["check", "virtiofs", cfg_s]);
    let table = ok(&o, "check virtiofs");
    eprintln!("check virtiofs:\n{table}");
    assert!(table.contains("all 6 mount(s) pass"), "{table}");

    // SLURM, deployed by `up`: srun across both compute nodes, and `check slurm` (srun per
    // partition, an sbatch job whose output comes back through the read-write share)
    assert!(log.contains("SLURM ready"), "{log}");
    let o = hpc_up(
        Some(&bed),
        &[
            "ssh", cfg_s, "ctl", "--", "timeout", "300", "srun", "-N2", "hostname",
        ],
    );
    let mut ran_on: Vec<String> = ok(&o, "srun -N2 hostname")
        .lines()
        .map(str::to_owned)
        .collect();
    ran_on.sort();
    assert_eq!(ran_on, ["cn1", "cn2"]);
    let o = hpc_up(Some(&bed), &["check", "slurm", cfg_s]);
    let table = ok(&o, "check slurm");
    eprintln!("check slurm:\n{table}");
    assert!(table.contains("output via share shared"), "{table}");
    assert!(table.contains("COMPLETED"), "sacct: {table}");
    // task/cgroup: a step runs in its job's cgroup
    let o = hpc_up(
        Some(&bed),
        &[
            "ssh",
            cfg_s,
            "ctl",
            "--",
            "timeout",
            "300",
            "srun",
            "-N1",
            "-w",
            "cn2",
            "cat",
            "/proc/self/cgroup",
        ],
    );
    let cg = ok(&o, "srun cat /proc/self/cgroup");
    assert!(cg.contains("/job_"), "not in a job cgroup: {cg}");

    // the mounts come back after a reboot
    let boot_id = |n: &str| {
        let o = hpc_up(
            Some(&bed),
            &[
                "ssh",
                cfg_s,
                n,
                "--",
                "cat",
                "/proc/sys/kernel/random/boot_id",
            ],
        );
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let before = boot_id("cn1").unwrap();
    let t = Instant::now();
    let _ = hpc_up(
        Some(&bed),
        &["ssh", cfg_s, "cn1", "--", "systemctl", "reboot"],
    );
    loop {
        assert!(
            t.elapsed() < Duration::from_secs(900),
            "cn1 did not come back from reboot"
        );
        std::thread::sleep(Duration::from_secs(5));
        if boot_id("cn1").is_some_and(|b| b != before) {
            break;
        }
    }
    eprintln!("cn1 rebooted in {:.0}s", t.elapsed().as_secs_f64());
    let mut mounted = String::new();
    while t.elapsed() < Duration::from_secs(900) {
        let o = hpc_up(
            Some(&bed),
            &[
                "ssh",
                cfg_s,
                "cn1",
                "--",
                "findmnt",
                "-n",
                "-o",
                "TARGET,FSTYPE,OPTIONS",
                "-t",
                "virtiofs",
            ],
        );
        mounted = String::from_utf8_lossy(&o.stdout).into_owned();
        if mounted.contains("/shared") && mounted.contains("/data") {
            break;
        }
        std::thread::sleep(Duration::from_secs(3));
    }
    assert!(
        mounted.contains("/shared") && mounted.contains("/data"),
        "after reboot: {mounted}"
    );
    assert!(
        mounted
            .lines()
            .any(|l| l.starts_with("/data") && l.contains("ro,")),
        "{mounted}"
    );

    // status: all running, with their addresses
    let o = hpc_up(Some(&bed), &["--output", "json", "status", cfg_s]);
    let status: serde_json::Value = serde_json::from_str(&ok(&o, "status")).unwrap();
    let rows = status["nodes"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for (row, ip) in rows.iter().zip(["10.77.0.10", "10.77.0.11", "10.77.0.12"]) {
        assert_eq!(row["state"], "running", "{status}");
        assert_eq!(row["ip"], ip, "{status}");
    }

    // a second up changes nothing
    let o = hpc_up(Some(&bed), &["--output", "json", "up", cfg_s]);
    let again: serde_json::Value = serde_json::from_str(&ok(&o, "second up")).unwrap();
    assert_eq!(again["changes"], 0, "{again}");
    let plan = ok(&hpc_up(Some(&bed), &["plan", cfg_s]), "plan");
    assert!(plan.ends_with("no changes\n"), "{plan}");

    // a changed partition (max-time 1:00:00 → 2:00:00): the plan shows slurm.conf's diff on
    // every node and no libvirt change, `up` applies it, and the plan is empty again
    let text = fs_err::read_to_string(&cfg).unwrap();
    assert!(text.contains("max-time: \"1:00:00\""), "{text}");
    fs_err::write(
        &cfg,
        text.replace("max-time: \"1:00:00\"", "max-time: \"2:00:00\""),
    )
    .unwrap();
    let plan = ok(&hpc_up(Some(&bed), &["plan", cfg_s]), "plan of the change");
    eprintln!("plan of the changed partition:\n{plan}");
    assert_partition_diff(&plan, &nodes);
    let check = ok(
        &hpc_up(Some(&bed), &["up", "--check", "--diff", cfg_s]),
        "up --check --diff",
    );
    assert_eq!(check, plan, "up --check --diff is not the plan");
    let o = hpc_up(Some(&bed), &["--output", "json", "plan", cfg_s]);
    let plan: serde_json::Value = serde_json::from_str(&ok(&o, "plan --output json")).unwrap();
    let objects = plan["libvirt"].as_array().unwrap();
    assert!(!objects.is_empty(), "{plan}");
    assert!(objects.iter().all(|o| o["action"] == "unchanged"), "{plan}");
    let rows = plan["nodes"].as_array().unwrap();
    let mut planned: Vec<&str> = rows.iter().filter_map(|n| n["node"].as_str()).collect();
    planned.sort_unstable();
    assert_eq!(planned, ["cn1", "cn2", "ctl"], "{plan}");
    for n in rows {
        assert_eq!(n["state"], "checked", "{n}");
        let diff = n["changes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["layer"] == "slurm")
            .filter_map(|c| c["diff"].as_str())
            .find(|d| d.contains("slurm.conf"))
            .unwrap_or_else(|| panic!("no slurm.conf diff: {n}"));
        assert!(
            diff.lines()
                .any(|l| l.starts_with("+PartitionName=debug") && l.contains("MaxTime=02:00:00")),
            "{diff}"
        );
    }
    assert!(plan["changes"].as_u64().unwrap() >= 3, "{plan}");
    let o = hpc_up(Some(&bed), &["--output", "json", "up", cfg_s]);
    let applied: serde_json::Value =
        serde_json::from_str(&ok(&o, "up of the changed partition")).unwrap();
    for k in ["created", "updated", "started"] {
        assert_eq!(applied[k], 0, "{k}: {applied}");
    }
    assert!(applied["node_changes"].as_u64().unwrap() >= 3, "{applied}");
    let o = hpc_up(
        Some(&bed),
        &["ssh", cfg_s, "ctl", "--", "scontrol", "show", "partition"],
    );
    let partition = ok(&o, "scontrol show partition");
    assert!(partition.contains("MaxTime=02:00:00"), "{partition}");
    let plan = ok(
        &hpc_up(Some(&bed), &["plan", cfg_s]),
        "plan after the change",
    );
    assert!(plan.ends_with("no changes\n"), "{plan}");
    let o = hpc_up(Some(&bed), &["--output", "json", "plan", cfg_s]);
    let plan: serde_json::Value = serde_json::from_str(&ok(&o, "plan --output json")).unwrap();
    assert_eq!(plan["changes"], 0, "{plan}");
    assert!(
        plan["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["state"] == "checked"),
        "{plan}"
    );

    // down: nothing left
    ok(&hpc_up(Some(&bed), &["down", cfg_s]), "down");
    assert_gone(&bed, &dir, "after down");

    // kill -9 of an up midway (VMs defined and booting, SSH not yet there), then down
    let mut child = Command::new("ip")
        .args(["netns", "exec", bed.netns(), env!("CARGO_BIN_EXE_hpc-up")])
        .args(["-q", "up", cfg_s])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(8));
    let _ = child.kill();
    let _ = child.wait();
    ok(&hpc_up(Some(&bed), &["down", cfg_s]), "down after kill -9");
    assert_gone(&bed, &dir, "after kill -9 of up and down");
    let _ = fs_err::remove_dir_all(&dir);
}
