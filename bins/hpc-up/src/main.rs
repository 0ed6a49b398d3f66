//! `hpc-up`: the command line over `hpc-cluster`. It parses arguments, draws progress,
//! prints reports as text or JSON, maps outcomes to exit codes and runs OpenSSH for
//! `hpc-up ssh`; the work happens in the library crates.
#![allow(clippy::print_stdout, clippy::print_stderr)] // the binary is where output belongs

mod output;
mod progress;
mod show;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use hpc_cluster::{CancelToken, Error, Libvirt, Overrides, Session, UpOptions};

use crate::output::Output;

/// Turn one YAML file into a running virtual HPC cluster on libvirt.
#[derive(Debug, Parser)]
#[command(name = "hpc-up", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Output format: human-readable text, or JSON for scripts (progress events then go to
    /// standard error as JSON lines).
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
    /// Container images for `srun --container` (the file's `containers:` section).
    #[command(subcommand)]
    Container(ContainerCommand),
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
    /// Show what `up` would change: libvirt objects per connection, and on every running
    /// node the host steps (base, SLURM, BeeGFS) that would change, with diffs. Creates
    /// nothing. Exit 0 either way.
    Plan {
        /// The cluster file.
        file: PathBuf,
    },
    /// Create and start the cluster's network, pool, volumes and VMs, then configure every
    /// node as it answers over SSH. Journaled: a failure or Ctrl-C in the libvirt part undoes
    /// what this run created; Ctrl-C later stops it within seconds (twice: at once). On an
    /// unchanged cluster it changes nothing.
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
        /// Change nothing: show the plan (`hpc-up plan`). Needs `--diff`.
        #[arg(long, requires = "diff")]
        check: bool,
        /// With `--check`: show file diffs.
        #[arg(long, requires = "check")]
        diff: bool,
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
    /// Print a shell completion script (e.g. `hpc-up completions bash >
    /// /etc/bash_completion.d/hpc-up`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff; `hpc-up man | man -l -`).
    Man,
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
    /// The project's MPI program with `srun --mpi=pmix` on every compute node: every rank
    /// takes part in an allreduce; latency and bandwidth between two nodes. Exit 1 on failure.
    Mpi {
        /// The cluster file.
        file: PathBuf,
        /// Bound, in seconds, of the job.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// `srun --container` on every compute node: the step runs in the bundle's root (its
    /// own os-release and marker file) inside the job's cgroup. Exit 1 on failure.
    Containers {
        /// The cluster file.
        file: PathBuf,
        /// The container image (default: the first of `containers.images`).
        #[arg(long)]
        image: Option<String>,
        /// Bound, in seconds, of each job.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Prometheus, from this host through its HTTP API: every target up, a query per node,
    /// the SLURM series against `sinfo`. Exit 1 on failure.
    Monitoring {
        /// The cluster file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ContainerCommand {
    /// Build container image NAME of the cluster file's `containers.images` into an OCI
    /// bundle from Debian packages (mmdebstrap), in the bundles directory every compute
    /// node sees. A second build with the same inputs does nothing.
    Build {
        /// The cluster file.
        file: PathBuf,
        /// The image's name.
        name: String,
        /// Build even when a bundle of the same inputs exists.
        #[arg(long)]
        force: bool,
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

/// Exit status of a run stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
const EXIT_CANCELLED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let out = Output::new(cli.output == Format::Json, cli.quiet);
    match run(&cli, &out) {
        Ok(code) => code,
        Err(Error::Load(hpc_config::LoadError::Invalid(errors))) => {
            out.config_errors(&errors);
            ExitCode::from(1)
        }
        Err(e) => {
            out.error(&e);
            ExitCode::from(if e.is_cancelled() { EXIT_CANCELLED } else { 1 })
        }
    }
}

fn run(cli: &Cli, out: &Output) -> Result<ExitCode, Error> {
    let overrides = Overrides {
        connect: cli.connect.clone(),
        state_dir: cli.state_dir.clone(),
    };
    let session = |file: &Path| Session::load(file, &overrides);
    match &cli.command {
        Command::Schema { out: file } => show::schema(out, file.as_deref()),
        Command::Validate { file } => Ok(show::validate(out, file)),
        Command::Completions { shell } => {
            let mut text = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "hpc-up", &mut text);
            let mut script = String::from_utf8_lossy(&text).into_owned();
            if *shell == clap_complete::Shell::Bash {
                // clap_complete 4.6 names a hyphenated program's subcommands one way where
                // it sets them and another in its `case` arms (clap-rs/clap#6421).
                script = script.replace("hpc__subcmd__up__subcmd__", "hpc__up__subcmd__");
            }
            out.data(&script);
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let mut roff = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut roff)
                .map_err(|e| Error::Usage(format!("cannot render the manual page: {e}")))?;
            out.data(&String::from_utf8_lossy(&roff));
            Ok(ExitCode::SUCCESS)
        }
        Command::Render { file, out: dir } => show::render(out, &session(file)?.render_to(dir)?),
        Command::Image(ImageCommand::Build { file, force }) => {
            let s = session(file)?;
            let started = std::time::Instant::now();
            let report = s.build_image(*force, |p| {
                out.note(&format!(
                    "[{:>6.1}s] {}",
                    started.elapsed().as_secs_f64(),
                    show::image_phase(p)
                ));
            })?;
            show::image(out, &report)
        }
        Command::Ssh {
            file,
            node,
            command,
        } => ssh(&session(file)?, node, command),
        Command::Check(CheckCommand::Virtiofs { file }) => {
            show::check_virtiofs(out, &session(file)?.check_virtiofs()?)
        }
        Command::Check(CheckCommand::Slurm { file, timeout }) => show::check_slurm(
            out,
            &session(file)?.check_slurm(Duration::from_secs(*timeout)),
        ),
        Command::Check(CheckCommand::Beegfs { file }) => {
            show::check_beegfs(out, &session(file)?.check_beegfs()?)
        }
        Command::Check(CheckCommand::Mpi { file, timeout }) => {
            let r = session(file)?.check_mpi(Duration::from_secs(*timeout))?;
            show::check_lines(out, &r, r.ok, &r.lines())
        }
        Command::Check(CheckCommand::Containers {
            file,
            image,
            timeout,
        }) => {
            let r =
                session(file)?.check_containers(image.as_deref(), Duration::from_secs(*timeout))?;
            show::check_lines(out, &r, r.ok, &r.lines())
        }
        Command::Check(CheckCommand::Monitoring { file }) => {
            let r = session(file)?.check_monitoring()?;
            show::check_lines(out, &r, r.ok, &r.lines())
        }
        Command::Container(ContainerCommand::Build { file, name, force }) => {
            let s = session(file)?;
            let started = std::time::Instant::now();
            let report = s.build_container(name, *force, |p| {
                out.note(&format!("[{:>6.1}s] {p}", started.elapsed().as_secs_f64()));
            })?;
            show::container(out, &report)
        }
        Command::Plan { file }
        | Command::Up {
            file, check: true, ..
        } => show::plan(out, &session(file)?.plan(&Libvirt)?),
        Command::Up {
            file,
            no_ssh,
            ssh_timeout,
            parallel,
            ..
        } => {
            let cancel = cancel_on_signals()?;
            let display = progress::Display::new(out);
            let s = session(file)?
                .with_cancel(cancel)
                .with_events(display.sink());
            let opts = UpOptions {
                no_ssh: *no_ssh,
                ssh_timeout: Duration::from_secs(*ssh_timeout),
                parallel: parallel.map(usize::from),
            };
            let result = s.up(&Libvirt, &opts);
            display.finish();
            show::up(out, s.cluster(), &result?)
        }
        Command::Down { file } => show::down(out, &session(file)?.down(&Libvirt)?),
        Command::Status { file } => {
            let s = session(file)?;
            show::status(out, s.cluster(), &s.status(&Libvirt)?)
        }
        Command::Start { file } => {
            let s = session(file)?;
            let started = s.start(&Libvirt)?;
            show::done(
                out,
                &serde_json::json!({"ok": true, "started": started}),
                &format!("{}: {} started", s.cluster().name, started.len()),
            )
        }
        Command::Stop { file, timeout } => {
            let s = session(file)?;
            let r = s.stop(&Libvirt, Duration::from_secs(*timeout))?;
            let text = format!(
                "{}: {} shut down, {} powered off after {timeout}s",
                s.cluster().name,
                r.shut_down.len(),
                r.powered_off.len()
            );
            show::done(
                out,
                &serde_json::json!({"ok": true, "shut-down": r.shut_down, "powered-off": r.powered_off}),
                &text,
            )
        }
    }
}

/// SIGINT and SIGTERM cancel the run (it stops within seconds and says where); a second
/// one exits at once.
fn cancel_on_signals() -> Result<CancelToken, Error> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as the previous signal left it.
        signal_hook::flag::register_conditional_shutdown(
            sig,
            i32::from(EXIT_CANCELLED),
            Arc::clone(&flag),
        )
        .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&flag)))
        .map_err(|e| Error::Usage(format!("cannot handle signals: {e}")))?;
    }
    Ok(CancelToken::from_flag(flag))
}

/// `hpc-up ssh NODE [CMD…]`: OpenSSH to a node with the cluster's key and pinned host keys
/// (an interactive shell needs OpenSSH's terminal handling). The command's words are quoted
/// so that the node runs exactly that argv.
fn ssh(s: &Session, node: &str, argv: &[String]) -> Result<ExitCode, Error> {
    let cluster = s.cluster();
    let Some(n) = cluster.node(node) else {
        let names: Vec<&str> = cluster.nodes.iter().map(|n| n.name.as_str()).collect();
        return Err(Error::Usage(format!(
            "no node is called `{node}`; the cluster has {}",
            names.join(", ")
        )));
    };
    let id = s.state().identity(cluster)?;
    let mut cmd = std::process::Command::new("ssh");
    cmd.arg("-i")
        .arg(&id.private)
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            s.state().known_hosts().display()
        ))
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .args(["-o", "LogLevel=ERROR", "-p"])
        .arg(cluster.ssh.port.to_string())
        .arg(format!("{}@{}", cluster.ssh.user, n.ip));
    if !argv.is_empty() {
        cmd.arg("--").arg(hpc_remote::quote_argv(argv));
    }
    let status = cmd
        .status()
        .map_err(|e| Error::Ssh(format!("cannot run ssh (package openssh-client): {e}")))?;
    Ok(ExitCode::from(
        status.code().unwrap_or(255).clamp(0, 255) as u8
    ))
}

/// Logs go to standard error; `RUST_LOG` overrides the level chosen by -v/-q.
fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
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
