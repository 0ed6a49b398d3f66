//! The known-bad inputs of the reference's section 3 (and §1.3/§1.4) are refused by the
//! renderer with a message naming the key, the daemon and the release.
#![allow(clippy::unwrap_used)] // tests panic on failure

mod common;

use common::with_extra;
use hpc_beegfs::{AuthSecret, Conf, ConfError, Daemon, Release, SecretError, config_files};

/// The messages `config_files` gives for one extra key.
fn refused(version: &str, daemon: &str, key: &str, value: &str) -> Vec<String> {
    match config_files(&with_extra(version, daemon, key, value)) {
        Ok(_) => panic!("{version} {daemon}: `{key}: {value}` was accepted"),
        Err(e) => e.problems.iter().map(ToString::to_string).collect(),
    }
}

fn one(version: &str, daemon: &str, key: &str, value: &str) -> String {
    let p = refused(version, daemon, key, value);
    assert_eq!(p.len(), 1, "{p:#?}");
    p[0].clone()
}

#[test]
fn unknown_keys() {
    assert_eq!(
        one("7.4.6", "meta", "fooBar", "1"),
        "`fooBar` is not a key beegfs-meta 7.4.6 accepts"
    );
    assert_eq!(
        one("8.1.0", "storage", "fooBar", "1"),
        "`fooBar` is not a key beegfs-storage 8.1.0 accepts"
    );
    // The 8.x client module skips unknown keys silently; hpc-up does not.
    assert_eq!(
        one("8.1.0", "client", "fooBar", "1"),
        "`fooBar` is not a key beegfs-client 8.1.0 accepts"
    );
}

#[test]
fn helperd_port_in_8x_servers() {
    for d in ["meta", "storage"] {
        assert_eq!(
            one("8.1.0", d, "connHelperdPortTCP", "8006"),
            format!(
                "`connHelperdPortTCP` is not a key beegfs-{d} 8.1.0 accepts (the helper daemon was removed in 8.0; the 8.x meta and storage daemons refuse this key)"
            )
        );
    }
}

#[test]
fn single_port_keys_in_7x() {
    assert_eq!(
        one("7.4.6", "meta", "connMetaPort", "8005"),
        "`connMetaPort` is not a key beegfs-meta 7.4.6 accepts (an 8.x single port key; 7.4 uses the `…PortTCP` / `…PortUDP` pairs)"
    );
    assert_eq!(
        one("7.4.6", "meta", "connMgmtdPort", "8008"),
        "`connMgmtdPort` is not a key beegfs-meta 7.4.6 accepts (an 8.x single port key; 7.4 uses the `…PortTCP` / `…PortUDP` pairs)"
    );
}

#[test]
fn deprecated_port_pairs_in_8x() {
    assert_eq!(
        one("8.1.0", "meta", "connMetaPortUDP", "8015"),
        "`connMetaPortUDP` is deprecated in beegfs-meta 8.1.0: write `connMetaPort`"
    );
    // Ports are hpc-up's: the new key is refused as reserved, not silently doubled.
    assert_eq!(
        one("8.1.0", "meta", "connMetaPort", "8005"),
        "`connMetaPort` of beegfs-meta 8.1.0 is set by hpc-up (the BeeGFS default ports); remove it from `extra-config`"
    );
}

#[test]
fn file_event_persistence_is_8x() {
    assert_eq!(
        one("7.4.6", "meta", "sysFileEventPersistDirectory", "/tmp"),
        "`sysFileEventPersistDirectory` is not a key beegfs-meta 7.4.6 accepts (new in 8.1)"
    );
    config_files(&with_extra(
        "8.1.0",
        "meta",
        "sysFileEventPersistDirectory",
        "/tmp",
    ))
    .unwrap();
}

#[test]
fn cross_daemon_keys() {
    assert_eq!(
        one("7.4.6", "meta", "storeStorageDirectory", "/x"),
        "`storeStorageDirectory` is not a key beegfs-meta 7.4.6 accepts (a storage key; the metadata service uses `storeMetaDirectory`)"
    );
    for k in ["storeUseExtendedAttribs", "storeClientACLs"] {
        assert_eq!(
            one("8.1.0", "storage", k, "true"),
            format!("`{k}` is not a key beegfs-storage 8.1.0 accepts (a metadata-service key)")
        );
    }
    assert_eq!(
        one("7.4.6", "storage", "tuneTargetChooser", "roundrobin"),
        "`tuneTargetChooser` is not a key beegfs-storage 7.4.6 accepts (a metadata-service key)"
    );
}

#[test]
fn client_only_keys_in_servers() {
    for v in ["7.4.6", "8.1.0"] {
        for d in ["meta", "storage"] {
            for (k, val, hint) in [
                (
                    "quotaEnabled",
                    "true",
                    "a client key; the servers use `quotaEnableEnforcement`",
                ),
                ("sysMountSanityCheckMS", "0", "a client-only key"),
                ("tuneFileCacheType", "native", "a client-only key"),
                ("logHelperdIP", "127.0.0.1", "a client-only key"),
                (
                    "connClientPortTCP",
                    "8004",
                    "no such key in any release (the client port is UDP only)",
                ),
            ] {
                assert_eq!(
                    one(v, d, k, val),
                    format!("`{k}` is not a key beegfs-{d} {v} accepts ({hint})")
                );
            }
        }
        assert_eq!(
            one(v, "meta", "sysACLsEnabled", "true"),
            format!(
                "`sysACLsEnabled` is not a key beegfs-meta {v} accepts (a client key; the metadata service uses `storeClientACLs` / `storeClientXAttrs`)"
            )
        );
    }
}

#[test]
fn bad_values() {
    assert_eq!(
        one("7.4.6", "meta", "logType", "journald"),
        "`logType = journald` is not valid for beegfs-meta 7.4.6: it is one of logfile, syslog"
    );
    assert_eq!(
        one("8.1.0", "storage", "tuneNumWorkers", "\"4 # four workers\""),
        "`tuneNumWorkers = 4 # four workers` is not valid for beegfs-storage 8.1.0: BeeGFS config files have no inline comments: `#` and what follows would be part of the value"
    );
    assert_eq!(
        one("8.1.0", "meta", "storeClientACLs", "true"),
        "`storeClientACLs = true` is not valid for beegfs-meta 8.1.0: client ACLs need `storeClientXAttrs = true`"
    );
    assert_eq!(
        one("7.4.6", "meta", "sysTargetOfflineTimeoutSecs", "10"),
        "`sysTargetOfflineTimeoutSecs = 10` is not valid for beegfs-meta 7.4.6: it must be at least 30"
    );
}

#[test]
fn keys_hpc_up_sets() {
    assert_eq!(
        one("7.4.6", "meta", "sysMgmtdHost", "other"),
        "`sysMgmtdHost` of beegfs-meta 7.4.6 is set by hpc-up (the address of `management`); remove it from `extra-config`"
    );
    assert_eq!(
        one("8.1.0", "mgmtd", "tls-disable", "false"),
        "`tls-disable` of beegfs-mgmtd 8.1.0 is set by hpc-up (from `tls`); remove it from `extra-config`"
    );
}

#[test]
fn mgmtd_toml_keys() {
    assert_eq!(
        one("8.1.0", "mgmtd", "connMgmtdPort", "8008"),
        "`connMgmtdPort` is not a key beegfs-mgmtd 8.1.0 accepts (the 8.x management service reads TOML with kebab-case keys (`beemsg-port`, `auth-file`, …))"
    );
    assert_eq!(
        one("8.1.0", "mgmtd", "log-level", "loud"),
        "`log-level = loud` is not valid for beegfs-mgmtd 8.1.0: it is off, error, warn, info, debug or trace"
    );
    assert_eq!(
        one("8.1.0", "mgmtd", "registration-disable", "\"yes\""),
        "`registration-disable = yes` is not valid for beegfs-mgmtd 8.1.0: it is true or false"
    );
    let files = config_files(&with_extra(
        "8.1.0",
        "mgmtd",
        "registration-disable",
        "true",
    ))
    .unwrap();
    let toml = String::from_utf8(
        files["ctl"]
            .iter()
            .find(|f| f.path.ends_with(".toml"))
            .unwrap()
            .content
            .clone(),
    )
    .unwrap();
    assert!(toml.contains("\nregistration-disable = true\n"), "{toml}");
    assert_eq!(
        one("7.4.6", "mgmtd", "registration-disable", "true"),
        "`registration-disable` is not a key beegfs-mgmtd 7.4.6 accepts"
    );
}

#[test]
fn what_only_the_conf_api_can_get_wrong() {
    let v8 = Release::new(8, 1, 0);
    let v7 = Release::new(7, 4, 4);
    let msgs = |c: Conf| {
        c.check()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    // No auth at all: the daemons exit 3 ("No connAuthFile configured").
    assert_eq!(
        msgs(
            Conf::new(Daemon::Meta, v8)
                .set("sysMgmtdHost", "m")
                .set("storeMetaDirectory", "/m")
        ),
        [
            "beegfs-meta 8.1.0 needs `connAuthFile`: without it or `connDisableAuthentication = true` the daemon exits with \"No connAuthFile configured\""
        ]
    );
    // Empty management host and directory.
    assert_eq!(
        msgs(
            Conf::new(Daemon::Meta, v7)
                .set("sysMgmtdHost", "")
                .set("connAuthFile", "/a")
                .set("storeMetaDirectory", "")
        ),
        [
            "beegfs-meta 7.4.4 needs `sysMgmtdHost`: \"Management host undefined\"",
            "beegfs-meta 7.4.4 needs `storeMetaDirectory`: \"No metadata storage directory specified\""
        ]
    );
    // Port 0 is silently ignored by the daemons.
    assert_eq!(
        msgs(
            Conf::new(Daemon::Client, v8)
                .set("sysMgmtdHost", "m")
                .set("connAuthFile", "/a")
                .set("connClientPort", 0_i64)
        ),
        [
            "`connClientPort = 0` is not valid for beegfs-client 8.1.0: a port is 1 to 65535 (a value of 0 or less is silently ignored by the daemons)"
        ]
    );
    // 7.4 opens connAuthFile even with authentication disabled.
    assert!(
        msgs(
            Conf::new(Daemon::Helperd, v7)
                .set("connAuthFile", "/nonexistent")
                .set("connDisableAuthentication", true)
        )[0]
        .contains("7.4 still opens connAuthFile")
    );
    // 8.x mgmtd: TLS on without a certificate, no auth decision, no db-file.
    assert_eq!(
        msgs(Conf::new(Daemon::Mgmtd, v8)),
        [
            "beegfs-mgmtd 8.1.0 needs `auth-file`: hpc-up names the auth file (or sets `auth-disable = true`) so that every node agrees",
            "beegfs-mgmtd 8.1.0 needs `tls-cert-file`: TLS is on by default and the service exits without a certificate: set `tls-cert-file` and `tls-key-file`, or `tls-disable = true`",
            "beegfs-mgmtd 8.1.0 needs `db-file`: `--init` and the service must agree on it"
        ]
    );
    // Duplicates.
    let dup = Conf::new(Daemon::Helperd, v7)
        .set("connAuthFile", "/a")
        .set("connAuthFile", "/b")
        .check();
    assert!(matches!(&dup[0], ConfError::Duplicate { key, .. } if key == "connAuthFile"));
}

#[test]
fn auth_secret_size() {
    // A 2-byte file: "Auth file is empty"; over 1024 bytes the C++ and Rust services disagree.
    assert_eq!(
        AuthSecret::new(vec![1, 2]),
        Err(SecretError::Length { len: 2 })
    );
    assert_eq!(
        AuthSecret::new((0..1025).map(|i| (i % 251) as u8).collect()),
        Err(SecretError::Length { len: 1025 })
    );
    assert_eq!(AuthSecret::new(vec![7; 64]), Err(SecretError::NotRandom));
    assert!(AuthSecret::new((0..32).collect()).is_ok());
    assert!(!format!("{:?}", AuthSecret::new((0..32).collect()).unwrap()).contains('1'));
}
