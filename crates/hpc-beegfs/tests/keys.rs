//! Every rendered file holds only keys the reference lists for that daemon and release, the
//! keys the daemons require are there, and the crate's allowlists stay inside the reference.
#![allow(clippy::unwrap_used)] // tests panic on failure

mod common;

use common::{fixture_keys, full_stack, keys_of};
use hpc_beegfs::{Daemon, Release, accepted_keys, config_files, setup_plan};

const VERSIONS: [&str; 4] = ["7.4.6", "7.4.7", "8.1.0", "8.3.1"];

fn daemon_of(path: &str) -> Option<Daemon> {
    Daemon::ALL.into_iter().find(|d| {
        path.ends_with(d.config_file(Release::new(8, 1, 0)))
            || path.ends_with(d.config_file(Release::new(7, 4, 0)))
    })
}

/// Keys the reference does not list by name, and where their names come from:
/// - the 7.x mgmtd capacity keys, which it abbreviates (`tuneStorage…`,
///   `*SpreadThreshold`/`*DynamicLimit`): mgmtd/source/app/config/Config.cpp@7.4.4;
/// - the 8.x mgmtd static capacity-pool tables, which it names only as tables
///   (`[cap-pool-storage-limits]`): their four keys each are those of the packaged
///   beegfs-mgmtd.toml of 8.1.0, and 8.1.0's `beegfs-mgmtd --init` accepts them as dotted
///   keys (and refuses a table missing one).
fn outside_the_reference(d: Daemon, release: Release, k: &str) -> bool {
    d == Daemon::Mgmtd
        && if release.is_v8() {
            k.starts_with("cap-pool-meta-limits.") || k.starts_with("cap-pool-storage-limits.")
        } else {
            k.starts_with("tuneStorage")
                || k.starts_with("tuneMeta") && k.ends_with("Limit")
                || k.ends_with("SpreadThreshold")
                || k.ends_with("DynamicLimit")
        }
}

#[test]
fn rendered_keys_are_accepted_by_the_reference() {
    for v in VERSIONS {
        let cluster = full_stack(v, "");
        let release = Release::from_version(cluster.beegfs.as_ref().unwrap().version);
        let files = config_files(&cluster).unwrap();
        assert_eq!(files.len(), 4, "{v}: ctl and cn01-03");
        for (node, files) in files {
            for f in files {
                let Some(d) = daemon_of(&f.path) else {
                    assert!(f.path.ends_with("beegfs-mounts.conf"), "{}", f.path);
                    continue;
                };
                let allowed = fixture_keys(release, d);
                let text = String::from_utf8(f.content).unwrap();
                let keys = keys_of(&text);
                for k in &keys {
                    assert!(
                        allowed.contains(k) || outside_the_reference(d, release, k),
                        "{v} {node} {}: `{k}` is not in the reference",
                        f.path
                    );
                }
                let mut unique = keys.clone();
                unique.sort();
                unique.dedup();
                assert_eq!(unique.len(), keys.len(), "{v} {}: a key twice", f.path);
            }
        }
    }
}

#[test]
fn required_keys_are_present() {
    for v in VERSIONS {
        let cluster = full_stack(v, "");
        let release = Release::from_version(cluster.beegfs.as_ref().unwrap().version);
        let files = config_files(&cluster).unwrap();
        let ctl: Vec<_> = files["ctl"].iter().map(|f| f.path.as_str()).collect();
        if release.is_v8() {
            assert_eq!(
                ctl,
                [
                    "/etc/beegfs/beegfs-client.conf",
                    "/etc/beegfs/beegfs-meta.conf",
                    "/etc/beegfs/beegfs-mgmtd.toml",
                    "/etc/beegfs/beegfs-mounts.conf"
                ],
                "{v}"
            );
        } else {
            assert_eq!(
                ctl,
                [
                    "/etc/beegfs/beegfs-client.conf",
                    "/etc/beegfs/beegfs-helperd.conf",
                    "/etc/beegfs/beegfs-meta.conf",
                    "/etc/beegfs/beegfs-mgmtd.conf",
                    "/etc/beegfs/beegfs-mounts.conf"
                ],
                "{v}"
            );
        }
        for (node, files) in &files {
            for f in files {
                let Some(d) = daemon_of(&f.path) else {
                    continue;
                };
                let text = String::from_utf8(f.content.clone()).unwrap();
                let keys = keys_of(&text);
                let has = |k: &str| keys.iter().any(|x| x == k);
                match d {
                    Daemon::Mgmtd if release.is_v8() => {
                        for k in [
                            "db-file",
                            "auth-file",
                            "tls-disable",
                            "log-target",
                            "beemsg-port",
                            "grpc-port",
                        ] {
                            assert!(has(k), "{v} {node} mgmtd lacks {k}");
                        }
                        assert!(text.contains("log-target = \"stderr\""));
                    }
                    _ => {
                        assert!(has("connAuthFile"), "{v} {node} {d} lacks connAuthFile");
                        if matches!(d, Daemon::Meta | Daemon::Storage | Daemon::Client) {
                            assert!(text.contains("sysMgmtdHost = 10.79.0.10"), "{v} {node} {d}");
                        }
                    }
                }
                match d {
                    Daemon::Meta => {
                        assert!(text.contains("storeMetaDirectory = /data/beegfs/meta"))
                    }
                    Daemon::Storage => {
                        assert!(text.contains("storeStorageDirectory = /data/beegfs/storage"));
                    }
                    Daemon::Mgmtd if !release.is_v8() => assert!(has("storeMgmtdDirectory")),
                    _ => {}
                }
                // Port keys in each version's form.
                for k in &keys {
                    if release.is_v8() {
                        assert!(
                            !k.ends_with("PortTCP") && !k.ends_with("PortUDP"),
                            "{v} {d}: {k}"
                        );
                    } else {
                        assert!(!k.ends_with("Port") || k == "beemsg-port", "{v} {d}: {k}");
                    }
                }
            }
        }
    }
}

#[test]
fn auth_off_disables_authentication_everywhere() {
    let cluster = full_stack("8.1.0", "").clone();
    let mut cluster = cluster;
    cluster.beegfs.as_mut().unwrap().auth = false;
    let files = config_files(&cluster).unwrap();
    for f in &files["ctl"] {
        let t = String::from_utf8(f.content.clone()).unwrap();
        if f.path.ends_with(".toml") {
            assert!(t.contains("auth-disable = true") && !t.contains("auth-file"));
        } else if !f.path.ends_with("mounts.conf") {
            assert!(
                t.contains("connDisableAuthentication = true") && !t.contains("connAuthFile"),
                "{t}"
            );
        }
    }
    // No auth file is planned then.
    let plan = setup_plan(&cluster, &hpc_beegfs::Inputs::default()).unwrap();
    let text = format!("{plan:?}");
    assert!(!text.contains("conn.auth"));
}

#[test]
fn allowlists_stay_inside_the_reference() {
    for (release, daemons) in [
        (Release::new(7, 4, 6), &Daemon::ALL[..]),
        (
            Release::new(8, 1, 0),
            &[Daemon::Mgmtd, Daemon::Meta, Daemon::Storage, Daemon::Client][..],
        ),
        (
            Release::new(8, 3, 1),
            &[Daemon::Mgmtd, Daemon::Meta, Daemon::Storage, Daemon::Client][..],
        ),
    ] {
        for &d in daemons {
            let fixture = fixture_keys(release, d);
            for k in accepted_keys(d, release) {
                // The reference abbreviates the 7.x mgmtd capacity keys (`tuneStorage…`,
                // `*SpreadThreshold`/`*DynamicLimit`); their names are from
                // mgmtd/source/app/config/Config.cpp@7.4.4.
                assert!(
                    outside_the_reference(d, release, k) || fixture.contains(k),
                    "{d} {release}: `{k}` is not in the reference"
                );
            }
        }
        assert!(accepted_keys(Daemon::Helperd, Release::new(8, 1, 0)).is_empty());
    }
}

#[test]
fn version_differences_in_the_allowlists() {
    let v7 = Release::new(7, 4, 6);
    let v8 = Release::new(8, 1, 0);
    let meta7 = accepted_keys(Daemon::Meta, v7);
    let meta8 = accepted_keys(Daemon::Meta, v8);
    assert!(meta7.contains("connHelperdPortTCP") && !meta8.contains("connHelperdPortTCP"));
    assert!(!meta7.contains("connMetaPort") && meta8.contains("connMetaPort"));
    assert!(
        !meta7.contains("sysFileEventPersistDirectory")
            && meta8.contains("sysFileEventPersistDirectory")
    );
    assert!(
        !accepted_keys(Daemon::Meta, Release::new(8, 0, 1))
            .contains("sysFileEventPersistDirectory")
    );
    assert!(
        accepted_keys(Daemon::Meta, Release::new(8, 3, 1)).contains("tuneChunkBalanceQueueLimit")
    );
    let client8 = accepted_keys(Daemon::Client, v8);
    assert!(!client8.contains("logType") && client8.contains("sysCacheInvalidationVersion"));
    assert!(accepted_keys(Daemon::Mgmtd, v8).contains("db-file"));
    assert!(!accepted_keys(Daemon::Mgmtd, v8).contains("storeMgmtdDirectory"));
}
