//! The guest side: the host steps that mount a node's shares.

use hpc_config::{Mount, Node};
use hpc_remote::{EnsureDirectory, EnsureMount, Owner, RunCommand, StepKind};

/// The mount options of a share: `rw`/`ro`, the user's options, `nofail`.
pub fn mount_options(m: &Mount) -> String {
    let mut o = vec![if m.readonly { "ro" } else { "rw" }.to_owned()];
    if let Some(extra) = &m.options {
        o.extend(
            extra
                .split(',')
                .filter(|x| !x.is_empty() && *x != "ro" && *x != "rw" && *x != "nofail")
                .map(str::to_owned),
        );
    }
    o.push("nofail".to_owned());
    o.join(",")
}

/// Step ids of one share (stable, so re-runs compare the same steps).
fn id(m: &Mount, what: &str) -> String {
    format!("virtiofs-{}-{what}", m.tag)
}

/// The steps that mount every share of `node`, in order, as `(id, step)`.
pub fn guest_steps(node: &Node) -> Vec<(String, StepKind)> {
    let mut out: Vec<(String, StepKind)> = Vec::new();
    for m in &node.virtiofs {
        let mount = id(m, "mount");
        out.push((
            mount.clone(),
            EnsureMount {
                source: m.tag.to_string(),
                target: m.mount_point.clone(),
                fstype: "virtiofs".to_owned(),
                options: mount_options(m),
                mounted: true,
            }
            .into(),
        ));
        // A changed fstab line (e.g. rw → ro) takes effect on the mounted share too.
        out.push((
            id(m, "remount"),
            RunCommand::new(["mount", "-o", "remount", m.mount_point.as_str()])
                .when_changed([mount])
                .into(),
        ));
        if !m.readonly && (m.owner.is_some() || m.group.is_some() || m.mode.is_some()) {
            let owner = Owner {
                user: m.owner.clone(),
                group: m.group.clone(),
            };
            let mode = m.mode.map_or(0o755, |x| x.bits());
            out.push((
                id(m, "dir"),
                EnsureDirectory::new(m.mount_point.as_str(), mode)
                    .owner(owner)
                    .into(),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::node;

    #[test]
    fn options_put_ro_first_and_nofail_last() {
        let n = node(
            "[{tag: a, host-path: /a, mount-point: /a, readonly: true, options: \"rw,relatime\"}, {tag: b, host-path: /b, mount-point: /b}]",
        );
        assert_eq!(mount_options(&n.virtiofs[0]), "ro,relatime,nofail");
        assert_eq!(mount_options(&n.virtiofs[1]), "rw,nofail");
    }

    #[test]
    fn steps_mount_remount_then_mode() {
        let n = node("[{tag: a, host-path: /a, mount-point: /mnt/a, mode: \"0775\", owner: root}]");
        let steps = guest_steps(&n);
        let ids: Vec<&str> = steps.iter().map(|(i, _)| i.as_str()).collect();
        assert_eq!(
            ids,
            ["virtiofs-a-mount", "virtiofs-a-remount", "virtiofs-a-dir"]
        );
        match &guest_steps(&n)[0].1 {
            StepKind::Mount(m) => {
                assert_eq!(m.fstab_line(), "a /mnt/a virtiofs rw,nofail 0 0");
            }
            other => panic!("{other:?}"),
        }
    }
}
