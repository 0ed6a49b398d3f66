//! A lab launcher's view of hpc-cluster: bring the cluster of a file up, show each node's
//! progress as it happens, run the SLURM check, and tear it down again (also on Ctrl-C, which
//! stops `up` within a second and says where it was).
//!
//! ```text
//! cargo run -p hpc-cluster --example lab -- examples/minimal.yaml
//! ```
#![allow(clippy::print_stderr)] // an example program talks to its terminal

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use hpc_cluster::{CancelToken, Event, Libvirt, Overrides, Session, UpOptions};

fn main() -> ExitCode {
    let Some(file) = std::env::args().nth(1) else {
        eprintln!("usage: lab CLUSTER.yaml");
        return ExitCode::from(2);
    };
    match run(&file) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lab: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(file: &str) -> Result<(), hpc_cluster::Error> {
    let cancel = CancelToken::new();
    let session = Session::load(file.as_ref(), &Overrides::default())?
        .with_cancel(cancel.clone())
        .with_events(Arc::new(|e: &Event| match e {
            Event::PhaseFinished {
                layer,
                phase,
                node: Some(node),
                seconds,
                ..
            } => eprintln!("{node:>10}: {} {phase} ({seconds:.1}s)", layer.name()),
            Event::Warning { message } => eprintln!("warning: {message}"),
            _ => {}
        }));

    let plan = session.plan(&Libvirt)?;
    eprintln!(
        "plan: {} libvirt change(s), {} node step change(s)",
        plan.libvirt_changes(),
        plan.node_changes()
    );
    let up = session.up(&Libvirt, &UpOptions::default());
    let report = match up {
        Ok(r) => r,
        Err(e) => {
            // Whatever happened, leave nothing behind.
            session.down(&Libvirt)?;
            return Err(e);
        }
    };
    for (node, t) in &report.nodes {
        eprintln!(
            "{node}: SSH after {:.1}s, SLURM {:.1}s",
            t.ssh_ready_at.unwrap_or_default(),
            t.slurm.unwrap_or_default()
        );
    }
    if session.cluster().slurm.is_some() {
        let check = session.check_slurm(Duration::from_secs(180))?;
        eprintln!(
            "sbatch job {} ran on {}",
            check.sbatch.job_id, check.sbatch.node
        );
    }
    let down = session.down(&Libvirt)?;
    eprintln!("removed {} object(s)", down.removed.len());
    Ok(())
}
