//! The published JSON Schema: fresh, complete, and accepted by every example.
#![allow(clippy::unwrap_used)] // test helpers panic on failure, as tests do

use hpc_tests::{examples, repo_root};
use serde_json::Value;

/// The committed schema must equal the one generated from the types. When it does not,
/// the test rewrites it (commit the result) and fails.
#[test]
fn committed_schema_is_fresh() {
    let path = repo_root().join("schema/hpc-config.schema.json");
    let want = hpc_config::schema_text();
    let have = fs_err::read_to_string(&path).unwrap_or_default();
    if have != want {
        fs_err::write(&path, &want).unwrap();
        panic!(
            "{} was stale and has been regenerated; commit it",
            path.display()
        );
    }
}

fn yaml_to_json(text: &str) -> Value {
    use saphyr::{LoadableYamlNode, Scalar, Yaml};
    fn conv(y: &Yaml<'_>) -> Value {
        match y {
            Yaml::Value(Scalar::Null) => Value::Null,
            Yaml::Value(Scalar::Boolean(b)) => Value::Bool(*b),
            Yaml::Value(Scalar::Integer(i)) => Value::from(*i),
            Yaml::Value(Scalar::FloatingPoint(f)) => Value::from(f.into_inner()),
            Yaml::Value(Scalar::String(s)) => Value::String(s.to_string()),
            Yaml::Sequence(s) => Value::Array(s.iter().map(conv).collect()),
            Yaml::Mapping(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), conv(v)))
                    .collect(),
            ),
            other => panic!("unexpected YAML node {other:?}"),
        }
    }
    let docs = Yaml::load_from_str(text).expect("examples are valid YAML");
    conv(&docs[0])
}

/// Every example validates against the committed schema with an independent validator
/// setup (a second YAML reader, the schema file as an editor would load it).
#[test]
fn examples_validate_against_the_committed_schema() {
    let schema: Value = serde_json::from_str(
        &fs_err::read_to_string(repo_root().join("schema/hpc-config.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let files = examples();
    assert!(files.len() >= 3, "examples missing: {files:?}");
    for f in files {
        let text = fs_err::read_to_string(&f).unwrap();
        let doc = yaml_to_json(&text);
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", f.display());
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schema/hpc-config.schema.json\n"),
            "{} lacks the schema modeline",
            f.display()
        );
        // and the loader agrees
        let env = |k: &str| (k == "HOME").then(|| "/home/user".to_owned());
        hpc_config::load_str(&f.display().to_string(), &text, &env)
            .unwrap_or_else(|e| panic!("{}: {e:?}", f.display()));
    }
}

/// The schema rejects what the loader rejects structurally.
#[test]
fn schema_rejects_an_invalid_fixture() {
    let schema = hpc_config::json_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let text =
        fs_err::read_to_string(repo_root().join("tests/fixtures/five-mistakes.yaml")).unwrap();
    let doc = yaml_to_json(&text);
    assert!(!validator.is_valid(&doc));
}

/// Editors show a field's description and examples: every property has both.
#[test]
fn every_field_has_a_description_and_an_example() {
    let schema = hpc_config::json_schema();
    let mut missing = Vec::new();
    fn visit(at: &str, v: &Value, missing: &mut Vec<String>) {
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            for (k, p) in props {
                let here = format!("{at}/{k}");
                if p.get("description").is_none() {
                    missing.push(format!("{here}: description"));
                }
                if p.get("examples").is_none() {
                    missing.push(format!("{here}: examples"));
                }
            }
        }
        if let Some(defs) = v.get("$defs").and_then(Value::as_object) {
            for (k, d) in defs {
                visit(&format!("$defs/{k}"), d, missing);
            }
        }
    }
    visit("", &schema, &mut missing);
    assert!(missing.is_empty(), "{missing:#?}");
}
