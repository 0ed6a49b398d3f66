//! Shared test helpers.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

pub fn load(name: &str) -> hpc_config::Cluster {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    let text = fs_err::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let env = |var: &str| (var == "HOME").then(|| "/home/user".to_owned());
    hpc_config::load_str(name, &text, &env).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

pub const EXAMPLES: [&str; 3] = ["minimal.yaml", "gpu.yaml", "full-stack.yaml"];
