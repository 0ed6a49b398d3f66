//! End to end on real VMs, once per Debian release of the guests (`image.release`:
//! bookworm and trixie): build the guest image from Debian packages, `up` the 3-node
//! `examples/minimal.yaml` (TCG, 1 vCPU each) on a libvirtd in a network namespace this test
//! creates, check every node over SSH (own hostname, reaches the others by name, the
//! release's kernel, SLURM and MariaDB versions), `status`, `down` (nothing left), then
//! `kill -9` of an `up` midway and `down` again. Every node has two virtio-fs shares
//! (read-write and read-only): files cross both ways, the read-only one refuses writes,
//! `check virtiofs` passes, and the mounts come back after a reboot. `up` deploys SLURM with
//! accounting and cgroup constraints: `srun -N2` runs on both compute nodes, a step runs in
//! its job's cgroup, and `check slurm` passes (an sbatch job's output comes back through the
//! read-write share; sacct shows it COMPLETED). A job that exits 7 leaves its failure bundle
//! in the share, and `check mpi`, `check containers` and `check monitoring` pass (their text
//! on bookworm, their JSON reports on trixie: each check once per release). A second `up` changes nothing and `plan` is
//! empty; a changed partition (`max-time`) shows as a slurm.conf diff on every node in `plan`
//! (text and JSON) with libvirt unchanged, `up` applies it (`scontrol` shows the new
//! MaxTime), and `plan` is empty again. On trixie (Linux 6.12) the cluster also runs BeeGFS
//! 8.1.0 — the seed stack's "pending validation" configuration — from the vendor packages in
//! `../shared/beegfs/8.1.0`, baked into the image with the client module built for the
//! image's kernel: `up` deploys management and metadata on ctl, storage on both compute
//! nodes and a client on every node; every node has it mounted, `check beegfs` passes (the
//! release's own tools, a round trip on every client read back on another), the mount comes
//! back after the reboot, and the second `up` changes nothing. The BeeGFS kernel gate meets
//! the kernel it exists for: `up` of the same cluster with BeeGFS 7.4.4 clients is refused
//! before any node is touched, naming every node, the kernel read from it and the releases
//! that build, and 8.1.0 stays what runs.
//!
//! Each release has its own image cache (`/var/tmp/hpc-up-e2e` for bookworm,
//! `/var/tmp/hpc-up-e2e-trixie`; keyed by its inputs), so a second run on the same machine
//! skips the build, and its own bed and scratch directory. The two tests take the bed's lock
//! before building their image, so a build never overlaps the other's running cluster;
//! `scripts/test` runs them one after the other (`--test-threads=1`). The bed (libvirtd,
//! VMs, namespace) is removed by its `Drop`, whatever happens.
#![allow(clippy::unwrap_used, clippy::print_stderr)] // test helpers panic on failure and log, as tests do

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::assert_gone;
use hpc_config::DebianRelease;
use hpc_tests::libvirt_bed::LibvirtBed;

mod common;

/// What the scenario expects of one release's guests.
struct Guests {
    release: DebianRelease,
    /// The image cache: base image, kernel, initrd, and the key the image trusts.
    cache: &'static str,
    /// `uname -r` starts with this.
    kernel: &'static str,
    /// The version `sinfo --version` and `slurmd -V` print (after `slurm-wlm `, Debian's
    /// name for it) starts with this.
    slurm: &'static str,
    /// `mariadb --version` (on the controller) contains this.
    mariadb: &'static str,
    /// The BeeGFS release the cluster runs (its packages from `../shared/beegfs/<release>`),
    /// if any.
    beegfs: Option<&'static str>,
    /// `check mpi|containers|monitoring` with `--output json` (else their text).
    json_checks: bool,
}

const BOOKWORM: Guests = Guests {
    release: DebianRelease::Bookworm,
    cache: "/var/tmp/hpc-up-e2e",
    kernel: "6.1.",
    slurm: "22.05.",
    mariadb: "10.11.",
    beegfs: None,
    json_checks: false,
};

const TRIXIE: Guests = Guests {
    release: DebianRelease::Trixie,
    cache: "/var/tmp/hpc-up-e2e-trixie-beegfs",
    kernel: "6.12.",
    slurm: "24.11.",
    mariadb: "11.8.",
    beegfs: Some("8.1.0"),
    json_checks: true,
};

/// The vendor's BeeGFS packages of `release` (`../shared/beegfs/<release>` beside the
/// project). CI has them: missing there fails the test.
fn beegfs_debs(release: &str) -> PathBuf {
    let dir = common::repo().join("../shared/beegfs").join(release);
    assert!(
        dir.is_dir(),
        "no BeeGFS {release} packages in {}",
        dir.display()
    );
    dir.canonicalize().unwrap()
}

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

/// The minimal example for `guests`' release with its images in the release's cache, its
/// state in `dir`, and a key that lives as long as the cached image.
fn config(guests: &Guests, dir: &Path) -> PathBuf {
    let key = common::cache_key(Path::new(guests.cache));
    let text = fs_err::read_to_string(common::repo().join("examples/minimal.yaml")).unwrap();
    // the example's own release line, set to this scenario's
    assert!(text.contains("\n  release: trixie\n"), "{text}");
    let text = text
        .replace(
            "\n  release: trixie\n",
            &format!("\n  release: {}\n", guests.release),
        )
        .replace("/var/lib/hpc-up/images", guests.cache)
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
        "{}\n  accounting: {{enabled: true, host: ctl}}\n  cgroup: {{constrain-cores: true, constrain-ram-space: true}}\n  job-failures: {{dir: /shared/job-failures}}\n",
        text.trim_end()
    );
    // the rest of the stack, as full-stack.yaml has it: MPI with PMIx, containers in jobs
    // (bundles in the read-write share), monitoring (Prometheus on ctl, scraped often so the
    // check does not wait long)
    let text = format!(
        "{text}mpi: {{default: pmix}}\ncontainers:\n  runtime: crun\n  bundles: /shared/containers\n  images: [{{name: debian}}]\nmonitoring: {{server: ctl, retention: 2d, scrape-interval: 5s}}\n"
    );
    // BeeGFS: management and metadata on ctl, storage on both compute nodes, every node a
    // client, with shared-secret authentication; the packages baked into the image. Its
    // directories are under /srv: the defaults (/data/beegfs/…) are inside the read-only
    // share at /data, which validation refuses.
    let text = match guests.beegfs {
        None => text,
        Some(release) => format!(
            "{text}beegfs:\n  version: \"{release}\"\n  management: ctl\n  metadata: [ctl]\n  storage: [cn1, cn2]\n  clients: [ALL]\n  management-dir: /srv/beegfs/mgmtd\n  metadata-dir: /srv/beegfs/meta\n  storage-dir: /srv/beegfs/storage\n  auth: true\n  packages:\n    debs: {}\n",
            beegfs_debs(release).display()
        ),
    };
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

/// `cmd` on `node` over SSH: its stdout, or the test fails.
fn on(bed: &LibvirtBed, cfg: &str, node: &str, cmd: &[&str]) -> String {
    let mut args = vec!["ssh", cfg, node, "--"];
    args.extend_from_slice(cmd);
    ok(
        &hpc_up(Some(bed), &args),
        &format!("{node}: {}", cmd.join(" ")),
    )
}

/// Every node runs the release's kernel and SLURM; the controller its MariaDB.
fn assert_versions(bed: &LibvirtBed, cfg: &str, guests: &Guests, nodes: &[&str]) {
    let r = guests.release;
    for n in nodes {
        let kernel = on(bed, cfg, n, &["uname", "-r"]);
        assert!(
            kernel.starts_with(guests.kernel),
            "{n} on {r}: kernel {kernel}"
        );
        for cmd in [["sinfo", "--version"], ["slurmd", "-V"]] {
            let v = on(bed, cfg, n, &cmd);
            let version = v
                .trim()
                .strip_prefix("slurm-wlm ")
                .or_else(|| v.trim().strip_prefix("slurm "))
                .unwrap_or_else(|| panic!("{n} on {r}: {cmd:?}: {v}"));
            assert!(
                version.starts_with(guests.slurm),
                "{n} on {r}: {cmd:?}: {v}"
            );
        }
        eprintln!(
            "{n}: Linux {}, {}",
            kernel.trim(),
            on(bed, cfg, n, &["slurmd", "-V"]).trim()
        );
    }
    let v = on(bed, cfg, "ctl", &["mariadb", "--version"]);
    assert!(v.contains(guests.mariadb), "ctl on {r}: {v}");
}

/// A copy of the cluster file `cfg` (which runs BeeGFS `running`) with BeeGFS `version`
/// instead, its packages from a repository no guest can resolve: nothing may get as far as
/// installing them.
fn beegfs_config(cfg: &Path, running: &str, version: &str) -> PathBuf {
    let text = fs_err::read_to_string(cfg).unwrap();
    let debs = format!("    debs: {}\n", beegfs_debs(running).display());
    let from = format!("  version: \"{running}\"\n");
    assert!(text.contains(&debs) && text.contains(&from), "{text}");
    let text = text
        .replace(&from, &format!("  version: \"{version}\"\n"))
        .replace(
            &debs,
            &format!(
                "    repo: http://beegfs.invalid/release/beegfs_{version}\n    trusted: true\n"
            ),
        );
    let path = cfg.with_file_name(format!("beegfs-{version}.yaml"));
    fs_err::write(&path, text).unwrap();
    path
}

/// `up` of the cluster with BeeGFS `version` instead of `running`: refused by the preflight
/// (exit status 1, the BeeGFS layer); the problems it lists, one per line, in order.
fn beegfs_refusal(bed: &LibvirtBed, cfg: &Path, running: &str, version: &str) -> Vec<String> {
    let file = beegfs_config(cfg, running, version);
    let t = Instant::now();
    let o = hpc_up(Some(bed), &["up", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    eprintln!(
        "up with BeeGFS {version} ({:.0}s, {}):\n{err}",
        t.elapsed().as_secs_f64(),
        o.status
    );
    assert_eq!(o.status.code(), Some(1), "up with BeeGFS {version}");
    let (_, problems) = err
        .rsplit_once("Error: BeeGFS: BeeGFS preflight refused the deployment:\n")
        .unwrap_or_else(|| panic!("BeeGFS {version}: not refused by the preflight:\n{err}"));
    problems
        .lines()
        .map_while(|l| l.trim_start().strip_prefix("- "))
        .map(str::to_owned)
        .collect()
}

/// BeeGFS `release` mounted at /mnt/beegfs on `node`, its client package the release's.
fn assert_beegfs_mounted(bed: &LibvirtBed, cfg: &str, node: &str, release: &str) {
    let t = Instant::now();
    let mut mounted = String::new();
    while t.elapsed() < Duration::from_secs(600) {
        let o = hpc_up(
            Some(bed),
            &[
                "ssh",
                cfg,
                node,
                "--",
                "findmnt",
                "-n",
                "-t",
                "beegfs",
                "/mnt/beegfs",
            ],
        );
        mounted = String::from_utf8_lossy(&o.stdout).into_owned();
        if o.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_secs(3));
    }
    assert!(
        mounted.contains("/mnt/beegfs"),
        "{node}: BeeGFS not mounted"
    );
    let v = on(
        bed,
        cfg,
        node,
        &["dpkg-query", "-W", "-f", "${Version}", "beegfs-client"],
    );
    assert_eq!(v, format!("20:{release}"), "{node}: beegfs-client");
}

/// The BeeGFS kernel gate on trixie's Linux 6.12, on the cluster running BeeGFS `running`:
/// `up` with 7.4.4 clients is refused before anything changes, naming every node, the kernel
/// read from it and the releases that build (the module of the running release in the image
/// spares every other complaint), and `running` is still what every node has.
fn assert_beegfs_kernel_gate(bed: &LibvirtBed, cfg: &Path, nodes: &[&str], running: &str) {
    let cfg_s = cfg.to_str().unwrap();
    let refused = beegfs_refusal(bed, cfg, running, "7.4.4");
    assert_eq!(refused.len(), nodes.len(), "{refused:#?}");
    for n in nodes {
        let uname = on(bed, cfg_s, n, &["uname", "-r"]);
        let uname = uname.trim();
        assert!(uname.starts_with("6.12."), "{n}: {uname}");
        let kernel = format!(
            "{n}: the BeeGFS 7.4.4 client module does not build on Linux 6.12 (`{uname}`): "
        );
        let line = refused
            .iter()
            .find(|p| p.starts_with(&kernel))
            .unwrap_or_else(|| panic!("{n}: no kernel refusal: {refused:#?}"));
        assert!(
            line.ends_with("; releases that build: 7.4.7 or later, 8.1.0 or later"),
            "{line}"
        );
        // nothing of 7.4.4 got anywhere: the running release's packages, no apt source
        assert_beegfs_mounted(bed, cfg_s, n, running);
        let o = hpc_up(
            Some(bed),
            &[
                "ssh",
                cfg_s,
                n,
                "--",
                "test",
                "-e",
                "/etc/apt/sources.list.d/hpc-up-beegfs.list",
            ],
        );
        assert_eq!(o.status.code(), Some(1), "{n} has the 7.4.4 apt source");
    }
    let plan = ok(
        &hpc_up(Some(bed), &["plan", cfg_s]),
        "plan after the BeeGFS refusal",
    );
    assert!(plan.ends_with("no changes\n"), "{plan}");
}

/// The layers after SLURM: a job that fails on purpose leaves its bundle (exit code, node,
/// slurmd's and the kernel's log tails) in the share, seen from this host; `check mpi`,
/// `check containers` and `check monitoring` pass (their JSON reports when `json`, else
/// their text).
fn assert_stack(bed: &LibvirtBed, cfg: &str, dir: &Path, json: bool) {
    let o = hpc_up(
        Some(bed),
        &[
            "ssh", cfg, "ctl", "--", "timeout", "300", "srun", "-N1", "-w", "cn2", "sh", "-c",
            "exit 7",
        ],
    );
    assert!(!o.status.success(), "a job that exits 7 succeeded");
    let t = Instant::now();
    let failures = dir.join("shared/job-failures");
    let summary = loop {
        let found = fs_err::read_dir(&failures).ok().and_then(|jobs| {
            jobs.filter_map(|e| e.ok().map(|e| e.path().join("cn2/summary")))
                .find(|p| p.is_file())
        });
        if let Some(p) = found {
            break p;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "no failure bundle for cn2 in {}",
            failures.display()
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    let text = fs_err::read_to_string(&summary).unwrap();
    eprintln!("{}:\n{text}", summary.display());
    assert!(text.contains("7:0"), "{text}");
    assert!(text.contains("cn2"), "{text}");
    let bundle = summary.parent().unwrap();
    for f in ["slurmd.log", "dmesg"] {
        let len = fs_err::metadata(bundle.join(f)).unwrap().len();
        assert!(len > 0, "{f} of {} is empty", bundle.display());
    }

    // Each check once per release (each runs jobs on emulated CPUs: tens of seconds): the
    // text output on one release, the JSON report on the other. Both come from the same
    // report, and the exit code follows its `ok` either way.
    for (what, check) in [
        ("check mpi", "mpi"),
        ("check containers", "containers"),
        ("check monitoring", "monitoring"),
    ] {
        let t = Instant::now();
        let mut args = if json {
            vec!["--output", "json"]
        } else {
            Vec::new()
        };
        args.extend_from_slice(&["check", check, cfg]);
        let o = hpc_up(Some(bed), &args);
        eprintln!(
            "{what} ({:.0}s, {}):\n{}{}",
            t.elapsed().as_secs_f64(),
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let out = ok(&o, what);
        if json {
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["ok"], true, "{what}: {v}");
        }
    }
}

#[test]
fn a_real_cluster_comes_up_answers_and_goes_away_bookworm() {
    scenario(&BOOKWORM);
}

#[test]
fn a_real_cluster_comes_up_answers_and_goes_away_trixie() {
    scenario(&TRIXIE);
}

/// The whole scenario on `guests`' release, on a bed of its own.
fn scenario(guests: &Guests) {
    let suite = guests.release.as_str();
    // the bed's lock first: this release's image build never overlaps another's cluster
    let Some(bed) = LibvirtBed::start(&format!("e2e-{suite}")).unwrap() else {
        return;
    };
    let dir = bed.scratch_dir("e2e");
    let cfg = config(guests, &dir);
    let cfg_s = cfg.to_str().unwrap();

    // the guest image, from Debian packages (cached by its inputs)
    let t = Instant::now();
    let out = hpc_up(None, &["image", "build", cfg_s]);
    ok(&out, "image build");
    eprintln!(
        "image build, {suite} ({:.0}s):\n{}",
        t.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stderr)
    );

    // the container image for `srun --container`, from Debian packages (cached by its
    // inputs), into the read-write share every node mounts
    let t = Instant::now();
    let out = hpc_up(None, &["container", "build", cfg_s, "debian"]);
    ok(&out, "container build");
    eprintln!(
        "container build, {suite} ({:.0}s):\n{}",
        t.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("shared/containers/debian/config.json").is_file());
    let again = hpc_up(
        None,
        &["--output", "json", "container", "build", cfg_s, "debian"],
    );
    let again: serde_json::Value =
        serde_json::from_str(&ok(&again, "second container build")).unwrap();
    assert_eq!(again["built"], false, "{again}");

    // up: VMs, SSH on every node, hostname and /etc/hosts; the timing table goes to the log
    let t = Instant::now();
    let out = hpc_up(Some(&bed), &["up", "--ssh-timeout", "900", cfg_s]);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("up, {suite} ({:.0}s):\n{log}", t.elapsed().as_secs_f64());
    ok(&out, "up");
    assert!(log.contains("ssh ready"), "no timing table:\n{log}");
    for layer in ["mpi", "containers", "monitoring"] {
        let header = log
            .lines()
            .find(|l| l.contains("ssh ready"))
            .unwrap_or_default();
        assert!(header.contains(layer), "no {layer} column: {header}\n{log}");
    }

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
    assert_versions(&bed, cfg_s, guests, &nodes);

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
    assert_stack(&bed, cfg_s, &dir, guests.json_checks);

    // BeeGFS, deployed by `up`: mounted on every node, and `check beegfs` passes (the
    // release's tools list every server and target, every client writes a file another
    // client reads back, throughput per client)
    if let Some(release) = guests.beegfs {
        for n in nodes {
            assert_beegfs_mounted(&bed, cfg_s, n, release);
        }
        let o = hpc_up(Some(&bed), &["check", "beegfs", cfg_s]);
        eprintln!(
            "check beegfs ({}):\n{}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        ok(&o, "check beegfs");
        let o = hpc_up(Some(&bed), &["--output", "json", "check", "beegfs", cfg_s]);
        let check: serde_json::Value =
            serde_json::from_str(&ok(&o, "check beegfs --output json")).unwrap();
        assert_eq!(check["ok"], true, "{check}");
        let clients = check["clients"].as_array().unwrap();
        assert_eq!(clients.len(), nodes.len(), "{check}");
        for c in clients {
            assert_eq!(c["round-trip"], true, "{c}");
            assert_eq!(c["peer-seen"], true, "{c}");
            assert_ne!(c["peer"], c["node"], "{c}");
        }
    }

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
    if let Some(release) = guests.beegfs {
        assert_beegfs_mounted(&bed, cfg_s, "cn1", release);
    }

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

    if let Some(release) = guests.beegfs {
        assert_beegfs_kernel_gate(&bed, &cfg, &nodes, release);
    }

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
