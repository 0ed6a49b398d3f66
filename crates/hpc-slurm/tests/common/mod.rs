//! Shared test helpers.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

pub fn load(name: &str) -> hpc_config::Cluster {
    load_text(name, &example(name))
}

/// The example `name` with `image.release: <release>` in its file (instead of its own).
pub fn load_for(name: &str, release: hpc_config::DebianRelease) -> hpc_config::Cluster {
    let text = without_release(name);
    let with = text.replacen(
        "\nimage:\n",
        &format!("\nimage:\n  release: {release}\n"),
        1,
    );
    assert_ne!(with, text, "{name} has no `image:` section");
    load_text(name, &with)
}

/// The example `name` without an `image.release` line: the default release.
pub fn load_default(name: &str) -> hpc_config::Cluster {
    load_text(name, &without_release(name))
}

fn without_release(name: &str) -> String {
    example(name)
        .lines()
        .filter(|l| !l.starts_with("  release: "))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    fs_err::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load_text(name: &str, text: &str) -> hpc_config::Cluster {
    let env = |var: &str| (var == "HOME").then(|| "/home/user".to_owned());
    hpc_config::load_str(name, text, &env).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

pub const EXAMPLES: [&str; 3] = ["minimal.yaml", "gpu.yaml", "full-stack.yaml"];
