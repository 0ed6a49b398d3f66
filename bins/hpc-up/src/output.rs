//! Everything the binary prints goes through here: data to stdout, messages to stderr, as
//! text or JSON. A closed pipe ends the program quietly (`hpc-up plan … | head`), as it
//! ends `cat`.

use std::io::{IsTerminal, Write};

use serde_json::json;

/// Exit status when standard output is a closed pipe (128 + SIGPIPE, as shells report a
/// program SIGPIPE killed).
const EXIT_BROKEN_PIPE: i32 = 141;

pub(crate) struct Output {
    json: bool,
    quiet: bool,
    color: bool,
}

impl Output {
    pub(crate) fn new(json: bool, quiet: bool) -> Self {
        let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Self { json, quiet, color }
    }

    pub(crate) fn json(&self) -> bool {
        self.json
    }

    pub(crate) fn quiet(&self) -> bool {
        self.quiet
    }

    /// Data on stdout, newline-terminated.
    pub(crate) fn data(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let r = out
            .write_all(text.as_bytes())
            .and_then(|()| {
                if text.ends_with('\n') {
                    Ok(())
                } else {
                    out.write_all(b"\n")
                }
            })
            .and_then(|()| out.flush());
        // A closed pipe ends the program; other write errors have nowhere to be reported.
        if let Err(e) = r
            && e.kind() == std::io::ErrorKind::BrokenPipe
        {
            std::process::exit(EXIT_BROKEN_PIPE);
        }
    }

    /// A JSON value on stdout.
    pub(crate) fn json_value(&self, v: &serde_json::Value) {
        self.data(&serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()));
    }

    /// A serializable report on stdout.
    pub(crate) fn json_of(&self, v: &impl serde::Serialize) {
        self.json_value(
            &serde_json::to_value(v).unwrap_or_else(|e| json!({"error": e.to_string()})),
        );
    }

    /// A human message on stderr (text mode only, not with `-q`).
    pub(crate) fn note(&self, text: &str) {
        if !self.json && !self.quiet {
            stderr(text);
        }
    }

    /// Report an invalid cluster file: every problem with its `file:line:column`, drawn with
    /// its source lines where they can be drawn (hpc-config decides, and falls back to plain
    /// lines for what cannot), or as JSON.
    pub(crate) fn config_errors(&self, e: &hpc_config::ConfigErrors) {
        if self.json {
            let problems: Vec<_> = e
                .problems
                .iter()
                .map(|p| json!({"line": p.line, "column": p.column, "pointer": p.pointer, "message": p.message, "help": p.help}))
                .collect();
            self.json_value(&json!({"file": e.file, "valid": false, "ok": false, "problems": problems, "more": e.more}));
            return;
        }
        stderr(&e.render(self.color));
        if e.drawable() {
            // The drawing is for people; one line per problem is for editors and grep.
            for line in e.lines().take(e.problems.len()) {
                self.note(&line);
            }
        }
    }

    /// Report a failure: the error with its causes on stderr, or a JSON error object.
    pub(crate) fn error(&self, e: &hpc_cluster::Error) {
        let mut chain = Vec::new();
        let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(e);
        while let Some(c) = cause {
            chain.push(c.to_string());
            cause = c.source();
        }
        if self.json {
            self.json_value(&json!({"ok": false, "error": e.to_string(), "causes": chain}));
        } else {
            let mut text = format!("Error: {e}");
            for c in chain.iter().filter(|c| !e.to_string().contains(c.as_str())) {
                text.push_str(&format!("\n  caused by: {c}"));
            }
            stderr(&text);
        }
    }
}

/// A line on stderr; a closed stderr is ignored.
pub(crate) fn stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = err.write_all(b"\n");
    }
}
