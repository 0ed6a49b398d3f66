//! Loading: text → YAML with positions → schema check → serde → semantic checks → [`Cluster`].

use std::path::Path;

use serde_json::Value;

use crate::diagnostic::{ConfigErrors, LoadError, Problem, ProblemBuilder};
use crate::file::ClusterFile;
use crate::model::Cluster;
use crate::validate::{self, EnvLookup};
use crate::yaml::{self, SpanIndex};

/// Load and validate the cluster file at `path`, expanding `${VAR}` from the process
/// environment.
pub fn load_file(path: &Path) -> Result<Cluster, LoadError> {
    let text = fs_err::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    let env = |name: &str| std::env::var(name).ok();
    load_str(&path.display().to_string(), &text, &env)
}

/// Load and validate cluster file text; `file` names it in diagnostics.
pub fn load_str(file: &str, text: &str, env: EnvLookup<'_>) -> Result<Cluster, LoadError> {
    parse_str(file, text, env).map(|(_, cluster)| cluster)
}

/// Like [`load_str`], also returning the file as written (for tools that show or edit it).
pub fn parse_str(
    file: &str,
    text: &str,
    env: EnvLookup<'_>,
) -> Result<(ClusterFile, Cluster), LoadError> {
    let builder = ProblemBuilder::new(text);
    let invalid = |problems: Vec<Problem>| {
        LoadError::Invalid(Box::new(ConfigErrors::new(file, text, problems)))
    };

    let (doc, index, syntax) = yaml::parse(text);
    let mut problems: Vec<Problem> = syntax
        .into_iter()
        .map(|p| builder.problem("", p.span, p.message, "here", p.help))
        .collect();
    let Some(mut doc) = doc else {
        return Err(invalid(problems));
    };

    // Structural problems, all at once.
    let structural = crate::schema::check(&doc);
    let mut repairable = true;
    for p in &structural {
        let span = if p.at_key {
            index.key_or_value(&p.pointer)
        } else {
            index.value(&p.pointer)
        };
        problems.push(builder.problem(
            &p.pointer,
            span,
            p.message.clone(),
            p.label,
            p.help.clone(),
        ));
        if p.removable {
            remove(&mut doc, &p.pointer);
        } else {
            repairable = false;
        }
    }
    if !repairable {
        return Err(invalid(problems));
    }

    // Typed parse of what is left (the schema check removed what it reported).
    let file_types: ClusterFile = match serde_path_to_error::deserialize(&doc) {
        Ok(f) => f,
        Err(e) => {
            if structural.is_empty() {
                let pointer = pointer_of(e.path());
                problems.push(builder.problem(
                    &pointer,
                    index.value(&pointer),
                    e.inner().to_string(),
                    "invalid value",
                    None,
                ));
            }
            return Err(invalid(problems));
        }
    };

    // Cross-field rules.
    match validate::resolve(&file_types, env) {
        Ok(cluster) if problems.is_empty() => Ok((file_types, cluster)),
        Ok(_) => Err(invalid(problems)),
        Err(errors) => {
            problems.extend(
                errors
                    .into_iter()
                    .map(|e| semantic_problem(&builder, &index, e)),
            );
            Err(invalid(problems))
        }
    }
}

fn semantic_problem(
    builder: &ProblemBuilder<'_>,
    index: &SpanIndex,
    e: validate::ValidationError,
) -> Problem {
    let span = index.value(&e.at);
    builder.problem(&e.at, span, e.kind.to_string(), "here", e.kind.help())
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } => {
                out.push('/');
                out.push_str(&yaml::escape_token(key));
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    out
}

/// Remove the value at `pointer` (a key of a mapping; list items are left in place).
fn remove(doc: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let key = yaml::unescape_token(last);
    if let Some(Value::Object(map)) = doc.pointer_mut(parent) {
        map.shift_remove(&key);
    }
}
