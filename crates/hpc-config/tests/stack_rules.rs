//! The rules of the stack sections (`monitoring`, `containers`, `mpi`, `slurm.job-failures`):
//! a small valid file changed in one place fails with exactly the expected problem where it
//! was made; defaults resolve as documented.
#![allow(clippy::unwrap_used)] // test helpers panic on failure, as tests do

mod common;

use common::{env, one};
use hpc_config::file::{ContainerRuntime, MpiPlugin};
use hpc_config::load_str;

const BASE: &str = "\
name: lab
network:
  cidr: 10.77.0.0/24
  bridge: hpcbr0
image:
  base: /images/base.qcow2
  release: trixie
virtiofs:
  - {tag: shared, host-path: /srv/shared, mount-point: /shared}
  - {tag: data, host-path: /srv/data, mount-point: /data, readonly: true}
controller:
  nodes:
    - name: ctl
      ip: 10.77.0.10
compute:
  - name: cn{index}
    count: 2
slurm:
  partitions: [{name: debug, nodes: [\"cn[1-2]\"]}]
";

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

#[test]
fn defaults_resolve() {
    let c = load_str(
        "t.yaml",
        &with("monitoring: {}\ncontainers: {bundles: /shared/c}\nmpi: {}\n"),
        &env,
    )
    .unwrap();
    let m = c.monitoring.unwrap();
    assert_eq!(m.server.as_str(), "ctl");
    assert_eq!((m.port, m.node_exporter_port), (9090, 9100));
    assert_eq!(m.retention.as_str(), "15d");
    assert_eq!(m.scrape_interval.as_str(), "15s");
    assert_eq!(m.slurm_metrics.unwrap().as_str(), "ctl");
    let k = c.containers.unwrap();
    assert_eq!(k.runtime, ContainerRuntime::Crun);
    assert_eq!(k.bundles, "/shared/c");
    assert_eq!(k.host_bundles.to_str(), Some("/srv/shared/c"));
    assert_eq!(c.mpi.unwrap().default, MpiPlugin::Pmix);
    assert!(c.slurm.unwrap().job_failures.is_none());
}

#[test]
fn disabled_sections_resolve_to_nothing() {
    let c = load_str(
        "t.yaml",
        &with("monitoring: {enabled: false}\ncontainers: {enabled: false, bundles: /x}\nmpi: {enabled: false}\n"),
        &env,
    )
    .unwrap();
    assert!(c.monitoring.is_none() && c.containers.is_none() && c.mpi.is_none());
}

#[test]
fn container_images_take_the_guests_release_and_sorted_packages() {
    let c = load_str(
        "t.yaml",
        &with("containers:\n  bundles: /shared/c/\n  images:\n    - {name: a, packages: [zsh, bash, zsh]}\n    - {name: b, release: bookworm}\n"),
        &env,
    )
    .unwrap();
    let k = c.containers.unwrap();
    assert_eq!(k.bundles, "/shared/c");
    assert_eq!(k.images[0].release, hpc_config::DebianRelease::Trixie);
    assert_eq!(k.images[0].packages, ["bash", "zsh"]);
    assert_eq!(k.images[1].release, hpc_config::DebianRelease::Bookworm);
}

#[test]
fn bundles_must_be_in_a_read_write_share() {
    for dir in ["/data/c", "/srv/c", "/sharedx"] {
        let (line, col, msg) = one(&with(&format!("containers: {{bundles: {dir}}}\n")));
        assert_eq!((line, col), (20, 23), "{dir}");
        assert!(
            msg.contains(&format!(
                "containers.bundles `{dir}` must be inside a read-write virtio-fs share"
            )) && msg.ends_with("`cn1` has none there"),
            "{msg}"
        );
    }
}

#[test]
fn bundles_on_a_share_of_the_compute_nodes_only_are_fine() {
    let text = BASE.replace(
        "    count: 2\n",
        "    count: 2\n    virtiofs: [{tag: c, host-path: /srv/c, mount-point: /c}]\n",
    );
    let c = load_str(
        "t.yaml",
        &format!("{text}containers: {{bundles: /c/b}}\n"),
        &env,
    )
    .unwrap();
    assert_eq!(
        c.containers.unwrap().host_bundles.to_str(),
        Some("/srv/c/b")
    );
}

#[test]
fn job_failures_must_be_in_a_read_write_share_or_beegfs() {
    let text = BASE.replace(
        "  partitions:",
        "  job-failures: {dir: /data/f}\n  partitions:",
    );
    let (line, _, msg) = one(&text);
    assert_eq!(line, 19);
    assert!(
        msg.starts_with("job-failures.dir `/data/f` must be inside"),
        "{msg}"
    );
    let text = BASE.replace(
        "  partitions:",
        "  job-failures: {dir: /mnt/beegfs/failures}\n  partitions:",
    );
    let c = load_str(
        "t.yaml",
        &format!("{text}beegfs: {{version: \"8.1.0\", management-dir: /srv/m, metadata-dir: /srv/md, storage-dir: /srv/s}}\n"),
        &env,
    )
    .unwrap();
    let j = c.slurm.unwrap().job_failures.unwrap();
    assert_eq!(
        (j.dir.as_str(), j.host_dir, j.log_lines),
        ("/mnt/beegfs/failures", None, 50)
    );
    let text = BASE.replace(
        "  partitions:",
        "  job-failures: {dir: relative}\n  partitions:",
    );
    let (_, _, msg) = one(&text);
    assert!(msg.contains("must be an absolute path"), "{msg}");
}

#[test]
fn stack_sections_need_slurm() {
    let no_slurm = &BASE[..BASE.find("slurm:").unwrap()];
    for (extra, msg) in [
        ("mpi: {}\n", "`mpi` needs a `slurm` section"),
        (
            "containers: {bundles: /shared/c}\n",
            "`containers` needs a `slurm` section",
        ),
        (
            "monitoring: {slurm-metrics: true}\n",
            "`slurm-metrics` needs a `slurm` section",
        ),
    ] {
        let (_, _, m) = one(&format!("{no_slurm}{extra}"));
        assert!(m.starts_with(msg), "{m}");
    }
    // monitoring without SLURM is fine: no SLURM metrics
    let c = load_str("t.yaml", &format!("{no_slurm}monitoring: {{}}\n"), &env).unwrap();
    assert!(c.monitoring.unwrap().slurm_metrics.is_none());
}

#[test]
fn monitoring_server_ports_and_durations() {
    let (line, col, msg) = one(&with("monitoring: {server: cx1}\n"));
    assert_eq!(
        (line, col, msg.as_str()),
        (20, 22, "no node is called `cx1`")
    );
    let (_, _, msg) = one(&with("monitoring: {port: 22}\n"));
    assert!(msg.contains("SSH's port 22"), "{msg}");
    let (_, _, msg) = one(&with("monitoring: {port: 9100}\n"));
    assert!(msg.contains("Prometheus's own port"), "{msg}");
    let (line, col, msg) = one(&with("monitoring: {retention: 1x}\n"));
    assert_eq!((line, col), (20, 25));
    assert_eq!(
        msg,
        "`1x` is not a Prometheus duration like `15d`, `1h30m` or `30s`: units are y, w, d, h, m, s and ms"
    );
    let (_, _, msg) = one(&with("monitoring: {scrape-interval: 30s1m}\n"));
    assert!(msg.contains("largest to the smallest"), "{msg}");
}

#[test]
fn container_image_names_and_packages() {
    let (line, _, msg) = one(&with(
        "containers:\n  bundles: /shared/c\n  images: [{name: a}, {name: a}]\n",
    ));
    assert_eq!(line, 22);
    assert_eq!(
        msg,
        "container image name `a` is not valid: it is used twice"
    );
    let (_, _, msg) = one(&with(
        "containers:\n  bundles: /shared/c\n  images: [{name: a, packages: [\"x; rm -rf /\"]}]\n",
    ));
    assert!(
        msg.starts_with("Debian package name `x; rm -rf /` is not valid"),
        "{msg}"
    );
    let (_, _, msg) = one(&with("containers: {bundles: /shared/c, runtime: docker}\n"));
    assert!(
        msg.contains("`docker` is not one of `crun`, `runc`"),
        "{msg}"
    );
}
