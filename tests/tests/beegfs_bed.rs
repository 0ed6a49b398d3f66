//! `hpc_beegfs::deploy` with the real SSH executor against the REAL BeeGFS 7.4.7 and 8.1.0
//! management, metadata and storage daemons on the SSH test bed, from the release packages
//! in `../shared/beegfs/<release>/` (beside the project root).
//!
//! Each bed host gets a private `/usr` overlay and its own machine UUID
//! ([`BedOptions`]), so the packages are installed per host (`dpkg -i`, the "image" step)
//! and never on the machine. h01 runs mgmtd and meta, h02 meta and storage, h03 storage; the
//! cluster has no clients (the client is a kernel module: it cannot run on the bed). The
//! bed's `systemctl` shim starts the daemons from their packaged unit files.
//!
//! Per release: deploy (auth on; 8.x with TLS, the certificate made here), every node and
//! target online in the release's own tools, a re-run with 0 changes and the same main PIDs,
//! a changed meta `extra-config` key restarting meta only, and what the tools say with one
//! storage service stopped (with `HPCUP_BEEGFS_FIXTURES=1` their output becomes the parsers'
//! fixtures); and the failure paths: a key the storage daemon rejects, a wrong auth secret on
//! one metadata service (8.x without TLS).
//!
//! Needs root, iproute2, OpenSSH, util-linux, libnl-3-200/libnl-route-3-200, openssl
//! (`scripts/install-deps`) and the packages: skips without them outside CI, fails in CI.
#![allow(clippy::unwrap_used, clippy::print_stderr)] // tests panic on failure; progress to stderr

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hpc_beegfs::hpc_remote::PhaseEvent;
use hpc_beegfs::{
    AuthSecret, Daemon, DeployError, DeployOptions, DeployReport, Inputs, REGISTRATION_PHASE,
    daemon_conf, roles,
};
use hpc_config::Cluster;
use hpc_tests::ssh_bed::{BedOptions, SshBed};
use hpc_tests::{repo_root, require};

/// Where the release packages are: `../shared/beegfs/<release>` beside the project root.
fn debs_dir(release: &str) -> PathBuf {
    repo_root()
        .join("..")
        .join("shared")
        .join("beegfs")
        .join(release)
}

/// The packages of `release` exist and the machine has their libraries (install-deps).
fn have_release(release: &str) -> bool {
    let dir = debs_dir(release);
    let libs = ["libnl-3.so.200", "libnl-route-3.so.200"]
        .iter()
        .all(|l| Path::new("/usr/lib/x86_64-linux-gnu").join(l).exists());
    dir.join(format!("beegfs-meta_{release}_amd64.deb"))
        .exists()
        && libs
        && Path::new("/usr/bin/openssl").exists()
}

/// A bed of 3 hosts with private `/usr` and machine UUIDs, or `None` (skip outside CI).
fn bed(release: &str) -> Option<SshBed> {
    if require(
        have_release(release),
        &format!(
            "BeeGFS {release} packages in {} and libnl-3-200/libnl-route-3-200/openssl (scripts/install-deps)",
            debs_dir(release).display()
        ),
        "BeeGFS servers on the SSH test bed",
    ) {
        return None;
    }
    SshBed::start_with(
        3,
        BedOptions {
            private_usr: true,
            machine_uuid: true,
        },
    )
    .unwrap_or_else(|e| panic!("SSH bed for BeeGFS: {e}"))
}

#[derive(Clone, Copy)]
struct Opts<'a> {
    tls: bool,
    meta_workers: u32,
    cert: Option<(&'a Path, &'a Path)>,
}

/// The cluster file: h01 controller (mgmtd, meta), h02–h03 compute (h02 meta + storage, h03
/// storage); no clients. Directories under /var (each host's own overlay).
fn cluster_file(bed: &SshBed, release: &str, o: Opts<'_>) -> Cluster {
    let ip = |n: &str| bed.host(n).unwrap().ip;
    let tls = match o.cert {
        Some((cert, key)) if o.tls => format!(
            "  tls: true\n  tls-cert-file: {}\n  tls-key-file: {}\n",
            cert.display(),
            key.display()
        ),
        _ => "  tls: false\n".to_owned(),
    };
    let yaml = format!(
        "{head}controller:
  nodes:
    - name: h01
      ip: {}
compute:
  - name: h{{index:02}}
    count: 2
    first-index: 2
    first-ip: {}
beegfs:
  version: \"{release}\"
  management: h01
  metadata: [h01, h02]
  storage: [h02, h03]
  clients: [h01]
  management-dir: /var/lib/beegfs/mgmtd
  metadata-dir: /var/lib/beegfs/meta
  storage-dir: /var/lib/beegfs/storage
  auth: true
{tls}  extra-config:
    meta:
      tuneNumWorkers: {workers}
",
        ip("h01"),
        ip("h02"),
        head = bed.cluster_head("bgbed", "hpcbr-bgbed", None),
        workers = o.meta_workers,
    );
    let mut c =
        hpc_config::load_str("bgbed.yaml", &yaml, &|_| None).unwrap_or_else(|e| panic!("{e:?}"));
    // The cluster file needs at least one client; the bed cannot run one (kernel module), so
    // the validated cluster drops it: servers only, as `setup_plan` handles (no clients phase).
    c.beegfs.as_mut().unwrap().clients.clear();
    c
}

/// The "image" step: each host gets the packages of its roles and the release's tools.
fn install(bed: &SshBed, cluster: &Cluster, release: &str) {
    let dir = debs_dir(release);
    let rel = hpc_beegfs::Release::from_version(cluster.beegfs.as_ref().unwrap().version);
    for (node, r) in roles(cluster) {
        // What hpc-beegfs says the node needs (the `packages` check of `prepare` asks for the
        // same), as the release's file names; every 7.x package needs beegfs-common.
        let mut names: Vec<String> = Vec::new();
        if !rel.is_v8() {
            names.push(format!("beegfs-common_{release}_amd64.deb"));
        }
        for p in hpc_beegfs::packages(&r, rel) {
            names.push(if p == "beegfs-tools" {
                format!("beegfs-tools-{release}-linux.amd64.deb")
            } else {
                format!("{p}_{release}_amd64.deb")
            });
        }
        let debs: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
        bed.install_debs(&node, &debs).unwrap();
        // The data directories on a tmpfs of the host's own (tmpfs has the user xattrs the
        // metadata service needs since Linux 6.6): a metadata directory holds tens of
        // thousands of hash directories, which the bed's teardown would otherwise spend
        // half a minute deleting from the overlay's upper layer.
        let (ok, out) = on(
            bed,
            &node,
            &[
                "sh",
                "-c",
                "mkdir -p /var/lib/beegfs && mount -t tmpfs -o mode=0755 beegfs-data /var/lib/beegfs",
            ],
        );
        assert!(ok, "{node}: {out}");
    }
    // Nothing of BeeGFS reached the machine itself.
    assert!(
        !Path::new("/opt/beegfs").exists(),
        "BeeGFS leaked onto the machine"
    );
}

const SECRET: &[u8; 48] = b"bed-auth-secret: 48 bytes, never a real one!!!!!";

fn inputs(cluster: &Cluster) -> Inputs {
    let b = cluster.beegfs.as_ref().unwrap();
    let read = |p: &Option<PathBuf>| p.as_ref().map(|p| fs_err::read(p).unwrap());
    Inputs {
        auth: Some(AuthSecret::new(SECRET.to_vec()).unwrap()),
        tls_cert: if b.tls { read(&b.tls_cert_file) } else { None },
        tls_key: if b.tls { read(&b.tls_key_file) } else { None },
        ..Inputs::default()
    }
}

fn run_deploy(
    bed: &SshBed,
    cluster: &Cluster,
    inputs: &Inputs,
) -> Result<DeployReport, DeployError> {
    run_deploy_with(bed, cluster, inputs, &DeployOptions::default())
}

fn run_deploy_with(
    bed: &SshBed,
    cluster: &Cluster,
    inputs: &Inputs,
    options: &DeployOptions,
) -> Result<DeployReport, DeployError> {
    let exec = bed.executor("beegfs-bed", None);
    let observer = |e: PhaseEvent<'_>| {
        if let PhaseEvent::Failed { name, node, .. } = e {
            eprintln!("[{name} {}] failed", node.unwrap_or("*"));
        }
    };
    bed.block_on(|| hpc_beegfs::deploy_with(&exec, cluster, inputs, options, &observer))
}

/// With `HPCUP_BEEGFS_FIXTURES=1`, the real tools' output becomes the parsers' fixtures:
/// `crates/hpc-beegfs/tests/fixtures/output/<release>/<label>.txt`.
fn keep_fixtures(release: &str, out: &BTreeMap<&'static str, String>) {
    if std::env::var_os("HPCUP_BEEGFS_FIXTURES").is_none() {
        return;
    }
    let dir = repo_root()
        .join("crates/hpc-beegfs/tests/fixtures/output")
        .join(release);
    fs_err::create_dir_all(&dir).unwrap();
    for (label, text) in out {
        fs_err::write(dir.join(format!("{label}.txt")), text).unwrap();
    }
}

/// Output of `argv` on host `name` (stdout + stderr) and whether it exited 0.
fn on(bed: &SshBed, name: &str, argv: &[&str]) -> (bool, String) {
    let o = bed.exec_on(name, argv);
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// Main PIDs of every BeeGFS service on every node (from the shim's `systemctl show`).
fn pids(bed: &SshBed, cluster: &Cluster) -> BTreeMap<(String, &'static str), String> {
    let mut m = BTreeMap::new();
    for (node, r) in roles(cluster) {
        for (on_node, svc) in [
            (r.mgmtd, "beegfs-mgmtd"),
            (r.meta.is_some(), "beegfs-meta"),
            (r.storage.is_some(), "beegfs-storage"),
        ] {
            if !on_node {
                continue;
            }
            let (ok, out) = on(
                bed,
                &node,
                &["systemctl", "show", "-p", "MainPID", "--value", svc],
            );
            let pid = out.trim().to_owned();
            assert!(
                ok && pid != "0" && !pid.is_empty(),
                "{node}: {svc} has no main PID: {out}"
            );
            m.insert((node.clone(), svc), pid);
        }
    }
    m
}

/// Polls `f` until it returns `Ok` (at most `limit`); the last `Err` otherwise.
fn poll<T>(limit: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("gave up waiting: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// 7.x tools on h01 (they read /etc/beegfs/beegfs-client.conf for the management host and
/// the auth file: written here from hpc-up's own client config, as a client node has it).
fn tools_7(bed: &SshBed, cluster: &Cluster, h03_down: bool) -> BTreeMap<&'static str, String> {
    let client = daemon_conf(cluster, Daemon::Client)
        .unwrap()
        .render("test")
        .unwrap();
    let pid = bed.pid1("h01").unwrap().to_string();
    let mut child = std::process::Command::new("nsenter")
        .args([
            "-t",
            &pid,
            "-a",
            "--",
            "sh",
            "-c",
            "cat > /etc/beegfs/beegfs-client.conf",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), client.as_bytes()).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());

    let ctl = "/opt/beegfs/sbin/beegfs-ctl";
    poll(Duration::from_secs(90), || {
        let mut out = BTreeMap::new();
        for (label, argv) in [
            (
                "listnodes-meta",
                vec![ctl, "--listnodes", "--nodetype=meta", "--reachable"],
            ),
            (
                "listnodes-storage",
                vec![ctl, "--listnodes", "--nodetype=storage", "--reachable"],
            ),
            (
                "listtargets",
                vec![ctl, "--listtargets", "--nodetype=storage", "--state"],
            ),
            (
                "listtargets-meta",
                vec![ctl, "--listtargets", "--nodetype=meta", "--state"],
            ),
            ("check-servers", vec!["beegfs-check-servers"]),
            ("df", vec!["beegfs-df"]),
        ] {
            let (ok, text) = on(bed, "h01", &argv);
            if !ok {
                return Err(format!("{label} failed: {text}"));
            }
            out.insert(label, text);
        }
        let servers =
            hpc_beegfs::parse_check_servers(&out["check-servers"]).map_err(|e| e.to_string())?;
        let targets =
            hpc_beegfs::parse_listtargets(&out["listtargets"]).map_err(|e| e.to_string())?;
        let meta =
            hpc_beegfs::parse_listtargets(&out["listtargets-meta"]).map_err(|e| e.to_string())?;
        let reachable = servers.iter().filter(|s| s.reachable).count();
        let ok = if h03_down {
            // Unreachable at once; its target stays `Online` in --listtargets for minutes
            // (until the management service's offline timeout): not waited for.
            servers.len() == 5
                && reachable == 4
                && servers.iter().any(|s| {
                    s.kind == hpc_beegfs::NodeKind::Storage && s.node == "h03" && !s.reachable
                })
        } else {
            servers.len() == 5
                && reachable == 5
                && targets.len() == 2
                && meta.len() == 2
                && targets.iter().chain(&meta).all(|t| t.healthy())
        };
        if ok {
            Ok(out)
        } else {
            Err(format!("not all online yet: {out:#?}"))
        }
    })
}

/// 8.x `beegfs` on h01 (the management node: it has the auth file and the certificate).
fn tools_8(bed: &SshBed, tls: bool, h03_down: bool) -> BTreeMap<&'static str, String> {
    let mgmtd = format!("{}:8010", bed.host("h01").unwrap().ip);
    let mut base = vec!["/opt/beegfs/sbin/beegfs", "--mgmtd-addr", mgmtd.as_str()];
    if !tls {
        base.push("--tls-disable");
    }
    let with = |rest: &[&'static str]| {
        let mut v = base.clone();
        v.extend_from_slice(rest);
        v
    };
    poll(Duration::from_secs(90), || {
        let mut out = BTreeMap::new();
        for (label, argv, must_pass) in [
            ("node-list", with(&["node", "list"]), true),
            (
                "node-list-json",
                with(&["node", "list", "--reachability-check", "--output", "json"]),
                true,
            ),
            ("target-list", with(&["target", "list", "--state"]), true),
            (
                "target-list-json",
                with(&["target", "list", "--state", "--output", "json"]),
                true,
            ),
            (
                "health",
                with(&["health", "check", "--disable-emojis"]),
                false,
            ),
        ] {
            let (ok, text) = on(bed, "h01", &argv);
            if must_pass && !ok {
                return Err(format!("{label} failed: {text}"));
            }
            out.insert(label, text);
        }
        let nodes =
            hpc_beegfs::parse_node_list(&out["node-list-json"]).map_err(|e| e.to_string())?;
        let targets =
            hpc_beegfs::parse_target_list(&out["target-list-json"]).map_err(|e| e.to_string())?;
        let reachable = nodes.iter().filter(|s| s.reachable).count();
        let ok = if h03_down {
            // As on 7.x; its target shows `Probably-offline` only after about 90 s.
            nodes.len() == 5
                && reachable == 4
                && nodes.iter().any(|n| {
                    n.kind == hpc_beegfs::NodeKind::Storage && n.id == Some(2) && !n.reachable
                })
        } else {
            nodes.len() == 5
                && reachable == 5
                && targets.len() == 4
                && targets.iter().all(|t| t.healthy())
        };
        if ok {
            Ok(out)
        } else {
            Err(format!("not all online yet: {out:#?}"))
        }
    })
}

fn cert(bed: &SshBed) -> (PathBuf, PathBuf) {
    let dir = bed.state_dir().join("tls");
    fs_err::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ip = bed.host("h01").unwrap().ip;
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=h01",
        ])
        .arg("-addext")
        .arg(format!("subjectAltName=IP:{ip},DNS:h01"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

fn servers_on_the_bed(release: &str) {
    let Some(bed) = bed(release) else { return };
    let t0 = Instant::now();
    let v8 = release.starts_with('8');
    let (cert, key) = if v8 {
        cert(&bed)
    } else {
        (PathBuf::new(), PathBuf::new())
    };
    let opts = Opts {
        tls: v8,
        meta_workers: 4,
        cert: v8.then_some((cert.as_path(), key.as_path())),
    };
    let cluster = cluster_file(&bed, release, opts);
    install(&bed, &cluster, release);
    eprintln!("{release}: bed + packages in {:?}", t0.elapsed());

    let inputs = inputs(&cluster);
    let report = run_deploy(&bed, &cluster, &inputs).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.changed() > 0);
    // deploy itself waited until the management node's tools saw every server.
    assert!(
        report
            .phases
            .iter()
            .any(|p| p.name == REGISTRATION_PHASE && p.node.is_none()),
        "{:?}",
        report.phases
    );
    eprintln!("{release}: first deploy done at {:?}", t0.elapsed());

    let out = if v8 {
        tools_8(&bed, opts.tls, false)
    } else {
        tools_7(&bed, &cluster, false)
    };
    for (label, text) in &out {
        eprintln!("--- {label}\n{text}");
    }
    keep_fixtures(release, &out);
    eprintln!("{release}: all online at {:?}", t0.elapsed());

    // Second deploy: nothing changes, nothing restarts.
    let before = pids(&bed, &cluster);
    let again = run_deploy(&bed, &cluster, &inputs).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{release}: second deploy done at {:?}", t0.elapsed());
    assert_eq!(again.changed(), 0, "{:#?}", again.phases);
    assert_eq!(pids(&bed, &cluster), before);

    // A changed extra-config key of meta restarts meta only (on both meta nodes).
    let changed = cluster_file(
        &bed,
        release,
        Opts {
            meta_workers: 6,
            ..opts
        },
    );
    run_deploy(&bed, &changed, &inputs).unwrap_or_else(|e| panic!("{e}"));
    let after = pids(&bed, &changed);
    for ((node, svc), pid) in &before {
        if *svc == "beegfs-meta" {
            assert_ne!(
                &after[&(node.clone(), *svc)],
                pid,
                "{node}: {svc} was not restarted"
            );
        } else {
            assert_eq!(
                &after[&(node.clone(), *svc)],
                pid,
                "{node}: {svc} was restarted"
            );
        }
    }

    // h03's storage service stopped: the tools say so (kept as fixtures too).
    let (ok, out) = on(&bed, "h03", &["systemctl", "stop", "beegfs-storage"]);
    assert!(ok, "{out}");
    let out = if v8 {
        tools_8(&bed, opts.tls, true)
    } else {
        tools_7(&bed, &changed, true)
    };
    for (label, text) in &out {
        eprintln!("--- {label} (h03's storage down)\n{text}");
    }
    let down: BTreeMap<&'static str, String> = out
        .into_iter()
        .map(|(label, text)| (&*format!("{label}-storage-down").leak(), text))
        .collect();
    keep_fixtures(release, &down);
    eprintln!("{release}: done at {:?}", t0.elapsed());
    drop(bed);
    eprintln!("{release}: bed down at {:?}", t0.elapsed());
}

#[test]
fn beegfs_7_4_7_servers_register_and_rerun_restarts_nothing() {
    servers_on_the_bed("7.4.7");
}

#[test]
fn beegfs_8_1_0_servers_with_tls_register_and_rerun_restarts_nothing() {
    servers_on_the_bed("8.1.0");
}

/// Writes `content` to `path` on host `name`.
fn put(bed: &SshBed, name: &str, path: &str, content: &str) {
    let pid = bed.pid1(name).unwrap().to_string();
    let mut child = std::process::Command::new("nsenter")
        .args([
            "-t",
            &pid,
            "-a",
            "--",
            "sh",
            "-c",
            "mkdir -p \"$(dirname \"$1\")\" && cat > \"$1\"",
            "sh",
            path,
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), content.as_bytes()).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

/// A test-only way to make one daemon start differently from what hpc-up rendered: a
/// systemd drop-in that adds `args` (BeeGFS reads `key=value` arguments like config lines,
/// and they override the file) to the packaged `ExecStart=`.
fn dropin(bed: &SshBed, name: &str, daemon: &str, args: &str) {
    put(
        bed,
        name,
        &format!("/etc/systemd/system/beegfs-{daemon}.service.d/test.conf"),
        &format!(
            "[Service]\nExecStart=\nExecStart=/opt/beegfs/sbin/beegfs-{daemon} cfgFile=/etc/beegfs/beegfs-{daemon}.conf runDaemonized=false {args}\n"
        ),
    );
}

fn failures_on_the_bed(release: &str) {
    let Some(bed) = bed(release) else { return };
    let opts = Opts {
        tls: false,
        meta_workers: 4,
        cert: None,
    };
    let cluster = cluster_file(&bed, release, opts);
    install(&bed, &cluster, release);
    let inputs = inputs(&cluster);
    let options = DeployOptions {
        registration_timeout: Duration::from_secs(30),
    };

    // A key the storage daemon rejects, on h03 only; and h02's metadata service started with
    // another secret than the cluster's.
    dropin(&bed, "h03", "storage", "tuneNoSuchKey=1");
    put(
        &bed,
        "h02",
        "/etc/beegfs/wrong.auth",
        "a different secret, 32 bytes long!!",
    );
    dropin(&bed, "h02", "meta", "connAuthFile=/etc/beegfs/wrong.auth");

    // The rejected key fails the servers phase on h03, with the daemon's own words.
    let err = run_deploy_with(&bed, &cluster, &inputs, &options).unwrap_err();
    eprintln!("{release}, rejected key:\n{err}");
    let DeployError::Phase { phase, failures } = &err else {
        panic!("{err}")
    };
    assert_eq!(*phase, "servers", "{err}");
    assert_eq!(failures.len(), 1, "{err}");
    assert_eq!(failures[0].node, "h03");
    assert_eq!(failures[0].step.as_deref(), Some("beegfs-storage"));
    assert!(
        failures[0]
            .detail
            .contains("The config argument 'tuneNoSuchKey' is invalid"),
        "{err}"
    );

    // Without it the servers start, and the registration wait finds h02's metadata service
    // registered (UDP heartbeats carry no secret) but refused on every TCP stream: the error
    // names h02 and beegfs-meta and quotes the management service about h02's address.
    let (ok, out) = on(
        &bed,
        "h03",
        &[
            "rm",
            "/etc/systemd/system/beegfs-storage.service.d/test.conf",
        ],
    );
    assert!(ok, "{out}");
    let err = run_deploy_with(&bed, &cluster, &inputs, &options).unwrap_err();
    eprintln!("{release}, wrong secret:\n{err}");
    let DeployError::Phase { phase, failures } = &err else {
        panic!("{err}")
    };
    assert_eq!(*phase, REGISTRATION_PHASE, "{err}");
    assert_eq!(failures.len(), 1, "{err}");
    assert_eq!(failures[0].node, "h02");
    assert_eq!(failures[0].step.as_deref(), Some("beegfs-meta"));
    let h02 = bed.host("h02").unwrap().ip.to_string();
    let said = if release.starts_with('8') {
        format!("Peer {h02}:")
    } else {
        format!("Peer sent wrong authentication: {h02}:")
    };
    assert!(failures[0].detail.contains(&said), "{err}");
    if release.starts_with('8') {
        assert!(
            failures[0]
                .detail
                .contains("tried to authenticate stream with wrong secret"),
            "{err}"
        );
    }

    // Fixed (the drop-in gone, the service restarted by hand), a deploy goes through.
    let (ok, out) = on(
        &bed,
        "h02",
        &["rm", "/etc/systemd/system/beegfs-meta.service.d/test.conf"],
    );
    assert!(ok, "{out}");
    let (ok, out) = on(&bed, "h02", &["systemctl", "restart", "beegfs-meta"]);
    assert!(ok, "{out}");
    run_deploy_with(&bed, &cluster, &inputs, &options).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn beegfs_7_4_7_failures_name_node_service_and_the_daemons_message() {
    failures_on_the_bed("7.4.7");
}

#[test]
fn beegfs_8_1_0_failures_name_node_service_and_the_daemons_message() {
    failures_on_the_bed("8.1.0");
}
