//! Loading: bytes → text → YAML with positions → schema check → serde → semantic checks →
//! [`Cluster`].
//!
//! Every step is bounded by [`crate::limits`]: the file's size, its nesting and expanded
//! size, the nodes it makes, the problems it reports.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use serde_json::Value;

use crate::diagnostic::{ConfigErrors, LineIndex, LoadError, Pending};
use crate::file::ClusterFile;
use crate::limits::{MAX_COLLECTED, MAX_FILE_BYTES};
use crate::model::Cluster;
use crate::validate::{self, EnvLookup};
use crate::yaml::{self, SpanIndex};

/// Load and validate the cluster file at `path`, expanding `${VAR}` from the process
/// environment.
///
/// Only a regular file of at most [`MAX_FILE_BYTES`] bytes of UTF-8 is read: a directory,
/// FIFO, device or socket is refused at once (a FIFO is opened without blocking).
pub fn load_file(path: &Path) -> Result<Cluster, LoadError> {
    let text = read_file(path)?;
    let env = |name: &str| std::env::var(name).ok();
    load_str(&path.display().to_string(), &text, &env)
}

/// The text of the cluster file at `path`, checked as [`load_file`] says.
pub fn read_file(path: &Path) -> Result<String, LoadError> {
    let read_error = |source| LoadError::Read {
        path: path.to_owned(),
        source,
    };
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(read_error)?;
    let kind = file.metadata().map_err(read_error)?.file_type();
    let not_a_file = |kind| LoadError::NotAFile {
        path: path.to_owned(),
        kind,
    };
    if kind.is_dir() {
        return Err(not_a_file("a directory"));
    } else if kind.is_fifo() {
        return Err(not_a_file("a FIFO (named pipe)"));
    } else if kind.is_char_device() {
        return Err(not_a_file("a character device"));
    } else if kind.is_block_device() {
        return Err(not_a_file("a block device"));
    } else if kind.is_socket() {
        return Err(not_a_file("a socket"));
    } else if !kind.is_file() {
        return Err(not_a_file("not a regular file"));
    }
    // Read one byte past the limit: the file may grow while it is read.
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(LoadError::TooLarge {
            path: path.to_owned(),
            limit: MAX_FILE_BYTES,
        });
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        // The valid prefix is text: count lines and characters in it.
        let prefix = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
        let (line, column) = LineIndex::new(prefix).line_column(valid);
        LoadError::NotUtf8 {
            path: path.to_owned(),
            line,
            column,
        }
    })
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
    let invalid = |problems: Vec<Pending>, uncounted: usize| {
        LoadError::Invalid(Box::new(ConfigErrors::new(file, text, problems, uncounted)))
    };
    if text.len() > MAX_FILE_BYTES {
        let problem = Pending::new(
            "",
            0..0,
            format!(
                "the file is {} bytes; a cluster file may be at most {MAX_FILE_BYTES} bytes",
                text.len()
            ),
            "here",
            None,
        );
        return Err(invalid(vec![problem], 0));
    }

    let parsed = yaml::parse(text);
    let (index, mut uncounted) = (parsed.index, parsed.problems.uncounted);
    let mut problems: Vec<Pending> = parsed
        .problems
        .kept
        .into_iter()
        .map(|p| Pending::new("", p.span, p.message, "here", p.help))
        .collect();
    let Some(mut doc) = parsed.value else {
        return Err(invalid(problems, uncounted));
    };

    // Structural problems, all at once (as many as are worth reporting).
    let structural = crate::schema::check(&doc);
    let mut repairable = structural.uncounted == 0 && structural.problems.len() <= MAX_COLLECTED;
    for p in structural.problems.iter().take(MAX_COLLECTED) {
        let span = if p.at_key {
            index.key_or_value(&p.pointer)
        } else {
            index.value(&p.pointer)
        };
        problems.push(Pending::new(
            &p.pointer,
            span,
            p.message.clone(),
            p.label,
            p.help.clone(),
        ));
        if !p.removable {
            repairable = false;
        }
    }
    uncounted += structural.uncounted + structural.problems.len().saturating_sub(MAX_COLLECTED);
    if !repairable {
        return Err(invalid(problems, uncounted));
    }
    let structural = structural.problems;
    remove_all(&mut doc, structural.iter().map(|p| p.pointer.as_str()));
    // A value removed for being wrong is missing to the rules that follow: their problems
    // about its mapping ("a counted group needs `count`") would only repeat this one.
    let repaired: HashSet<&str> = structural
        .iter()
        .filter(|p| !p.at_key)
        .filter_map(|p| p.pointer.rsplit_once('/').map(|(parent, _)| parent))
        .collect();
    let echoes = |at: &str| {
        repaired.contains(at)
            || at
                .rsplit_once('/')
                .is_some_and(|(parent, _)| repaired.contains(parent))
    };

    // Typed parse of what is left (the schema check removed what it reported).
    let file_types: ClusterFile = match serde_path_to_error::deserialize(&doc) {
        Ok(f) => f,
        Err(e) => {
            if structural.is_empty() {
                let pointer = pointer_of(e.path());
                problems.push(Pending::new(
                    &pointer,
                    index.value(&pointer),
                    e.inner().to_string(),
                    "invalid value",
                    None,
                ));
            }
            return Err(invalid(problems, uncounted));
        }
    };

    // Cross-field rules.
    match validate::resolve_counted(&file_types, env) {
        Ok(cluster) if problems.is_empty() => Ok((file_types, cluster)),
        Ok(_) => Err(invalid(problems, uncounted)),
        Err(rejected) => {
            uncounted += rejected.uncounted;
            problems.extend(
                rejected
                    .kept
                    .into_iter()
                    .filter(|e| !echoes(&e.at))
                    .map(|e| semantic_problem(&index, e)),
            );
            Err(invalid(problems, uncounted))
        }
    }
}

fn semantic_problem(index: &SpanIndex, e: validate::ValidationError) -> Pending {
    let span = index.value(&e.at);
    Pending::new(&e.at, span, e.kind.to_string(), "here", e.kind.help())
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

/// Remove the values at `pointers` (keys of mappings; list items are left in place). Keys
/// of one mapping are removed together, so that removing many stays linear.
fn remove_all<'a>(doc: &mut Value, pointers: impl Iterator<Item = &'a str>) {
    let mut by_parent: BTreeMap<&str, HashSet<String>> = BTreeMap::new();
    for pointer in pointers {
        if let Some((parent, last)) = pointer.rsplit_once('/') {
            by_parent
                .entry(parent)
                .or_default()
                .insert(yaml::unescape_token(last));
        }
    }
    for (parent, keys) in by_parent {
        if let Some(Value::Object(map)) = doc.pointer_mut(parent) {
            map.retain(|k, _| !keys.contains(k));
        }
    }
}
