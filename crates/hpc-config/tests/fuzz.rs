//! A mutation fuzzer for the cluster-file loader that runs on stable Rust, under `cargo test`.
//!
//! `fuzz` mutates seed files (the workspace's examples, the inputs found before, the hostile
//! files and a few built-in snippets) for `HPCUP_FUZZ_SECS` seconds (default 15) and runs
//! every mutant through the oracles of [`check`]: no panic, a report whose problems agree
//! with the text, a valid cluster that keeps the limits, and a bounded allocation peak.
//! `regressions` re-runs every file in `tests/fuzz/found/` and `tests/hostile/`. See
//! `tests/fuzz/README.md`.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // a test reports by printing and panicking

use std::alloc::System;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::panic::{self, AssertUnwindSafe, PanicHookInfo};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cap::Cap;
use hpc_config::{Cluster, ConfigErrors, LoadError, limits, load_str, read_file};
use peakmem_alloc::{INSTRUMENTED_SYSTEM, PeakMemAlloc, PeakMemAllocTrait};
use sha2::{Digest, Sha256};

/// Every allocation of this test binary is counted (`INSTRUMENTED_SYSTEM`: the peak since
/// the last reset) and capped (`Cap`: an allocation past the limit fails, which aborts).
#[global_allocator]
static ALLOC: Cap<&PeakMemAlloc<System>> = Cap::new(&INSTRUMENTED_SYSTEM, usize::MAX);

/// Allocation peak of one input (loading and rendering) above which the input is a finding.
const PEAK_LIMIT: usize = 256 << 20;
/// Allocation above which an input's allocations fail, so that a memory bomb aborts this
/// process instead of taking the (shared) machine's memory; the in-flight file names it.
const HARD_LIMIT: usize = 2 << 30;
/// Default fuzzing time, in seconds.
const DEFAULT_SECS: u64 = 15;
/// Largest mutant: just over the loader's own limit, so that the limit itself is tried.
const MAX_INPUT: usize = limits::MAX_FILE_BYTES + 4096;
/// Largest mutant kept in the corpus as a base for more mutants.
const MAX_CORPUS_INPUT: usize = 256 << 10;
/// Most entries in the corpus.
const MAX_CORPUS: usize = 4096;
/// Stack of the thread that runs the inputs: that of a main thread, where the binary loads.
const STACK: usize = 8 << 20;
/// Time spent minimising one finding, at most.
const MINIMISE_TIME: Duration = Duration::from_secs(20);
/// The name the loader is given for every input.
const FILE_NAME: &str = "fuzz.yaml";

/// The environment the inputs are loaded with: `${BIG}` is as long as one environment
/// string may be on Linux (`MAX_ARG_STRLEN`, 128 KiB), `${WEIRD}` holds YAML and hostlist
/// syntax, `${EMPTY}` is set and empty.
fn env(name: &str) -> Option<String> {
    match name {
        "HOME" => Some("/home/user".into()),
        "EMPTY" => Some(String::new()),
        "BIG" => Some("x".repeat(128 << 10)),
        "WEIRD" => Some("${HOME}/a: &a *a [x] {index:03} cn[1-9] é\n\t#".into()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Paths and files.

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn found_dir() -> PathBuf {
    crate_dir().join("tests/fuzz/found")
}

fn hostile_dir() -> PathBuf {
    crate_dir().join("tests/hostile")
}

fn examples_dir() -> PathBuf {
    crate_dir().join("../../examples")
}

fn tmp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

const IN_FLIGHT: &str = "hpc-config-fuzz-in-flight";

/// The input being run by this process, written before each run and removed at the end:
/// when the process dies (an abort, a stack overflow, the hard memory limit) the next run
/// finds it here.
fn in_flight_path() -> PathBuf {
    tmp_dir().join(format!("{IN_FLIGHT}.{}.yaml", std::process::id()))
}

/// Where a mutant that is not UTF-8 is written for `read_file`.
fn raw_path() -> PathBuf {
    tmp_dir().join(format!("hpc-config-fuzz-raw.{}.yaml", std::process::id()))
}

/// Every regular file under `dir` (none when it does not exist), sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs_err::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => out.extend(files_under(&path)),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
    out.sort();
    out
}

/// The regression inputs: every file in `tests/fuzz/found/` and `tests/hostile/`.
fn regression_files() -> Vec<PathBuf> {
    let mut files = files_under(&found_dir());
    files.extend(files_under(&hostile_dir()));
    files
}

fn short_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Save `bytes` as `tests/fuzz/found/<hash>.yaml`; its path, and whether it is new.
fn save_found(bytes: &[u8]) -> (PathBuf, bool) {
    let dir = found_dir();
    fs_err::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.yaml", short_hash(bytes)));
    let new = !path.exists();
    if new {
        fs_err::write(&path, bytes).unwrap();
    }
    (path, new)
}

fn relative(path: &Path) -> String {
    path.strip_prefix(crate_dir())
        .unwrap_or(path)
        .display()
        .to_string()
}

// ---------------------------------------------------------------------------------------
// Running one input.

/// The tests share the allocator's counters and the panic hook: they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

thread_local! {
    /// Whether the code running is the loader's (its panics are recorded, not printed).
    static IN_TARGET: Cell<bool> = const { Cell::new(false) };
    /// The step of [`exercise`] running.
    static STAGE: Cell<&'static str> = const { Cell::new("") };
    /// The message and place of the last panic in the loader.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

type Hook = Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static>;

/// While alive, panics in the loader are recorded in `LAST_PANIC` instead of printed; the
/// test's own panics go to the hook that was installed before.
struct QuietPanics {
    previous: Arc<Hook>,
}

impl QuietPanics {
    fn install() -> Self {
        let previous: Arc<Hook> = Arc::new(panic::take_hook());
        let forward = Arc::clone(&previous);
        panic::set_hook(Box::new(move |info| {
            if IN_TARGET.with(Cell::get) {
                let payload = info.payload();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(a panic payload that is not text)".into());
                let at = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                    .unwrap_or_default();
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{message} (at {at})")));
            } else {
                forward(info);
            }
        }));
        Self { previous }
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        // `set_hook` may not be called while panicking; the recording hook forwards then.
        if !std::thread::panicking() {
            let previous = Arc::clone(&self.previous);
            panic::set_hook(Box::new(move |info| previous(info)));
        }
    }
}

fn stage(name: &'static str) {
    STAGE.with(|s| s.set(name));
}

/// What the loader made of one input, with everything a user of the result calls on it.
enum Outcome {
    Valid {
        cluster: Box<Cluster>,
        json: Result<String, String>,
    },
    Invalid {
        errors: Box<ConfigErrors>,
        plain: String,
        color: String,
        display: String,
        lines: Vec<String>,
    },
    Other(String),
}

/// Load `text` and use the result as the binary does (render the report, with and without
/// colour; serialise the cluster).
fn exercise(text: &str) -> Outcome {
    stage("load_str");
    match load_str(FILE_NAME, text, &env) {
        Ok(cluster) => {
            stage("serde_json::to_string(&cluster)");
            let json = serde_json::to_string(&cluster).map_err(|e| e.to_string());
            Outcome::Valid {
                cluster: Box::new(cluster),
                json,
            }
        }
        Err(LoadError::Invalid(errors)) => {
            stage("ConfigErrors::render(false)");
            let plain = errors.render(false);
            stage("ConfigErrors::render(true)");
            let color = errors.render(true);
            stage("ConfigErrors Display");
            let display = errors.to_string();
            stage("ConfigErrors::lines");
            let lines = errors.lines().collect();
            Outcome::Invalid {
                errors,
                plain,
                color,
                display,
                lines,
            }
        }
        Err(other) => {
            stage("LoadError Display");
            Outcome::Other(other.to_string())
        }
    }
}

/// Which oracle an input broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// The loader (or the report's rendering) panicked.
    Panic,
    /// The report of an invalid file disagrees with the text or with itself.
    Report,
    /// A cluster that loaded breaks the limits or its own invariants.
    Valid,
    /// `read_file` misplaced (or missed) bytes that are not UTF-8.
    ReadFile,
    /// Loading and rendering allocated more than [`PEAK_LIMIT`] at once.
    Memory,
    /// Slower than `HPCUP_FUZZ_SLOW_MS` (only when that is set).
    Slow,
}

#[derive(Clone, Debug)]
struct Finding {
    kind: Kind,
    detail: String,
    /// What tells two findings apart: the same signature is taken as the same bug.
    signature: String,
}

impl Finding {
    fn new(kind: Kind, what: &str, message_shape: &str, detail: String) -> Self {
        Self {
            kind,
            signature: format!("{kind:?}|{what}|{message_shape}"),
            detail,
        }
    }
}

/// The result of one input through every oracle.
struct Checked {
    findings: Vec<Finding>,
    /// Shapes of what the loader said (problem messages without their values), to tell a
    /// mutant that did something new.
    shapes: Vec<String>,
    peak: usize,
    elapsed: Duration,
    valid: bool,
}

#[derive(Clone, Copy)]
struct Options {
    /// Inputs slower than this are findings (never in the default run).
    slow: Option<Duration>,
}

impl Options {
    fn from_env() -> Self {
        let slow = std::env::var("HPCUP_FUZZ_SLOW_MS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_millis);
        Self { slow }
    }
}

/// Run `bytes` (as text, lossily: `load_str` takes text) through the loader and every
/// oracle; with `raw_file` (a file holding `bytes`), also `read_file` when `bytes` is not
/// UTF-8.
fn check(bytes: &[u8], raw_file: Option<&Path>, options: Options) -> Checked {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let mut findings = Vec::new();
    // Best effort: the in-flight file only helps after a crash.
    let _ = fs_err::write(in_flight_path(), bytes);

    let _ = ALLOC.set_limit(ALLOC.allocated().saturating_add(HARD_LIMIT));
    INSTRUMENTED_SYSTEM.reset_peak_memory();
    LAST_PANIC.with(|p| p.borrow_mut().take());
    let start = Instant::now();
    IN_TARGET.with(|t| t.set(true));
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| exercise(&text)));
    IN_TARGET.with(|t| t.set(false));
    let elapsed = start.elapsed();
    let peak = INSTRUMENTED_SYSTEM.get_peak_memory();
    let _ = ALLOC.set_limit(usize::MAX);

    let mut shapes = Vec::new();
    let mut valid = false;
    // What the loader said, for the detail of a memory or time finding.
    let mut said = String::from("it panicked");
    match outcome {
        Err(_) => {
            let message = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| "(no message)".into());
            let at = STAGE.with(Cell::get);
            findings.push(Finding::new(
                Kind::Panic,
                at,
                &shape(&message),
                format!("panicked in {at}: {message}"),
            ));
        }
        Ok(Outcome::Valid { cluster, json }) => {
            valid = true;
            said = "the file is valid".into();
            shapes.push(valid_shape(&cluster));
            check_valid(&cluster, &json, &mut findings);
        }
        Ok(Outcome::Invalid {
            errors,
            plain,
            color,
            display,
            lines,
        }) => {
            said = errors.problems.first().map_or_else(
                || "no problem listed".into(),
                |p| format!("{} problems, the first: {}", errors.total(), p.message),
            );
            shapes.extend(errors.problems.iter().map(|p| shape(&p.message)));
            check_report(
                &text,
                &errors,
                [&plain, &color],
                &display,
                &lines,
                &mut findings,
            );
        }
        Ok(Outcome::Other(message)) => {
            findings.push(Finding::new(
                Kind::Report,
                "load_str returned an error other than Invalid",
                &shape(&message),
                format!("load_str returned an error other than LoadError::Invalid: {message}"),
            ));
        }
    }

    if let Some(path) = raw_file {
        check_read_file(bytes, path, &mut findings);
    }
    // One signature for every memory (and every time) finding: what the loader said differs
    // with every mutant, and one input of each is enough to start with.
    if peak > PEAK_LIMIT {
        findings.push(Finding::new(
            Kind::Memory,
            "peak",
            "",
            format!(
                "allocation peak {} MiB (limit {} MiB) for {} bytes of input ({} times its size), \
                 taking {:?}; {said}",
                peak >> 20,
                PEAK_LIMIT >> 20,
                bytes.len(),
                peak / bytes.len().max(1),
                elapsed
            ),
        ));
    }
    if let Some(slow) = options.slow
        && elapsed > slow
    {
        findings.push(Finding::new(
            Kind::Slow,
            "time",
            "",
            format!(
                "took {elapsed:?} (HPCUP_FUZZ_SLOW_MS {slow:?}) for {} bytes of input; {said}",
                bytes.len()
            ),
        ));
    }
    Checked {
        findings,
        shapes,
        peak,
        elapsed,
        valid,
    }
}

/// `message` without its values: everything between its first and last quote (`` ` `` or
/// `"`), JSON values and numbers are replaced, so that one rule broken by different values
/// has one shape.
fn shape(message: &str) -> String {
    let is_quote = |c: char| c == '`' || c == '"';
    let mut out = String::new();
    match (message.find(is_quote), message.rfind(is_quote)) {
        (Some(first), Some(last)) if first < last => {
            push_shape(&mut out, &message[..first]);
            out.push_str("`_`");
            push_shape(&mut out, &message[last + 1..]);
        }
        _ => push_shape(&mut out, message),
    }
    if let Some((cut, _)) = out.char_indices().nth(120) {
        out.truncate(cut);
    }
    out
}

fn push_shape(out: &mut String, text: &str) {
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '{' | '[' => {
                if depth == 0 {
                    out.push_str("{_}");
                }
                depth += 1;
            }
            '}' | ']' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            '0'..='9' => {
                if !out.ends_with('#') {
                    out.push('#');
                }
            }
            _ => out.push(c),
        }
    }
}

fn valid_shape(cluster: &Cluster) -> String {
    format!(
        "(valid) nodes~2^{} slurm={} beegfs={}",
        usize::BITS - cluster.nodes.len().leading_zeros(),
        cluster.slurm.is_some(),
        cluster.beegfs.is_some()
    )
}

/// The line and column (1-based, the column in characters) of byte `at` of `text`, counted
/// here independently of the loader; `None` when `at` is not a character boundary.
fn line_column(text: &str, at: usize) -> Option<(usize, usize)> {
    let before = text.get(..at)?;
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    Some((line, column))
}

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
struct ProblemJson {
    line: usize,
    column: usize,
    message: String,
}

/// The oracles for the report of an invalid file.
fn check_report(
    text: &str,
    errors: &ConfigErrors,
    renders: [&String; 2],
    display: &str,
    lines: &[String],
    findings: &mut Vec<Finding>,
) {
    let mut broke = |what: &str, shape_of: &str, detail: String| {
        findings.push(Finding::new(Kind::Report, what, &shape(shape_of), detail));
    };
    let problems = &errors.problems;
    if problems.is_empty() {
        broke(
            "no problem listed",
            display,
            format!("invalid, and no problem is listed (more = {})", errors.more),
        );
    }
    if problems.len() > limits::MAX_PROBLEMS {
        broke(
            "too many problems listed",
            "",
            format!(
                "{} problems listed; at most {} may be",
                problems.len(),
                limits::MAX_PROBLEMS
            ),
        );
    }
    if errors.total() != problems.len() + errors.more {
        broke(
            "total",
            "",
            format!(
                "total() = {}, problems {} + more {}",
                errors.total(),
                problems.len(),
                errors.more
            ),
        );
    }
    let mut previous_start = 0;
    for (i, p) in problems.iter().enumerate() {
        let start = p.span.offset();
        let end = start.checked_add(p.span.len());
        let place = format!(
            "problem {i} `{}` (line {}, column {}, span {start}+{}, pointer `{}`)",
            p.message,
            p.line,
            p.column,
            p.span.len(),
            p.pointer
        );
        if p.message.trim().is_empty() {
            broke("empty message", "", format!("{place}: empty message"));
        }
        if start < previous_start {
            broke(
                "problems out of order",
                &p.message,
                format!("{place}: starts before the problem listed before it ({previous_start})"),
            );
        }
        previous_start = start;
        match end {
            Some(end) if end <= text.len() => {
                if !text.is_char_boundary(end) {
                    broke(
                        "span ends inside a character",
                        &p.message,
                        format!("{place}: the span ends at byte {end}, inside a character"),
                    );
                }
            }
            _ => broke(
                "span outside the text",
                &p.message,
                format!(
                    "{place}: the span is outside the {} bytes of text",
                    text.len()
                ),
            ),
        }
        match line_column(text, start) {
            None if start > text.len() => {} // reported above
            None => broke(
                "span starts inside a character",
                &p.message,
                format!("{place}: the span starts at byte {start}, inside a character"),
            ),
            Some((line, column)) if (line, column) != (p.line, p.column) => broke(
                "line/column disagree with the span",
                &p.message,
                format!(
                    "{place}: the span's start is at line {line}, column {column}, the \
                     problem says line {}, column {}",
                    p.line, p.column
                ),
            ),
            Some(_) => {}
        }
        let json = ProblemJson {
            line: p.line,
            column: p.column,
            message: p.message.clone(),
        };
        let back = serde_json::to_string(&json)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_json::from_str::<ProblemJson>(&s).map_err(|e| e.to_string()));
        if back.as_ref() != Ok(&json) {
            broke(
                "JSON",
                &p.message,
                format!("{place}: JSON form does not round-trip: {back:?}"),
            );
        }
    }
    let expected_lines = problems.len() + usize::from(errors.more > 0);
    if lines.len() != expected_lines {
        broke(
            "lines()",
            "",
            format!(
                "lines() gave {} lines for {} problems and {} more",
                lines.len(),
                problems.len(),
                errors.more
            ),
        );
    }
    for render in renders {
        if render.trim().is_empty() {
            broke("empty render", "", "render() gave no text".into());
        }
    }
}

/// The oracles for a cluster that loaded.
fn check_valid(cluster: &Cluster, json: &Result<String, String>, findings: &mut Vec<Finding>) {
    let mut broke = |what: &str, detail: String| {
        findings.push(Finding::new(Kind::Valid, what, "", detail));
    };
    if cluster.nodes.len() > limits::MAX_NODES {
        broke(
            "too many nodes",
            format!(
                "{} nodes; at most {} may be",
                cluster.nodes.len(),
                limits::MAX_NODES
            ),
        );
    }
    let mut names = HashSet::new();
    let mut ips = HashSet::new();
    for node in &cluster.nodes {
        if !names.insert(node.name.as_str()) {
            broke(
                "duplicate node name",
                format!("node name `{}` twice", node.name.as_str()),
            );
        }
        if !ips.insert(node.ip) {
            broke(
                "duplicate address",
                format!("address {} twice (node `{}`)", node.ip, node.name.as_str()),
            );
        }
        if node.virtiofs.len() > limits::MAX_SHARES_PER_NODE {
            broke(
                "too many shares",
                format!(
                    "node `{}` has {} shares",
                    node.name.as_str(),
                    node.virtiofs.len()
                ),
            );
        }
        if node.pci_devices.len() > limits::MAX_PCI_PER_NODE {
            broke(
                "too many PCI devices",
                format!(
                    "node `{}` has {} PCI devices",
                    node.name.as_str(),
                    node.pci_devices.len()
                ),
            );
        }
    }
    if let Err(e) = json {
        broke("JSON", format!("the cluster does not serialise: {e}"));
    }
}

/// `read_file` on bytes that are not UTF-8 must say so, at the line and column of the first
/// bad byte (or refuse a file over the size limit).
fn check_read_file(bytes: &[u8], path: &Path, findings: &mut Vec<Finding>) {
    let Err(utf8) = std::str::from_utf8(bytes) else {
        return;
    };
    let valid = utf8.valid_up_to();
    let prefix = std::str::from_utf8(&bytes[..valid]).unwrap();
    let expected = line_column(prefix, valid).unwrap();
    IN_TARGET.with(|t| t.set(true));
    let result = panic::catch_unwind(|| match read_file(path) {
        Err(LoadError::NotUtf8 { line, column, .. }) => Ok(Some((line, column))),
        Err(LoadError::TooLarge { .. }) => Ok(None),
        Err(e) => Err(e.to_string()),
        Ok(_) => Err("read as text".into()),
    });
    IN_TARGET.with(|t| t.set(false));
    let detail = match result {
        Err(_) => {
            let message = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_default();
            format!("read_file panicked: {message}")
        }
        Ok(Ok(Some(at))) if at == expected => return,
        Ok(Ok(None)) if bytes.len() > limits::MAX_FILE_BYTES => return,
        Ok(got) => format!(
            "read_file on bytes that are not UTF-8 from byte {valid} (line {}, column {}) \
             gave {got:?}",
            expected.0, expected.1
        ),
    };
    findings.push(Finding::new(Kind::ReadFile, "not UTF-8", "", detail));
}

// ---------------------------------------------------------------------------------------
// Mutations.

/// splitmix64: small, fast and deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A repeat count: mostly small, sometimes large, rarely huge.
    fn count(&mut self) -> usize {
        match self.below(10) {
            0..=6 => 2 + self.below(9),
            7 | 8 => *self.pick(&[50, 100, 500, 1000, 4096, 4097]),
            _ => *self.pick(&[5000, 8192, 8193, 20_000, 100_000, 250_001]),
        }
    }
}

/// Tokens inserted anywhere: YAML syntax, numbers at the edges of their types, sizes,
/// hostlists, addresses, `${VAR}` and characters that are hard on line and column counting.
#[rustfmt::skip]
const TOKENS: &[&str] = &[
    // YAML
    "&a ", "*a", "&b ", "*b", "<<: ", "<<: *a", "<<: [*a, *b]", "[", "]", "{", "}", "- ",
    "? ", ": ", ":", ",", "\"", "'", "\n", "\n  ", "\n    - ", "\t", "---\n", "...\n", "#", " #",
    "|\n  ", ">-\n  ", "|+\n", "!!str ", "!!int ", "!!map ", "!!seq ", "!!binary ", "!custom ",
    "%YAML 1.2\n", "%TAG ! tag:x,2000:\n", "~", "null", "true", "off", "yes", "\\", "\\u0000",
    "\"\\u00e9\"", "\"\\x\"", "{a: 1, a: 2}", "[[[[[[[[", "]]]]]]]]", "{{{{{{", "}}}}}}",
    // numbers
    "18446744073709551616", "18446744073709551615", "9223372036854775808",
    "-9223372036854775809", "4294967295", "4294967296", "2147483648", "65535", "65536", "256",
    "-1", "0", "-0", "00", "0x10", "0o17", "1_000", "1e400", "-1e400", "1e-400", "1.5", ".inf",
    "-.inf", ".nan", "99999999999999999999999999999999999999999999999999",
    // sizes and times
    "0B", "1B", "0GiB", "18446744073709551615B", "16EiB", "17179869184GiB", "1.5GiB", "-1GiB",
    "1e30GiB", "0.0000001KiB", "99999999999999999999PiB", "1 GiB", "1gib", "1GB",
    "1-00:00:00", "99999999-99:99:99", "0:0:0", "UNLIMITED", "infinite",
    // hostlists and node names
    "cn[1-99999999]", "cn[0-18446744073709551615]", "cn[1-4096]", "cn[1-8193]", "cn[2-1]",
    "cn[", "cn]", "cn[1-2][3-4]", "cn[1-3]x[1-3]", "cn[01-1000000]", "cn[-]", "cn[,]",
    "cn[1-2,5-7,9]", "[1-2]", "ALL", "all", "{index}", "{index:0", "{index:02}", "{index:063}",
    "{index:064}", "{index:0999999999999999999999}", "{index:x}", "{index}{index}",
    "c[0000000000000000000000000000000000000000000000000000000000000000001-2]",
    // addresses
    "10.0.0.0/0", "10.0.0.0/32", "10.0.0.0/31", "0.0.0.0/0", "255.255.255.255", "256.1.1.1",
    "10.79.0.1", "10.79.0.255", "::1", "fe80::/10", "0000:3b:00.0", "ffff:ff:1f.7",
    "0000:00:00.8", "10de", "zzzz", "qemu+ssh://root@host2/system", "qemu:///session",
    // environment
    "${HOME}", "${BIG}", "${WEIRD}", "${EMPTY}", "${UNSET}", "${", "$", "$$", "${HOME",
    "${}", "$HOME", "${${HOME}}", "${BIG}${BIG}${BIG}${BIG}",
    // characters
    "é", "漢字", "🚀", "\u{301}", "\u{200b}", "\u{feff}", "\u{85}", "\u{2028}", "\u{10ffff}",
    "\r\n", "\r", "\0", "\x7f", "\u{1b}[31m", "\u{fffd}",
];

/// Values a scalar is replaced with.
#[rustfmt::skip]
const VALUES: &[&str] = &[
    "", "~", "null", "[]", "{}", "\"\"", "''", "-", "*a", "&a x", "*zz", "true", "no",
    "18446744073709551616", "4294967295", "4294967296", "-1", "0", "1e400", ".inf", ".nan",
    "18446744073709551615B", "16EiB", "0B", "1.5", "cn[1-99999999]", "cn[1-8193]",
    "[cn[1-99999999], cn[1-99999999]]", "{index:064}", "x{index:063}", "c{index:0}",
    "\"${BIG}\"", "${BIG}/${BIG}", "${WEIRD}", "${UNSET}", "/", "relative/path", "..",
    "/a/../../..", "10.0.0.0/0", "255.255.255.255", "!!binary aGk=", "|\n  a\n  b",
    "[a, [b, [c, [d]]]]", "{a: {b: {c: {d: e}}}}", "\"\\ud800\"", "é漢🚀", "\t", "a\u{0}b",
];

/// Bytes a byte is set to.
#[rustfmt::skip]
const BYTES: &[u8] = &[
    b'\n', b' ', b'\t', b':', b'-', b'[', b']', b'{', b'}', b'&', b'*', b'"', b'\'', b'#', b',',
    b'0', b'9', b'!', b'|', b'>', b'%', b'@', b'`', 0x00, 0xff, 0x80, 0xc3, 0xe2, 0xf0,
];

/// Every `key:` of the seeds, to put one key where another stood.
fn keys_of(seeds: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut keys = std::collections::BTreeSet::new();
    for seed in seeds {
        for line in seed.split(|&b| b == b'\n') {
            let line = trim_start(line);
            let line = line.strip_prefix(b"- ").unwrap_or(line);
            if let Some(colon) = line.iter().position(|&b| b == b':') {
                let key = &line[..colon];
                if !key.is_empty() && key.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-') {
                    keys.insert(key.to_vec());
                }
            }
        }
    }
    keys.into_iter().collect()
}

fn trim_start(line: &[u8]) -> &[u8] {
    let n = line.iter().take_while(|&&b| b == b' ').count();
    &line[n..]
}

/// Byte ranges of the lines of `data`, each with its `\n`.
fn lines_of(data: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' {
            out.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < data.len() {
        out.push((start, data.len()));
    }
    out
}

struct Mutator {
    rng: Rng,
    keys: Vec<Vec<u8>>,
}

impl Mutator {
    /// A mutant of `base`; `other` is a second input for splicing.
    fn mutate(&mut self, base: &[u8], other: &[u8]) -> Vec<u8> {
        let mut data = base.to_vec();
        // Mostly one or two changes, so that a valid base often stays nearly valid.
        let rounds = match self.rng.below(10) {
            0..=4 => 1,
            5..=7 => 2,
            _ => 3 + self.rng.below(6),
        };
        for _ in 0..rounds {
            self.mutate_once(&mut data, other);
            if data.len() > MAX_INPUT {
                data.truncate(MAX_INPUT);
            }
        }
        data
    }

    fn position(&mut self, data: &[u8]) -> usize {
        self.rng.below(data.len() + 1)
    }

    /// A position where YAML changes meaning: a line's start, after its indentation, after
    /// `: ` or `- `, or its end.
    fn yaml_position(&mut self, data: &[u8]) -> usize {
        let lines = lines_of(data);
        if lines.is_empty() {
            return 0;
        }
        let (start, end) = *self.rng.pick(&lines);
        let line = &data[start..end];
        let indent = line.len() - trim_start(line).len();
        let after_colon = line.windows(2).position(|w| w == b": ").map(|i| i + 2);
        let after_dash = line.windows(2).position(|w| w == b"- ").map(|i| i + 2);
        let content_end = if line.ends_with(b"\n") { end - 1 } else { end };
        match self.rng.below(5) {
            0 => start,
            1 => start + indent,
            2 => after_colon.map_or(content_end, |i| start + i),
            3 => after_dash.map_or(start + indent, |i| start + i),
            _ => content_end,
        }
    }

    fn token(&mut self) -> Vec<u8> {
        self.rng.pick(TOKENS).as_bytes().to_vec()
    }

    fn mutate_once(&mut self, data: &mut Vec<u8>, other: &[u8]) {
        match self.rng.below(20) {
            // Byte level.
            0 => {
                if !data.is_empty() {
                    let i = self.rng.below(data.len());
                    data[i] ^= 1 << self.rng.below(8);
                }
            }
            1 => {
                if !data.is_empty() {
                    let i = self.rng.below(data.len());
                    data[i] = *self.rng.pick(BYTES);
                }
            }
            2 => {
                let at = self.position(data);
                let n = 1 + self.rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| self.rng.next() as u8).collect();
                data.splice(at..at, bytes);
            }
            3 => {
                if !data.is_empty() {
                    let at = self.rng.below(data.len());
                    let n = (1 + self.rng.below(32)).min(data.len() - at);
                    data.drain(at..at + n);
                }
            }
            // Tokens.
            4 | 5 => {
                let at = self.position(data);
                let token = self.token();
                data.splice(at..at, token);
            }
            6 | 7 => {
                let at = self.yaml_position(data);
                let token = self.token();
                data.splice(at..at, token);
            }
            // Lines.
            8 => self.repeat_line(data),
            9 => self.repeat_chunk(data),
            10 => self.splice(data, other),
            11 => self.replace_value(data),
            12 => self.shuffle_lines(data),
            13 => self.indent(data),
            14 => self.insert_structure(data),
            15 => self.replace_key(data),
            16 => self.tweak_number(data),
            17 => {
                if !data.is_empty() && self.rng.one_in(3) {
                    let at = self.rng.below(data.len());
                    data.truncate(at);
                } else {
                    self.replace_value(data);
                }
            }
            18 => self.long_run(data),
            _ => self.anchor_value(data),
        }
    }

    fn repeat_line(&mut self, data: &mut Vec<u8>) {
        let lines = lines_of(data);
        if lines.is_empty() {
            return;
        }
        let (start, end) = *self.rng.pick(&lines);
        let mut line = data[start..end].to_vec();
        if !line.ends_with(b"\n") {
            line.push(b'\n');
        }
        let n = self.rng.count().min(MAX_INPUT / line.len().max(1));
        let repeated = line.repeat(n);
        data.splice(end..end, repeated);
    }

    fn repeat_chunk(&mut self, data: &mut Vec<u8>) {
        if data.is_empty() {
            return;
        }
        let at = self.rng.below(data.len());
        let len = (1 + self.rng.below(64)).min(data.len() - at);
        let chunk = data[at..at + len].to_vec();
        let n = self.rng.count().min(MAX_INPUT / len);
        data.splice(at..at, chunk.repeat(n));
    }

    fn splice(&mut self, data: &mut Vec<u8>, other: &[u8]) {
        let mine = lines_of(data);
        let theirs = lines_of(other);
        if theirs.is_empty() {
            return;
        }
        let cut = if mine.is_empty() {
            0
        } else {
            self.rng.pick(&mine).0
        };
        if self.rng.one_in(2) {
            // My beginning, their end.
            let from = self.rng.pick(&theirs).0;
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        } else {
            // Some of their lines inside mine.
            let a = self.rng.below(theirs.len());
            let b = (a + 1 + self.rng.below(8)).min(theirs.len());
            let chunk = other[theirs[a].0..theirs[b - 1].1].to_vec();
            data.splice(cut..cut, chunk);
        }
    }

    /// The value after `: ` or `- ` on a line, replaced with an extreme one.
    fn replace_value(&mut self, data: &mut Vec<u8>) {
        let lines = lines_of(data);
        let candidates: Vec<(usize, usize)> = lines
            .iter()
            .filter_map(|&(start, end)| {
                let line = &data[start..end];
                let content_end = if line.ends_with(b"\n") { end - 1 } else { end };
                let at = line
                    .windows(2)
                    .position(|w| w == b": ")
                    .or_else(|| line.windows(2).position(|w| w == b"- "))?;
                Some((start + at + 2, content_end))
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let (from, to) = *self.rng.pick(&candidates);
        let value = if self.rng.one_in(4) {
            self.token()
        } else {
            self.rng.pick(VALUES).as_bytes().to_vec()
        };
        data.splice(from..to.max(from), value);
    }

    fn shuffle_lines(&mut self, data: &mut Vec<u8>) {
        let lines = lines_of(data);
        if lines.len() < 2 {
            return;
        }
        let (a_start, a_end) = *self.rng.pick(&lines);
        match self.rng.below(3) {
            0 => {
                data.drain(a_start..a_end);
            }
            1 => {
                // Delete a block of lines.
                let i = self.rng.below(lines.len());
                let j = (i + 1 + self.rng.below(10)).min(lines.len());
                data.drain(lines[i].0..lines[j - 1].1);
            }
            _ => {
                // Move a line elsewhere.
                let mut line = data[a_start..a_end].to_vec();
                if !line.ends_with(b"\n") {
                    line.push(b'\n');
                }
                data.drain(a_start..a_end);
                let lines = lines_of(data);
                let to = if lines.is_empty() {
                    0
                } else {
                    self.rng.pick(&lines).0
                };
                data.splice(to..to, line);
            }
        }
    }

    fn indent(&mut self, data: &mut Vec<u8>) {
        let lines = lines_of(data);
        if lines.is_empty() {
            return;
        }
        let i = self.rng.below(lines.len());
        let j = (i + 1 + self.rng.below(4)).min(lines.len());
        let block: Vec<(usize, usize)> = lines[i..j].to_vec();
        let how = self.rng.below(4);
        // Back to front, so that earlier offsets stay right.
        for &(start, end) in block.iter().rev() {
            match how {
                0 => {
                    data.splice(start..start, *b"  ");
                }
                1 => {
                    let spaces = data[start..end].iter().take_while(|&&b| b == b' ').count();
                    data.drain(start..start + spaces.min(2));
                }
                2 => {
                    data.splice(start..start, *b"\t");
                }
                _ => {
                    let spaces = data[start..end].iter().take_while(|&&b| b == b' ').count();
                    data.drain(start..start + spaces);
                }
            }
        }
    }

    /// Structures that stress the limits: an alias bomb, deep nesting, a merge chain, a
    /// wide mapping.
    fn insert_structure(&mut self, data: &mut Vec<u8>) {
        let mut s = String::new();
        match self.rng.below(5) {
            0 => {
                let levels = 1 + self.rng.below(9);
                let width = 2 + self.rng.below(9);
                s.push_str("bomb0: &b0 [");
                s.push_str(&vec!["x"; width].join(", "));
                s.push_str("]\n");
                for l in 1..=levels {
                    s.push_str(&format!("bomb{l}: &b{l} ["));
                    s.push_str(&vec![format!("*b{}", l - 1); width].join(", "));
                    s.push_str("]\n");
                }
            }
            1 => {
                let depth = *self.rng.pick(&[
                    limits::MAX_DEPTH - 2,
                    limits::MAX_DEPTH,
                    limits::MAX_DEPTH + 1,
                    1000,
                    100_000,
                ]);
                let (open, close) = *self.rng.pick(&[("[", "]"), ("{a: ", "}"), ("- ", "")]);
                s.push_str("deep: ");
                s.push_str(&open.repeat(depth));
                s.push('x');
                s.push_str(&close.repeat(depth));
                s.push('\n');
            }
            2 => {
                let depth = *self.rng.pick(&[10, limits::MAX_DEPTH + 1, 500]);
                for d in 0..depth {
                    s.push_str(&"  ".repeat(d));
                    s.push_str("a:\n");
                }
            }
            3 => {
                let n = 2 + self.rng.below(30);
                s.push_str("m0: &m0 {a: 1}\n");
                for i in 1..n {
                    s.push_str(&format!("m{i}: &m{i} {{<<: *m{}, k{i}: {i}}}\n", i - 1));
                }
            }
            _ => {
                let n = self.rng.count();
                for i in 0..n.min(100_000) {
                    s.push_str(&format!("k{i}: {i}\n"));
                }
            }
        }
        let lines = lines_of(data);
        let at = if lines.is_empty() || self.rng.one_in(2) {
            data.len()
        } else {
            self.rng.pick(&lines).0
        };
        if at == data.len() && !data.is_empty() && !data.ends_with(b"\n") {
            data.push(b'\n');
        }
        let at = at.min(data.len());
        data.splice(at..at, s.into_bytes());
    }

    fn replace_key(&mut self, data: &mut Vec<u8>) {
        if self.keys.is_empty() {
            return;
        }
        let lines = lines_of(data);
        let candidates: Vec<(usize, usize)> = lines
            .iter()
            .filter_map(|&(start, end)| {
                let line = &data[start..end];
                let indent = line.len() - trim_start(line).len();
                let rest = &line[indent..];
                let skip = if rest.starts_with(b"- ") { 2 } else { 0 };
                let colon = rest[skip..].iter().position(|&b| b == b':')?;
                Some((start + indent + skip, start + indent + skip + colon))
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let (from, to) = *self.rng.pick(&candidates);
        let key = self.rng.pick(&self.keys).clone();
        data.splice(from..to, key);
    }

    fn tweak_number(&mut self, data: &mut Vec<u8>) {
        let runs: Vec<(usize, usize)> = {
            let mut runs = Vec::new();
            let mut i = 0;
            while i < data.len() {
                if data[i].is_ascii_digit() {
                    let j = i + data[i..].iter().take_while(|b| b.is_ascii_digit()).count();
                    runs.push((i, j));
                    i = j;
                } else {
                    i += 1;
                }
            }
            runs
        };
        if runs.is_empty() {
            return;
        }
        let (from, to) = *self.rng.pick(&runs);
        let n: u128 = std::str::from_utf8(&data[from..to])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let new = match self.rng.below(8) {
            0 => n.saturating_add(1).to_string(),
            1 => n.saturating_sub(1).to_string(),
            2 => "0".into(),
            3 => n.saturating_mul(1000).to_string(),
            4 => format!("{}{}", "0".repeat(1 + self.rng.below(70)), n),
            5 => u64::MAX.to_string(),
            6 => (u128::from(u64::MAX) + 1).to_string(),
            _ => (*self
                .rng
                .pick(&[255u64, 256, 4095, 4096, 4097, 8192, 8193, 65_535, 65_536]))
            .to_string(),
        };
        data.splice(from..to, new.into_bytes());
    }

    fn long_run(&mut self, data: &mut Vec<u8>) {
        let n = *self
            .rng
            .pick(&[62, 63, 64, 65, 999, 1000, 1001, 4096, 65_536, 1 << 20]);
        let unit = *self
            .rng
            .pick(&["a", "0", "é", " ", "-", "9", "a-", "\\", "🚀"]);
        let at = if self.rng.one_in(2) {
            self.yaml_position(data)
        } else {
            self.position(data)
        };
        let run = unit.repeat(n / unit.len().max(1));
        data.splice(at..at, run.into_bytes());
    }

    /// Put an anchor on one value and aliases to it in place of others.
    fn anchor_value(&mut self, data: &mut Vec<u8>) {
        let lines = lines_of(data);
        let values: Vec<usize> = lines
            .iter()
            .filter_map(|&(start, end)| {
                let line = &data[start..end];
                let at = line.windows(2).position(|w| w == b": ")?;
                Some(start + at + 2)
            })
            .collect();
        if values.len() < 2 {
            return;
        }
        let anchor_at = *self.rng.pick(&values);
        let name = *self.rng.pick(&["a", "b", "x"]);
        let mut edits: Vec<(usize, Vec<u8>, bool)> =
            vec![(anchor_at, format!("&{name} ").into_bytes(), false)];
        for _ in 0..1 + self.rng.below(3) {
            let at = *self.rng.pick(&values);
            if at != anchor_at {
                edits.push((at, format!("*{name}").into_bytes(), true));
            }
        }
        edits.sort_by_key(|e| std::cmp::Reverse(e.0));
        edits.dedup_by_key(|e| e.0);
        for (at, text, replace) in edits {
            if replace {
                let end = at + data[at..].iter().take_while(|&&b| b != b'\n').count();
                data.splice(at..end, text);
            } else {
                data.splice(at..at, text);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Seeds.

/// Built-in seeds for what the examples do not show: anchors and merges, flow style,
/// `${VAR}`, many groups, hostile shapes.
fn builtin_seeds() -> Vec<String> {
    let mut seeds: Vec<String> = [
        "",
        "---\n",
        "~\n",
        "[]\n",
        "name: x\n",
        "\u{feff}name: bom\n",
        "name: anchors
network: {cidr: 10.90.0.0/24, bridge: hpcbr-a}
image: {base: /img/base.qcow2}
controller:
  nodes: [{name: ctl, ip: 10.90.0.10}]
  memory: &mem 2GiB
compute:
  - &grp
    name: cn{index:03}
    count: 4
    memory: *mem
    vcpus: 2
  - <<: *grp
    name: gp{index}
    first-index: 0
slurm:
  partitions:
    - {name: all, nodes: [\"cn[001-004]\", \"gp[0-3]\"], default: true}
",
        "{name: flow, network: {cidr: 10.91.0.0/24, bridge: hpcbr-f}, image: {base: /b.qcow2}, \
         controller: {nodes: [{name: ctl}]}, compute: [{name: \"n{index}\", count: 3}], \
         slurm: {partitions: [{name: p, nodes: [\"n[1-3]\"], default: true}]}}\n",
        "name: envs
network:
  cidr: 10.92.0.0/24
  bridge: hpcbr-e
image:
  base: ${HOME}/base.qcow2
  kernel: ${HOME}/vmlinuz
  initrd: ${EMPTY}/initrd
  cmdline: ${WEIRD}
state-dir: ${HOME}/${BIG}
controller:
  nodes:
    - name: ctl
compute:
  - name: cn{index}
    count: 2
    virtiofs:
      - tag: home
        host-path: ${HOME}
        mount-point: /home/user
",
        "# é漢🚀
name: uni # \u{200b} zero width
network:\r
  cidr: 10.93.0.0/16\r
  bridge: \"hpcbr-\\x75ni\"
image:
  base: /b.qcow2
controller:
  nodes:
    - name: ctl\t# a tab
compute:
  - name: \"cn{index}\"
    count: 4096
",
    ]
    .map(String::from)
    .to_vec();
    // A classic alias bomb.
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        bomb.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 9].join(", ")
        ));
    }
    seeds.push(bomb);
    // Many groups with many nodes, over the limits.
    let mut groups = String::from(
        "name: big\nnetwork: {cidr: 10.0.0.0/8, bridge: hpcbr-b}\nimage: {base: /b.qcow2}\n\
         controller: {nodes: [{name: ctl}]}\ncompute:\n",
    );
    for g in 0..3 {
        groups.push_str(&format!("  - name: g{g}n{{index}}\n    count: 4096\n"));
    }
    groups.push_str("slurm:\n  partitions:\n    - name: all\n      nodes: [\"g0n[1-4096]\", \"g1n[1-4096]\", \"g2n[1-4096]\"]\n");
    seeds.push(groups);
    seeds
}

/// The seeds, named: the examples, the inputs found before, the hostile files, the built-in
/// ones.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<PathBuf> = files_under(&examples_dir())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.extend(regression_files());
    let mut seeds: Vec<(String, Vec<u8>)> = files
        .iter()
        .filter_map(|p| Some((relative(p), fs_err::read(p).ok()?)))
        .collect();
    seeds.extend(
        builtin_seeds()
            .into_iter()
            .enumerate()
            .map(|(i, s)| (format!("built-in seed {i}"), s.into_bytes())),
    );
    seeds
}

// ---------------------------------------------------------------------------------------
// The fuzz loop.

/// The inputs that runs died on: the in-flight files of processes that are gone. Each is
/// saved to `found/` and run again here: when it fails an oracle (or kills this process too)
/// it stays; when it passes, the run was stopped from outside and the file is removed again.
fn recover_in_flight(options: Options) -> Vec<(PathBuf, Finding)> {
    let mut out = Vec::new();
    for path in files_under(&tmp_dir()) {
        let Some(pid) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(IN_FLIGHT))
            .and_then(|n| n.strip_prefix('.'))
            .and_then(|n| n.strip_suffix(".yaml"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists() {
            continue; // its process is still running
        }
        let Ok(bytes) = fs_err::read(&path) else {
            continue;
        };
        let _ = fs_err::remove_file(&path);
        let (saved, new) = save_found(&bytes);
        // Straight to stderr, past the test harness's capture: if this kills the process too,
        // this line is what tells why.
        let _ = writeln!(
            std::io::stderr(),
            "fuzz: process {pid} died on {} (saved as a regression input); running it again",
            relative(&saved)
        );
        let findings = check(&bytes, None, options).findings;
        if findings.is_empty() {
            if new {
                let _ = fs_err::remove_file(&saved);
            }
            let _ = writeln!(
                std::io::stderr(),
                "fuzz: it passes every oracle: process {pid} was stopped from outside; not kept"
            );
        }
        out.extend(findings.into_iter().map(|mut f| {
            f.detail = format!("(process {pid} died on it) {}", f.detail);
            (saved.clone(), f)
        }));
    }
    out
}

/// The minimised form of `bytes` that still gives a finding with `signature`: blocks of
/// whole lines, then of bytes, are deleted (halving the block size) while it does, for at
/// most [`MINIMISE_TIME`]. As text unless the finding is `read_file`'s.
fn minimise(bytes: &[u8], signature: &str, kind: Kind, options: Options) -> Vec<u8> {
    let deadline = Instant::now() + MINIMISE_TIME;
    let raw = raw_path();
    let still_fails = |candidate: &[u8]| {
        let raw_file = (kind == Kind::ReadFile)
            .then(|| fs_err::write(&raw, candidate).ok().map(|()| raw.as_path()))
            .flatten();
        check(candidate, raw_file, options)
            .findings
            .iter()
            .any(|f| f.signature == signature)
    };
    let mut lines: Vec<Vec<u8>> = bytes
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    let mut block = lines.len().div_ceil(2);
    while block >= 1 && Instant::now() < deadline {
        let mut i = 0;
        while i < lines.len() && Instant::now() < deadline {
            let candidate: Vec<u8> = lines[..i]
                .iter()
                .chain(lines[(i + block).min(lines.len())..].iter())
                .flatten()
                .copied()
                .collect();
            if candidate.len() < bytes.len() && still_fails(&candidate) {
                lines.drain(i..(i + block).min(lines.len()));
            } else {
                i += block;
            }
        }
        if block == 1 {
            break;
        }
        block = block.div_ceil(2);
    }
    let mut data = lines.concat();
    let mut block = data.len() / 2;
    while block >= 1 && Instant::now() < deadline {
        let mut i = 0;
        while i < data.len() && Instant::now() < deadline {
            let end = (i + block).min(data.len());
            let candidate: Vec<u8> = [&data[..i], &data[end..]].concat();
            if still_fails(&candidate) {
                data = candidate;
            } else {
                i += block;
            }
        }
        block /= 2;
    }
    if kind == Kind::ReadFile {
        data
    } else {
        String::from_utf8_lossy(&data).into_owned().into_bytes()
    }
}

fn seed_from_env() -> u64 {
    match std::env::var("HPCUP_FUZZ_SEED") {
        Ok(v) => {
            let v = v.trim();
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            };
            parsed.unwrap_or_else(|e| panic!("HPCUP_FUZZ_SEED={v}: {e}"))
        }
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v}: {e}"))
    })
}

#[derive(Default)]
struct Stats {
    inputs: u64,
    valid: u64,
    invalid: u64,
    read_file: u64,
    known: BTreeMap<String, u64>,
    max_peak: usize,
    slowest: (Duration, usize),
}

/// What one run found: (file saved, finding).
type Found = Vec<(PathBuf, Finding)>;

fn fuzz_loop(
    seed: u64,
    duration: Duration,
    max_runs: Option<u64>,
    options: Options,
) -> (Stats, Found) {
    let mut found: Found = Vec::new();
    found.extend(recover_in_flight(options));
    let (names, seeds): (Vec<String>, Vec<Vec<u8>>) = seeds().into_iter().unzip();
    let mut mutator = Mutator {
        rng: Rng(seed),
        keys: keys_of(&seeds),
    };

    // The signatures of the regression inputs are known bugs: `regressions` reports them.
    let mut known_signatures: HashSet<String> = HashSet::new();
    let mut shapes: HashSet<String> = HashSet::new();
    // Valid files are mutated half of the time: rules beyond the first parse are reached
    // from them.
    let mut valid_corpus: Vec<Vec<u8>> = Vec::new();
    let verbose = std::env::var_os("HPCUP_FUZZ_VERBOSE").is_some();
    for (name, seed_input) in names.iter().zip(&seeds) {
        let checked = check(seed_input, None, options);
        if checked.valid {
            valid_corpus.push(seed_input.clone());
        }
        if verbose {
            let said = checked
                .shapes
                .first()
                .map_or("(no problem)", String::as_str);
            println!("fuzz: seed {name}: {said}");
        }
        known_signatures.extend(checked.findings.into_iter().map(|f| f.signature));
        shapes.extend(checked.shapes);
    }
    let seed_count = seeds.len();
    let mut corpus = seeds;
    let mut stats = Stats::default();
    let raw = raw_path();
    let start = Instant::now();
    let mut next_report = Duration::from_secs(30);
    while start.elapsed() < duration && max_runs.is_none_or(|max| stats.inputs < max) {
        let base = if !valid_corpus.is_empty() && mutator.rng.one_in(2) {
            mutator.rng.pick(&valid_corpus)
        } else {
            mutator.rng.pick(&corpus)
        };
        let other = mutator.rng.pick(&corpus);
        let input = mutator.mutate(base, other);
        let raw_file = (std::str::from_utf8(&input).is_err() && mutator.rng.one_in(16))
            .then(|| fs_err::write(&raw, &input).ok().map(|()| raw.as_path()))
            .flatten();
        stats.read_file += u64::from(raw_file.is_some());
        let checked = check(&input, raw_file, options);
        stats.inputs += 1;
        if checked.valid {
            stats.valid += 1;
        } else {
            stats.invalid += 1;
        }
        stats.max_peak = stats.max_peak.max(checked.peak);
        if checked.elapsed > stats.slowest.0 {
            stats.slowest = (checked.elapsed, input.len());
        }
        for finding in checked.findings {
            if known_signatures.contains(&finding.signature) {
                *stats.known.entry(finding.signature).or_default() += 1;
                continue;
            }
            known_signatures.insert(finding.signature.clone());
            // Save the input as it was run: as text, unless `read_file` read its bytes.
            let as_run = if finding.kind == Kind::ReadFile {
                input.clone()
            } else {
                String::from_utf8_lossy(&input).into_owned().into_bytes()
            };
            let small = minimise(&as_run, &finding.signature, finding.kind, options);
            let (path, _) = save_found(&small);
            println!(
                "fuzz: NEW {:?} finding, saved {} ({} bytes; {} before minimising): {}",
                finding.kind,
                relative(&path),
                small.len(),
                as_run.len(),
                finding.detail
            );
            found.push((path, finding));
        }
        if checked.valid && input.len() <= MAX_CORPUS_INPUT && mutator.rng.one_in(4) {
            if valid_corpus.len() < MAX_CORPUS / 4 {
                valid_corpus.push(input.clone());
            } else {
                let replace = mutator.rng.below(valid_corpus.len());
                valid_corpus[replace] = input.clone();
            }
        }
        let new_shape = checked.shapes.iter().any(|s| !shapes.contains(s));
        if new_shape && input.len() <= MAX_CORPUS_INPUT {
            shapes.extend(checked.shapes);
            if corpus.len() < MAX_CORPUS {
                corpus.push(input);
            } else {
                let replace = seed_count + mutator.rng.below(corpus.len() - seed_count);
                corpus[replace] = input;
            }
        }
        if start.elapsed() >= next_report {
            println!(
                "fuzz: {:?}: {} inputs, corpus {} + {} valid, shapes {}, findings {}",
                start.elapsed(),
                stats.inputs,
                corpus.len(),
                valid_corpus.len(),
                shapes.len(),
                found.len()
            );
            next_report += Duration::from_secs(30);
        }
    }
    if verbose {
        let mut all: Vec<&String> = shapes.iter().collect();
        all.sort();
        for s in all.iter().step_by((all.len() / 40).max(1)) {
            println!("fuzz: shape {s}");
        }
    }
    println!(
        "fuzz: corpus {} ({} seeds), {} shapes of result seen",
        corpus.len(),
        seed_count,
        shapes.len()
    );
    (stats, found)
}

/// Mutate the seeds for `HPCUP_FUZZ_SECS` seconds (or `HPCUP_FUZZ_RUNS` inputs) and fail on
/// every new finding, saved to `tests/fuzz/found/`.
#[test]
fn fuzz() {
    let _serial = serial();
    let seed = seed_from_env();
    let secs = env_number("HPCUP_FUZZ_SECS").unwrap_or(DEFAULT_SECS);
    let max_runs = env_number("HPCUP_FUZZ_RUNS");
    let options = Options::from_env();
    println!(
        "fuzz: seed {seed} (HPCUP_FUZZ_SEED={seed} repeats it), {secs} s{}",
        max_runs.map_or(String::new(), |n| format!(", at most {n} inputs"))
    );
    let quiet = QuietPanics::install();
    let (stats, found) = std::thread::Builder::new()
        .name("fuzz".into())
        .stack_size(STACK)
        .spawn(move || fuzz_loop(seed, Duration::from_secs(secs), max_runs, options))
        .unwrap()
        .join()
        .unwrap();
    drop(quiet);
    let _ = fs_err::remove_file(in_flight_path());
    let _ = fs_err::remove_file(raw_path());

    println!(
        "fuzz: ran {} inputs in {secs} s ({} loaded, {} invalid; {} also through read_file); \
         seed {seed}",
        stats.inputs, stats.valid, stats.invalid, stats.read_file
    );
    println!(
        "fuzz: largest allocation peak {} KiB; slowest input {:?} ({} bytes)",
        stats.max_peak >> 10,
        stats.slowest.0,
        stats.slowest.1
    );
    for (signature, n) in &stats.known {
        println!("fuzz: known finding (in the regression inputs) seen {n} times: {signature}");
    }
    let report: Vec<String> = found
        .iter()
        .map(|(path, f)| format!("{} [{:?}] {}", relative(path), f.kind, f.detail))
        .collect();
    assert!(
        report.is_empty(),
        "{} new finding(s), saved as regression inputs:\n{}",
        report.len(),
        report.join("\n")
    );
}

/// Every file in `tests/fuzz/found/` and `tests/hostile/` passes every oracle. With
/// `HPCUP_FUZZ_FILE` (paths separated by `:`), only those files.
#[test]
fn regressions() {
    let _serial = serial();
    let options = Options::from_env();
    let quiet = QuietPanics::install();
    let files = match std::env::var("HPCUP_FUZZ_FILE") {
        Ok(list) => list.split(':').map(PathBuf::from).collect(),
        Err(_) => regression_files(),
    };
    let results = std::thread::Builder::new()
        .name("regressions".into())
        .stack_size(STACK)
        .spawn(move || {
            let mut failures = Vec::new();
            failures.extend(recover_in_flight(options));
            for path in files {
                let bytes = fs_err::read(&path).unwrap();
                let checked = check(&bytes, Some(&path), options);
                println!(
                    "regressions: {}: {}, peak {} KiB, {:?}, {} finding(s)",
                    relative(&path),
                    if checked.valid { "valid" } else { "invalid" },
                    checked.peak >> 10,
                    checked.elapsed,
                    checked.findings.len()
                );
                for finding in checked.findings {
                    failures.push((path.clone(), finding));
                }
            }
            failures
        })
        .unwrap()
        .join()
        .unwrap();
    drop(quiet);
    let _ = fs_err::remove_file(in_flight_path());
    let report: Vec<String> = results
        .iter()
        .map(|(path, f)| format!("{} [{:?}] {}", relative(path), f.kind, f.detail))
        .collect();
    assert!(
        report.is_empty(),
        "{} regression input(s) fail:\n{}",
        report.len(),
        report.join("\n")
    );
}
