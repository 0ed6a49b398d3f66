//! `hpc-up`: the command line. It parses arguments, sets up logging, calls one library
//! function per subcommand and renders the result; the work happens in the library crates.
#![allow(clippy::print_stdout, clippy::print_stderr)] // the binary is where output belongs

mod output;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::output::Output;

/// Turn one YAML file into a running virtual HPC cluster on libvirt.
#[derive(Debug, Parser)]
#[command(name = "hpc-up", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Output format: human-readable text, or JSON for scripts.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    output: Format,

    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,

    /// Only errors.
    #[arg(short, long, global = true)]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the JSON Schema of the cluster file (or write it to a file).
    Schema {
        /// Write the schema here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check a cluster file: exit 0 when valid, 1 when not (every problem is listed).
    Validate {
        /// The cluster file.
        file: PathBuf,
    },
    /// Write every artefact the planners produce for a cluster file into a directory.
    Render {
        /// The cluster file.
        file: PathBuf,
        /// Output directory (created when missing).
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let out = Output::new(cli.output);
    let result = match cli.command {
        Command::Schema { out: file } => render::schema(&out, file.as_deref()),
        Command::Validate { file } => render::validate(&out, &file),
        Command::Render { file, out: dir } => render::render(&out, &file, &dir),
    };
    match result {
        Ok(code) => code,
        Err(report) => {
            out.error(&report);
            ExitCode::from(1)
        }
    }
}

/// Logs go to standard error; `RUST_LOG` overrides the level chosen by -v/-q.
fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}
