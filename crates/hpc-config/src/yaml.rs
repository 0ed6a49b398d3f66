//! YAML → JSON value, keeping the position of every node.
//!
//! saphyr's event parser gives each event a span; this module builds a JSON value from the
//! events and keeps the tree of spans, so that a JSON pointer can be turned into where its
//! value (and its key) stand in the text. Schema errors, serde errors and semantic errors all
//! name a JSON pointer, and this index turns it into a `file:line:column`. Pointers are
//! resolved only when a problem is reported: a valid file (a 1,000-node one included) costs
//! no pointer strings at all.
//!
//! YAML 1.2 core scalars; anchors and aliases; `<<` merge keys; duplicate keys are an error
//! (YAML forbids them, and the usual parsers silently keep the last one).
//!
//! Bounded, as [`crate::limits`] says: nesting deeper than [`MAX_DEPTH`] or a document of
//! more than [`MAX_VALUES`] values (every copy an alias makes counted) stops the parse with
//! a problem at the place that broke the limit; duplicate keys are found with a hash set.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::rc::Rc;

use saphyr::Scalar;
use saphyr_parser::{Event, Parser, Span};
use serde_json::{Map, Value};

use crate::diagnostic::Capped;
use crate::limits::{MAX_DEPTH, MAX_VALUES};

/// Byte range of a value and of its key in the source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Place {
    pub(crate) value: Range<usize>,
    pub(crate) key: Option<Range<usize>>,
}

/// Positions of every node, found by JSON pointer (`""` is the document).
#[derive(Debug, Clone, Default)]
pub(crate) struct SpanIndex {
    root: Option<Node>,
}

impl SpanIndex {
    /// The place of `pointer`, or of its nearest ancestor that has one.
    pub(crate) fn find(&self, pointer: &str) -> Place {
        let Some(mut node) = self.root.as_ref() else {
            return Place::default();
        };
        let mut key = None;
        // `""` is the document; every further token starts with `/`.
        let tokens = pointer.strip_prefix('/').map(|p| p.split('/'));
        for token in tokens.into_iter().flatten() {
            let next = match &*node.kind {
                Kind::Seq(items) => token
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get(i))
                    .map(|n| (n, None)),
                Kind::Map(entries, index) => {
                    let name = unescape_token(token);
                    let entry = match index {
                        Some(index) => index.get(&name).and_then(|&i| entries.get(i)),
                        None => entries.iter().find(|(k, _, _)| *k == name),
                    };
                    entry.map(|(_, ks, n)| (n, Some(ks.clone())))
                }
                Kind::Scalar(_) => None,
            };
            match next {
                Some((n, k)) => {
                    node = n;
                    key = k;
                }
                None => break,
            }
        }
        Place {
            value: node.span.clone(),
            key,
        }
    }

    /// The range to underline for an error about `pointer`'s value.
    pub(crate) fn value(&self, pointer: &str) -> Range<usize> {
        self.find(pointer).value
    }

    /// The range to underline for an error about `pointer` as a key (its key if it has one).
    pub(crate) fn key_or_value(&self, pointer: &str) -> Range<usize> {
        let place = self.find(pointer);
        place.key.unwrap_or(place.value)
    }
}

/// A problem found while reading the YAML itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxProblem {
    pub(crate) message: String,
    pub(crate) span: Range<usize>,
    pub(crate) help: Option<String>,
}

/// Escape one reference token of a JSON pointer.
pub(crate) fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Undo [`escape_token`].
pub(crate) fn unescape_token(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

#[derive(Debug, Clone)]
struct Node {
    /// Shared: an anchor and each of its aliases hold one tree, not copies.
    kind: Rc<Kind>,
    span: Range<usize>,
    /// Values in this node, itself included.
    size: usize,
}

impl Node {
    fn scalar(value: Value, span: Range<usize>) -> Self {
        Self {
            kind: Rc::new(Kind::Scalar(value)),
            span,
            size: 1,
        }
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Scalar(Value),
    Seq(Vec<Node>),
    /// Entries in order, and for a large mapping where each key is among them (a report
    /// looks up one key per problem).
    Map(
        Vec<(String, Range<usize>, Node)>,
        Option<HashMap<String, usize>>,
    ),
}

/// Mappings with more entries than this get a key index.
const INDEXED_MAP: usize = 32;

impl Kind {
    fn map(entries: Vec<(String, Range<usize>, Node)>) -> Self {
        let index = (entries.len() > INDEXED_MAP).then(|| {
            entries
                .iter()
                .enumerate()
                .map(|(i, (k, _, _))| (k.clone(), i))
                .collect()
        });
        Self::Map(entries, index)
    }
}

enum Frame {
    Seq {
        items: Vec<Node>,
        start: usize,
        anchor: usize,
    },
    Map {
        entries: Vec<(String, Range<usize>, Node)>,
        /// Each key set so far, with the place it was set.
        keys: HashMap<String, usize>,
        key: Option<(String, Range<usize>)>,
        start: usize,
        anchor: usize,
    },
}

/// What [`parse`] found.
pub(crate) struct Parsed {
    /// The document, or `None` when it could not be read (syntax, or a limit broken).
    pub(crate) value: Option<Value>,
    /// Where each value stands.
    pub(crate) index: SpanIndex,
    /// Problems in the YAML itself.
    pub(crate) problems: Capped<SyntaxProblem>,
}

/// Maps saphyr's character positions to byte offsets.
struct Offsets {
    bytes: Option<Vec<usize>>,
    len: usize,
}

impl Offsets {
    fn new(text: &str) -> Self {
        let bytes = (!text.is_ascii()).then(|| {
            let mut v: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
            v.push(text.len());
            v
        });
        Self {
            bytes,
            len: text.len(),
        }
    }
    fn byte(&self, char_index: usize) -> usize {
        match &self.bytes {
            None => char_index.min(self.len),
            Some(v) => v.get(char_index).copied().unwrap_or(self.len),
        }
    }
    fn range(&self, span: &Span) -> Range<usize> {
        self.byte(span.start.index())..self.byte(span.end.index())
    }
}

/// Parse `text` into a JSON value and the positions of its nodes. Problems in the YAML
/// itself (syntax, duplicate keys, complex keys) are returned; a syntax error or a broken
/// limit stops the parse, the others do not.
pub(crate) fn parse(text: &str) -> Parsed {
    let offsets = Offsets::new(text);
    let mut problems: Capped<SyntaxProblem> = Capped::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    // Values made so far, alias copies included.
    let mut values = 0usize;
    let stop = |mut problems: Capped<SyntaxProblem>, p: SyntaxProblem| {
        problems.push(p);
        Parsed {
            value: None,
            index: SpanIndex::default(),
            problems,
        }
    };

    for item in Parser::new_from_str(text) {
        let (event, span) = match item {
            Ok(x) => x,
            Err(e) => {
                let at = offsets.byte(e.marker().index());
                let p = SyntaxProblem {
                    message: format!("invalid YAML: {}", e.info()),
                    span: at..at,
                    help: None,
                };
                return stop(problems, p);
            }
        };
        let range = offsets.range(&span);
        if matches!(event, Event::SequenceStart(..) | Event::MappingStart(..))
            && stack.len() >= MAX_DEPTH
        {
            let p = SyntaxProblem {
                message: format!("lists and mappings nest more than {MAX_DEPTH} deep here"),
                span: range,
                help: Some("a cluster file needs a few levels; this is not one".into()),
            };
            return stop(problems, p);
        }
        let node = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    problems.push(SyntaxProblem {
                        message: "a cluster file holds one YAML document; this is a second one"
                            .into(),
                        span: range,
                        help: Some("remove the `---` and what follows, or split the file".into()),
                    });
                }
                continue;
            }
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq {
                    items: Vec::new(),
                    start: range.start,
                    anchor,
                });
                continue;
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map {
                    entries: Vec::new(),
                    keys: HashMap::new(),
                    key: None,
                    start: range.start,
                    anchor,
                });
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq {
                    items,
                    start,
                    anchor,
                }) => {
                    let end = items.last().map_or(range.end, |n| n.span.end.max(start));
                    let size = 1 + items.iter().map(|n| n.size).sum::<usize>();
                    remember(
                        &mut anchors,
                        anchor,
                        Node {
                            kind: Rc::new(Kind::Seq(items)),
                            span: start..end,
                            size,
                        },
                    )
                }
                _ => continue,
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map {
                    entries,
                    start,
                    anchor,
                    ..
                }) => {
                    let entries = merge_keys(entries, &mut problems);
                    let end = entries
                        .last()
                        .map_or(range.end, |(_, _, n)| n.span.end.max(start));
                    let size = 1 + entries.iter().map(|(_, _, n)| 1 + n.size).sum::<usize>();
                    remember(
                        &mut anchors,
                        anchor,
                        Node {
                            kind: Rc::new(Kind::map(entries)),
                            span: start..end,
                            size,
                        },
                    )
                }
                _ => continue,
            },
            Event::Scalar(text, style, anchor, tag) => {
                let value = match Scalar::parse_from_cow_and_metadata(text, style, tag.as_ref()) {
                    Some(Scalar::Null) | None => Value::Null,
                    Some(Scalar::Boolean(b)) => Value::Bool(b),
                    Some(Scalar::Integer(i)) => Value::from(i),
                    Some(Scalar::FloatingPoint(f)) => {
                        match serde_json::Number::from_f64(f.into_inner()) {
                            Some(n) => Value::Number(n),
                            None => {
                                // `.inf`, `.nan`, `1e400`: no field takes them, and null
                                // would quietly mean "the default".
                                problems.push(SyntaxProblem {
                                    message: "not a finite number".into(),
                                    span: range.clone(),
                                    help: Some(
                                        "write a whole number, or quote it to make it text".into(),
                                    ),
                                });
                                Value::Null
                            }
                        }
                    }
                    Some(Scalar::String(s)) => Value::String(s.into_owned()),
                };
                remember(&mut anchors, anchor, Node::scalar(value, range))
            }
            Event::Alias(id) => match anchors.get(&id) {
                // The copy is counted before it is made.
                Some(n) if values.saturating_add(n.size) > MAX_VALUES => {
                    let p = too_many_values(range);
                    return stop(problems, p);
                }
                Some(n) => {
                    values += n.size - 1;
                    Node {
                        kind: n.kind.clone(),
                        span: range,
                        size: n.size,
                    }
                }
                None => {
                    problems.push(SyntaxProblem {
                        message: "unknown alias".into(),
                        span: range.clone(),
                        help: None,
                    });
                    Node::scalar(Value::Null, range)
                }
            },
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {
                continue;
            }
        };
        values += 1;
        if values > MAX_VALUES {
            let p = too_many_values(node.span);
            return stop(problems, p);
        }
        match stack.last_mut() {
            None => {
                if root.is_none() {
                    root = Some(node);
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries, keys, key, ..
            }) => match key.take() {
                None => match &*node.kind {
                    Kind::Scalar(v) => {
                        let name = match v {
                            Value::String(s) => s.clone(),
                            Value::Null => "null".into(),
                            other => other.to_string(),
                        };
                        *key = Some((name, node.span));
                    }
                    _ => {
                        problems.push(SyntaxProblem {
                            message: "a key must be a plain name, not a list or mapping".into(),
                            span: node.span.clone(),
                            help: None,
                        });
                        *key = Some((String::new(), node.span));
                    }
                },
                Some((name, key_span)) => {
                    if let Some(first) = keys.get(&name) {
                        problems.push(SyntaxProblem {
                            message: format!("duplicate key `{name}`"),
                            span: key_span.clone(),
                            help: Some(format!(
                                "`{name}` is already set at byte {first}; YAML allows a key once per mapping"
                            )),
                        });
                    } else {
                        keys.insert(name.clone(), key_span.start);
                        entries.push((name, key_span, node));
                    }
                }
            },
        }
    }

    let Some(root) = root else {
        return Parsed {
            value: Some(Value::Null),
            index: SpanIndex::default(),
            problems,
        };
    };
    let value = to_json(&root);
    Parsed {
        value: Some(value),
        index: SpanIndex { root: Some(root) },
        problems,
    }
}

fn too_many_values(span: Range<usize>) -> SyntaxProblem {
    SyntaxProblem {
        message: format!(
            "the document grows past {MAX_VALUES} values here (every copy an alias makes counts)"
        ),
        span,
        help: Some("a cluster file has a few thousand values; use fewer aliases".into()),
    }
}

fn remember(anchors: &mut HashMap<usize, Node>, anchor: usize, node: Node) -> Node {
    if anchor != 0 {
        anchors.insert(anchor, node.clone());
    }
    node
}

/// Apply `<<` merge keys: entries of the merged mapping(s) that the mapping does not set itself.
fn merge_keys(
    entries: Vec<(String, Range<usize>, Node)>,
    problems: &mut Capped<SyntaxProblem>,
) -> Vec<(String, Range<usize>, Node)> {
    if !entries.iter().any(|(k, _, _)| k == "<<") {
        return entries;
    }
    let mut own = Vec::new();
    let mut merged = Vec::new();
    for (k, ks, v) in entries {
        if k != "<<" {
            own.push((k, ks, v));
            continue;
        }
        let sources = match &*v.kind {
            Kind::Map(m, _) => vec![m.clone()],
            Kind::Seq(items) => items
                .iter()
                .filter_map(|n| match &*n.kind {
                    Kind::Map(m, _) => Some(m.clone()),
                    _ => None,
                })
                .collect(),
            Kind::Scalar(_) => {
                problems.push(SyntaxProblem {
                    message: "`<<` merges a mapping (or a list of mappings) into this one".into(),
                    span: v.span,
                    help: None,
                });
                Vec::new()
            }
        };
        for m in sources {
            merged.extend(m);
        }
    }
    let mut set: HashSet<String> = own.iter().map(|(k, _, _)| k.clone()).collect();
    for entry in merged {
        if set.insert(entry.0.clone()) {
            own.push(entry);
        }
    }
    own
}

fn to_json(node: &Node) -> Value {
    match &*node.kind {
        Kind::Scalar(v) => v.clone(),
        Kind::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        Kind::Map(entries, _) => {
            let mut map = Map::with_capacity(entries.len());
            for (k, _, n) in entries {
                map.insert(k.clone(), to_json(n));
            }
            Value::Object(map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_places() {
        let text = "a: 1\nb:\n  - x\n  - 'y'\nc: {d: true}\n";
        let Parsed {
            value: v,
            index: idx,
            problems,
            ..
        } = parse(text);
        assert!(problems.kept.is_empty(), "{problems:?}");
        assert_eq!(
            v.unwrap(),
            serde_json::json!({"a": 1, "b": ["x", "y"], "c": {"d": true}})
        );
        assert_eq!(&text[idx.value("/a")], "1");
        assert_eq!(&text[idx.key_or_value("/b")], "b");
        assert_eq!(&text[idx.value("/b/0")], "x");
        assert_eq!(&text[idx.key_or_value("/c/d")], "d");
        // unknown pointers fall back to their nearest ancestor
        assert_eq!(&text[idx.value("/b/0/zz")], "x");
        assert_eq!(idx.value("/b/7"), idx.value("/b"));
        assert_eq!(idx.find("").key, None);
    }

    #[test]
    fn escaped_pointer_tokens() {
        let text = "a/b: 1\n~c: 2\n";
        let idx = parse(text).index;
        assert_eq!(&text[idx.value("/a~1b")], "1");
        assert_eq!(&text[idx.key_or_value("/~0c")], "~c");
    }

    #[test]
    fn duplicate_keys_are_reported() {
        let problems = parse("a: 1\nb: 2\na: 3\n").problems.kept;
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].message, "duplicate key `a`");
        assert_eq!(problems[0].span, 10..11);
    }

    #[test]
    fn anchors_and_merge_keys() {
        let Parsed {
            value: v, problems, ..
        } = parse("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n");
        assert!(problems.kept.is_empty(), "{problems:?}");
        assert_eq!(v.unwrap()["use"], serde_json::json!({"y": 3, "x": 1}));
    }

    #[test]
    fn syntax_errors_have_a_place() {
        let Parsed {
            value: v, problems, ..
        } = parse("a: [1, 2\nb: 3\n");
        assert!(v.is_none());
        assert_eq!(problems.kept.len(), 1);
        assert!(problems.kept[0].message.starts_with("invalid YAML"));
    }

    #[test]
    fn non_ascii_offsets_are_bytes() {
        let text = "é: ü\nk: v\n";
        let idx = parse(text).index;
        assert_eq!(&text[idx.value("/k")], "v");
    }
}
