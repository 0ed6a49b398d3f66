//! `oci.conf` per runtime and SLURM release, the containers layer's files and steps.

mod common;

use hpc_config::DebianRelease;
use hpc_config::file::ContainerRuntime;
use hpc_slurm::oci;

/// full-stack.yaml with a `containers:` section (bundles inside its read-write `/shared`).
fn with_containers(release: DebianRelease, runtime: &str) -> hpc_config::Cluster {
    let text = fs_err::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/full-stack.yaml"),
    )
    .expect("example");
    // Without its own `image.release` line and `containers:` section (a top-level key and
    // the indented lines after it).
    let mut in_containers = false;
    let text: String = text
        .lines()
        .filter(|l| {
            if !l.starts_with([' ', '#']) && !l.is_empty() {
                in_containers = l.starts_with("containers:");
            }
            !in_containers && !l.starts_with("  release: ")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let text = text.replacen(
        "\nimage:\n",
        &format!("\nimage:\n  release: {release}\n"),
        1,
    );
    let text = format!(
        "{text}\ncontainers:\n  runtime: {runtime}\n  bundles: /shared/containers\n  images:\n    - name: base\n      packages: [python3]\n"
    );
    let env = |var: &str| (var == "HOME").then(|| "/home/user".to_owned());
    hpc_config::load_str("full-stack.yaml", &text, &env).unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn oci_conf_per_release_and_runtime() {
    for release in DebianRelease::ALL {
        for runtime in [ContainerRuntime::Crun, ContainerRuntime::Runc] {
            let name = format!("oci_conf_{}_{}", release.as_str(), runtime.as_str());
            insta::assert_snapshot!(name, oci::render_oci_conf_for(runtime, release));
        }
    }
}

#[test]
fn only_24_11_gets_its_own_keys() {
    // 22.05's parser refuses keys it does not know (fatal in slurmstepd).
    let known_22_05 = [
        "ContainerPath",
        "CreateEnvFile",
        "RunTimeCreate",
        "RunTimeDelete",
        "RunTimeKill",
        "RunTimeQuery",
        "RunTimeRun",
        "RunTimeStart",
    ];
    for runtime in [ContainerRuntime::Crun, ContainerRuntime::Runc] {
        let conf = oci::render_oci_conf_for(runtime, DebianRelease::Bookworm);
        for line in conf.lines().filter(|l| !l.starts_with('#')) {
            let key = line.split('=').next().unwrap_or_default();
            assert!(known_22_05.contains(&key), "22.05 does not know {key}");
            assert!(!line.contains("%U"), "22.05 has no %U: {line}");
        }
        // Run mode: RunTimeRun, Query, Kill, Delete; never Create/Start with it.
        assert!(conf.contains("RunTimeRun=") && conf.contains("RunTimeQuery="));
        assert!(!conf.contains("RunTimeCreate=") && !conf.contains("RunTimeStart="));
    }
    let crun = oci::render_oci_conf_for(ContainerRuntime::Crun, DebianRelease::Trixie);
    assert!(crun.contains("--cgroup-manager=disabled run --bundle %b"));
    assert!(crun.contains("EnvExclude="));
}

#[test]
fn the_cluster_renders_its_runtime_and_release() {
    let c = with_containers(DebianRelease::Trixie, "runc");
    assert_eq!(
        oci::render_oci_conf(&c),
        oci::render_oci_conf_for(ContainerRuntime::Runc, DebianRelease::Trixie)
    );
    let files = oci::files(&c);
    let nodes: Vec<&str> = files
        .iter()
        .filter(|f| f.path == oci::OCI_CONF_PATH)
        .map(|f| f.node.as_str())
        .collect();
    // Compute nodes only: srun on the controller does not read oci.conf.
    assert_eq!(nodes, ["cn01", "cn02", "cn03"]);
    assert_eq!(oci::image_packages(ContainerRuntime::Runc), ["runc"]);
    assert!(oci::files(&common::load("minimal.yaml")).is_empty());
}

#[test]
fn phases_put_the_files_the_directories_and_a_verify_on_compute_nodes() {
    use hpc_remote::{RunWhen, StepKind};
    let c = with_containers(DebianRelease::Bookworm, "crun");
    let phases = oci::phases(&c);
    assert_eq!(phases.len(), 1);
    assert_eq!(phases[0].name, "containers");
    let hosts: Vec<&str> = phases[0].hosts.iter().map(|h| h.host.as_str()).collect();
    assert_eq!(hosts, ["cn01", "cn02", "cn03"]);
    let plan = &phases[0].hosts[0];
    let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "oci-tmpfiles",
            "oci-state-dir",
            "oci.conf",
            "bundles-dir",
            "runtime"
        ]
    );
    match &plan.steps[3].kind {
        StepKind::Directory(d) => assert_eq!(d.path, "/shared/containers"),
        other => panic!("{other:?}"),
    }
    match &plan.steps[4].kind {
        StepKind::Command(r) => {
            assert_eq!(r.argv, ["crun", "--version"]);
            assert_eq!(r.when, RunWhen::Verify);
        }
        other => panic!("{other:?}"),
    }
    // Nothing runs "every time" that could change something: a second apply changes nothing.
    assert!(plan.steps.iter().all(|s| !matches!(
        &s.kind,
        StepKind::Command(r) if r.when == RunWhen::Always
    )));
    assert!(oci::phases(&common::load("minimal.yaml")).is_empty());
}
