//! The setup plan's shape: phases, packages from a repository, TLS files, missing inputs.
#![allow(clippy::unwrap_used)] // tests panic on failure

mod common;

use common::{full_stack, inputs};
use hpc_beegfs::{Inputs, PlanError, describe, setup_plan};
use hpc_remote::{HostPlan, StepKind};

fn host<'a>(plan: &'a hpc_beegfs::SetupPlan, phase: &str, node: &str) -> &'a HostPlan {
    plan.phases
        .iter()
        .find(|p| p.name == phase)
        .unwrap()
        .hosts
        .iter()
        .find(|h| h.host == node)
        .unwrap()
}

fn file_content(h: &HostPlan, id: &str) -> String {
    match &h.steps.iter().find(|s| s.id == id).unwrap().kind {
        StepKind::File(f) => String::from_utf8(f.content.clone()).unwrap(),
        other => panic!("{id} is {other:?}"),
    }
}

#[test]
fn phases_in_order_with_the_right_services() {
    for (v, helperd) in [("7.4.6", true), ("8.1.0", false)] {
        let plan = setup_plan(&full_stack(v, ""), &inputs()).unwrap();
        let names: Vec<_> = plan.phases.iter().map(|p| p.name).collect();
        assert_eq!(names, ["prepare", "management", "servers", "clients"]);
        let mgmt: Vec<_> = plan.phases[1]
            .hosts
            .iter()
            .map(|h| h.host.as_str())
            .collect();
        assert_eq!(mgmt, ["ctl"]);
        let client = describe(host(&plan, "clients", "cn01"));
        assert_eq!(client.contains("service beegfs-helperd"), helperd, "{v}");
        assert!(client.contains("findmnt --types beegfs --mountpoint /mnt/beegfs"));
    }
}

#[test]
fn packages_from_a_signed_repository() {
    let mut cluster = full_stack("8.1.0", "");
    cluster.beegfs.as_mut().unwrap().packages = hpc_config::BeegfsPackageSource::Repo {
        url: "https://mirror.lab/beegfs_8.1.0".into(),
        suite: "bookworm".into(),
        component: "non-free".into(),
        key: Some("/keys/beegfs.asc".into()),
    };
    assert_eq!(
        setup_plan(&cluster, &inputs()).unwrap_err(),
        PlanError::MissingInput("the repository's signing key")
    );
    let mut with_key = inputs();
    with_key.repo_key = Some(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n".to_vec());
    let plan = setup_plan(&cluster, &with_key).unwrap();
    let h = host(&plan, "prepare", "cn01");
    let ids: Vec<_> = h.steps.iter().take(5).map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "apt-keyrings",
            "apt-key",
            "apt-source",
            "apt-update",
            "packages"
        ]
    );
    assert_eq!(
        file_content(h, "apt-source").lines().nth(1).unwrap(),
        "deb [arch=amd64 signed-by=/etc/apt/keyrings/hpc-up-beegfs.asc] https://mirror.lab/beegfs_8.1.0 bookworm non-free"
    );
    let text = describe(h);
    assert!(
        text.contains("apt-get update -q  (when changed: apt-source, apt-key)"),
        "{text}"
    );
    assert!(
        text.contains("apt-get install -y --no-install-recommends"),
        "{text}"
    );
    assert!(
        text.contains("sh beegfs-storage beegfs-client beegfs-tools\n"),
        "{text}"
    );
}

#[test]
fn tls_files_go_where_they_are_needed() {
    let mut cluster = full_stack("8.1.0", "");
    cluster.beegfs.as_mut().unwrap().tls = true;
    assert_eq!(
        setup_plan(&cluster, &inputs()).unwrap_err(),
        PlanError::MissingInput("the TLS certificate")
    );
    let mut i = inputs();
    i.tls_cert = Some(b"CERT".to_vec());
    i.tls_key = Some(b"KEY".to_vec());
    let plan = setup_plan(&cluster, &i).unwrap();
    let ctl = describe(host(&plan, "prepare", "ctl"));
    assert!(
        ctl.contains("file /etc/beegfs/key.pem 0400 <secret>"),
        "{ctl}"
    );
    assert!(ctl.contains("file /etc/beegfs/cert.pem 0644"));
    let cn = describe(host(&plan, "prepare", "cn01"));
    assert!(
        cn.contains("/etc/beegfs/cert.pem") && !cn.contains("key.pem"),
        "{cn}"
    );
}

#[test]
fn the_auth_secret_is_required_when_auth_is_on() {
    assert_eq!(
        setup_plan(&full_stack("7.4.6", ""), &Inputs::default()).unwrap_err(),
        PlanError::MissingInput("the auth secret")
    );
}

#[test]
fn a_changed_config_changes_the_service_stamp() {
    let a = setup_plan(&full_stack("8.1.0", ""), &inputs()).unwrap();
    let mut cluster = full_stack("8.1.0", "");
    cluster.beegfs.as_mut().unwrap().mount_options = Some("noatime".into());
    let b = setup_plan(&cluster, &inputs()).unwrap();
    let stamp =
        |p: &hpc_beegfs::SetupPlan, id: &str, phase: &str| file_content(host(p, phase, "cn01"), id);
    // The mounts file feeds the client only: its stamp changes, storage's does not.
    assert_ne!(
        stamp(&a, "client-inputs", "clients"),
        stamp(&b, "client-inputs", "clients")
    );
    assert_eq!(
        stamp(&a, "storage-inputs", "servers"),
        stamp(&b, "storage-inputs", "servers")
    );
}
