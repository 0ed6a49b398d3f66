//! The JSON Schema of the cluster file, generated from [`ClusterFile`], and the schema check
//! the loader runs so that every structural problem is reported at once.
//!
//! serde stays the runtime source of truth: the schema check only finds problems earlier and
//! all together; messages for values of our own types come from their `FromStr` impls, so the
//! two never disagree in wording.

use std::collections::HashSet;
use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use crate::file::ClusterFile;
use crate::limits::MAX_COLLECTED;
use crate::types;
use crate::validate::closest;

/// Where the schema is published (the `$id` of the generated document).
pub const SCHEMA_ID: &str = "https://hpc-up.invalid/schema/hpc-config.schema.json";

/// The JSON Schema of the cluster file.
pub fn json_schema() -> Value {
    let mut schema = schemars::schema_for!(ClusterFile).to_value();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("$id".into(), Value::String(SCHEMA_ID.into()));
    }
    schema
}

/// The schema as the committed file holds it: pretty JSON with a final newline.
pub fn schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&json_schema())
        .unwrap_or_else(|_| unreachable!("a JSON value always serializes"));
    s.push('\n');
    s
}

/// The schema, generated once per process (the check needs it for every report).
fn schema() -> &'static Value {
    static S: OnceLock<Value> = OnceLock::new();
    S.get_or_init(json_schema)
}

fn validator() -> Option<&'static jsonschema::Validator> {
    static V: OnceLock<Option<jsonschema::Validator>> = OnceLock::new();
    V.get_or_init(|| {
        jsonschema::options()
            .should_validate_formats(true)
            .build(schema())
            .ok()
    })
    .as_ref()
}

/// A structural problem: where (JSON pointer), whether it is about the key, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SchemaProblem {
    pub(crate) pointer: String,
    pub(crate) at_key: bool,
    pub(crate) message: String,
    pub(crate) label: &'static str,
    pub(crate) help: Option<String>,
    /// Removing this pointer from the document removes the problem (unknown keys, bad
    /// optional values), so that deeper checks can still run on the rest.
    pub(crate) removable: bool,
}

/// Structural problems: the first [`MAX_COLLECTED`] and the number of schema errors beyond.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    pub(crate) problems: Vec<SchemaProblem>,
    pub(crate) uncounted: usize,
}

/// Check `doc` against the schema.
pub(crate) fn check(doc: &Value) -> Checked {
    let mut checked = Checked::default();
    let Some(v) = validator() else {
        return checked;
    };
    // The common case, a valid file, takes the validator's fast path.
    if v.is_valid(doc) {
        return checked;
    }
    let mut out = Reported::default();
    for e in v.iter_errors(doc) {
        if out.problems.len() >= MAX_COLLECTED {
            checked.uncounted += 1;
        } else {
            report(schema(), &e, &mut out);
        }
    }
    checked.problems = out.problems;
    checked.uncounted += out.skipped;
    checked
}

/// Problems so far, and the values that have one (one message per value).
#[derive(Default)]
struct Reported {
    problems: Vec<SchemaProblem>,
    values: HashSet<String>,
    /// Problems found and not made.
    skipped: usize,
}

impl Reported {
    fn push(&mut self, p: SchemaProblem) {
        self.problems.push(p);
    }
}

/// The errors of the one branch of an `anyOf`/`oneOf` that fits the value's type (for
/// `Option<T>`: the `T` branch), so that a mistake deep inside an optional section is
/// reported where it is, not as "matches none of the alternatives" at the section.
fn fitting_branch<'e>(
    pointer: &str,
    context: &'e [Vec<jsonschema::ValidationError<'static>>],
) -> Option<&'e [jsonschema::ValidationError<'static>]> {
    let fits: Vec<&Vec<jsonschema::ValidationError<'static>>> = context
        .iter()
        .filter(|branch| {
            !branch.iter().all(|e| {
                matches!(e.kind(), ValidationErrorKind::Type { .. })
                    && e.instance_path().as_str() == pointer
            })
        })
        .collect();
    match fits.as_slice() {
        [one]
            if one.iter().any(|e| {
                e.instance_path().as_str() != pointer
                    || matches!(e.kind(), ValidationErrorKind::Required { .. })
            }) =>
        {
            Some(one.as_slice())
        }
        _ => None,
    }
}

fn report(schema: &Value, e: &jsonschema::ValidationError<'_>, out: &mut Reported) {
    let pointer = e.instance_path().as_str().to_owned();
    let walk = walk(schema, &pointer);
    match e.kind() {
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context }
            if fitting_branch(&pointer, context).is_some() =>
        {
            for inner in fitting_branch(&pointer, context).unwrap_or_default() {
                report(schema, inner, out);
            }
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed = walk.properties();
            out.skipped += unexpected.len().saturating_sub(MAX_COLLECTED);
            for key in unexpected.iter().take(MAX_COLLECTED) {
                let candidates: Vec<&str> = allowed.iter().map(String::as_str).collect();
                let help = match closest(key, &candidates) {
                    Some(s) => Some(format!("did you mean `{s}`?")),
                    None if !allowed.is_empty() => {
                        Some(format!("known keys here: {}", allowed.join(", ")))
                    }
                    None => None,
                };
                out.push(SchemaProblem {
                    pointer: format!("{pointer}/{}", crate::yaml::escape_token(key)),
                    at_key: true,
                    message: format!("unknown key `{key}`"),
                    label: "unknown key",
                    help,
                    removable: true,
                });
            }
        }
        ValidationErrorKind::Required { property } => {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_owned);
            let example = walk
                .property_schema(schema, &name)
                .and_then(|s| s.get("examples"))
                .and_then(|e| e.get(0))
                .map(|e| format!("for example `{name}: {}`", compact(e)));
            out.push(SchemaProblem {
                pointer,
                at_key: true,
                message: format!("missing `{name}`"),
                label: "required here",
                help: example,
                removable: false,
            });
        }
        kind => {
            // One message per value: anyOf/oneOf report several errors for one mistake.
            if !out.values.insert(pointer.clone()) {
                return;
            }
            let instance = e.instance();
            let message = walk
                .type_name
                .as_deref()
                .and_then(|t| newtype_message(t, instance))
                .or_else(|| enum_message(&walk, instance))
                .unwrap_or_else(|| generic_message(kind, instance, &e.to_string()));
            let help = enum_values(&walk).and_then(|values| {
                let candidates: Vec<&str> = values.iter().map(String::as_str).collect();
                instance
                    .as_str()
                    .and_then(|s| closest(s, &candidates))
                    .map(|s| format!("did you mean `{s}`?"))
            });
            out.push(SchemaProblem {
                pointer,
                at_key: false,
                message,
                label: "invalid value",
                help,
                removable: true,
            });
        }
    }
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Where a JSON pointer leads in the schema.
struct Walk<'a> {
    schema: Option<&'a Value>,
    /// Name of the last `$defs` entry passed through (our newtypes are named there).
    type_name: Option<String>,
}

impl<'a> Walk<'a> {
    fn properties(&self) -> Vec<String> {
        self.schema
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
    fn property_schema(&self, root: &'a Value, name: &str) -> Option<&'a Value> {
        let s = self.schema?.get("properties")?.get(name)?;
        let mut n = None;
        Some(resolve(root, s, &mut n))
    }
}

fn resolve<'a>(root: &'a Value, mut s: &'a Value, name: &mut Option<String>) -> &'a Value {
    for _ in 0..16 {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            *name = r.rsplit('/').next().map(str::to_owned);
            match root.pointer(r.trim_start_matches('#')) {
                Some(t) => s = t,
                None => return s,
            }
            continue;
        }
        // Option<T> is `anyOf: [T, null]`: follow T.
        let branches = s.get("anyOf").and_then(Value::as_array);
        if let Some(b) = branches {
            let non_null: Vec<&Value> = b
                .iter()
                .filter(|x| x.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            if let [one] = non_null.as_slice() {
                s = one;
                continue;
            }
        }
        return s;
    }
    s
}

fn walk<'a>(root: &'a Value, pointer: &str) -> Walk<'a> {
    let mut name = None;
    let mut s = resolve(root, root, &mut name);
    for token in pointer.split('/').skip(1) {
        let token = crate::yaml::unescape_token(token);
        let next = s
            .get("properties")
            .and_then(|p| p.get(&token))
            .or_else(|| s.get("items").filter(|_| token.parse::<usize>().is_ok()))
            .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()));
        match next {
            Some(n) => {
                name = None;
                s = resolve(root, n, &mut name);
            }
            None => {
                return Walk {
                    schema: None,
                    type_name: None,
                };
            }
        }
    }
    Walk {
        schema: Some(s),
        type_name: name,
    }
}

fn enum_values(walk: &Walk<'_>) -> Option<Vec<String>> {
    let s = walk.schema?;
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        return Some(
            e.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        );
    }
    let one_of = s.get("oneOf").and_then(Value::as_array)?;
    let consts: Vec<String> = one_of
        .iter()
        .filter_map(|b| b.get("const").and_then(Value::as_str).map(str::to_owned))
        .collect();
    (!consts.is_empty()).then_some(consts)
}

fn enum_message(walk: &Walk<'_>, instance: &Value) -> Option<String> {
    let values = enum_values(walk)?;
    Some(format!(
        "{} is not one of {}",
        describe(instance),
        values
            .iter()
            .map(|v| format!("`{v}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// For values of our own newtypes, the message their parser gives.
fn newtype_message(type_name: &str, instance: &Value) -> Option<String> {
    fn msg<T: std::str::FromStr>(s: &str) -> Option<String>
    where
        T::Err: std::fmt::Display,
    {
        s.parse::<T>().err().map(|e| e.to_string())
    }
    let Some(s) = instance.as_str() else {
        return match (type_name, instance) {
            ("FileMode", Value::Number(n)) => Some(format!(
                "write the mode as a quoted string (\"0{n}\"): YAML reads an unquoted number as decimal"
            )),
            ("BeegfsVersion", Value::Number(n)) => Some(format!(
                "write the version as a quoted string (\"{n}\") so YAML keeps it exact"
            )),
            ("TimeLimit" | "ByteSize", Value::Number(n)) => {
                let what = if type_name == "TimeLimit" {
                    "a time limit"
                } else {
                    "a size"
                };
                Some(if n.as_f64().is_some_and(|f| f < 0.0) {
                    format!("`{n}`: {what} cannot be negative")
                } else if n.as_f64().is_some_and(|f| f.fract() != 0.0) {
                    format!("`{n}` is not a whole number")
                } else if n.is_f64() {
                    // A whole number past 2⁶⁴ − 1 reaches us as a float.
                    format!("{what} of `{n}` is larger than 2⁶⁴ − 1")
                } else if type_name == "TimeLimit" {
                    // Minutes, as the text form reads a bare number: the same message.
                    msg::<types::TimeLimit>(&n.to_string())?
                } else {
                    format!("`{n}` is too large for a size")
                })
            }
            _ => None,
        };
    };
    match type_name {
        "ByteSize" => msg::<types::ByteSize>(s),
        "NodeName" => msg::<types::NodeName>(s),
        "Cidr" => msg::<types::Cidr>(s),
        "BridgeName" => msg::<types::BridgeName>(s),
        "DnsDomain" => msg::<types::DnsDomain>(s),
        "ConnectUri" => msg::<types::ConnectUri>(s),
        "VirtiofsTag" => msg::<types::VirtiofsTag>(s),
        "FileMode" => msg::<types::FileMode>(s),
        "PciAddress" => msg::<types::PciAddress>(s),
        "PciId" => msg::<types::PciId>(s),
        "TimeLimit" => msg::<types::TimeLimit>(s),
        "BeegfsVersion" => msg::<types::BeegfsVersion>(s),
        "PromDuration" => msg::<types::PromDuration>(s),
        _ => None,
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "an empty value".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("`{n}`"),
        Value::String(s) => format!("`{s}`"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

fn generic_message(kind: &ValidationErrorKind, instance: &Value, fallback: &str) -> String {
    match kind {
        ValidationErrorKind::Type { kind } => {
            let expected = format!("{kind:?}")
                .to_lowercase()
                .replace("object", "a mapping")
                .replace("array", "a list")
                .replace("single(", "")
                .replace("multiple(", "")
                .replace(['(', ')', '[', ']'], "");
            format!("expected {expected}, found {}", describe(instance))
        }
        ValidationErrorKind::Minimum { limit }
        | ValidationErrorKind::ExclusiveMinimum { limit } => {
            format!("{} is below the minimum {limit}", describe(instance))
        }
        ValidationErrorKind::Maximum { limit }
        | ValidationErrorKind::ExclusiveMaximum { limit } => {
            format!("{} is above the maximum {limit}", describe(instance))
        }
        ValidationErrorKind::Format { format } => {
            format!("{} is not a valid {format} value", describe(instance))
        }
        _ => fallback.to_owned(),
    }
}
