//! Problems with positions: what the loader returns when a file is not a valid cluster.
//!
//! Problems are collected cheaply (a byte range and a message) and turned into
//! `line:column` form only for the ones reported: a hostile file can break a rule thousands
//! of times, and the report keeps the first [`MAX_PROBLEMS`] by position and counts the rest.

use std::ops::Range;
use std::path::PathBuf;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, NamedSource, SourceSpan};

use crate::limits::{MAX_COLLECTED, MAX_DRAWN_BYTES, MAX_DRAWN_LINE, MAX_PROBLEMS};

/// Longest message or help text kept; longer ones (a message quoting a huge value) keep
/// their beginning and end.
const MAX_MESSAGE: usize = 600;

/// One problem in a cluster file, at one place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Diagnostic)]
#[error("{message}")]
pub struct Problem {
    /// What is wrong.
    pub message: String,
    /// Where, as a byte range of the file.
    #[label("{label}")]
    pub span: SourceSpan,
    /// The short text under the caret.
    pub label: String,
    /// How to fix it, when known.
    #[help]
    pub help: Option<String>,
    /// Line, 1-based.
    pub line: usize,
    /// Column, 1-based, in characters.
    pub column: usize,
    /// JSON pointer of the value in the document (`""` for the whole file).
    pub pointer: String,
}

/// Every problem found in one cluster file (the first [`MAX_PROBLEMS`] by position; `more`
/// counts the others).
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{file} is not a valid cluster file ({} problem{})", self.total(), if self.total() == 1 { "" } else { "s" })]
#[diagnostic(code(hpc_config::invalid))]
pub struct ConfigErrors {
    /// The file name as given.
    pub file: String,
    #[source_code]
    src: NamedSource<String>,
    /// The problems, in the order they appear in the file.
    #[related]
    pub problems: Vec<Problem>,
    /// How many more problems were found and are not listed.
    pub more: usize,
}

/// Problems of one stage: the first [`MAX_COLLECTED`] kept, the rest only counted.
#[derive(Debug)]
pub(crate) struct Capped<T> {
    pub(crate) kept: Vec<T>,
    pub(crate) uncounted: usize,
}

impl<T> Default for Capped<T> {
    fn default() -> Self {
        Self {
            kept: Vec::new(),
            uncounted: 0,
        }
    }
}

impl<T> Capped<T> {
    pub(crate) fn push(&mut self, problem: T) {
        if self.kept.len() < MAX_COLLECTED {
            self.kept.push(problem);
        } else {
            self.uncounted += 1;
        }
    }
}

/// A problem before its line and column are worked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    pub(crate) pointer: String,
    pub(crate) span: Range<usize>,
    pub(crate) message: String,
    pub(crate) label: &'static str,
    pub(crate) help: Option<String>,
}

impl Pending {
    pub(crate) fn new(
        pointer: &str,
        span: Range<usize>,
        message: String,
        label: &'static str,
        help: Option<String>,
    ) -> Self {
        Self {
            pointer: pointer.to_owned(),
            span,
            message,
            label,
            help,
        }
    }
}

impl ConfigErrors {
    /// The report of `pending` (plus `uncounted` problems that were found and not kept).
    pub(crate) fn new(file: &str, text: &str, mut pending: Vec<Pending>, uncounted: usize) -> Self {
        pending.sort_by(|a, b| {
            (a.span.start, &a.message, &a.pointer).cmp(&(b.span.start, &b.message, &b.pointer))
        });
        pending.dedup();
        let more = pending.len().saturating_sub(MAX_PROBLEMS) + uncounted;
        pending.truncate(MAX_PROBLEMS);
        let lines = LineIndex::new(text);
        let problems = pending.into_iter().map(|p| lines.problem(p)).collect();
        Self {
            file: file.to_owned(),
            src: NamedSource::new(file, text.to_owned()),
            problems,
            more,
        }
    }

    /// Every problem found, listed or not.
    pub fn total(&self) -> usize {
        self.problems.len() + self.more
    }

    /// One line per problem: `file:line:column: message`, and `… and N more problems` when
    /// some are not listed.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.problems
            .iter()
            .map(|p| self.line_of(p))
            .chain(self.more_line())
    }

    /// `file:line:column: message` of one problem.
    fn line_of(&self, p: &Problem) -> String {
        format!("{}:{}:{}: {}", self.file, p.line, p.column, p.message)
    }

    fn more_line(&self) -> Option<String> {
        (self.more > 0).then(|| {
            format!(
                "… and {} more problem{}",
                self.more,
                if self.more == 1 { "" } else { "s" }
            )
        })
    }

    /// Whether every problem can be drawn with its source lines: none stands on (or next to)
    /// a line longer than [`MAX_DRAWN_LINE`] bytes, and the drawing's work stays within
    /// [`MAX_DRAWN_BYTES`].
    pub fn drawable(&self) -> bool {
        let text = self.src.inner().as_str();
        if self.problems.len().saturating_mul(text.len()) > MAX_DRAWN_BYTES {
            return false;
        }
        self.problems.iter().all(|p| {
            let from = p.span.offset().min(text.len());
            let to = (p.span.offset() + p.span.len()).min(text.len());
            // From the line before the span's first to the line after its last.
            let first = line_start(text, from);
            let first = line_start(text, first.saturating_sub(1));
            let last = line_end(text, to);
            let last = line_end(text, (last + 1).min(text.len()));
            text.get(first..last)
                .is_some_and(|lines| lines.split('\n').all(|l| l.len() <= MAX_DRAWN_LINE))
        })
    }

    /// The report as text for a terminal: drawn with its source lines (miette's graphical
    /// handler, with colour or not) when [`drawable`](Self::drawable), else the plain
    /// [`lines`](Self::lines) under a heading. Never panics, whatever the file held.
    pub fn render(&self, color: bool) -> String {
        let mut out = String::new();
        if self.drawable() {
            let theme = if color {
                GraphicalTheme::unicode()
            } else {
                GraphicalTheme::unicode_nocolor()
            };
            let handler = GraphicalReportHandler::new_themed(theme).with_context_lines(1);
            if handler.render_report(&mut out, self).is_err() {
                out.clear();
            }
        }
        if out.is_empty() {
            out = format!("Error: {self}\n");
            for p in &self.problems {
                out.push_str(&format!("  {}\n", self.line_of(p)));
                if let Some(help) = &p.help {
                    out.push_str(&format!("    help: {help}\n"));
                }
            }
        }
        if let Some(more) = self.more_line() {
            out.push_str(&more);
            out.push('\n');
        }
        out
    }
}

/// Why a cluster file could not be loaded.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read cluster file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The path is not a regular file (a directory, FIFO, device or socket).
    #[error("cluster file {} is {kind}, not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// The file is larger than [`crate::limits::MAX_FILE_BYTES`].
    #[error("cluster file {} is larger than {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: usize,
    },
    /// The file is not UTF-8 text.
    #[error("{}:{line}:{column}: not UTF-8 text (a cluster file is YAML, which is UTF-8)", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Line of the first byte that is not UTF-8, 1-based.
        line: usize,
        /// Its column, 1-based, in characters.
        column: usize,
    },
    /// The file was read and is not valid.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(Box<ConfigErrors>),
}

/// Where lines start, to turn byte offsets into line and column.
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { text, line_starts }
    }

    /// Line and column (1-based; the column in characters) of byte `at`, clamped to the text
    /// and moved back to a character boundary.
    pub(crate) fn line_column(&self, at: usize) -> (usize, usize) {
        let mut start = at.min(self.text.len());
        while !self.text.is_char_boundary(start) {
            start -= 1;
        }
        let line_idx = self
            .line_starts
            .partition_point(|&s| s <= start)
            .saturating_sub(1);
        let line_start = self.line_starts.get(line_idx).copied().unwrap_or(0);
        let column = self.text[line_start..start].chars().count() + 1;
        (line_idx + 1, column)
    }

    fn problem(&self, p: Pending) -> Problem {
        let (line, column) = self.line_column(p.span.start);
        let start = p.span.start.min(self.text.len());
        let end = p.span.end.clamp(start, self.text.len());
        Problem {
            message: shorten(p.message),
            span: (start, end - start).into(),
            label: p.label.to_owned(),
            help: p.help.map(shorten),
            line,
            column,
            pointer: p.pointer,
        }
    }
}

/// Byte offset where the line holding byte `at` starts.
fn line_start(text: &str, at: usize) -> usize {
    text.get(..at)
        .and_then(|t| t.rfind('\n'))
        .map_or(0, |i| i + 1)
}

/// Byte offset of the end (the `\n` or the end of text) of the line holding byte `at`.
fn line_end(text: &str, at: usize) -> usize {
    text.get(at..)
        .and_then(|t| t.find('\n'))
        .map_or(text.len(), |i| at + i)
}

/// `s`, or its beginning and end around ` … ` when it is longer than [`MAX_MESSAGE`].
fn shorten(s: String) -> String {
    if s.len() <= MAX_MESSAGE {
        return s;
    }
    let mut head = MAX_MESSAGE / 2;
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = s.len() - MAX_MESSAGE / 2;
    while !s.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{} … {}", &s[..head], &s[tail..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_keep_both_ends() {
        let s = format!("`{}` is not a valid host name", "é".repeat(5000));
        let short = shorten(s);
        assert!(short.len() < MAX_MESSAGE + 10, "{}", short.len());
        assert!(short.starts_with("`éé"));
        assert!(short.ends_with("` is not a valid host name"));
    }

    #[test]
    fn columns_count_characters() {
        let idx = LineIndex::new("a: é\nbb: x\n");
        assert_eq!(idx.line_column(0), (1, 1));
        assert_eq!(idx.line_column(4), (1, 4)); // inside `é`: moved back
        assert_eq!(idx.line_column(5), (1, 5));
        assert_eq!(idx.line_column(6), (2, 1));
        assert_eq!(idx.line_column(99), (3, 1));
    }

    #[test]
    fn many_problems_are_cut_and_counted() {
        let text = "x\n".repeat(500);
        let pending = (0..500)
            .map(|i| Pending::new("", i * 2..i * 2 + 1, format!("p{i}"), "here", None))
            .collect();
        let e = ConfigErrors::new("f.yaml", &text, pending, 7);
        assert_eq!(e.problems.len(), MAX_PROBLEMS);
        assert_eq!(e.more, 500 - MAX_PROBLEMS + 7);
        assert_eq!(e.problems[0].line, 1);
        assert_eq!(e.lines().last().unwrap(), "… and 407 more problems");
        assert!(e.to_string().contains("(507 problems)"), "{e}");
        assert!(e.render(false).ends_with("… and 407 more problems\n"));
    }

    #[test]
    fn wide_lines_are_not_drawn() {
        let text = format!("a: 1\nb: {}x\nc: 3\n", " ".repeat(70_000));
        let at = text.find('x').unwrap();
        let e = ConfigErrors::new(
            "f.yaml",
            &text,
            vec![Pending::new("/b", at..at + 1, "bad".into(), "here", None)],
            0,
        );
        assert!(!e.drawable());
        let out = e.render(false);
        assert!(out.contains("f.yaml:2:70004: bad"), "{out}");
        // A problem next to (not on) the wide line is not drawn either: context lines.
        let e = ConfigErrors::new(
            "f.yaml",
            &text,
            vec![Pending::new("/a", 3..4, "bad".into(), "here", None)],
            0,
        );
        assert!(!e.drawable());
        let e = ConfigErrors::new(
            "f.yaml",
            "a: 1\nb: 2\n",
            vec![Pending::new("/a", 3..4, "bad".into(), "here", None)],
            0,
        );
        assert!(e.drawable());
        assert!(e.render(false).contains("╭─[f.yaml:1:4]"));
    }
}
