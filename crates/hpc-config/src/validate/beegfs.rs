//! The `beegfs:` section: placement, directories, packages, TLS and extra keys.
//!
//! Which extra keys a BeeGFS service accepts is the BeeGFS planner's knowledge
//! (`hpc-beegfs`); this module only checks what the file itself can get wrong.

use std::collections::HashSet;
use std::path::PathBuf;

use super::{Ctx, ErrorKind, Names, check_guest_path, node_refs, one_node};
use crate::file::{self, BeegfsSettings};
use crate::model::{Beegfs, BeegfsPackageSource, Node, Role};
use crate::types::{DebianRelease, NodeName};

pub(super) fn resolve_beegfs(
    cx: &mut Ctx<'_>,
    b: &BeegfsSettings,
    nodes: &[Node],
    names: &Names<'_>,
    release: DebianRelease,
) -> Beegfs {
    let first_controller = nodes
        .iter()
        .find(|n| n.role == Role::Controller)
        .map(|n| n.name.clone());
    let management = match &b.management {
        Some(m) => {
            one_node(cx, "/beegfs/management", m, names);
            m.clone()
        }
        None => first_controller
            .clone()
            .unwrap_or_else(|| nodes_first(nodes)),
    };
    let list =
        |cx: &mut Ctx<'_>, field: &str, what, v: &Option<Vec<String>>, default: Vec<NodeName>| {
            match v {
                Some(refs) => node_refs(cx, &format!("/beegfs/{field}"), what, refs, names),
                None => default,
            }
        };
    let metadata = list(
        cx,
        "metadata",
        "the metadata list",
        &b.metadata,
        first_controller.into_iter().collect(),
    );
    let storage = list(
        cx,
        "storage",
        "the storage list",
        &b.storage,
        nodes
            .iter()
            .filter(|n| n.role == Role::Compute)
            .map(|n| n.name.clone())
            .collect(),
    );
    if b.storage.is_none() && storage.is_empty() {
        cx.err(
            "/beegfs",
            ErrorKind::NoNodes {
                what: "BeeGFS storage (no compute nodes)",
            },
        );
    }
    let clients = list(
        cx,
        "clients",
        "the client list",
        &b.clients,
        nodes.iter().map(|n| n.name.clone()).collect(),
    );
    let mut dir = |field: &str, v: &Option<String>, default: &str| {
        let d = v.clone().unwrap_or_else(|| default.to_owned());
        check_guest_path(cx, format!("/beegfs/{field}"), "BeeGFS directory", &d);
        d
    };
    let management_dir = dir(
        "management-dir",
        &b.management_dir,
        file::DEFAULT_BEEGFS_MGMTD_DIR,
    );
    let metadata_dir = dir(
        "metadata-dir",
        &b.metadata_dir,
        file::DEFAULT_BEEGFS_META_DIR,
    );
    let storage_dir = dir(
        "storage-dir",
        &b.storage_dir,
        file::DEFAULT_BEEGFS_STORAGE_DIR,
    );
    let mount_point = b
        .client
        .mount_point
        .clone()
        .unwrap_or_else(|| file::DEFAULT_BEEGFS_MOUNT.to_owned());
    check_guest_path(
        cx,
        "/beegfs/client/mount-point".into(),
        "BeeGFS mount point",
        &mount_point,
    );
    if let Some(o) = &b.client.options
        && (o.is_empty() || o.contains(char::is_whitespace))
    {
        cx.err(
            "/beegfs/client/options",
            ErrorKind::BadValue {
                what: "BeeGFS mount options",
                value: o.clone(),
                reason: "write them comma-separated without spaces (`noatime,nodev`)".into(),
            },
        );
    }
    // BeeGFS keeps its data and mounts its filesystem on the node's own disk: a directory
    // inside a virtio-fs share would put a server's data on the host's share (read-only ones
    // cannot even hold it), a client mount point inside one would hide it.
    let services: [Placed<'_>; 4] = [
        (
            "management-dir",
            &b.management_dir,
            "BeeGFS management directory",
            &management_dir,
            vec![&management],
        ),
        (
            "metadata-dir",
            &b.metadata_dir,
            "BeeGFS metadata directory",
            &metadata_dir,
            metadata.iter().collect(),
        ),
        (
            "storage-dir",
            &b.storage_dir,
            "BeeGFS storage directory",
            &storage_dir,
            storage.iter().collect(),
        ),
        (
            "client/mount-point",
            &b.client.mount_point,
            "BeeGFS mount point",
            &mount_point,
            clients.iter().collect(),
        ),
    ];
    for (field, given, what, path, on) in services {
        let on: HashSet<&NodeName> = on.into_iter().collect();
        let clash = nodes.iter().filter(|n| on.contains(&n.name)).find_map(|n| {
            n.virtiofs
                .iter()
                .find(|m| overlaps(path, &m.mount_point))
                .map(|m| (n, m))
        });
        if let Some((node, share)) = clash {
            let at = if given.is_some() {
                format!("/beegfs/{field}")
            } else {
                "/beegfs".to_owned()
            };
            cx.err(
                at,
                ErrorKind::BadValue {
                    what,
                    value: path.to_owned(),
                    reason: format!(
                        "on {} it overlaps the virtio-fs share `{}` mounted at {}{}; {}: choose a path outside the shares (set `{}`)",
                        node.name,
                        share.tag,
                        share.mount_point,
                        if share.readonly { " (read-only)" } else { "" },
                        if field.contains("mount-point") {
                            "one mount would hide the other"
                        } else {
                            "BeeGFS keeps its data on the node's own disk"
                        },
                        field.replace('/', "."),
                    ),
                },
            );
        }
    }
    let (tls_cert_file, tls_key_file) = tls(cx, b);
    let packages = packages(cx, b, release);
    if b.version.major >= 8 && !b.extra_config.helperd.is_empty() {
        cx.err(
            "/beegfs/extra-config/helperd",
            ErrorKind::NotInBeegfsVersion {
                what: "the helper daemon (beegfs-helperd)",
                version: b.version.to_string(),
            },
        );
    }
    Beegfs {
        version: b.version,
        management,
        metadata,
        storage,
        clients,
        management_dir,
        metadata_dir,
        storage_dir,
        mount_point,
        mount_options: b.client.options.clone(),
        auth: b.auth,
        tls: b.tls,
        tls_cert_file,
        tls_key_file,
        packages,
        extra_config: b.extra_config.clone(),
    }
}

/// TLS: 8.x only; `tls: true` needs a certificate and key, which need `tls: true`.
fn tls(cx: &mut Ctx<'_>, b: &BeegfsSettings) -> (Option<PathBuf>, Option<PathBuf>) {
    if b.tls && b.version.major < 8 {
        cx.err(
            "/beegfs/tls",
            ErrorKind::NotInBeegfsVersion {
                what: "TLS (the 8.x management service's gRPC API)",
                version: b.version.to_string(),
            },
        );
    } else if b.tls && (b.tls_cert_file.is_none() || b.tls_key_file.is_none()) {
        cx.err(
            "/beegfs/tls",
            ErrorKind::Needs {
                field: "tls",
                needs: "`tls-cert-file` and `tls-key-file` (or `tls: false` for a lab)",
            },
        );
    }
    let mut path = |field: &'static str, v: &Option<String>, what| {
        let at = format!("/beegfs/{field}");
        if v.is_some() && !b.tls {
            cx.err(
                &at,
                ErrorKind::OnlyWith {
                    field,
                    with: "`tls: true`",
                },
            );
        }
        v.as_deref().and_then(|p| cx.path(&at, what, p))
    };
    let cert = path("tls-cert-file", &b.tls_cert_file, "TLS certificate");
    let key = path("tls-key-file", &b.tls_key_file, "TLS key");
    (cert, key)
}

/// Packages: preinstalled, a directory of `.deb` files, or an apt repository.
fn packages(cx: &mut Ctx<'_>, b: &BeegfsSettings, release: DebianRelease) -> BeegfsPackageSource {
    let Some(p) = &b.packages else {
        return BeegfsPackageSource::Preinstalled;
    };
    let at = "/beegfs/packages";
    let repo_only: [(&'static str, bool); 4] = [
        ("suite", p.suite.is_some()),
        ("component", p.component.is_some()),
        ("key", p.key.is_some()),
        ("trusted", p.trusted),
    ];
    match (&p.debs, &p.repo) {
        (Some(_), Some(_)) | (None, None) => {
            cx.err(
                at,
                ErrorKind::ExactlyOne {
                    what: "`packages`",
                    a: "debs",
                    b: "repo",
                },
            );
            BeegfsPackageSource::Preinstalled
        }
        (Some(d), None) => {
            for (field, set) in repo_only {
                if set {
                    cx.err(
                        format!("{at}/{field}"),
                        ErrorKind::OnlyWith {
                            field,
                            with: "`repo`",
                        },
                    );
                }
            }
            match cx.path(&format!("{at}/debs"), "package directory", d) {
                Some(dir) => BeegfsPackageSource::Debs { dir },
                None => BeegfsPackageSource::Preinstalled,
            }
        }
        (None, Some(url)) => {
            let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
            if !scheme_ok || url.contains(char::is_whitespace) || url.len() <= "https://".len() {
                cx.err(
                    format!("{at}/repo"),
                    ErrorKind::BadValue {
                        what: "BeeGFS repository",
                        value: url.clone(),
                        reason: "write an http:// or https:// URL without spaces".into(),
                    },
                );
            }
            let word = |cx: &mut Ctx<'_>, field: &'static str, v: &Option<String>, d: &str| {
                let v = v.clone().unwrap_or_else(|| d.to_owned());
                let ok = !v.is_empty()
                    && v.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"-._/".contains(&c));
                if !ok {
                    cx.err(
                        format!("{at}/{field}"),
                        ErrorKind::BadValue {
                            what: "repository field",
                            value: v.clone(),
                            reason: "use letters, digits and `-._/`".into(),
                        },
                    );
                }
                v
            };
            // BeeGFS publishes a suite per Debian release: the guests' by default.
            let suite = word(cx, "suite", &p.suite, release.as_str());
            let component = word(
                cx,
                "component",
                &p.component,
                file::DEFAULT_BEEGFS_REPO_COMPONENT,
            );
            let key = p
                .key
                .as_deref()
                .and_then(|k| cx.path(&format!("{at}/key"), "repository key", k));
            if p.key.is_none() && !p.trusted {
                cx.err(
                    format!("{at}/repo"),
                    ErrorKind::Needs {
                        field: "repo",
                        needs: "`key` (the repository's signing key) or `trusted: true`",
                    },
                );
            }
            if p.key.is_some() && p.trusted {
                cx.err(
                    format!("{at}/trusted"),
                    ErrorKind::ExactlyOne {
                        what: "a repository",
                        a: "key",
                        b: "trusted",
                    },
                );
            }
            BeegfsPackageSource::Repo {
                url: url.trim_end_matches('/').to_owned(),
                suite,
                component,
                key,
            }
        }
    }
}

/// A BeeGFS path and the nodes it is used on: the field, its value as written (if any),
/// what it is, the resolved path, the nodes.
type Placed<'a> = (
    &'static str,
    &'a Option<String>,
    &'static str,
    &'a str,
    Vec<&'a NodeName>,
);

/// Whether one of two absolute guest paths is the other or inside it.
fn overlaps(a: &str, b: &str) -> bool {
    let a = a.trim_end_matches('/');
    let b = b.trim_end_matches('/');
    let inside = |x: &str, y: &str| {
        x == y || y.is_empty() || x.strip_prefix(y).is_some_and(|r| r.starts_with('/'))
    };
    inside(a, b) || inside(b, a)
}

fn nodes_first(nodes: &[Node]) -> NodeName {
    nodes.first().map(|n| n.name.clone()).unwrap_or_else(|| {
        "ctl"
            .parse()
            .unwrap_or_else(|_| unreachable!("constant name parses"))
    })
}
