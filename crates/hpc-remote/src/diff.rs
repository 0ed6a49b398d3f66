//! Human-readable descriptions of what a check run found would change.

use std::fmt::Write as _;

use similar::TextDiff;

use crate::step::{Owner, Step, StepKind};

/// Describes a would-be change of `step`: a unified diff for non-secret file content,
/// then mode/owner changes and the runner's notes. Secret content is never shown.
pub(crate) fn describe(
    host: &str,
    step: &Step,
    notes: &[String],
    meta: Option<&str>,
    content_changed: bool,
    old: Option<&[u8]>,
    old_big: bool,
) -> String {
    let mut out = String::new();
    match &step.kind {
        StepKind::File(f) => {
            let absent = meta == Some("absent");
            if content_changed {
                if f.secret {
                    let _ = writeln!(
                        out,
                        "{host}:{}: secret content would change (not shown)",
                        f.path
                    );
                } else if old_big {
                    let _ = writeln!(
                        out,
                        "{host}:{}: content would change (current file too large to diff)",
                        f.path
                    );
                } else {
                    let old_bytes = if absent { Some(&[][..]) } else { old };
                    match (
                        old_bytes.map(std::str::from_utf8),
                        std::str::from_utf8(&f.content),
                    ) {
                        (Some(Ok(a)), Ok(b)) => {
                            let old_name = if absent {
                                "/dev/null".to_owned()
                            } else {
                                format!("{host}:{} (current)", f.path)
                            };
                            let new_name = format!("{host}:{} (planned)", f.path);
                            let _ = write!(
                                out,
                                "{}",
                                TextDiff::from_lines(a, b)
                                    .unified_diff()
                                    .context_radius(3)
                                    .header(&old_name, &new_name)
                            );
                        }
                        _ => {
                            let _ = writeln!(out, "{host}:{}: binary content would change", f.path);
                        }
                    }
                }
            }
            meta_lines(&mut out, host, &f.path, meta, f.mode, &f.owner);
        }
        StepKind::Directory(d) => meta_lines(&mut out, host, &d.path, meta, d.mode, &d.owner),
        StepKind::Command(c) => {
            let _ = writeln!(
                out,
                "{host}: would run: {}",
                crate::quote::quote_argv(&c.argv)
            );
        }
        StepKind::Service(_) | StepKind::Mount(_) => {}
    }
    for note in notes {
        if matches!(step.kind, StepKind::Command(_)) {
            continue;
        }
        let _ = writeln!(out, "{host}: {}: {note}", step.id);
    }
    out
}

fn meta_lines(
    out: &mut String,
    host: &str,
    path: &str,
    meta: Option<&str>,
    mode: u32,
    owner: &Owner,
) {
    let Some(meta) = meta else { return };
    if meta == "absent" {
        let _ = writeln!(
            out,
            "{host}:{path}: would be created with mode {:04o}",
            mode & 0o7777
        );
        return;
    }
    let mut it = meta.split(' ');
    let (cur_mode, cur_user, cur_group) = (
        it.next().unwrap_or(""),
        it.next().unwrap_or(""),
        it.next().unwrap_or(""),
    );
    let want_mode = format!("{:o}", mode & 0o7777);
    if cur_mode != want_mode {
        let _ = writeln!(out, "{host}:{path}: mode {cur_mode:0>4} -> {want_mode:0>4}");
    }
    if let Some(u) = &owner.user
        && u != cur_user
    {
        let _ = writeln!(out, "{host}:{path}: owner {cur_user} -> {u}");
    }
    if let Some(g) = &owner.group
        && g != cur_group
    {
        let _ = writeln!(out, "{host}:{path}: group {cur_group} -> {g}");
    }
}
