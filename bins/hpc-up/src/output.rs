//! Everything the binary prints goes through here: data to stdout, diagnostics to stderr,
//! as text or JSON.

use std::io::IsTerminal;

use miette::{GraphicalReportHandler, GraphicalTheme, Report};
use serde_json::json;

use crate::Format;

pub(crate) struct Output {
    format: Format,
    quiet: bool,
    handler: GraphicalReportHandler,
}

impl Output {
    pub(crate) fn new(format: Format, quiet: bool) -> Self {
        let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        Self {
            format,
            quiet,
            handler: GraphicalReportHandler::new_themed(theme).with_context_lines(1),
        }
    }

    pub(crate) fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// Print data on stdout.
    pub(crate) fn data(&self, text: &str) {
        print!("{text}");
        if !text.ends_with('\n') {
            println!();
        }
    }

    /// Print a JSON value on stdout.
    pub(crate) fn json_value(&self, v: &serde_json::Value) {
        println!(
            "{}",
            serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
        );
    }

    /// A human message on stderr (text mode only, not with `-q`).
    pub(crate) fn note(&self, text: &str) {
        if !self.json() && !self.quiet {
            eprintln!("{text}");
        }
    }

    /// Render a diagnostic (with source snippets) on stderr.
    pub(crate) fn diagnostic(&self, d: &dyn miette::Diagnostic) {
        let mut s = String::new();
        if self.handler.render_report(&mut s, d).is_err() {
            s = d.to_string();
        }
        eprint!("{s}");
    }

    /// Report a failure: a diagnostic with its cause chain, or a JSON error object.
    pub(crate) fn error(&self, report: &Report) {
        if self.json() {
            let chain: Vec<String> = report.chain().map(ToString::to_string).collect();
            self.json_value(&json!({"ok": false, "error": report.to_string(), "causes": chain}));
        } else {
            self.diagnostic(report.as_ref());
        }
    }
}
