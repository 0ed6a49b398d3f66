//! Checks between rendered files that SLURM itself only reports at run time: GRES in
//! `slurm.conf` and `gres.conf` agree, partitions name defined nodes, the accounting host
//! exists.

use std::collections::BTreeMap;

use hpc_config::Cluster;

use crate::hostlist;

/// GPUs per type (`""` = untyped).
type GpuCounts = BTreeMap<String, u64>;

/// A disagreement between the rendered files (or with the cluster).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsistencyError {
    /// A hostlist in one of the files does not parse.
    #[error("{file}: {source}")]
    BadHostlist {
        /// `slurm.conf` or `gres.conf`.
        file: &'static str,
        /// The parser's complaint.
        source: hostlist::HostlistError,
    },
    /// A line that cannot be read.
    #[error("{file}: cannot read `{line}`: {reason}")]
    BadLine {
        /// `slurm.conf` or `gres.conf`.
        file: &'static str,
        /// The line.
        line: String,
        /// Why.
        reason: String,
    },
    /// A node defined twice in `slurm.conf` (slurmctld stops with `Duplicated NodeName`).
    #[error("slurm.conf defines node `{node}` twice")]
    DuplicateNode {
        /// The node.
        node: String,
    },
    /// The GPUs of a node differ between the files.
    #[error("node `{node}` has GPUs `{slurm_conf}` in slurm.conf but `{gres_conf}` in gres.conf")]
    GresMismatch {
        /// The node.
        node: String,
        /// `type:count,…` from `Gres=` in `slurm.conf` (empty: none).
        slurm_conf: String,
        /// `type:count,…` from `gres.conf` (empty: none).
        gres_conf: String,
    },
    /// `gres.conf` names a node `slurm.conf` does not define.
    #[error("gres.conf names node `{node}`, which slurm.conf does not define")]
    UnknownGresNode {
        /// The node.
        node: String,
    },
    /// A partition names a node `slurm.conf` does not define.
    #[error("partition `{partition}` names node `{node}`, which slurm.conf does not define")]
    UnknownPartitionNode {
        /// The partition.
        partition: String,
        /// The node.
        node: String,
    },
    /// `AccountingStorageHost` is not a node of the cluster.
    #[error("AccountingStorageHost `{host}` is not a node of the cluster")]
    UnknownAccountingHost {
        /// The host.
        host: String,
    },
    /// Accounting is on in the cluster but `slurm.conf` has no `AccountingStorageHost`.
    #[error("accounting is enabled but slurm.conf has no AccountingStorageHost")]
    MissingAccountingHost,
}

fn pairs(line: &str) -> Vec<(String, &str)> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

fn get<'a>(pairs: &[(String, &'a str)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

fn content(line: &str) -> &str {
    line.split('#').next().unwrap_or_default().trim()
}

fn show(counts: &GpuCounts) -> String {
    counts
        .iter()
        .map(|(t, c)| {
            if t.is_empty() {
                c.to_string()
            } else {
                format!("{t}:{c}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `gpu:a100:2,gpu:1` → `{a100: 2, "": 1}`; other GRES are ignored.
fn parse_gres(value: &str) -> Result<GpuCounts, String> {
    let mut out = GpuCounts::new();
    for item in value.split(',') {
        let item = item.split('(').next().unwrap_or_default();
        let parts: Vec<&str> = item.split(':').collect();
        let (t, n) = match parts.as_slice() {
            ["gpu"] => ("", "1"),
            ["gpu", n] if n.bytes().all(|b| b.is_ascii_digit()) => ("", *n),
            ["gpu", t] => (*t, "1"),
            ["gpu", t, n] => (*t, *n),
            _ => continue,
        };
        let n: u64 = n
            .parse()
            .map_err(|_| format!("`{item}` has no valid count"))?;
        *out.entry(t.to_owned()).or_default() += n;
    }
    Ok(out)
}

/// Check the rendered `slurm_conf` and `gres_conf` against each other and `cluster`.
/// Returns every problem found (empty: consistent).
pub fn check_consistency(
    cluster: &Cluster,
    slurm_conf: &str,
    gres_conf: &str,
) -> Vec<ConsistencyError> {
    let mut errors = Vec::new();
    let mut defined: BTreeMap<String, GpuCounts> = BTreeMap::new();
    let mut partitions: Vec<(String, String)> = Vec::new();
    let mut accounting_host: Option<String> = None;

    for raw in slurm_conf.lines() {
        let line = content(raw);
        let kv = pairs(line);
        if let Some(expr) = get(&kv, "nodename") {
            if expr.eq_ignore_ascii_case("default") {
                continue;
            }
            let gpus = match get(&kv, "gres").map(parse_gres).transpose() {
                Ok(g) => g.unwrap_or_default(),
                Err(reason) => {
                    errors.push(ConsistencyError::BadLine {
                        file: "slurm.conf",
                        line: line.to_owned(),
                        reason,
                    });
                    GpuCounts::new()
                }
            };
            match hostlist::expand(expr) {
                Ok(names) => {
                    for n in names {
                        if defined.insert(n.clone(), gpus.clone()).is_some() {
                            errors.push(ConsistencyError::DuplicateNode { node: n });
                        }
                    }
                }
                Err(source) => errors.push(ConsistencyError::BadHostlist {
                    file: "slurm.conf",
                    source,
                }),
            }
        } else if let Some(name) = get(&kv, "partitionname") {
            partitions.push((name.to_owned(), get(&kv, "nodes").unwrap_or("").to_owned()));
        } else if let Some(host) = get(&kv, "accountingstoragehost") {
            accounting_host = Some(host.to_owned());
        }
    }

    for (partition, expr) in &partitions {
        if expr.eq_ignore_ascii_case("ALL") {
            continue;
        }
        match hostlist::expand(expr) {
            Ok(names) => {
                for node in names.into_iter().filter(|n| !defined.contains_key(n)) {
                    errors.push(ConsistencyError::UnknownPartitionNode {
                        partition: partition.clone(),
                        node,
                    });
                }
            }
            Err(source) => errors.push(ConsistencyError::BadHostlist {
                file: "slurm.conf",
                source,
            }),
        }
    }

    match (
        &accounting_host,
        cluster
            .slurm
            .as_ref()
            .and_then(|s| s.accounting_host.as_ref()),
    ) {
        (Some(h), _) if cluster.node(h).is_none() => {
            errors.push(ConsistencyError::UnknownAccountingHost { host: h.clone() });
        }
        (None, Some(_)) => errors.push(ConsistencyError::MissingAccountingHost),
        _ => {}
    }

    // gres.conf
    let mut autodetect = false;
    let mut declared: BTreeMap<String, GpuCounts> = BTreeMap::new();
    for raw in gres_conf.lines() {
        let line = content(raw);
        if line.is_empty() {
            continue;
        }
        let kv = pairs(line);
        if get(&kv, "autodetect").is_some_and(|v| !v.eq_ignore_ascii_case("off")) {
            autodetect = true;
        }
        let Some(name) = get(&kv, "name") else {
            continue;
        };
        if name != "gpu" {
            continue;
        }
        let count = match (get(&kv, "count"), get(&kv, "file")) {
            (Some(c), _) => c.parse::<u64>().map_err(|_| format!("Count `{c}`")),
            (None, Some(f)) => {
                let base = f.rsplit('/').next().unwrap_or(f);
                hostlist::expand(base)
                    .map(|v| v.len() as u64)
                    .map_err(|e| e.to_string())
            }
            (None, None) => Err("no Count= or File=".to_owned()),
        };
        let count = match count {
            Ok(c) => c,
            Err(reason) => {
                errors.push(ConsistencyError::BadLine {
                    file: "gres.conf",
                    line: line.to_owned(),
                    reason,
                });
                continue;
            }
        };
        let Some(expr) = get(&kv, "nodename") else {
            errors.push(ConsistencyError::BadLine {
                file: "gres.conf",
                line: line.to_owned(),
                reason: "no NodeName=".to_owned(),
            });
            continue;
        };
        let gpu_type = get(&kv, "type").unwrap_or("").to_owned();
        match hostlist::expand(expr) {
            Ok(names) => {
                for n in names {
                    *declared
                        .entry(n)
                        .or_default()
                        .entry(gpu_type.clone())
                        .or_default() += count;
                }
            }
            Err(source) => errors.push(ConsistencyError::BadHostlist {
                file: "gres.conf",
                source,
            }),
        }
    }

    for node in declared.keys().filter(|n| !defined.contains_key(*n)) {
        errors.push(ConsistencyError::UnknownGresNode { node: node.clone() });
    }
    for (node, in_slurm) in &defined {
        let in_gres = declared.get(node).cloned().unwrap_or_default();
        // With AutoDetect, gres.conf lists nothing and slurmd finds the devices.
        if autodetect && in_gres.is_empty() {
            continue;
        }
        if *in_slurm != in_gres {
            errors.push(ConsistencyError::GresMismatch {
                node: node.clone(),
                slurm_conf: show(in_slurm),
                gres_conf: show(&in_gres),
            });
        }
    }
    errors
}
