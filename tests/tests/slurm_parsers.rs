//! Both releases' SLURM read every file hpc-up renders for every example: SLURM 22.05 from
//! this machine (Debian 12's packages, `scripts/install-deps`) and SLURM 24.11 from a cached
//! Debian 13 root (`hpc_tests::debian_chroot`: mmdebstrap, under a minute the first time). Each
//! file goes to the programs that read it, in a sandbox (own hostname, addresses, `/run`;
//! munged started with a fresh key), run as the release's packaged unit runs them (its
//! `User=` and `RuntimeDirectory=`):
//!
//! | file | program | accepted when |
//! | --- | --- | --- |
//! | slurm.conf | `scontrol show hostnames <every node>` (the offline parse `up` runs before deploying) | exit 0, no error line, every node listed |
//! | slurm.conf, cgroup.conf, gres.conf | `slurmd -G -N <node>`, for every node that runs slurmd | exit 0, no unexpected error line; a GPU node lists its GRES |
//! | slurm.conf | `slurmctld -D -i` on the controller, without accounting (24.11 waits for slurmdbd before it reads the nodes, and there is no database here) | "Running as primary controller", no unexpected error line before it |
//! | slurmdbd.conf | `slurmdbd -D -vvv` on the accounting host | it reads the file and loads its storage plugin (where it stops: no database), no error line before that |
//!
//! An error line is one with `error:`, `fatal:` or `Error:`; the few that running outside
//! the cluster always gives are listed in [`EXPECTED`] with the reason. The checks can fail:
//! each release refuses an unknown key in each file, and 24.11 refuses slurm.conf and
//! slurmdbd.conf with Debian 12's PID files (its units run slurmctld and slurmdbd as
//! `slurm`).
//!
//! Needs root; SLURM 22.05 on this machine; mmdebstrap and deb.debian.org for the first build
//! of the trixie root. Outside CI a missing piece skips the release's tests, in CI it fails.
#![allow(missing_docs)]
#![allow(clippy::unwrap_used)] // tests panic on failure

use std::path::PathBuf;
use std::time::Duration;

use hpc_config::{Cluster, DebianRelease};
use hpc_slurm::{
    CGROUP_CONF_PATH, GRES_CONF_PATH, NodeHardware, RenderOptions, SLURM_CONF_MODE,
    SLURM_CONF_PATH, SLURMDBD_CONF_MODE, SLURMDBD_CONF_OWNER, SLURMDBD_CONF_PATH, SlurmdbdError,
    hostlist, render_cgroup_conf, render_gres_conf, render_slurm_conf, render_slurmdbd_conf_with,
    slurmd_nodes,
};
use hpc_tests::debian_chroot::{DebianChroot, SLURM_PACKAGES, Sandbox, installed_version};
use hpc_tests::{examples, require};

/// Error lines SLURM prints whenever it runs outside a cluster, and why they are fine.
const EXPECTED: &[(&str, &str)] = &[
    (
        "state file",
        "slurmctld's first start: there is no saved state yet",
    ),
    ("Trying backup state save file", "the same"),
    (
        "mpi/pmix",
        "Debian 12 ships the pmix plugin without libpmix (harmless, MpiDefault=none)",
    ),
    (
        "Node configuration differs from hardware",
        "slurmd -G runs on this machine, not on the VM whose hardware slurm.conf declares",
    ),
];

/// What the programs may write: SLURM's and munge's directories, as copies.
const WRITABLE: [&str; 6] = [
    "/etc/slurm",
    "/var/lib/slurm",
    "/var/log/slurm",
    "/etc/munge",
    "/var/lib/munge",
    "/var/log/munge",
];

/// The start of every check: munged with a fresh key as its unit runs it; `as_unit UNIT
/// CMD…` runs CMD as UNIT's `User=`/`Group=` with its `RuntimeDirectory=`, as systemd
/// would; `until_line SECS MARKER CMD…` runs CMD until it prints MARKER (then stops it),
/// prints what it said, and fails if it ended or timed out first.
const PRELUDE: &str = r#"
head -c 1024 /dev/urandom >/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
setpriv --reuid=munge --regid=munge --init-groups munged || { echo "munged did not start" >&2; exit 90; }

unit_key() {
  for f in /usr/lib/systemd/system/$1.service /lib/systemd/system/$1.service; do
    if [ -f "$f" ]; then sed -n "s/^$2=//p" "$f" | head -n 1; return 0; fi
  done
}
as_unit() {
  u=$(unit_key "$1" User); g=$(unit_key "$1" Group); d=$(unit_key "$1" RuntimeDirectory)
  shift
  [ -z "$d" ] || install -d -o "${u:-root}" -g "${g:-${u:-root}}" -m 0755 "/run/$d"
  if [ -n "$u" ]; then
    setpriv --reuid="$u" --regid="${g:-$u}" --init-groups "$@"
  else
    "$@"
  fi
}
until_line() {
  secs=$1; marker=$2; shift 2
  : >/tmp/daemon.log
  "$@" >>/tmp/daemon.log 2>&1 &
  p=$!
  i=0
  while [ "$i" -lt $((secs * 10)) ]; do
    if grep -qF -- "$marker" /tmp/daemon.log; then
      kill "$p"; wait "$p"; cat /tmp/daemon.log; return 0
    fi
    kill -0 "$p" 2>/dev/null || break
    sleep 0.1; i=$((i + 1))
  done
  if kill -0 "$p" 2>/dev/null; then kill "$p"; rc=124; else wait "$p"; rc=$?; fi
  cat /tmp/daemon.log
  echo "(ended with status $rc before it said: $marker)"
  return 1
}
"#;

const RUNNING: &str = "Running as primary controller";
/// slurmdbd has read slurmdbd.conf and loads its storage plugin.
const DBD_READ_ITS_FILE: &str = "accounting_storage/as_mysql: init";

/// Where a release's SLURM comes from.
struct Slurm {
    root: PathBuf,
    version: String,
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs_err::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// SLURM 22.05 from this machine, or 24.11 from the trixie root; `None`: skip (outside CI).
fn slurm(release: DebianRelease) -> Option<Slurm> {
    let (root, series) = match release {
        DebianRelease::Bookworm => {
            if require(is_root(), "root", "the sandbox needs namespaces and mounts") {
                return None;
            }
            (PathBuf::from("/"), "22.05")
        }
        DebianRelease::Trixie => {
            let chroot = DebianChroot::get(release.as_str(), &SLURM_PACKAGES)
                .unwrap_or_else(|e| panic!("{e}"))?;
            (chroot.root().to_owned(), "24.11")
        }
    };
    let complete = SLURM_PACKAGES
        .iter()
        .chain(&["munge"])
        .all(|p| installed_version(&root, p).is_some());
    let version = installed_version(&root, "slurmd").unwrap_or_default();
    if require(
        complete && version.starts_with(series),
        &format!(
            "SLURM {series} ({}, munge) in {}",
            SLURM_PACKAGES.join(", "),
            root.display()
        ),
        "scripts/install-deps installs Debian 12's on this machine",
    ) {
        return None;
    }
    Some(Slurm { root, version })
}

/// Every file of one example, rendered for one release as `up` renders them.
struct Rendered {
    name: String,
    cluster: Cluster,
    slurm_conf: String,
    gres_conf: String,
    cgroup_conf: String,
    slurmdbd_conf: Option<String>,
}

fn load(path: &std::path::Path) -> Cluster {
    let text = fs_err::read_to_string(path).unwrap();
    let env = |k: &str| (k == "HOME").then(|| "/home/user".to_owned());
    hpc_config::load_str(&path.display().to_string(), &text, &env)
        .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()))
}

fn render(cluster: &Cluster, name: &str, opts: &RenderOptions) -> Rendered {
    let slurmdbd_conf = match render_slurmdbd_conf_with(cluster, "dummy-Passw0rd", opts) {
        Ok(text) => Some(text),
        Err(SlurmdbdError::NoAccounting) => None,
        Err(e) => panic!("{name}: {e}"),
    };
    Rendered {
        name: name.to_owned(),
        cluster: cluster.clone(),
        slurm_conf: render_slurm_conf(cluster, &NodeHardware::declared(cluster), opts),
        gres_conf: render_gres_conf(cluster),
        cgroup_conf: render_cgroup_conf(cluster),
        slurmdbd_conf,
    }
}

/// Every example with SLURM, rendered for `release`.
fn rendered_examples(release: DebianRelease) -> Vec<Rendered> {
    let files = examples();
    assert!(files.len() >= 3, "examples missing: {files:?}");
    files
        .iter()
        .filter_map(|path| {
            let mut cluster = load(path);
            cluster.slurm.as_ref()?;
            cluster.image.release = release;
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            Some(render(
                &cluster,
                &name,
                &RenderOptions::for_cluster(&cluster),
            ))
        })
        .collect()
}

fn example(name: &str, release: DebianRelease) -> Rendered {
    rendered_examples(release)
        .into_iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no example {name}"))
}

/// The device files gres.conf names (`File=/dev/nvidia[0-1]` → nvidia0, nvidia1).
fn gres_devices(gres_conf: &str) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for value in gres_conf
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(str::split_whitespace)
        .filter_map(|w| w.strip_prefix("File="))
    {
        let (prefix, range) = match value.split_once('[') {
            Some((p, r)) => (p, r.trim_end_matches(']')),
            None => {
                let digits = value.trim_start_matches(|c: char| !c.is_ascii_digit());
                (&value[..value.len() - digits.len()], digits)
            }
        };
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        let (lo, hi): (u32, u32) = (lo.parse().unwrap(), hi.parse().unwrap());
        out.extend((lo..=hi).map(|i| (format!("{prefix}{i}"), i)));
    }
    out
}

fn sandbox(slurm: &Slurm, r: &Rendered, hostname: &str) -> Sandbox {
    let mut s = Sandbox::new(&slurm.root)
        .hostname(hostname)
        .timeout(Duration::from_secs(90));
    for n in &r.cluster.nodes {
        s = s.host(n.ip, n.name.as_str());
    }
    for d in WRITABLE {
        s = s.writable(d);
    }
    s = s
        .file(
            SLURM_CONF_PATH,
            r.slurm_conf.clone(),
            SLURM_CONF_MODE,
            "root",
        )
        .file(GRES_CONF_PATH, r.gres_conf.clone(), SLURM_CONF_MODE, "root")
        .file(
            CGROUP_CONF_PATH,
            r.cgroup_conf.clone(),
            SLURM_CONF_MODE,
            "root",
        );
    if let Some(dbd) = &r.slurmdbd_conf {
        s = s.file(
            SLURMDBD_CONF_PATH,
            dbd.clone(),
            SLURMDBD_CONF_MODE,
            SLURMDBD_CONF_OWNER,
        );
    }
    for (path, minor) in gres_devices(&r.gres_conf) {
        // NVIDIA's character devices; SLURM only looks at them
        s = s.char_device(&path, 195, minor);
    }
    s
}

/// The error lines of `output` (before the first line with `until`, if given) that
/// [`EXPECTED`] does not explain.
fn complaints(output: &str, until: Option<&str>) -> Vec<String> {
    output
        .lines()
        .take_while(|l| until.is_none_or(|m| !l.contains(m)))
        .filter(|l| l.contains("error:") || l.contains("fatal:") || l.contains("Error:"))
        .filter(|l| !EXPECTED.iter().any(|(s, _)| l.contains(s)))
        .map(str::to_owned)
        .collect()
}

/// One program reading one example's files; `Err` says what it said.
fn check(
    slurm: &Slurm,
    r: &Rendered,
    what: &str,
    host: &str,
    cmd: &str,
    marker: Option<&str>,
) -> Result<String, String> {
    let out = sandbox(slurm, r, host)
        .run(&format!("{PRELUDE}\n{cmd}\n"))
        .unwrap_or_else(|e| panic!("{}: {e}", r.name));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let complaints = complaints(&text, marker);
    if out.status.success() && complaints.is_empty() {
        Ok(text)
    } else {
        Err(format!(
            "{} ({}) on {host}: {what} ({}), {} unexpected error line(s); it said:\n    {}",
            r.name,
            slurm.version,
            out.status,
            complaints.len(),
            text.trim_end().replace('\n', "\n    ")
        ))
    }
}

fn scontrol(slurm: &Slurm, r: &Rendered) -> Result<(), String> {
    let names: Vec<&str> = r.cluster.nodes.iter().map(|n| n.name.as_str()).collect();
    let expr = hostlist::compress(&names);
    let cmd = format!("SLURM_CONF={SLURM_CONF_PATH} scontrol show hostnames '{expr}'");
    let ctl = r.cluster.controllers().next().unwrap().name.to_string();
    let out = check(slurm, r, &cmd, &ctl, &cmd, None)?;
    let mut got: Vec<&str> = out.lines().collect();
    got.sort_unstable();
    let mut want = names.clone();
    want.sort_unstable();
    if got == want {
        Ok(())
    } else {
        Err(format!("{}: `{cmd}` printed {got:?}, not {want:?}", r.name))
    }
}

/// `slurmd -G` on `node`: it reads slurm.conf, cgroup.conf and (with `GresTypes`)
/// gres.conf, and prints the node's GRES.
fn slurmd(slurm: &Slurm, r: &Rendered, node: &str) -> Result<(), String> {
    let cmd = format!("as_unit slurmd slurmd -G -N {node}");
    let out = check(slurm, r, &format!("slurmd -G -N {node}"), node, &cmd, None)?;
    let gpus = r
        .cluster
        .slurm
        .as_ref()
        .is_some_and(|s| s.gpus.iter().any(|g| g.node.as_str() == node));
    if gpus == out.contains("Name=gpu") {
        Ok(())
    } else {
        Err(format!(
            "{}: slurmd -G -N {node} {} GPUs:\n{out}",
            r.name,
            if gpus { "lists no" } else { "lists" }
        ))
    }
}

/// The nodes that run slurmd.
fn slurmd_node_names(r: &Rendered) -> Vec<String> {
    r.cluster.slurm.as_ref().map_or_else(Vec::new, |s| {
        slurmd_nodes(&r.cluster, s)
            .into_iter()
            .map(|n| n.name.to_string())
            .collect()
    })
}

fn slurmctld(slurm: &Slurm, r: &Rendered) -> Result<(), String> {
    let ctl = r.cluster.controllers().next().unwrap().name.to_string();
    let cmd = format!("until_line 60 '{RUNNING}' as_unit slurmctld slurmctld -D -i");
    check(slurm, r, "slurmctld -D -i", &ctl, &cmd, Some(RUNNING)).map(drop)
}

fn slurmdbd(slurm: &Slurm, r: &Rendered) -> Result<(), String> {
    let host = r
        .cluster
        .slurm
        .as_ref()
        .and_then(|s| s.accounting_host.clone())
        .unwrap()
        .to_string();
    let cmd = format!("until_line 60 '{DBD_READ_ITS_FILE}' as_unit slurmdbd slurmdbd -D -vvv");
    check(
        slurm,
        r,
        "slurmdbd -D -vvv",
        &host,
        &cmd,
        Some(DBD_READ_ITS_FILE),
    )
    .map(drop)
}

/// Every check on every example's files for `release`; every failure is reported.
fn accepts_every_rendered_file(release: DebianRelease) {
    let Some(slurm) = slurm(release) else {
        return;
    };
    let mut failures = Vec::new();
    let mut ran = 0;
    for r in rendered_examples(release) {
        let mut results = vec![scontrol(&slurm, &r)];
        results.extend(slurmd_node_names(&r).iter().map(|n| slurmd(&slurm, &r, n)));
        if r.slurmdbd_conf.is_some() {
            results.push(slurmdbd(&slurm, &r));
        } else {
            results.push(slurmctld(&slurm, &r));
        }
        ran += results.len();
        failures.extend(results.into_iter().filter_map(Result::err));
    }
    assert!(
        failures.is_empty(),
        "SLURM {} ({release}) refuses rendered files:\n\n{}",
        slurm.version,
        failures.join("\n\n")
    );
    assert!(ran >= 10, "only {ran} checks ran");
}

#[test]
fn bookworm_slurm_accepts_every_rendered_file() {
    accepts_every_rendered_file(DebianRelease::Bookworm);
}

#[test]
fn trixie_slurm_accepts_every_rendered_file() {
    accepts_every_rendered_file(DebianRelease::Trixie);
}

/// An unknown key in each file makes the program that reads it fail, naming the key.
fn refuses_unknown_keys(release: DebianRelease) {
    let Some(slurm) = slurm(release) else {
        return;
    };
    const BAD: &str = "FooBarBaz=1\n";
    let refused = |what: &str, result: Result<(), String>| match result {
        Err(e) if e.contains("FooBarBaz") => {}
        Err(e) => panic!("{what}: refused, but not for the unknown key:\n{e}"),
        Ok(()) => panic!("{what}: SLURM {} accepted an unknown key", slurm.version),
    };

    let mut r = example("minimal.yaml", release);
    r.slurm_conf.push_str(BAD);
    let node = &slurmd_node_names(&r)[0];
    refused("slurm.conf, scontrol", scontrol(&slurm, &r));
    refused("slurm.conf, slurmd", slurmd(&slurm, &r, node));
    refused("slurm.conf, slurmctld", slurmctld(&slurm, &r));

    let mut r = example("minimal.yaml", release);
    r.cgroup_conf.push_str(BAD);
    refused("cgroup.conf, slurmd", slurmd(&slurm, &r, node));

    // gres.conf is read where slurm.conf has GresTypes: on a node of the GPU example
    let mut r = example("gpu.yaml", release);
    r.gres_conf.push_str(BAD);
    let gpu_node = r.cluster.slurm.as_ref().unwrap().gpus[0].node.to_string();
    refused("gres.conf, slurmd", slurmd(&slurm, &r, &gpu_node));

    let mut r = example("full-stack.yaml", release);
    let dbd = r.slurmdbd_conf.as_mut().expect("full-stack has accounting");
    dbd.push_str(BAD);
    refused("slurmdbd.conf, slurmdbd", slurmdbd(&slurm, &r));
}

#[test]
fn bookworm_slurm_refuses_unknown_keys() {
    refuses_unknown_keys(DebianRelease::Bookworm);
}

#[test]
fn trixie_slurm_refuses_unknown_keys() {
    refuses_unknown_keys(DebianRelease::Trixie);
}

/// Where the releases differ: Debian 13 runs slurmctld and slurmdbd as `slurm`, who cannot
/// write Debian 12's PID files in `/run`; SLURM 24.11 says so at every start. The renderer
/// knows the release (hpc_slurm::RuntimePaths).
#[test]
fn trixie_slurm_refuses_bookworms_pid_files() {
    let Some(slurm) = slurm(DebianRelease::Trixie) else {
        return;
    };
    let old = RenderOptions {
        release: DebianRelease::Bookworm,
        ..RenderOptions::default()
    };
    let mut minimal = load(&hpc_tests::repo_root().join("examples/minimal.yaml"));
    minimal.image.release = DebianRelease::Trixie;
    let e = slurmctld(&slurm, &render(&minimal, "minimal.yaml", &old)).unwrap_err();
    assert!(
        e.contains("Unable to open pidfile `/run/slurmctld.pid'"),
        "{e}"
    );

    let mut full = load(&hpc_tests::repo_root().join("examples/full-stack.yaml"));
    full.image.release = DebianRelease::Trixie;
    let e = slurmdbd(&slurm, &render(&full, "full-stack.yaml", &old)).unwrap_err();
    assert!(
        e.contains("Unable to open pidfile `/run/slurmdbd.pid'"),
        "{e}"
    );
}

#[test]
fn gres_device_files() {
    assert_eq!(
        gres_devices(
            "# x\nNodeName=a Name=gpu File=/dev/nvidia[0-1]\nNodeName=b Name=gpu Type=t File=/dev/nvidia2\n"
        ),
        [
            ("/dev/nvidia0".to_owned(), 0),
            ("/dev/nvidia1".to_owned(), 1),
            ("/dev/nvidia2".to_owned(), 2)
        ]
    );
    assert!(gres_devices("AutoDetect=nvml\n").is_empty());
}
