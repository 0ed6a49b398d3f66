//! The command line, run as a user runs it.
#![allow(clippy::unwrap_used)] // test helpers panic on failure, as tests do

use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};

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

/// `image build` of `examples/full-stack.yaml` with BeeGFS `version`, its packages from
/// `debs` and its image and state in `dir`.
fn image_build_of_full_stack(dir: &Path, version: &str, debs: &Path) -> std::process::Output {
    let text = fs_err::read_to_string(repo().join("examples/full-stack.yaml"))
        .unwrap()
        .replace("version: \"7.4.6\"", &format!("version: \"{version}\""))
        .replace("/srv/hpc-up/full/beegfs-debs", debs.to_str().unwrap())
        .replace("/var/lib/hpc-up/images", dir.to_str().unwrap());
    let cfg = dir.join("full.yaml");
    fs_err::write(&cfg, text).unwrap();
    let state = dir.join("state");
    hpc_up(&[
        "--state-dir",
        state.to_str().unwrap(),
        "image",
        "build",
        cfg.to_str().unwrap(),
    ])
}

#[test]
fn image_build_refuses_an_empty_beegfs_debs_directory() {
    let dir = tempfile::tempdir().unwrap();
    let debs = dir.path().join("debs");
    fs_err::create_dir(&debs).unwrap();
    let o = image_build_of_full_stack(dir.path(), "7.4.6", &debs);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("holds no .deb files"), "{}", stderr(&o));
    assert!(!dir.path().join("base.qcow2").exists());
}

#[test]
fn image_build_refuses_beegfs_debs_of_another_release() {
    // The vendor's 7.4.7 packages (../shared/beegfs) for a file that asks for 8.1.0: every
    // package is named, with its version, before anything is built.
    let shared = repo().join("../shared/beegfs/7.4.7");
    if !shared.is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI has no {}",
            shared.display()
        );
        eprintln!("skipped: no {}", shared.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let o = image_build_of_full_stack(dir.path(), "8.1.0", &shared);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for p in [
        "beegfs-client",
        "beegfs-meta",
        "beegfs-mgmtd",
        "beegfs-storage",
    ] {
        assert!(
            err.contains(&format!(
                "{p}_7.4.7_all.deb is {p} 20:7.4.7, but the cluster file asks for BeeGFS 8.1.0"
            )) || err.contains(&format!(
                "{p}_7.4.7_amd64.deb is {p} 20:7.4.7, but the cluster file asks for BeeGFS 8.1.0"
            )),
            "{p}: {err}"
        );
    }
    assert!(
        err.contains("no .deb file for beegfs-tools (BeeGFS 8.1.0)"),
        "{err}"
    );
    assert!(!dir.path().join("base.qcow2").exists());
}

/// What bash offers for `words` (the last one being typed) with the completion script
/// `completion` loaded, as bash calls it on <TAB>.
fn bash_complete(completion: &Path, words: &[&str]) -> Vec<String> {
    let line = words.join(" ");
    let array: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "source {}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT={}; \
         _hpc__up hpc-up '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        completion.display(),
        array.join(" "),
        words.len() - 1,
        line.len(),
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let o = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert!(o.status.success(), "{script}: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The bash completion script, written to a file in `dir`.
fn bash_completion(dir: &Path) -> PathBuf {
    let o = hpc_up(&["completions", "bash"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let path = dir.join("hpc-up.bash");
    fs_err::write(&path, &o.stdout).unwrap();
    path
}

#[test]
fn completions_for_bash_zsh_and_fish_name_the_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let bash = bash_completion(dir.path());
    let o = Command::new("bash").arg("-n").arg(&bash).output().unwrap();
    assert!(o.status.success(), "bash -n: {}", stderr(&o));
    let text = fs_err::read_to_string(&bash).unwrap();
    assert!(text.contains("complete -F _hpc__up"), "{text}");
    // bash itself completes the subcommands from it
    assert_eq!(bash_complete(&bash, &["hpc-up", "pl"]), ["plan"]);
    assert_eq!(bash_complete(&bash, &["hpc-up", "u"]), ["up"]);
    let all = bash_complete(&bash, &["hpc-up", ""]);
    for sub in ["up", "plan", "down", "status", "completions", "man"] {
        assert!(all.iter().any(|c| c == sub), "{sub} not offered: {all:?}");
    }

    let o = hpc_up(&["completions", "zsh"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let zsh = String::from_utf8(o.stdout).unwrap();
    assert!(zsh.starts_with("#compdef hpc-up"), "{zsh}");
    for sub in ["up", "plan", "down"] {
        assert!(zsh.contains(&format!("\n'{sub}:")), "zsh: no {sub}:\n{zsh}");
    }

    let o = hpc_up(&["completions", "fish"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let fish = String::from_utf8(o.stdout).unwrap();
    for sub in ["up", "plan", "down"] {
        assert!(
            fish.contains(&format!("-f -a \"{sub}\"")),
            "fish: no {sub}:\n{fish}"
        );
    }
}

/// Completion after a subcommand (`hpc-up up --no<TAB>`). clap_complete 4.6.12 spells the
/// dispatch states of a hyphenated program differently in its loop (`hpc__up__subcmd__up`)
/// and its case arms (`hpc__subcmd__up__subcmd__up`), so nothing after the subcommand ever
/// completes (clap-rs/clap#6421).
#[test]
fn bash_completes_a_subcommands_options() {
    let dir = tempfile::tempdir().unwrap();
    let bash = bash_completion(dir.path());
    assert_eq!(
        bash_complete(&bash, &["hpc-up", "up", "--no"]),
        ["--no-ssh"]
    );
    assert_eq!(
        bash_complete(&bash, &["hpc-up", "plan", "--out"]),
        ["--output"]
    );
}

#[test]
fn man_prints_a_roff_page_naming_the_subcommands() {
    let o = hpc_up(&["man"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let roff = String::from_utf8(o.stdout).unwrap();
    assert!(roff.contains("\n.TH hpc-up 1 "), "{roff}");
    assert!(roff.contains("\n.SH SYNOPSIS\n"), "{roff}");
    assert!(roff.contains("\n.SH SUBCOMMANDS\n"), "{roff}");
    for sub in ["up", "plan", "down", "status", "completions", "man"] {
        assert!(
            roff.contains(&format!("\nhpc\\-up\\-{sub}(1)\n")),
            "no {sub}:\n{roff}"
        );
    }
}

/// `hpc-up ARGS` with standard output into a pipe of one page (4 KiB); `keep` bytes are read
/// from it, then its read end is closed (`keep == 0`: closed before hpc-up starts, so no
/// write of its can succeed). Returns the status, the bytes read, and standard error.
fn into_closed_pipe(args: &[&str], keep: usize) -> (ExitStatus, Vec<u8>, String) {
    use nix::fcntl::{FcntlArg, fcntl};
    let (mut reader, writer) = std::io::pipe().unwrap();
    fcntl(writer.as_fd(), FcntlArg::F_SETPIPE_SZ(4096)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hpc-up"));
    cmd.args(args)
        .current_dir(repo())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped());
    let mut read = vec![0u8; keep];
    let child = if keep == 0 {
        drop(reader);
        cmd.spawn().unwrap()
    } else {
        let child = cmd.spawn().unwrap();
        reader.read_exact(&mut read).unwrap();
        drop(reader);
        child
    };
    drop(cmd);
    let o = child.wait_with_output().unwrap();
    (o.status, read, stderr(&o))
}

/// Ended by the closed pipe, quietly: exit 141 (128 + SIGPIPE, as a shell reports a program
/// SIGPIPE killed), or killed by SIGPIPE itself; no panic, no error message.
fn assert_quiet_pipe_end(status: ExitStatus, err: &str, what: &str) {
    use std::os::unix::process::ExitStatusExt;
    assert!(
        status.code() == Some(141) || status.signal() == Some(13),
        "{what}: {status}; stderr:\n{err}"
    );
    for bad in ["panicked", "Broken pipe", "rror"] {
        assert!(!err.contains(bad), "{what}: stderr has {bad:?}:\n{err}");
    }
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().join("state");
    let plan = [
        "--output",
        "json",
        "--connect",
        "test:///default",
        "--state-dir",
        state_dir.to_str().unwrap(),
        "plan",
        "examples/minimal.yaml",
    ];
    let (status, _, err) = into_closed_pipe(&plan, 0);
    assert_quiet_pipe_end(status, &err, "plan into a closed pipe");

    // `hpc-up schema | head -c 10`: the schema is far larger than the pipe, so hpc-up is
    // still writing when the reader goes away.
    let schema = fs_err::read(repo().join("schema/hpc-config.schema.json")).unwrap();
    assert!(schema.len() > 2 * 4096, "{}", schema.len());
    let (status, head, err) = into_closed_pipe(&["schema"], 10);
    assert_eq!(head, schema[..10]);
    assert_quiet_pipe_end(status, &err, "schema | head -c 10");
}

#[test]
fn plan_on_the_test_driver_creates_everything_and_nothing() {
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().join("state");
    let args = |json: bool| {
        let mut a = vec![
            "--connect",
            "test:///default",
            "--state-dir",
            state_dir.to_str().unwrap(),
            "plan",
            "examples/minimal.yaml",
        ];
        if json {
            a.splice(0..0, ["--output", "json"]);
        }
        a
    };

    let o = hpc_up(&args(false));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    let (libvirt, nodes) = text
        .strip_prefix("libvirt:\n")
        .and_then(|t| t.split_once("nodes:\n"))
        .unwrap_or_else(|| panic!("{text}"));
    let objects: Vec<&str> = libvirt.lines().collect();
    // network, pool, a volume and a domain per node
    assert_eq!(objects.len(), 8, "{text}");
    for o in &objects {
        assert!(o.trim_start().starts_with("create "), "{o}");
        assert!(o.ends_with(" test:///default"), "{o}");
    }
    let states: Vec<&str> = nodes.lines().filter(|l| !l.starts_with("    ")).collect();
    assert_eq!(states.len(), 4, "3 nodes and the summary:\n{text}");
    for (line, node) in states.iter().zip(["ctl", "cn1", "cn2"]) {
        assert!(
            line.starts_with(&format!("  {node}: known after apply")),
            "{node}:\n{text}"
        );
    }
    assert!(
        text.ends_with(
            "8 libvirt change(s), 0 node step change(s), 3 node(s) known after apply or unreachable\n"
        ),
        "{text}"
    );

    let o = hpc_up(&args(true));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let libvirt = v["libvirt"].as_array().unwrap();
    assert_eq!(libvirt.len(), 8, "{v}");
    assert!(libvirt.iter().all(|o| o["action"] == "create"), "{v}");
    let nodes = v["nodes"].as_array().unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n["node"].as_str().unwrap()).collect();
    assert_eq!(names, ["ctl", "cn1", "cn2"]);
    assert!(
        nodes.iter().all(|n| n["state"] == "known-after-apply"),
        "{v}"
    );

    // Planning made nothing: no state directory (journal, key pair, secrets, seeds).
    assert!(!state_dir.exists());
    assert_eq!(fs_err::read_dir(state.path()).unwrap().count(), 0);
}
