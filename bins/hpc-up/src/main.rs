//! `hpc-up`: the command line. It parses arguments, sets up logging, calls one library
//! function per subcommand and renders the result; the work happens in the library crates.
#![allow(clippy::print_stdout, clippy::print_stderr)] // the binary is where output belongs

mod apply;
mod beegfs;
mod check;
mod image;
mod nodes;
mod output;
mod render;
mod seed;
mod slurm;

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

    /// libvirt connection for every node, overriding the file (e.g. `test:///default`).
    #[arg(long, global = true, value_name = "URI")]
    connect: Option<String>,

    /// State directory (journal, overlays, console logs), overriding the file.
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,

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
    /// Guest images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Check a running cluster.
    #[command(subcommand)]
    Check(CheckCommand),
    /// Open a shell on a node, or run a command there (`hpc-up ssh FILE NODE -- CMD ARGS…`).
    Ssh {
        /// The cluster file.
        file: PathBuf,
        /// The node.
        node: String,
        /// Command and arguments (run as this argv, quoted for the remote shell).
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Show what `up` would change: per libvirt object, create / unchanged / update /
    /// recreate / delete.
    Plan {
        /// The cluster file.
        file: PathBuf,
    },
    /// Create and start the cluster's network, pool, volumes and VMs. Journaled: a failure or
    /// Ctrl-C undoes what this run created. On an unchanged cluster it changes nothing.
    Up {
        /// The cluster file.
        file: PathBuf,
        /// Stop once the VMs run: no SSH wait, no node setup.
        #[arg(long)]
        no_ssh: bool,
        /// Seconds to wait for SSH on every node.
        #[arg(long, default_value_t = 600)]
        ssh_timeout: u64,
        /// Nodes configured over SSH at once (default: all).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        parallel: Option<u16>,
    },
    /// Destroy and remove everything the cluster owns (found from the journal and from
    /// libvirt metadata, so it also works after a crash).
    Down {
        /// The cluster file.
        file: PathBuf,
    },
    /// Per node: state, IP, MAC, vCPUs, memory.
    Status {
        /// The cluster file.
        file: PathBuf,
    },
    /// Start the cluster's VMs (and its network and pool).
    Start {
        /// The cluster file.
        file: PathBuf,
    },
    /// Shut the VMs down; power off those still running after the timeout.
    Stop {
        /// The cluster file.
        file: PathBuf,
        /// Seconds to wait for a graceful shutdown.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
enum CheckCommand {
    /// Per node and share: mounted with the right options, a host→guest and guest→host file
    /// round trip, `ro` enforced, throughput next to the node's local disk. Exit 1 on failure.
    Virtiofs {
        /// The cluster file.
        file: PathBuf,
    },
    /// Real jobs: `srun` across every node of every partition, an `sbatch` job whose output
    /// goes through a read-write share every node mounts (node-local `/tmp` when there is
    /// none), and `sacct` showing it when accounting is on. Exit 1 on failure.
    Slurm {
        /// The cluster file.
        file: PathBuf,
        /// Bound, in seconds, of each job and wait.
        #[arg(long, default_value_t = 180)]
        timeout: u64,
    },
    /// BeeGFS: the kernel gate and node facts, the release's own tools (7.x `beegfs-ctl`,
    /// `beegfs-check-servers`, `beegfs-df`; 8.x `beegfs node/target list`, `health check`),
    /// a write/read round trip on every client's mount and the aggregate throughput.
    Beegfs {
        /// The cluster file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Build the image the cluster file names (`image.base`, `kernel`, `initrd`) from Debian
    /// packages with mmdebstrap. A second build with the same inputs does nothing.
    Build {
        /// The cluster file.
        file: PathBuf,
        /// Build even when an image of the same inputs exists.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let out = Output::new(cli.output, cli.quiet);
    let result = match cli.command {
        Command::Schema { out: file } => render::schema(&out, file.as_deref()),
        Command::Validate { file } => render::validate(&out, &file),
        Command::Render { file, out: dir } => render::render(&out, &file, &dir),
        Command::Image(ImageCommand::Build { file, force }) => {
            image::build(&out, &target(&cli.connect, &cli.state_dir, &file), force)
        }
        Command::Ssh {
            file,
            node,
            command,
        } => image::ssh(
            &out,
            &target(&cli.connect, &cli.state_dir, &file),
            &node,
            &command,
        ),
        Command::Check(CheckCommand::Virtiofs { file }) => {
            check::virtiofs(&out, &target(&cli.connect, &cli.state_dir, &file))
        }
        Command::Check(CheckCommand::Slurm { file, timeout }) => slurm::check(
            &out,
            &target(&cli.connect, &cli.state_dir, &file),
            std::time::Duration::from_secs(timeout),
        ),
        Command::Check(CheckCommand::Beegfs { file }) => {
            beegfs::check(&out, &target(&cli.connect, &cli.state_dir, &file))
        }
        Command::Plan { file } => apply::plan(&out, &target(&cli.connect, &cli.state_dir, &file)),
        Command::Up {
            file,
            no_ssh,
            ssh_timeout,
            parallel,
        } => apply::up(
            &out,
            &target(&cli.connect, &cli.state_dir, &file),
            &apply::UpOptions {
                no_ssh,
                ssh_timeout: std::time::Duration::from_secs(ssh_timeout),
                parallel: parallel.map(usize::from),
            },
        ),
        Command::Down { file } => apply::down(&out, &target(&cli.connect, &cli.state_dir, &file)),
        Command::Status { file } => {
            apply::status(&out, &target(&cli.connect, &cli.state_dir, &file))
        }
        Command::Start { file } => apply::start(&out, &target(&cli.connect, &cli.state_dir, &file)),
        Command::Stop { file, timeout } => apply::stop(
            &out,
            &target(&cli.connect, &cli.state_dir, &file),
            std::time::Duration::from_secs(timeout),
        ),
    };
    match result {
        Ok(code) => code,
        Err(report) => {
            out.error(&report);
            ExitCode::from(1)
        }
    }
}

fn target<'a>(
    connect: &'a Option<String>,
    state_dir: &'a Option<PathBuf>,
    file: &'a std::path::Path,
) -> apply::Target<'a> {
    apply::Target {
        file,
        connect: connect.as_deref(),
        state_dir: state_dir.as_deref(),
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
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .with_target(false)
        .without_time()
        .init();
}
