//! Snapshot tests of every rendered file for the examples, and consistency checks.
#![allow(missing_docs)]

mod common;

use std::collections::BTreeMap;

use common::{EXAMPLES, load, load_default, load_for};
use hpc_config::DebianRelease;
use hpc_slurm::{
    ConsistencyError, NodeHardware, RenderOptions, RuntimePaths, SlurmdbdError, check_consistency,
    render_cgroup_conf, render_gres_conf, render_slurm_conf, render_slurmdbd_conf,
};

fn all_files(name: &str) -> String {
    render_all(&load(name))
}

/// Every file of `cluster`, rendered as `up` does ([`RenderOptions::for_cluster`]).
fn render_all(cluster: &hpc_config::Cluster) -> String {
    let name = &cluster.name;
    let cluster = cluster.clone();
    let slurm = render_slurm_conf(
        &cluster,
        &BTreeMap::new(),
        &RenderOptions::for_cluster(&cluster),
    );
    let gres = render_gres_conf(&cluster);
    let cgroup = render_cgroup_conf(&cluster);
    let dbd =
        render_slurmdbd_conf(&cluster, "s3cret-pw").unwrap_or_else(|e| format!("(none: {e})\n"));
    assert_eq!(check_consistency(&cluster, &slurm, &gres), vec![], "{name}");
    format!(
        "=== slurm.conf\n{slurm}=== gres.conf\n{gres}=== cgroup.conf\n{cgroup}=== slurmdbd.conf\n{dbd}"
    )
}

#[test]
fn minimal() {
    insta::assert_snapshot!(all_files("minimal.yaml"));
}

#[test]
fn gpu() {
    insta::assert_snapshot!(all_files("gpu.yaml"));
}

#[test]
fn full_stack() {
    insta::assert_snapshot!(all_files("full-stack.yaml"));
}

#[test]
fn full_stack_trixie() {
    insta::assert_snapshot!(render_all(&load_for(
        "full-stack.yaml",
        DebianRelease::Trixie
    )));
}

#[test]
fn the_release_comes_from_the_cluster_file() {
    for release in DebianRelease::ALL {
        let cluster = load_for("minimal.yaml", release);
        assert_eq!(RenderOptions::for_cluster(&cluster).release, release);
    }
    assert_eq!(
        RenderOptions::for_cluster(&load_default("minimal.yaml")).release,
        DebianRelease::Bookworm
    );
    assert_eq!(RenderOptions::default().release, DebianRelease::Bookworm);
}

/// What the releases' files differ in, line by line: only the PID files of the daemons
/// Debian 13 runs as `slurm` (slurmctld, slurmdbd), in their runtime directories.
#[test]
fn releases_differ_only_in_the_pid_files_of_daemons_run_as_slurm() {
    fn diff(a: &str, b: &str) -> Vec<(String, String)> {
        assert_eq!(a.lines().count(), b.lines().count());
        a.lines()
            .zip(b.lines())
            .filter(|(x, y)| x != y)
            .map(|(x, y)| (x.to_owned(), y.to_owned()))
            .collect()
    }
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    };
    for name in EXAMPLES {
        let old = render_all(&load_for(name, DebianRelease::Bookworm));
        let new = render_all(&load_for(name, DebianRelease::Trixie));
        let mut want = vec![(
            "SlurmctldPidFile=/run/slurmctld.pid",
            "SlurmctldPidFile=/run/slurmctld/slurmctld.pid",
        )];
        if load(name)
            .slurm
            .is_some_and(|s| s.accounting_host.is_some())
        {
            want.push((
                "PidFile=/run/slurmdbd.pid",
                "PidFile=/run/slurmdbd/slurmdbd.pid",
            ));
        }
        assert_eq!(diff(&old, &new), pairs(&want), "{name}");
        // Bookworm is the default: a file without `image.release` renders as before.
        assert_eq!(old, render_all(&load_default(name)), "{name}");
    }
    for release in DebianRelease::ALL {
        let p = RuntimePaths::for_release(release);
        assert_eq!(
            p.slurmd_pid_file, "/run/slurmd.pid",
            "slurmd runs as root on both"
        );
    }
}

#[test]
fn slurmd_c_values_replace_the_estimate_and_group_nodes() {
    let cluster = load("full-stack.yaml");
    let hw = |mem: u64| {
        NodeHardware::parse_slurmd_c(&format!(
            "NodeName=x CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory={mem}\nUpTime=0-00:01:00"
        ))
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let hardware = BTreeMap::from([
        ("cn01".to_owned(), hw(2000)),
        ("cn02".to_owned(), hw(2000)),
        ("cn03".to_owned(), hw(1000)),
    ]);
    let opts = RenderOptions {
        memory_headroom_percent: 10,
        ..RenderOptions::default()
    };
    let conf = render_slurm_conf(&cluster, &hardware, &opts);
    let nodes: Vec<&str> = conf
        .lines()
        .filter(|l| l.starts_with("NodeName="))
        .collect();
    assert_eq!(
        nodes,
        [
            "NodeName=cn[01-02] CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=1800 State=UNKNOWN",
            "NodeName=cn03 CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=900 State=UNKNOWN",
        ]
    );
}

#[test]
fn rendering_is_deterministic() {
    for name in EXAMPLES {
        assert_eq!(all_files(name), all_files(name));
    }
}

#[test]
fn slurmdbd_conf_needs_accounting_and_a_sane_password() {
    assert_eq!(
        render_slurmdbd_conf(&load("minimal.yaml"), "pw"),
        Err(SlurmdbdError::NoAccounting)
    );
    let full = load("full-stack.yaml");
    for bad in ["", "a b", "a#b", "a\"b", "pä"] {
        assert_eq!(
            render_slurmdbd_conf(&full, bad),
            Err(SlurmdbdError::BadPassword),
            "{bad}"
        );
    }
}

#[test]
fn consistency_gres_mismatch_both_ways() {
    let cluster = load("gpu.yaml");
    let slurm = render_slurm_conf(&cluster, &BTreeMap::new(), &RenderOptions::default());
    let gres = render_gres_conf(&cluster);

    // gres.conf lost gpu2's line.
    let only_gpu1 = gres.replace("NodeName=gpu[1-2]", "NodeName=gpu1");
    assert_eq!(
        check_consistency(&cluster, &slurm, &only_gpu1),
        vec![ConsistencyError::GresMismatch {
            node: "gpu2".into(),
            slurm_conf: "a100:1".into(),
            gres_conf: "".into(),
        }]
    );
    // gres.conf has two GPUs where slurm.conf has one, and another type.
    let two = gres.replace("File=/dev/nvidia0", "File=/dev/nvidia[0-1]");
    assert_eq!(check_consistency(&cluster, &slurm, &two).len(), 2);
    let typed = gres.replace("Type=a100", "Type=v100");
    assert_eq!(check_consistency(&cluster, &slurm, &typed).len(), 2);
    // gres.conf names GPUs on a node without Gres=, and an undefined node.
    let extra = format!("{gres}NodeName=cpu1,ghost Name=gpu Count=1\n");
    assert_eq!(
        check_consistency(&cluster, &slurm, &extra),
        vec![
            ConsistencyError::UnknownGresNode {
                node: "ghost".into()
            },
            ConsistencyError::GresMismatch {
                node: "cpu1".into(),
                slurm_conf: "".into(),
                gres_conf: "1".into(),
            },
        ]
    );
    // AutoDetect: gres.conf needs no lines.
    assert_eq!(
        check_consistency(&cluster, &slurm, "AutoDetect=nvml\n"),
        vec![]
    );
}

#[test]
fn consistency_partitions_and_accounting() {
    let cluster = load("full-stack.yaml");
    let slurm = render_slurm_conf(&cluster, &BTreeMap::new(), &RenderOptions::default());
    let gres = render_gres_conf(&cluster);
    let bad = slurm.replace("Nodes=cn[01-03]", "Nodes=cn[01-04]");
    assert_eq!(
        check_consistency(&cluster, &bad, &gres),
        vec![ConsistencyError::UnknownPartitionNode {
            partition: "batch".into(),
            node: "cn04".into(),
        }]
    );
    let bad = slurm.replace("AccountingStorageHost=ctl", "AccountingStorageHost=db");
    assert_eq!(
        check_consistency(&cluster, &bad, &gres),
        vec![ConsistencyError::UnknownAccountingHost { host: "db".into() }]
    );
    let bad = slurm.replace("AccountingStorageHost=ctl\n", "");
    assert_eq!(
        check_consistency(&cluster, &bad, &gres),
        vec![ConsistencyError::MissingAccountingHost]
    );
    let dup = format!("{slurm}NodeName=cn02 CPUs=1 State=UNKNOWN\n");
    assert_eq!(
        check_consistency(&cluster, &dup, &gres),
        vec![ConsistencyError::DuplicateNode {
            node: "cn02".into()
        }]
    );
}
