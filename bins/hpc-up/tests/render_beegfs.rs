//! `hpc-up render` writes, per node, the complete `/etc/beegfs/` tree and the ordered setup
//! steps, for 7.4 and 8.x; refused BeeGFS keys stop the render with a clear message.
#![allow(clippy::unwrap_used)] // test helpers panic on failure, as tests do

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;

use common::{hpc_up_cli as hpc_up, read_tree, repo};

/// `examples/full-stack.yaml` with its BeeGFS version (and `beegfs` lines) changed, in `dir`.
fn example(dir: &Path, version: &str, replace: &[(&str, &str)]) -> PathBuf {
    let mut text = fs_err::read_to_string(repo().join("examples/full-stack.yaml")).unwrap();
    text = text.replace("version: \"7.4.6\"", &format!("version: \"{version}\""));
    for (from, to) in replace {
        assert!(text.contains(from), "{from}");
        text = text.replace(from, to);
    }
    let path = dir.join(format!("full-{version}.yaml"));
    fs_err::write(&path, text).unwrap();
    path
}

fn render(file: &Path, out: &Path) -> Output {
    hpc_up(&[
        "render",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

/// Relative paths of the files under `dir/beegfs`, sorted.
fn tree(dir: &Path) -> Vec<String> {
    read_tree(&dir.join("beegfs"))
        .into_iter()
        .map(|(p, _)| p.display().to_string())
        .collect()
}

fn read(dir: &Path, rel: &str) -> String {
    fs_err::read_to_string(dir.join("beegfs").join(rel)).unwrap()
}

#[test]
fn renders_the_7x_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let file = example(tmp.path(), "7.4.6", &[]);
    let out = tmp.path().join("out");
    let o = render(&file, &out);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut want = vec![
        "ctl/etc/beegfs/beegfs-client.conf",
        "ctl/etc/beegfs/beegfs-helperd.conf",
        "ctl/etc/beegfs/beegfs-meta.conf",
        "ctl/etc/beegfs/beegfs-mgmtd.conf",
        "ctl/etc/beegfs/beegfs-mounts.conf",
        "ctl/setup-steps.txt",
    ];
    let computes: Vec<String> = ["cn01", "cn02", "cn03"]
        .iter()
        .flat_map(|n| {
            [
                "etc/beegfs/beegfs-client.conf",
                "etc/beegfs/beegfs-helperd.conf",
                "etc/beegfs/beegfs-mounts.conf",
                "etc/beegfs/beegfs-storage.conf",
                "setup-steps.txt",
            ]
            .map(|f| format!("{n}/{f}"))
        })
        .collect();
    want.extend(computes.iter().map(String::as_str));
    want.sort();
    assert_eq!(tree(&out), want);

    let meta = read(&out, "ctl/etc/beegfs/beegfs-meta.conf");
    assert!(
        meta.contains("\nconnMetaPortTCP = 8005\nconnMetaPortUDP = 8005\n"),
        "{meta}"
    );
    assert!(
        meta.contains("\ntuneNumWorkers = 4\n"),
        "the example's extra key: {meta}"
    );
    let steps = read(&out, "ctl/setup-steps.txt");
    let order: Vec<usize> = ["[prepare]", "[management]", "[servers]", "[clients]"]
        .iter()
        .map(|p| steps.find(p).unwrap_or_else(|| panic!("{p} in {steps}")))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{steps}");
    assert!(steps.contains("beegfs-setup-mgmtd -C -p /data/beegfs/mgmtd"));
    assert!(steps.contains("/etc/beegfs/conn.auth 0400 <secret>"));
    assert!(steps.contains("service beegfs-helperd"));
    assert!(
        !tree(&out).iter().any(|p| p.ends_with("conn.auth")),
        "the secret is never rendered"
    );
}

#[test]
fn renders_the_8x_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let file = example(tmp.path(), "8.1.0", &[]);
    let out = tmp.path().join("out");
    let o = render(&file, &out);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let files = tree(&out);
    assert!(files.contains(&"ctl/etc/beegfs/beegfs-mgmtd.toml".to_owned()));
    assert!(
        !files
            .iter()
            .any(|f| f.contains("helperd") || f.ends_with("mgmtd.conf"))
    );
    let toml = read(&out, "ctl/etc/beegfs/beegfs-mgmtd.toml");
    for line in [
        "db-file = \"/data/beegfs/mgmtd/mgmtd.sqlite\"",
        "log-target = \"stderr\"",
        "auth-file = \"/etc/beegfs/conn.auth\"",
        "tls-disable = true",
    ] {
        assert!(toml.contains(line), "{line} in {toml}");
    }
    let storage = read(&out, "cn02/etc/beegfs/beegfs-storage.conf");
    assert!(
        storage.contains("\nconnStoragePort = 8003\nconnMgmtdPort = 8008\n"),
        "{storage}"
    );
    assert!(!storage.contains("PortTCP") && !storage.contains("Helperd"));
    let steps = read(&out, "ctl/setup-steps.txt");
    assert!(steps.contains(
        "/opt/beegfs/sbin/beegfs-mgmtd --init --config-file /etc/beegfs/beegfs-mgmtd.toml"
    ));
    assert!(
        steps.contains("/data/beegfs/mgmtd/mgmtd.sqlite"),
        "--init only without a database"
    );
    assert!(!steps.contains("helperd"));
    let cn = read(&out, "cn02/setup-steps.txt");
    assert!(
        cn.contains("beegfs-setup-storage -C -p /data/beegfs/storage -s 2 -i 201 -m 10.79.0.10")
    );

    // Same file, same bytes.
    let again = tmp.path().join("again");
    assert_eq!(render(&file, &again).status.code(), Some(0));
    for f in &files {
        assert_eq!(read(&out, f), read(&again, f), "{f}");
    }
}

#[test]
fn tls_on_8x_names_the_certificate_files() {
    let tmp = tempfile::tempdir().unwrap();
    let cert = tmp.path().join("cert.pem");
    fs_err::write(&cert, "-----BEGIN CERTIFICATE-----\n").unwrap();
    let file = example(
        tmp.path(),
        "8.3.1",
        &[(
            "  tls: false\n",
            &format!(
                "  tls: true\n  tls-cert-file: {}\n  tls-key-file: {}\n",
                cert.display(),
                tmp.path().join("missing-key.pem").display()
            ),
        )],
    );
    let out = tmp.path().join("out");
    let o = render(&file, &out);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let toml = read(&out, "ctl/etc/beegfs/beegfs-mgmtd.toml");
    assert!(
        toml.contains(
            "tls-cert-file = \"/etc/beegfs/cert.pem\"\ntls-key-file = \"/etc/beegfs/key.pem\"\n"
        ),
        "{toml}"
    );
    assert!(!toml.contains("tls-disable"));
    let steps = read(&out, "ctl/setup-steps.txt");
    assert!(
        steps.contains("/etc/beegfs/key.pem 0400 <secret>"),
        "{steps}"
    );
    assert!(read(&out, "cn01/setup-steps.txt").contains("/etc/beegfs/cert.pem 0644"));
}

#[test]
fn refused_keys_stop_the_render() {
    let tmp = tempfile::tempdir().unwrap();
    let file = example(
        tmp.path(),
        "8.1.0",
        &[(
            "      tuneNumWorkers: 4\n",
            "      tuneNumWorkers: 4\n      connHelperdPortTCP: 8006\n      quotaEnabled: true\n",
        )],
    );
    let out = tmp.path().join("out");
    let o = render(&file, &out);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("`connHelperdPortTCP` is not a key beegfs-meta 8.1.0 accepts"),
        "{err}"
    );
    assert!(err.contains("`quotaEnabled` is not a key beegfs-meta 8.1.0 accepts (a client key; the servers use `quotaEnableEnforcement`)"), "{err}");
    assert!(!out.join("beegfs").exists(), "nothing is written");
}
