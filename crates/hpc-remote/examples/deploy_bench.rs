//! The deploy benchmark: 2 directories, 4 templated files and a handler on every host,
//! over SSH (one connection and one exec channel per host) — the workload of the Ansible
//! baseline, with the same templates (`bench_templates/`).
//!
//! ```text
//! cargo run --release -p hpc-remote --example deploy_bench -- \
//!     --hosts /srv/hpcnet/hosts.txt --key /srv/hpcnet/ssh/id_ed25519 \
//!     --known-hosts /srv/hpcnet/ssh/known_hosts --parallel 8 [--check [--diff]]
//! ```
//!
//! Prints `NAME changed=N` per host (N counts changed steps: 7 on a first apply — 2
//! directories, 4 files, the handler — and 0 on a re-run) and a `total` line. Exits 1 when
//! a host failed. `--local-root DIR` applies to `DIR/NAME/…` on this machine instead.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a CLI: its output is the point

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use hpc_remote::{
    EnsureDirectory, EnsureFile, Executor, HostPlan, LocalExecutor, Mode, Owner, RunCommand,
    SshExecutor, SshHost, SshOptions, Summary, apply_all,
};

const TEMPLATES: [(&str, &str, u32, bool); 4] = [
    (
        include_str!("bench_templates/app.conf.j2"),
        "/opt/hpcbench/app.conf",
        0o644,
        false,
    ),
    (
        include_str!("bench_templates/node.conf.j2"),
        "/opt/hpcbench/conf.d/node.conf",
        0o644,
        false,
    ),
    (
        include_str!("bench_templates/secret.key.j2"),
        "/opt/hpcbench/conf.d/secret.key",
        0o600,
        true,
    ),
    (
        include_str!("bench_templates/run.sh.j2"),
        "/opt/hpcbench/run.sh",
        0o755,
        false,
    ),
];

#[derive(Parser)]
#[command(about = "Apply the hpcbench deploy workload to every host")]
struct Args {
    /// File with one `NAME IP` per line.
    #[arg(long)]
    hosts: PathBuf,
    /// Private key (ed25519).
    #[arg(long, required_unless_present = "local_root")]
    key: Option<PathBuf>,
    /// Pinned host keys (OpenSSH known_hosts); without it keys are trusted on first use.
    #[arg(long)]
    known_hosts: Option<PathBuf>,
    /// Where trust-on-first-use host keys are recorded.
    #[arg(long, default_value = ".hpc-remote-state")]
    state_dir: PathBuf,
    /// Remote user.
    #[arg(long, default_value = "root")]
    user: String,
    /// SSH port.
    #[arg(long, default_value_t = 22)]
    port: u16,
    /// Hosts worked on at once.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    /// Change nothing; report what would change.
    #[arg(long)]
    check: bool,
    /// With --check: print diffs.
    #[arg(long)]
    diff: bool,
    /// Apply locally under DIR/NAME instead of over SSH.
    #[arg(long)]
    local_root: Option<PathBuf>,
}

/// Renders a bench template: plain `{{ host }}` / `{{ ip }}` substitution.
fn render(template: &str, host: &str, ip: &str) -> String {
    template.replace("{{ host }}", host).replace("{{ ip }}", ip)
}

fn plan(host: &str, ip: &str) -> HostPlan {
    let root = Owner::new("root", "root");
    let mut p = HostPlan::new(host)
        .step(
            "dir /opt/hpcbench",
            EnsureDirectory::new("/opt/hpcbench", 0o755).owner(root.clone()),
        )
        .step(
            "dir /opt/hpcbench/conf.d",
            EnsureDirectory::new("/opt/hpcbench/conf.d", 0o750).owner(root.clone()),
        );
    let mut files = Vec::new();
    for (template, path, mode, secret) in TEMPLATES {
        let mut f = EnsureFile::new(path, render(template, host, ip), mode).owner(root.clone());
        if secret {
            f = f.secret();
        }
        let id = format!("file {path}");
        p = p.step(id.clone(), f);
        files.push(id);
    }
    p.step("handler", RunCommand::new(["true"]).when_changed(files))
}

fn read_hosts(path: &PathBuf) -> anyhow::Result<Vec<(String, String)>> {
    let text = fs_err::read_to_string(path)?;
    let mut hosts = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut it = line.split_whitespace();
        match (it.next(), it.next()) {
            (Some(name), Some(ip)) => hosts.push((name.to_owned(), ip.to_owned())),
            _ => anyhow::bail!("{}:{}: expected `NAME IP`", path.display(), n + 1),
        }
    }
    Ok(hosts)
}

fn report(summary: &Summary, diff: bool, started: Instant) -> ExitCode {
    for (host, r) in &summary.hosts {
        match r {
            Ok(rep) => {
                println!("{host} changed={} failed={}", rep.changed(), rep.failed());
                if diff {
                    for d in rep.steps.iter().filter_map(|s| s.diff.as_deref()) {
                        print!("{d}");
                    }
                }
            }
            Err(e) => println!("{host} unreachable: {e}"),
        }
    }
    println!(
        "total changed={} hosts={} elapsed_ms={}",
        summary.changed(),
        summary.hosts.len(),
        started.elapsed().as_millis()
    );
    if summary.is_success() {
        ExitCode::SUCCESS
    } else {
        eprintln!("{summary}");
        ExitCode::FAILURE
    }
}

fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let started = Instant::now();
    let hosts = read_hosts(&args.hosts)?;
    let plans: Vec<HostPlan> = hosts.iter().map(|(n, ip)| plan(n, ip)).collect();
    let mode = Mode {
        check: args.check,
        diff: args.diff,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let summary = if let Some(root) = &args.local_root {
        // One executor per host root; run them one after another (local work is cheap).
        let mut all = Vec::new();
        for p in &plans {
            let exec = LocalExecutor::with_root(root.join(&p.host));
            fs_err::create_dir_all(root.join(&p.host).join("opt"))?;
            let r = rt.block_on(exec.apply_host(p, mode));
            all.push((p.host.clone(), r));
        }
        Summary { hosts: all }
    } else {
        let key = args.key.clone().context("--key is required")?;
        let mut opts = SshOptions::new(key, &args.state_dir);
        opts.user = args.user.clone();
        opts.known_hosts = args.known_hosts.clone();
        opts.parallel = args.parallel;
        let exec = SshExecutor::new(
            opts,
            hosts
                .iter()
                .map(|(n, ip)| SshHost::new(n, ip).port(args.port)),
        )?;
        rt.block_on(async {
            let s = apply_all(&exec, &plans, mode).await;
            exec.close().await;
            s
        })
    };
    Ok(report(&summary, args.diff, started))
}
