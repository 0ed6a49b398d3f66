//! Helpers shared by the rule tests: load a file from text and get its problems.
#![allow(dead_code, clippy::unwrap_used)] // each test binary uses part of it

use hpc_config::{LoadError, Problem, load_str};

/// The environment the tests load with: only `HOME` is set.
pub(crate) fn env(name: &str) -> Option<String> {
    match name {
        "HOME" => Some("/home/user".into()),
        _ => None,
    }
}

/// Every problem of `text` (empty when it loads).
pub(crate) fn problems(text: &str) -> Vec<Problem> {
    match load_str("test.yaml", text, &env) {
        Ok(_) => Vec::new(),
        Err(LoadError::Invalid(e)) => e.problems,
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// The only problem of `text`, as (line, column, message).
pub(crate) fn one(text: &str) -> (usize, usize, String) {
    let p = problems(text);
    assert_eq!(p.len(), 1, "expected one problem, got {p:#?}");
    (p[0].line, p[0].column, p[0].message.clone())
}
