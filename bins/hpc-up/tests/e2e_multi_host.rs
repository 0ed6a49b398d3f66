//! End to end on real VMs over two hypervisor hosts (issue 18): one cluster whose controller
//! `ctl` and compute node `cn1` run on the primary host `hv1` (this machine's libvirt,
//! `qemu:///system`, where hpc-up runs) and whose compute node `cn2` runs on `hv2`, a second
//! host with its own libvirtd reached by `qemu+ssh://root@<ip>/system?keyfile=…` with its
//! host key checked. Both hosts are made of the SSH bed ([`MultiHostBed`]): hv1 is the bed's
//! ctl namespace with a sandboxed libvirtd, hv2 is bed host h01; the bed's bridge between them
//! is the underlay of the cluster network's VXLAN. TCG guests, 1 vCPU each, the bookworm
//! image from e2e_cluster's cache, SLURM as in `examples/minimal.yaml` and nothing else.
//!
//! - `up` succeeds; every node has its hostname and reaches the others by name across the
//!   hosts; `srun -N2 hostname` from ctl runs on cn1 (hv1) and cn2 (hv2); hv2's libvirt runs
//!   cn2's domain (QEMU inside h01) and hv1's runs ctl and cn1.
//! - A second `up` makes 0 changes.
//! - `down` leaves nothing on either host: no domain, network or pool in either libvirtd, no
//!   device of hpc-up (the cluster's bridge, its VXLAN device, any link with the `hpc-up:`
//!   alias) in either host's network namespace, and no journal, overlay or seed in the state
//!   directory.
//! - hv2 refuses to start a domain (its virtlogd stopped: every QEMU start fails there, after
//!   everything was defined on both hosts): `up` fails naming hv2's URI, and both hosts are
//!   unwound without a `down`.
//! - `kill -9` of an `up` once cn2's domain exists on hv2, then `down`: nothing left on
//!   either host.
//!
//! The bed (both libvirtds, the namespaces, every VM) is removed by its `Drop`, whatever
//! happens.
#![allow(clippy::unwrap_used, clippy::print_stderr)] // test helpers panic on failure and log, as tests do

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use hpc_tests::multi_host_bed::{MultiHostBed, PRIMARY_URI};

mod common;

/// The image cache e2e_cluster's bookworm scenario builds and uses.
const CACHE: &str = "/var/tmp/hpc-up-e2e";
/// The cluster's name: its libvirt objects are `twohosts-…`.
const CLUSTER: &str = "twohosts";
/// The cluster network's bridge (and `vx-hpcbr-mh`, its VXLAN device).
const BRIDGE: &str = "hpcbr-mh";
const NODES: [&str; 3] = ["ctl", "cn1", "cn2"];

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// The built hpc-up on the primary host (its network namespace, the bed's pinned host keys).
fn hpc_up(bed: &MultiHostBed, args: &[&str]) -> Output {
    bed.command(env!("CARGO_BIN_EXE_hpc-up"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn ok(o: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{what} failed ({}):\n{err}", o.status);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `cmd` on `node` over SSH: its stdout, or the test fails.
fn on(bed: &MultiHostBed, cfg: &str, node: &str, cmd: &[&str]) -> String {
    let mut args = vec!["ssh", cfg, node, "--"];
    args.extend_from_slice(cmd);
    ok(&hpc_up(bed, &args), &format!("{node}: {}", cmd.join(" ")))
}

/// The key the cached image trusts (shared with e2e_cluster's bookworm scenario).
fn cache_key() -> PathBuf {
    common::cache_key(Path::new(CACHE))
}

/// The `image:` block of e2e_cluster's bookworm scenario (examples/minimal.yaml's, release
/// bookworm, files in the cache).
fn image_block() -> String {
    format!(
        "image:\n  release: bookworm\n  base: {CACHE}/base.qcow2\n  kernel: {CACHE}/vmlinuz\n  initrd: {CACHE}/initrd.img\n  cmdline: root=LABEL=hpcroot rw console=ttyS0\n"
    )
}

/// The bookworm image in the cache, built if missing. It is built from the same inputs as
/// e2e_cluster's bookworm scenario (its cluster file's image, SLURM, MPI, containers and
/// monitoring sections decide the packages), so that both tests share one cached image and
/// neither rebuilds the other's. This test's lean cluster needs no more than SLURM, and `up`
/// checks only the image's release.
fn ensure_image(dir: &Path) {
    let have = ["base.qcow2", "vmlinuz", "initrd.img"]
        .iter()
        .all(|f| Path::new(CACHE).join(f).is_file());
    if have {
        eprintln!("image: cached in {CACHE}");
        return;
    }
    let key = cache_key();
    let text = fs_err::read_to_string(common::repo().join("examples/minimal.yaml")).unwrap();
    assert!(text.contains("\n  release: trixie\n"), "{text}");
    let text = text
        .replace("\n  release: trixie\n", "\n  release: bookworm\n")
        .replace("/var/lib/hpc-up/images", CACHE)
        .replace(
            "state-dir: /var/lib/hpc-up/clusters/minimal",
            &format!(
                "state-dir: {}\nssh:\n  key: {}",
                dir.join("image-state").display(),
                key.display()
            ),
        )
        .replace(
            "controller:\n",
            &format!(
                "virtiofs:\n  - {{tag: shared, host-path: {}, mount-point: /shared, create: true, mode: \"0777\"}}\n  - {{tag: data, host-path: {}, mount-point: /data, readonly: true}}\ncontroller:\n",
                dir.join("shared").display(),
                dir.join("data").display()
            ),
        );
    let text = format!(
        "{}\n  accounting: {{enabled: true, host: ctl}}\n  cgroup: {{constrain-cores: true, constrain-ram-space: true}}\n  job-failures: {{dir: /shared/job-failures}}\nmpi: {{default: pmix}}\ncontainers:\n  runtime: crun\n  bundles: /shared/containers\n  images: [{{name: debian}}]\nmonitoring: {{server: ctl, retention: 2d, scrape-interval: 5s}}\n",
        text.trim_end()
    );
    let cfg = dir.join("image.yaml");
    fs_err::write(&cfg, text).unwrap();
    // In the machine's network namespace: mmdebstrap fetches Debian's packages.
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_hpc-up"))
        .args(["image", "build", cfg.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    ok(&out, "image build");
    eprintln!(
        "image build, bookworm ({:.0}s):\n{}",
        secs(t),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The share every node mounts: on each host its own directory of this path (made there by
/// `up`, `create: true`), so cn2's `/shared` is a directory of h01 (its private `/var`).
fn share_dir(dir: &Path) -> PathBuf {
    dir.join("shared")
}

/// The cluster file: hv1 (this machine, the bed's ctl namespace) with ctl and cn1, hv2 (bed
/// host h01 over qemu+ssh) with cn2; SLURM as in examples/minimal.yaml.
fn config(bed: &MultiHostBed, dir: &Path) -> PathBuf {
    let key = cache_key();
    let text = format!(
        "name: {CLUSTER}
libvirt:
  domain-type: qemu
hosts:
  - name: hv1
    uri: \"{PRIMARY_URI}\"
    address: {primary}
  - name: hv2
    uri: \"{remote_uri}\"
    address: {remote}
network:
  cidr: 10.79.0.0/24
  bridge: {BRIDGE}
  mode: isolated
  domain: hpc.test
{image}state-dir: {state}
ssh:
  key: {key}
virtiofs:
  - {{tag: shared, host-path: {share}, mount-point: /shared, create: true}}
controller:
  host: hv1
  nodes:
    - name: ctl
      ip: 10.79.0.10
  vcpus: 1
  memory: 1536MiB
  disk: 8GiB
compute:
  - nodes:
      - {{name: cn1, ip: 10.79.0.11, host: hv1}}
      - {{name: cn2, ip: 10.79.0.12, host: hv2}}
    vcpus: 1
    memory: 1GiB
    disk: 8GiB
slurm:
  partitions:
    - name: debug
      nodes: [\"cn[1-2]\"]
      default: true
      max-time: \"1:00:00\"
",
        primary = bed.primary_ip(),
        remote_uri = bed.remote_uri(),
        remote = bed.remote_ip(),
        image = image_block(),
        state = dir.join("state").display(),
        share = share_dir(dir).display(),
        key = key.display(),
    );
    let cfg = dir.join("twohosts.yaml");
    fs_err::write(&cfg, text).unwrap();
    cfg
}

fn lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    v.sort();
    v
}

/// Every domain, network and pool of one host's libvirtd (both daemons are the bed's own:
/// whatever they hold, this test made), as `kind name` lines.
fn libvirt_objects(virsh: impl Fn(&[&str]) -> Result<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (kind, args) in [
        ("domain", ["list", "--all", "--name"]),
        ("network", ["net-list", "--all", "--name"]),
        ("pool", ["pool-list", "--all", "--name"]),
    ] {
        let names = virsh(&args).unwrap_or_else(|e| panic!("{e}"));
        out.extend(lines(&names).into_iter().map(|n| format!("{kind} {n}")));
    }
    out
}

fn primary_objects(bed: &MultiHostBed) -> Vec<String> {
    libvirt_objects(|a| bed.virsh_primary(a))
}

fn remote_objects(bed: &MultiHostBed) -> Vec<String> {
    libvirt_objects(|a| bed.virsh_remote(a))
}

/// Network devices of hpc-up in a host's namespace (`ip -j -d link` there): the cluster's
/// bridge, its VXLAN device, and any link whose alias says `hpc-up:`. `(name, kind)` pairs.
fn fabric_devices(ip_link_json: &str) -> Vec<(String, String)> {
    let links: serde_json::Value = serde_json::from_str(ip_link_json)
        .unwrap_or_else(|e| panic!("ip -j -d link: {e}: {ip_link_json}"));
    links
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| {
            let name = l["ifname"].as_str().unwrap_or_default();
            let alias = l["ifalias"].as_str().unwrap_or_default();
            let kind = l["linkinfo"]["info_kind"].as_str().unwrap_or_default();
            (name == BRIDGE || name.starts_with("vx-") || alias.starts_with("hpc-up:"))
                .then(|| (name.to_owned(), format!("{kind} {alias}").trim().to_owned()))
        })
        .collect()
}

fn remote_devices(bed: &MultiHostBed) -> Vec<(String, String)> {
    let o = bed.on_remote(&["ip", "-j", "-d", "link"]);
    fabric_devices(&ok(&o, "ip -j -d link on h01"))
}

fn primary_devices(bed: &MultiHostBed) -> Vec<(String, String)> {
    let o = Command::new("ip")
        .args(["-n", bed.primary_netns(), "-j", "-d", "link"])
        .output()
        .unwrap();
    fabric_devices(&ok(&o, "ip -j -d link on the primary"))
}

/// Files `down` removes from the state directory that are left: the journal, overlays
/// (`*.qcow2`), seeds (`seed/*.img`), console logs.
fn state_leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut left = Vec::new();
    let state = dir.join("state");
    if state.join("journal.json").exists() {
        left.push(state.join("journal.json"));
    }
    let mut stack = vec![state.clone()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs_err::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "qcow2")
                || p.starts_with(state.join("seed"))
                || p.starts_with(state.join("console"))
            {
                left.push(p);
            }
        }
    }
    left
}

/// The overlays left in the state directory (the primary's pool is `<state>/pool`).
fn overlays(dir: &Path) -> Vec<PathBuf> {
    state_leftovers(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "qcow2"))
        .collect()
}

/// Paths of the cluster under libvirt's image directory on the second host (where its pool
/// and the uploaded image live): `find` inside h01, `-type f` for files only.
fn remote_pool_paths(bed: &MultiHostBed, files_only: bool) -> Vec<String> {
    let kind = if files_only { " -type f" } else { "" };
    let o = bed.on_remote(&[
        "sh",
        "-c",
        &format!("find /var/lib/libvirt/images -path '*{CLUSTER}*'{kind} 2>/dev/null; true"),
    ]);
    lines(&ok(&o, "find on h01"))
}

/// Nothing of the cluster on either host: no libvirt object in either daemon, no overlay in
/// the primary's pool, no file or directory of the second host's pool, no device of hpc-up
/// in either host's network namespace.
fn assert_hosts_clean(bed: &MultiHostBed, dir: &Path, when: &str) {
    assert_eq!(primary_objects(bed), Vec::<String>::new(), "{when}: hv1");
    assert_eq!(remote_objects(bed), Vec::<String>::new(), "{when}: hv2");
    assert_eq!(overlays(dir), Vec::<PathBuf>::new(), "{when}: hv1's pool");
    assert_eq!(
        remote_pool_paths(bed, true),
        Vec::<String>::new(),
        "{when}: files in hv2's pool"
    );
    // The pool's directory itself (libvirt's pool build made it; down and unwind delete the
    // stopped pool before undefining it).
    assert_eq!(
        remote_pool_paths(bed, false),
        Vec::<String>::new(),
        "{when}: hv2's pool directory"
    );
    assert_eq!(
        primary_devices(bed),
        Vec::<(String, String)>::new(),
        "{when}: devices on hv1"
    );
    assert_eq!(
        remote_devices(bed),
        Vec::<(String, String)>::new(),
        "{when}: devices on hv2"
    );
}

/// Nothing of the cluster on either host, nor in the state directory.
fn assert_gone_everywhere(bed: &MultiHostBed, dir: &Path, when: &str) {
    assert_hosts_clean(bed, dir, when);
    assert_eq!(state_leftovers(dir), Vec::<PathBuf>::new(), "{when}: state");
}

/// The nodes reach each other by name, across the hosts.
fn assert_names(bed: &MultiHostBed, cfg: &str) {
    for n in NODES {
        assert_eq!(on(bed, cfg, n, &["hostname"]).trim(), n);
        for other in NODES.iter().filter(|o| **o != n) {
            let resolved = on(bed, cfg, n, &["getent", "hosts", other]);
            assert!(resolved.contains("10.79.0.1"), "{n}: {other} is {resolved}");
            on(bed, cfg, n, &["ping", "-c", "1", "-W", "5", other]);
        }
    }
}

/// Where each domain runs: ctl and cn1 on hv1, cn2 on hv2 (QEMU inside h01); the fabric's
/// devices on both hosts.
fn assert_placement(bed: &MultiHostBed) {
    let running = |v: Result<String, String>| lines(&v.unwrap_or_else(|e| panic!("{e}")));
    let hv1 = running(bed.virsh_primary(&["list", "--name"]));
    let hv2 = running(bed.virsh_remote(&["list", "--name"]));
    eprintln!(
        "running on hv1: {hv1:?}; on hv2 ({}): {hv2:?}",
        bed.remote_uri()
    );
    assert_eq!(hv1, [format!("{CLUSTER}-cn1"), format!("{CLUSTER}-ctl")]);
    assert_eq!(hv2, [format!("{CLUSTER}-cn2")]);
    let ps = ok(&bed.on_remote(&["ps", "-eo", "args"]), "ps on h01");
    assert!(
        ps.lines()
            .any(|l| l.contains("qemu-system") && l.contains(&format!("guest={CLUSTER}-cn2"))),
        "no QEMU of cn2 among h01's processes:\n{ps}"
    );
    eprintln!("hv2's pool on h01: {:?}", remote_pool_paths(bed, true));
    let devices = remote_devices(bed);
    eprintln!(
        "hpc-up's devices on hv1: {:?}; on hv2: {devices:?}",
        primary_devices(bed)
    );
    assert!(
        devices.iter().any(|(n, _)| n == BRIDGE),
        "no bridge {BRIDGE} on h01: {devices:?}"
    );
    assert!(
        devices.iter().any(|(_, k)| k.starts_with("vxlan")),
        "no VXLAN device on h01: {devices:?}"
    );
}

/// The domain names on h01's libvirtd, asked inside the host (no SSH round trip).
fn remote_domains_inside(bed: &MultiHostBed) -> Vec<String> {
    let o = bed.on_remote(&[
        "virsh",
        "-q",
        "-c",
        "qemu:///system",
        "list",
        "--all",
        "--name",
    ]);
    lines(&String::from_utf8_lossy(&o.stdout))
}

#[test]
fn two_hosts_one_cluster_comes_up_spans_both_and_goes_away() {
    let t = Instant::now();
    let Some(bed) = MultiHostBed::start().unwrap() else {
        return;
    };
    eprintln!("bed: two hypervisor hosts in {:.1}s", secs(t));
    eprintln!("bed: {}", bed.smoke().unwrap_or_else(|e| panic!("{e}")));
    let dir = bed.scratch_dir("twohosts");
    ensure_image(&dir);
    let cfg = config(&bed, &dir);
    let cfg_s = cfg.to_str().unwrap();
    eprintln!("cluster file:\n{}", fs_err::read_to_string(&cfg).unwrap());

    // 1. up: ctl and cn1 on hv1, cn2 on hv2, one network across both
    let t = Instant::now();
    let out = hpc_up(&bed, &["up", "--ssh-timeout", "900", cfg_s]);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let up_secs = secs(t);
    eprintln!("up on two hosts ({up_secs:.0}s):\n{log}");
    ok(&out, "up");
    assert!(log.contains("SLURM ready"), "{log}");
    assert_placement(&bed);
    assert_names(&bed, cfg_s);
    let o = hpc_up(
        &bed,
        &[
            "ssh", cfg_s, "ctl", "--", "timeout", "300", "srun", "-N2", "hostname",
        ],
    );
    assert_eq!(lines(&ok(&o, "srun -N2 hostname")), ["cn1", "cn2"]);

    // virtio-fs: each node shares its own host's directory; `check virtiofs` does the host's
    // half of every round trip on the node's own host (h01's over SSH for cn2)
    let o = hpc_up(&bed, &["check", "virtiofs", cfg_s]);
    let table = ok(&o, "check virtiofs");
    eprintln!("check virtiofs on two hosts:\n{table}");
    assert!(table.contains("all 3 mount(s) pass"), "{table}");
    on(
        &bed,
        cfg_s,
        "cn2",
        &["sh", "-c", "echo cn2 > /shared/from-cn2"],
    );
    let from = share_dir(&dir).join("from-cn2");
    let seen = bed.on_remote(&["cat", from.to_str().unwrap()]);
    assert_eq!(
        ok(&seen, "cat on h01"),
        "cn2\n",
        "cn2 wrote into h01's directory"
    );
    assert!(
        !from.exists(),
        "cn2's file is in this machine's directory, not h01's"
    );

    // 2. a second up changes nothing
    let t = Instant::now();
    let o = hpc_up(&bed, &["--output", "json", "up", cfg_s]);
    let again: serde_json::Value = serde_json::from_str(&ok(&o, "second up")).unwrap();
    let again_secs = secs(t);
    eprintln!("second up ({again_secs:.0}s): {again}");
    assert_eq!(again["changes"], 0, "{again}");

    // 3. down: nothing left on either host
    let t = Instant::now();
    let o = hpc_up(&bed, &["down", cfg_s]);
    let down_secs = secs(t);
    eprintln!(
        "down on two hosts ({down_secs:.0}s):\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    ok(&o, "down");
    assert_gone_everywhere(&bed, &dir, "after down");

    // 4. hv2 refuses to start a domain: up fails naming hv2, and every host is unwound
    let pid = bed.stop_remote_virtlogd().unwrap();
    eprintln!("fault: h01's virtlogd (pid {pid}) stopped: QEMU cannot start there");
    let t = Instant::now();
    let o = hpc_up(&bed, &["up", "--ssh-timeout", "900", cfg_s]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    eprintln!(
        "up with hv2 refusing ({:.0}s, {}):\n{err}",
        secs(t),
        o.status
    );
    assert!(
        !o.status.success(),
        "up succeeded although hv2 cannot start QEMU"
    );
    let remote_host = format!("qemu+ssh://root@{}/system", bed.remote_ip());
    assert!(
        err.contains(&remote_host),
        "the error does not name hv2 ({remote_host}):\n{err}"
    );
    assert_hosts_clean(&bed, &dir, "after up failed on hv2 (no down)");
    bed.restart_remote_libvirtd().unwrap();
    assert_eq!(remote_objects(&bed), Vec::<String>::new());

    // 5. kill -9 of an up once cn2's domain exists on hv2, then down
    let mut child = bed
        .command(env!("CARGO_BIN_EXE_hpc-up"))
        .args(["-q", "up", cfg_s])
        .env("NO_COLOR", "1")
        .spawn()
        .unwrap();
    let t = Instant::now();
    let cn2 = format!("{CLUSTER}-cn2");
    loop {
        if remote_domains_inside(&bed).contains(&cn2) {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("up ended ({status}) before cn2's domain appeared on hv2");
        }
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "cn2's domain did not appear on hv2 within 600 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = child.kill();
    let _ = child.wait();
    eprintln!(
        "kill -9 of up after {:.0}s; hv1: {:?}, hv2: {:?}",
        secs(t),
        primary_objects(&bed),
        remote_objects(&bed)
    );
    let t = Instant::now();
    let o = hpc_up(&bed, &["down", cfg_s]);
    eprintln!(
        "down after kill -9 ({:.0}s):\n{}",
        secs(t),
        String::from_utf8_lossy(&o.stderr)
    );
    ok(&o, "down after kill -9");
    assert_gone_everywhere(&bed, &dir, "after kill -9 of up and down");

    eprintln!("two hosts: up {up_secs:.0}s, second up {again_secs:.0}s, down {down_secs:.0}s");
    let _ = fs_err::remove_dir_all(&dir);
}
