//! Reading hosts' devices through any [`Executor`] and turning them into phases.

use futures_util::future::join_all;
use hpc_remote::{Executor, HostPlan, Phase, run_ok};

use crate::state::{fdb_argv, links_argv, parse_flood, parse_links};
use crate::{Fabric, FabricError, HostState, ParseError, down_plan, up_plan};

/// The name of the phase [`up_phase`] builds.
pub const UP_PHASE: &str = "fabric";
/// The name of the phase [`down_phase`] builds.
pub const DOWN_PHASE: &str = "fabric-down";

async fn read<E: Executor>(exec: &E, host: &str, argv: &[String]) -> Result<String, FabricError> {
    run_ok(exec, host, argv)
        .await
        .map_err(|detail| FabricError::Probe {
            host: host.to_owned(),
            command: argv.join(" "),
            detail,
        })
}

fn parsed<T>(host: &str, argv: &[String], r: Result<T, ParseError>) -> Result<T, FabricError> {
    r.map_err(|source| FabricError::Parse {
        host: host.to_owned(),
        command: argv.join(" "),
        source,
    })
}

/// Reads `host`'s bridge and VXLAN device (`ip -j -d link show`) and, when the VXLAN device
/// exists, its head-end replication list (`bridge -j fdb show dev …`). Changes nothing.
pub async fn observe<E: Executor>(
    exec: &E,
    fabric: &Fabric,
    host: &str,
) -> Result<HostState, FabricError> {
    fabric.validate()?;
    fabric.host(host)?;
    let vx = fabric.vxlan_device()?;
    let argv = links_argv();
    let links = parsed(host, &argv, parse_links(&read(exec, host, &argv).await?))?;
    let mut state = HostState::from_links(links, &fabric.bridge, &vx, Vec::new());
    if state
        .vxlan
        .as_ref()
        .is_some_and(|l| l.kind.as_deref() == Some("vxlan"))
    {
        let argv = fdb_argv(&vx);
        state.flood = parsed(
            host,
            &argv,
            parse_flood(&read(exec, host, &argv).await?, &vx),
        )?;
    }
    Ok(state)
}

async fn phase<E: Executor>(
    exec: &E,
    fabric: &Fabric,
    name: &'static str,
    plan: fn(&Fabric, &str, &HostState) -> Result<HostPlan, FabricError>,
) -> Result<Phase, FabricError> {
    fabric.validate()?;
    let results = join_all(fabric.hosts.iter().map(|h| async move {
        let state = observe(exec, fabric, &h.name).await?;
        plan(fabric, &h.name, &state)
    }))
    .await;
    let mut plans = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(p) => plans.push(p),
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(Phase::new(name, plans)),
        1 => Err(errors.remove(0)),
        _ => Err(FabricError::Hosts(errors)),
    }
}

/// Reads every host (concurrently) and plans the fabric up on each ([`up_plan`]): the phase
/// [`UP_PHASE`] with one plan per host, empty where nothing differs. Run it with
/// [`hpc_remote::run_phase`] (or check it with [`hpc_remote::apply_all`] and
/// [`hpc_remote::Mode::CHECK_DIFF`]). Every host's refusal is collected: one error, or
/// [`FabricError::Hosts`].
pub async fn up_phase<E: Executor>(exec: &E, fabric: &Fabric) -> Result<Phase, FabricError> {
    phase(exec, fabric, UP_PHASE, up_plan).await
}

/// Reads every host (concurrently) and plans the fabric down on each ([`down_plan`]): the
/// phase [`DOWN_PHASE`].
pub async fn down_phase<E: Executor>(exec: &E, fabric: &Fabric) -> Result<Phase, FabricError> {
    phase(exec, fabric, DOWN_PHASE, down_plan).await
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::Mutex;

    use hpc_remote::{CommandOutput, HostError, HostReport, Mode};

    use super::*;
    use crate::FabricHost;

    /// Answers the two probes from captured JSON; records every command.
    struct Fake {
        links: &'static str,
        fail_on: Option<&'static str>,
        calls: Mutex<Vec<String>>,
    }

    impl Executor for Fake {
        async fn apply_host(&self, plan: &HostPlan, mode: Mode) -> Result<HostReport, HostError> {
            Ok(HostReport {
                host: plan.host.clone(),
                check: mode.check,
                steps: Vec::new(),
            })
        }

        async fn run(&self, host: &str, argv: &[String]) -> Result<CommandOutput, HostError> {
            let line = argv.join(" ");
            if let Ok(mut c) = self.calls.lock() {
                c.push(format!("{host}: {line}"));
            }
            let (status, stdout) = if self.fail_on == Some(host) {
                (1, "")
            } else if line == "ip -j -d link show" {
                (0, self.links)
            } else if line == "bridge -j fdb show dev vx-br-x" {
                (0, include_str!("testdata/fdb.json"))
            } else {
                (127, "")
            };
            Ok(CommandOutput {
                status: Some(status),
                stdout: stdout.into(),
                stderr: b"boom".to_vec(),
            })
        }
    }

    fn fabric() -> Fabric {
        let mut f = Fabric::new(
            "demo",
            "br-x",
            [
                FabricHost::new("h1", Ipv4Addr::new(10, 81, 0, 11)),
                FabricHost::new("h2", Ipv4Addr::new(10, 81, 0, 12)),
                FabricHost::new("h3", Ipv4Addr::new(10, 81, 0, 13)),
            ],
        );
        f.vni = 4242;
        f
    }

    fn block<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
            .block_on(f)
    }

    #[test]
    fn observe_reads_links_then_fdb() {
        let fake = Fake {
            links: include_str!("testdata/links.json"),
            fail_on: None,
            calls: Mutex::new(Vec::new()),
        };
        let s = block(observe(&fake, &fabric(), "h1")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.flood.len(), 2);
        assert_eq!(
            fake.calls.lock().map(|c| c.clone()).unwrap_or_default(),
            [
                "h1: ip -j -d link show",
                "h1: bridge -j fdb show dev vx-br-x"
            ]
        );
        // h1 is as planned; h2 and h3 see h1's devices (another local address): remade.
        let p = block(up_phase(&fake, &fabric())).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.name, "fabric");
        let steps: Vec<usize> = p.hosts.iter().map(|h| h.steps.len()).collect();
        assert_eq!(steps[0], 0);
        assert!(steps[1] > 0 && steps[2] > 0, "{steps:?}");
    }

    #[test]
    fn no_fdb_probe_without_the_device() {
        let fake = Fake {
            links: "[]",
            fail_on: None,
            calls: Mutex::new(Vec::new()),
        };
        let p = block(down_phase(&fake, &fabric())).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.name, "fabric-down");
        assert!(p.hosts.iter().all(|h| h.steps.is_empty()));
        let calls = fake.calls.lock().map(|c| c.clone()).unwrap_or_default();
        assert!(
            calls.iter().all(|c| c.ends_with("ip -j -d link show")),
            "{calls:?}"
        );
    }

    #[test]
    fn probe_failures_name_the_host() {
        let fake = Fake {
            links: "[]",
            fail_on: Some("h2"),
            calls: Mutex::new(Vec::new()),
        };
        let err = block(up_phase(&fake, &fabric())).err();
        assert_eq!(
            err,
            Some(FabricError::Probe {
                host: "h2".into(),
                command: "ip -j -d link show".into(),
                detail: "exited with status 1: boom".into(),
            })
        );
        let fake = Fake {
            links: "not json",
            fail_on: None,
            calls: Mutex::new(Vec::new()),
        };
        match block(up_phase(&fake, &fabric())) {
            Err(FabricError::Hosts(errors)) => {
                assert_eq!(errors.len(), 3);
                assert!(matches!(&errors[0], FabricError::Parse { host, .. } if host == "h1"));
            }
            other => panic!("{other:?}"),
        }
    }
}
