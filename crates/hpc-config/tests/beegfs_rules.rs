//! One test per rule of the `beegfs:` section: a small valid file, changed in one place, must
//! fail with exactly the expected problem at the expected position.
#![allow(clippy::unwrap_used)] // test helpers panic on failure, as tests do

use std::path::PathBuf;

use hpc_config::{BeegfsPackageSource, load_str};

const BASE: &str = "\
name: lab
network:
  cidr: 10.77.0.0/24
  bridge: hpcbr0
image:
  base: /images/base.qcow2
controller:
  nodes:
    - name: ctl
      ip: 10.77.0.10
compute:
  - name: cn{index}
    count: 2
beegfs:
  version: \"8.1.0\"
";

mod common;

use common::{env, one, problems};

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

fn with_version(version: &str, extra: &str) -> String {
    BASE.replace("\"8.1.0\"", &format!("\"{version}\"")) + extra
}

#[test]
fn defaults_resolve() {
    let c = load_str("t.yaml", BASE, &env).unwrap();
    let b = c.beegfs.unwrap();
    assert_eq!(b.management.as_str(), "ctl");
    assert_eq!(b.storage.len(), 2);
    assert_eq!(b.packages, BeegfsPackageSource::Preinstalled);
    assert!(!b.tls && b.tls_cert_file.is_none());
    assert!(b.extra_config.meta.is_empty());
}

#[test]
fn packages_from_a_repository_with_defaults() {
    let c = load_str(
        "t.yaml",
        &with("  packages:\n    repo: https://mirror.lab/beegfs_8.1.0/\n    key: ${HOME}/k.asc\n"),
        &env,
    )
    .unwrap();
    assert_eq!(
        c.beegfs.unwrap().packages,
        BeegfsPackageSource::Repo {
            url: "https://mirror.lab/beegfs_8.1.0".into(),
            suite: "bookworm".into(),
            component: "non-free".into(),
            key: Some(PathBuf::from("/home/user/k.asc")),
        }
    );
}

#[test]
fn the_repository_suite_follows_the_guests_release() {
    let text = with("  packages:\n    repo: https://mirror.lab/beegfs_8.1.0\n    trusted: true\n")
        .replace(
            "  base: /images/base.qcow2\n",
            "  base: /images/base.qcow2\n  release: trixie\n",
        );
    let c = load_str("t.yaml", &text, &env).unwrap();
    let BeegfsPackageSource::Repo { suite, .. } = c.beegfs.unwrap().packages else {
        panic!("not a repository");
    };
    assert_eq!(suite, "trixie");
    // an explicit suite wins
    let c = load_str(
        "t.yaml",
        &text.replace(
            "    trusted: true\n",
            "    trusted: true\n    suite: bookworm\n",
        ),
        &env,
    )
    .unwrap();
    let BeegfsPackageSource::Repo { suite, .. } = c.beegfs.unwrap().packages else {
        panic!("not a repository");
    };
    assert_eq!(suite, "bookworm");
}

#[test]
fn packages_from_a_deb_directory() {
    let c = load_str(
        "t.yaml",
        &with("  packages:\n    debs: ${HOME}/debs\n"),
        &env,
    )
    .unwrap();
    assert_eq!(
        c.beegfs.unwrap().packages,
        BeegfsPackageSource::Debs {
            dir: PathBuf::from("/home/user/debs")
        }
    );
}

#[test]
fn packages_need_exactly_one_source() {
    let (line, col, msg) = one(&with(
        "  packages:\n    debs: /d\n    repo: https://x.lab/b\n    trusted: true\n",
    ));
    assert_eq!((line, col), (17, 5));
    assert_eq!(msg, "`packages` needs exactly one of `debs` and `repo`");
    let (_, _, msg) = one(&with("  packages:\n    suite: bookworm\n"));
    assert_eq!(msg, "`packages` needs exactly one of `debs` and `repo`");
}

#[test]
fn repository_fields_only_with_repo() {
    let (line, col, msg) = one(&with("  packages:\n    debs: /d\n    suite: bookworm\n"));
    assert_eq!((line, col), (18, 12));
    assert_eq!(msg, "`suite` applies only with `repo`");
}

#[test]
fn repository_needs_a_key_or_trusted() {
    let (line, col, msg) = one(&with("  packages:\n    repo: https://x.lab/b\n"));
    assert_eq!((line, col), (17, 11));
    assert_eq!(
        msg,
        "`repo` needs `key` (the repository's signing key) or `trusted: true`"
    );
    let (_, _, msg) = one(&with(
        "  packages:\n    repo: https://x.lab/b\n    key: /k\n    trusted: true\n",
    ));
    assert_eq!(msg, "a repository needs exactly one of `key` and `trusted`");
}

#[test]
fn repository_url_is_http() {
    let (line, _, msg) = one(&with(
        "  packages:\n    repo: ftp://x.lab/b\n    trusted: true\n",
    ));
    assert_eq!(line, 17);
    assert_eq!(
        msg,
        "BeeGFS repository `ftp://x.lab/b` is not valid: write an http:// or https:// URL without spaces"
    );
    let (_, _, msg) = one(&with(
        "  packages:\n    repo: https://x.lab/b\n    suite: \"book worm\"\n    trusted: true\n",
    ));
    assert_eq!(
        msg,
        "repository field `book worm` is not valid: use letters, digits and `-._/`"
    );
}

#[test]
fn package_paths_are_absolute() {
    let (line, col, msg) = one(&with("  packages:\n    debs: debs/beegfs\n"));
    assert_eq!((line, col), (17, 11));
    assert_eq!(
        msg,
        "package directory `debs/beegfs` must be an absolute path"
    );
}

#[test]
fn tls_needs_cert_and_key() {
    let (line, col, msg) = one(&with("  tls: true\n  tls-cert-file: /pki/c.pem\n"));
    assert_eq!((line, col), (16, 8));
    assert_eq!(
        msg,
        "`tls` needs `tls-cert-file` and `tls-key-file` (or `tls: false` for a lab)"
    );
    let c = load_str(
        "t.yaml",
        &with("  tls: true\n  tls-cert-file: ${HOME}/c.pem\n  tls-key-file: /pki/k.pem\n"),
        &env,
    )
    .unwrap();
    let b = c.beegfs.unwrap();
    assert_eq!(b.tls_cert_file, Some(PathBuf::from("/home/user/c.pem")));
    assert_eq!(b.tls_key_file, Some(PathBuf::from("/pki/k.pem")));
}

#[test]
fn tls_files_need_tls() {
    let (line, col, msg) = one(&with("  tls-key-file: /pki/k.pem\n"));
    assert_eq!((line, col), (16, 17));
    assert_eq!(msg, "`tls-key-file` applies only with `tls: true`");
}

#[test]
fn tls_is_8x_only() {
    let (line, col, msg) = one(&with_version("7.4.6", "  tls: true\n"));
    assert_eq!((line, col), (16, 8));
    assert_eq!(
        msg,
        "TLS (the 8.x management service's gRPC API) does not exist in BeeGFS 7.4.6"
    );
}

#[test]
fn helperd_is_7x_only() {
    let p = problems(&with(
        "  extra-config:\n    helperd:\n      tuneNumWorkers: 4\n",
    ));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!((p[0].line, p[0].column), (18, 7));
    assert_eq!(
        p[0].message,
        "the helper daemon (beegfs-helperd) does not exist in BeeGFS 8.1.0"
    );
    assert_eq!(
        p[0].help.as_deref(),
        Some("remove it, or choose a release that has it")
    );
    assert!(
        problems(&with_version(
            "7.4.6",
            "  extra-config:\n    helperd:\n      tuneNumWorkers: 4\n"
        ))
        .is_empty()
    );
}

#[test]
fn extra_config_values_are_scalars() {
    let c = load_str(
        "t.yaml",
        &with("  extra-config:\n    meta: {tuneNumWorkers: 8, connUseRDMA: false, tuneTargetChooser: roundrobin}\n"),
        &env,
    )
    .unwrap();
    let meta = c.beegfs.unwrap().extra_config.meta;
    let shown: Vec<String> = meta.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(
        shown,
        [
            "connUseRDMA=false",
            "tuneNumWorkers=8",
            "tuneTargetChooser=roundrobin"
        ]
    );
    let p = problems(&with(
        "  extra-config:\n    meta:\n      tuneNumWorkers: [1]\n",
    ));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].line, 18);
    let p = problems(&with("  extra-config:\n    mgmt:\n      x: 1\n"));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].message.contains("unknown key `mgmt`"),
        "{}",
        p[0].message
    );
}

#[test]
fn mount_options_have_no_spaces() {
    let (line, _, msg) = one(&with("  client:\n    options: \"noatime, nodev\"\n"));
    assert_eq!(line, 17);
    assert_eq!(
        msg,
        "BeeGFS mount options `noatime, nodev` is not valid: write them comma-separated without spaces (`noatime,nodev`)"
    );
}

#[test]
fn beegfs_stays_out_of_virtiofs_shares() {
    // The default storage directory (/data/beegfs/storage) inside a read-only share at
    // /data: located at the beegfs section, naming node, share and the way out.
    let shared = BASE.replace(
        "compute:\n",
        "virtiofs:\n  - {tag: data, host-path: /srv/data, mount-point: /data, readonly: true}\ncompute:\n",
    );
    let p = problems(&shared);
    let msgs: Vec<&str> = p.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(p.len(), 3, "{msgs:#?}");
    assert!(p.iter().all(|p| p.line == 17), "{p:#?}");
    assert!(msgs.contains(&"BeeGFS storage directory `/data/beegfs/storage` is not valid: on cn1 it overlaps the virtio-fs share `data` mounted at /data (read-only); BeeGFS keeps its data on the node's own disk: choose a path outside the shares (set `storage-dir`)"), "{msgs:#?}");
    // a directory set by hand is pointed at, and a share inside the mount point clashes too
    let text = format!(
        "{shared}  management-dir: /srv/beegfs/mgmtd\n  metadata-dir: /srv/beegfs/meta\n  storage-dir: /data\n  client: {{mount-point: /}}\n"
    );
    let p = problems(&text);
    let at: Vec<(usize, &str)> = p.iter().map(|p| (p.line, p.message.as_str())).collect();
    assert_eq!(p.len(), 2, "{at:#?}");
    assert_eq!(p[0].line, 20, "{at:#?}");
    assert!(
        p[0].message.contains("BeeGFS storage directory `/data`"),
        "{at:#?}"
    );
    assert_eq!(p[1].line, 21, "{at:#?}");
    assert!(
        p[1].message.contains("BeeGFS mount point `/` is not valid: on ctl")
            && p[1]
                .message
                .ends_with("one mount would hide the other: choose a path outside the shares (set `client.mount-point`)"),
        "{at:#?}"
    );
    // outside the shares: fine
    let text = format!(
        "{shared}  management-dir: /srv/beegfs/mgmtd\n  metadata-dir: /srv/beegfs/meta\n  storage-dir: /srv/beegfs/storage\n  client: {{mount-point: /mnt/beegfs}}\n"
    );
    assert!(problems(&text).is_empty(), "{:#?}", problems(&text));
}
