//! Problems with positions: what the loader returns when a file is not a valid cluster.

use std::ops::Range;
use std::path::PathBuf;

use miette::{Diagnostic, NamedSource, SourceSpan};

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

/// Every problem found in one cluster file.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{file} is not a valid cluster file ({} problem{})", problems.len(), if problems.len() == 1 { "" } else { "s" })]
#[diagnostic(code(hpc_config::invalid))]
pub struct ConfigErrors {
    /// The file name as given.
    pub file: String,
    #[source_code]
    src: NamedSource<String>,
    /// The problems, in the order they appear in the file.
    #[related]
    pub problems: Vec<Problem>,
}

impl ConfigErrors {
    pub(crate) fn new(file: &str, text: &str, mut problems: Vec<Problem>) -> Self {
        problems.sort_by_key(|p| (p.span.offset(), p.message.clone()));
        problems.dedup();
        Self {
            file: file.to_owned(),
            src: NamedSource::new(file, text.to_owned()),
            problems,
        }
    }

    /// One line per problem: `file:line:column: message`.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.problems
            .iter()
            .map(|p| format!("{}:{}:{}: {}", self.file, p.line, p.column, p.message))
    }
}

/// Why a cluster file could not be loaded.
#[derive(Debug, thiserror::Error, Diagnostic)]
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
    /// The file was read and is not valid.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(Box<ConfigErrors>),
}

/// Builds problems for one text, computing line and column from byte offsets.
pub(crate) struct ProblemBuilder<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> ProblemBuilder<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { text, line_starts }
    }

    pub(crate) fn problem(
        &self,
        pointer: &str,
        span: Range<usize>,
        message: String,
        label: &str,
        help: Option<String>,
    ) -> Problem {
        let start = span.start.min(self.text.len());
        let end = span.end.clamp(start, self.text.len());
        let line_idx = self
            .line_starts
            .partition_point(|&s| s <= start)
            .saturating_sub(1);
        let line_start = self.line_starts[line_idx];
        let column = self.text[line_start..start].chars().count() + 1;
        Problem {
            message,
            span: (start, end - start).into(),
            label: label.to_owned(),
            help,
            line: line_idx + 1,
            column,
            pointer: pointer.to_owned(),
        }
    }
}
