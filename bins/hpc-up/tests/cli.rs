//! The command line, run as a user runs it.
#![allow(clippy::unwrap_used)] // test helpers panic on failure, as tests do

use std::path::Path;
use std::process::Output;

mod common;

use common::{hpc_up_cli as hpc_up, read_tree, repo};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn valid_examples_exit_0() {
    for f in [
        "examples/minimal.yaml",
        "examples/gpu.yaml",
        "examples/full-stack.yaml",
    ] {
        let o = hpc_up(&["validate", f]);
        assert_eq!(o.status.code(), Some(0), "{f}: {}", stderr(&o));
    }
}

#[test]
fn five_mistakes_give_five_diagnostics_and_exit_1() {
    let f = "tests/fixtures/five-mistakes.yaml";
    let o = hpc_up(&["validate", f]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    for at in ["12:3", "16:13", "18:15", "20:13", "24:15"] {
        // the graphical report's header and the one-line summary both name file:line:column
        assert!(
            err.contains(&format!("[{f}:{at}]")),
            "no snippet at {at}:\n{err}"
        );
        assert!(
            err.contains(&format!("{f}:{at}: ")),
            "no summary at {at}:\n{err}"
        );
    }
    assert!(err.contains("5 problems"), "{err}");
    assert!(err.contains("did you mean `memory`?"), "{err}");

    let o = hpc_up(&["--output", "json", "validate", f]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], false);
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 5);
    assert_eq!(problems[0]["line"], 12);
    assert_eq!(problems[0]["column"], 3);
    assert_eq!(problems[0]["pointer"], "/controller/memroy");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(hpc_up(&["validate"]).status.code(), Some(2));
    assert_eq!(hpc_up(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn unreadable_file_names_the_path() {
    let o = hpc_up(&["validate", "no/such/file.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no/such/file.yaml"), "{}", stderr(&o));
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let o = hpc_up(&["schema"]);
    assert_eq!(o.status.code(), Some(0));
    let committed = fs_err::read_to_string(repo().join("schema/hpc-config.schema.json")).unwrap();
    assert_eq!(String::from_utf8(o.stdout).unwrap(), committed);
}

#[test]
fn render_is_deterministic() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for d in [&a, &b] {
        let o = hpc_up(&[
            "render",
            "examples/full-stack.yaml",
            "--out",
            d.path().to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let (ta, tb) = (read_tree(a.path()), read_tree(b.path()));
    assert!(!ta.is_empty());
    assert!(ta.iter().any(|(p, _)| p == Path::new("cluster.json")));
    assert!(
        ta.iter()
            .any(|(p, _)| p == Path::new("libvirt/local/domain/full-ctl.xml"))
            && ta.iter().any(|(p, _)| p == Path::new("slurm/slurm.conf")),
        "{:?}",
        ta.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    assert_eq!(ta, tb);
    // nothing half-written is left beside the artefacts
    assert!(
        ta.iter()
            .all(|(p, _)| !p.to_string_lossy().starts_with(".tmp"))
    );
}

#[test]
fn render_over_an_existing_tree_replaces_what_changed_and_leaves_no_temporary_files() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let render = |extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend([
            "render",
            "examples/full-stack.yaml",
            "--out",
            out.to_str().unwrap(),
        ]);
        let o = hpc_up(&args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        o
    };
    render(&[]);
    let first = read_tree(&out);

    // A damaged artefact, and a file of the user's beside the artefacts.
    fs_err::write(out.join("slurm/slurm.conf"), "half a fi").unwrap();
    fs_err::write(out.join("notes.txt"), "mine\n").unwrap();
    let o = render(&["--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let files = v["files"].as_array().unwrap();
    let unchanged = v["unchanged"].as_array().unwrap();
    assert_eq!(files.len(), first.len());
    assert_eq!(unchanged.len(), first.len() - 1);
    assert!(!unchanged.iter().any(|f| f == "slurm/slurm.conf"), "{v}");

    let mut second = read_tree(&out);
    let notes = second.iter().position(|(p, _)| p == Path::new("notes.txt"));
    assert_eq!(second.remove(notes.unwrap()).1, b"mine\n");
    assert_eq!(second, first);
    // nothing half-written is left beside the artefacts, in any directory
    for (p, _) in &second {
        let name = p.file_name().unwrap().to_string_lossy();
        assert!(!name.starts_with('.'), "left behind: {}", p.display());
    }

    // Text output: the files written, then the ones already up to date.
    let o = render(&[]);
    assert!(
        stderr(&o).contains(&format!(
            "{} files in {} were already up to date",
            first.len(),
            out.display()
        )),
        "{}",
        stderr(&o)
    );
}

#[test]
fn render_refuses_an_invalid_file_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let o = hpc_up(&[
        "render",
        "tests/fixtures/five-mistakes.yaml",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!out.exists());
}

#[test]
fn image_build_refuses_an_empty_beegfs_debs_directory() {
    let dir = tempfile::tempdir().unwrap();
    let debs = dir.path().join("debs");
    fs_err::create_dir(&debs).unwrap();
    let text = fs_err::read_to_string(repo().join("examples/full-stack.yaml"))
        .unwrap()
        .replace("/srv/hpc-up/full/beegfs-debs", debs.to_str().unwrap())
        .replace("/var/lib/hpc-up/images", dir.path().to_str().unwrap());
    let cfg = dir.path().join("full.yaml");
    fs_err::write(&cfg, text).unwrap();
    let state = dir.path().join("state");
    let o = hpc_up(&[
        "--state-dir",
        state.to_str().unwrap(),
        "image",
        "build",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("holds no .deb files"), "{}", stderr(&o));
    assert!(!dir.path().join("base.qcow2").exists());
}
