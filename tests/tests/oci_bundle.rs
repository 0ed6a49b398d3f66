//! A real OCI bundle from Debian packages (`hpc_image::build_bundle`, mmdebstrap) run by the
//! real runtimes (crun, runc) the way slurmstepd runs them: the bundle's `config.json` edited
//! as slurmstepd edits it (absolute rootfs, the step's command) in a step directory, and
//! `RunTimeRun` from `hpc_slurm::oci`'s `oci.conf` run through `/bin/sh -c`, inside a network
//! namespace this test makes (the container gets no network of its own; none is used).
//!
//! The bundle is trixie's and this machine is not, so its os-release proves where the command
//! ran; the marker names the image and its cache key. It is cached under
//! `$HPC_UP_CHROOT_CACHE` (default `/var/tmp`) by its cache key: a second build does nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use hpc_config::DebianRelease;
use hpc_config::file::ContainerRuntime;
use hpc_image::{BundleOutcome, BundleSpec, build_bundle};
use hpc_tests::require;

fn have(bin: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(bin).exists())
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the effective user.
    fs_err::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn cache_dir() -> PathBuf {
    PathBuf::from(std::env::var("HPC_UP_CHROOT_CACHE").unwrap_or_else(|_| "/var/tmp".into()))
        .join("hpc-up-bundles")
}

fn spec() -> BundleSpec {
    BundleSpec {
        name: "oci-test".into(),
        release: DebianRelease::Trixie,
        mirror: std::env::var("HPC_UP_DEBIAN_MIRROR")
            .unwrap_or_else(|_| "http://deb.debian.org/debian".into()),
        packages: Vec::new(),
    }
}

fn codename(os_release: &str) -> Option<&str> {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
}

/// Builds (or finds) the bundle; `None` when this machine cannot (outside CI).
fn bundle() -> Option<(BundleSpec, PathBuf, String)> {
    // `require` is true when the test should skip.
    if require(
        is_root(),
        "root",
        "mmdebstrap --mode=root and the runtimes need root",
    ) || require(have("mmdebstrap"), "mmdebstrap", "builds the bundle")
    {
        return None;
    }
    let spec = spec();
    let dir = cache_dir();
    let first = build_bundle(&spec, &dir, false, &mut |_| {})
        .unwrap_or_else(|e| panic!("building the bundle: {e}"));
    // The same inputs again: nothing to do.
    let again = build_bundle(&spec, &dir, false, &mut |_| {})
        .unwrap_or_else(|e| panic!("building the bundle again: {e}"));
    assert!(matches!(again, BundleOutcome::UpToDate { .. }), "{again:?}");
    assert_eq!(first.key(), again.key());
    assert_eq!(first.key(), spec.cache_key());
    Some((spec, first.path().to_path_buf(), first.key().to_owned()))
}

/// What slurmstepd does with the bundle's config.json before it runs the runtime.
fn step_dir(bundle: &Path, args: &[&str]) -> tempfile::TempDir {
    let text = fs_err::read_to_string(bundle.join("config.json")).expect("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&text).expect("config.json is JSON");
    config["root"]["path"] = bundle.join("rootfs").display().to_string().into();
    config["process"]["args"] = args.iter().map(|a| (*a).to_owned()).collect();
    config["process"]["terminal"] = false.into();
    let step = tempfile::tempdir().expect("step dir");
    fs_err::write(
        step.path().join("config.json"),
        serde_json::to_string_pretty(&config).expect("serialise"),
    )
    .expect("write config.json");
    step
}

/// `RunTimeRun` of `oci.conf` with slurmstepd's replacements and this test's state dir.
fn run_command(runtime: ContainerRuntime, step: &Path, state: &Path) -> String {
    let conf = hpc_slurm::oci::render_oci_conf_for(runtime, DebianRelease::Bookworm);
    let line = conf
        .lines()
        .find_map(|l| l.strip_prefix("RunTimeRun="))
        .expect("RunTimeRun");
    line.trim_matches('"')
        .replace(
            &format!("{}/%u", hpc_slurm::oci::OCI_STATE_DIR),
            &state.display().to_string(),
        )
        .replace("%b", &step.display().to_string())
        .replace("%n.%u.%j.%s.%t", "oci-test.root.1.0.0")
}

/// Runs `script` in the bundle with `runtime`, as slurmstepd would: in a fresh network and
/// mount namespace, where a cgroup v2 hierarchy is mounted on `/sys/fs/cgroup` when this
/// machine has another (the guests are pure v2; a hybrid host makes crun refuse the
/// container's cgroup mount), from a cgroup of its own `<step>/task` (slurmstepd's
/// `…/step_0/user/task_0`), removed afterwards. Prints `step=<step>` first.
fn run_in_bundle(runtime: ContainerRuntime, bundle: &Path, script: &str) -> (bool, String, String) {
    let step = step_dir(bundle, &["/bin/sh", "-c", script]);
    let state = tempfile::tempdir().expect("state dir");
    let cmd = run_command(runtime, step.path(), state.path());
    let wrapper = format!(
        r#"set -u
[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] || mount -t cgroup2 none /sys/fs/cgroup || exit 1
own=$(sed -n 's/^0:://p' /proc/self/cgroup)
step=/sys/fs/cgroup/hpc-up-oci-test-$$
mkdir -p "$step/task" && echo $$ > "$step/task/cgroup.procs" || exit 1
echo "step=${{step#/sys/fs/cgroup}}"
{cmd}
rc=$?
echo $$ > "/sys/fs/cgroup$own/cgroup.procs"
rmdir "$step/task" "$step"
exit $rc
"#
    );
    let out = Command::new("unshare")
        .args(["--net", "--mount", "--", "/bin/sh", "-c", &wrapper])
        .current_dir(step.path())
        .output()
        .expect("unshare");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check_runtime(runtime: ContainerRuntime) {
    let rt = runtime.as_str();
    if require(
        have(rt),
        rt,
        "runs the bundle (Debian package of that name)",
    ) {
        return;
    }
    // One build at a time (both tests share the cached bundle).
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = BUILD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some((spec, path, key)) = bundle() else {
        return;
    };
    let script = "cat /etc/hpc-up-bundle; echo @@; cat /etc/os-release; echo @@; \
                  cat /proc/self/cgroup; echo @@; \
                  if touch /etc/written 2>/dev/null; then echo rw; else echo ro; fi; \
                  touch /tmp/ok && echo tmp-ok";
    let (ok, out, err) = run_in_bundle(runtime, &path, script);
    assert!(ok, "{rt} run failed:\n{out}\n{err}");
    let (first, rest) = out.split_once('\n').unwrap_or_default();
    let step = first
        .strip_prefix("step=")
        .unwrap_or_else(|| panic!("{out}"));
    let parts: Vec<&str> = rest.split("@@\n").collect();
    assert_eq!(parts.len(), 4, "{out}");
    let marker: Vec<&str> = parts[0].lines().collect();
    assert_eq!(marker, [spec.name.as_str(), key.as_str()], "marker: {out}");
    assert_eq!(codename(parts[1]), Some("trixie"), "{out}");
    let host = fs_err::read_to_string("/etc/os-release").expect("host os-release");
    assert_ne!(
        codename(&host),
        Some("trixie"),
        "the host must be another release"
    );
    assert!(!Path::new("/etc/hpc-up-bundle").exists());
    // Read-only root (shared by every job), writable /tmp.
    assert_eq!(
        parts[3].lines().collect::<Vec<_>>(),
        ["ro", "tmp-ok"],
        "{out}"
    );
    // No cgroup namespace: the real path. crun makes no cgroup (the task's own); runc one
    // beside the task's, in the same step.
    let cgroup = parts[2]
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_else(|| panic!("no cgroup v2 line: {out}"));
    match runtime {
        ContainerRuntime::Crun => assert_eq!(cgroup, format!("{step}/task"), "{out}"),
        ContainerRuntime::Runc => {
            assert_eq!(cgroup, format!("{step}/oci-test.root.1.0.0"), "{out}");
        }
    }
}

#[test]
fn crun_runs_the_bundle_as_slurmstepd_would() {
    check_runtime(ContainerRuntime::Crun);
}

#[test]
fn runc_runs_the_bundle_as_slurmstepd_would() {
    check_runtime(ContainerRuntime::Runc);
}
