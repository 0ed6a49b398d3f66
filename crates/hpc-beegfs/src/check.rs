//! `hpc-up check beegfs`: the release's own tools, run on a client, with their output
//! parsed; and a write/read round trip with throughput on every client's mount.
//!
//! 7.x: `beegfs-check-servers`, `beegfs-ctl --listtargets --state`, `beegfs-df`.
//! 8.x: `beegfs node list`, `beegfs target list --state`, `beegfs health check`.

use hpc_config::Cluster;
use serde_json::Value as Json;

use crate::release::Release;
use crate::render::GRPC_PORT;

/// The kind of a BeeGFS node (serialized as its [`NodeKind::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(
    feature = "deploy",
    derive(serde::Serialize),
    serde(rename_all = "lowercase")
)]
pub enum NodeKind {
    /// Management.
    Management,
    /// Metadata.
    Meta,
    /// Storage.
    Storage,
    /// Client.
    Client,
}

impl NodeKind {
    fn from_word(w: &str) -> Option<Self> {
        match w.trim().to_ascii_lowercase().as_str() {
            "management" | "mgmtd" | "mgmt" | "4" => Some(Self::Management),
            "metadata" | "meta" | "2" => Some(Self::Meta),
            "storage" | "3" => Some(Self::Storage),
            "client" | "1" => Some(Self::Client),
            _ => None,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Management => "management",
            Self::Meta => "meta",
            Self::Storage => "storage",
            Self::Client => "client",
        }
    }
}

/// One server as the tools see it (serialized as `type`, `node`, `id`, `reachable`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "deploy", derive(serde::Serialize))]
pub struct ServerStatus {
    /// Kind.
    #[cfg_attr(feature = "deploy", serde(rename = "type"))]
    pub kind: NodeKind,
    /// Alias / host name.
    pub node: String,
    /// Numeric ID.
    pub id: Option<u32>,
    /// Reachable (from where the tool ran).
    pub reachable: bool,
}

/// One target's state (serialized as `id`, `reachability`, `consistency`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "deploy", derive(serde::Serialize))]
pub struct TargetStatus {
    /// Target ID.
    pub id: String,
    /// Reachability (`Online`, `Offline`, `Probably-offline`, …).
    pub reachability: String,
    /// Consistency (`Good`, `Needs-resync`, `Bad`).
    pub consistency: String,
}

impl TargetStatus {
    /// Online and good.
    pub fn healthy(&self) -> bool {
        self.reachability.eq_ignore_ascii_case("online")
            && self.consistency.eq_ignore_ascii_case("good")
    }
}

/// One target's space (7.x `beegfs-df`; serialized as `type`, `id`, `pool`, `total`, `free`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "deploy", derive(serde::Serialize))]
pub struct TargetSpace {
    /// `meta` or `storage`.
    #[cfg_attr(feature = "deploy", serde(rename = "type"))]
    pub kind: NodeKind,
    /// Target ID.
    pub id: String,
    /// Capacity pool (`normal`, `low`, `emergency`).
    pub pool: String,
    /// Total, as printed (`19.5GiB`).
    pub total: String,
    /// Free, as printed.
    pub free: String,
    /// Free percent.
    #[cfg_attr(feature = "deploy", serde(skip))]
    pub free_percent: Option<u8>,
}

/// Output a parser could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the output of `{tool}`: {reason}")]
pub struct ParseError {
    /// The tool.
    pub tool: &'static str,
    /// Why.
    pub reason: String,
}

fn words(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// 7.x `beegfs-ctl` (package `beegfs-utils`): not on `PATH` (the wrapper scripts
/// `beegfs-check-servers` and `beegfs-df` in `/usr/bin` call it by this path).
pub const CTL_7: &str = "/opt/beegfs/sbin/beegfs-ctl";
/// 8.x `beegfs` (package `beegfs-tools`): not on `PATH` either.
pub const CLI_8: &str = "/opt/beegfs/sbin/beegfs";

/// The 8.x CLI's common arguments for `cluster`: the management address and how to
/// authenticate and verify it.
fn cli_8(cluster: &Cluster) -> Vec<String> {
    let Some(b) = &cluster.beegfs else {
        return Vec::new();
    };
    let mgmt = cluster
        .node(b.management.as_str())
        .map(|n| format!("{}:{GRPC_PORT}", n.ip))
        .unwrap_or_default();
    let mut base = words(&[CLI_8, "--mgmtd-addr"]);
    base.push(mgmt);
    if !b.tls {
        base.push("--tls-disable".into());
    }
    if !b.auth {
        base.push("--auth-disable".into());
    }
    base
}

/// The commands the deployment runs on the management node to see every metadata and
/// storage server registered and reachable and every storage target online (with a label
/// each). 7.x: `beegfs-ctl` told the management host and auth file on its command line (a
/// server-only management node has no client config); 8.x: `beegfs … --output json`.
pub fn registration_commands(cluster: &Cluster) -> Vec<(&'static str, Vec<String>)> {
    let Some(b) = &cluster.beegfs else {
        return Vec::new();
    };
    let release = Release::from_version(b.version);
    if release.is_v8() {
        let with = |rest: &[&str]| {
            let mut v = cli_8(cluster);
            v.extend(words(rest));
            v
        };
        return vec![
            (
                "nodes",
                with(&["node", "list", "--reachability-check", "--output", "json"]),
            ),
            (
                "targets",
                with(&["target", "list", "--state", "--output", "json"]),
            ),
        ];
    }
    let mgmt = cluster
        .node(b.management.as_str())
        .map(|n| n.ip.to_string())
        .unwrap_or_default();
    let mut common = vec![format!("--sysMgmtdHost={mgmt}")];
    common.push(if b.auth {
        format!("--connAuthFile={}", crate::render::AUTH_FILE)
    } else {
        "--connDisableAuthentication=true".to_owned()
    });
    let with = |rest: &[&str]| {
        let mut v = words(&[CTL_7]);
        v.extend(words(rest));
        v.extend(common.iter().cloned());
        v
    };
    vec![
        (
            "meta",
            with(&["--listnodes", "--nodetype=meta", "--reachable"]),
        ),
        (
            "storage",
            with(&["--listnodes", "--nodetype=storage", "--reachable"]),
        ),
        (
            "targets",
            with(&["--listtargets", "--nodetype=storage", "--state"]),
        ),
    ]
}

/// Parses `beegfs-ctl --listnodes --nodetype=<kind> --reachable` (7.x): per node a line
/// `<name> [ID: <n>]`, then indented detail lines such as `Reachable: <yes>`.
pub fn parse_listnodes(text: &str, kind: NodeKind) -> Result<Vec<ServerStatus>, ParseError> {
    let mut out: Vec<ServerStatus> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if line.starts_with(char::is_whitespace) {
            let detail = line.trim();
            if let Some(v) = detail.strip_prefix("Reachable:") {
                let Some(node) = out.last_mut() else {
                    return Err(ParseError {
                        tool: "beegfs-ctl --listnodes",
                        reason: format!("`{detail}` before any node"),
                    });
                };
                node.reachable = v.trim() == "<yes>";
            }
            continue;
        }
        let Some((name, id)) = line.trim().split_once("[ID:") else {
            return Err(ParseError {
                tool: "beegfs-ctl --listnodes",
                reason: format!("unexpected line `{}`", line.trim()),
            });
        };
        out.push(ServerStatus {
            kind,
            node: name.trim().to_owned(),
            id: id.trim().trim_end_matches(']').trim().parse().ok(),
            reachable: false,
        });
    }
    Ok(out)
}

/// The commands a 7.x or 8.x check runs on one client, with a label each.
pub fn tool_commands(cluster: &Cluster) -> Vec<(&'static str, Vec<String>)> {
    let Some(b) = &cluster.beegfs else {
        return Vec::new();
    };
    let release = Release::from_version(b.version);
    if !release.is_v8() {
        return vec![
            ("check-servers", words(&["beegfs-check-servers"])),
            (
                "targets",
                words(&[CTL_7, "--listtargets", "--nodetype=storage", "--state"]),
            ),
            ("df", words(&["beegfs-df"])),
        ];
    }
    let base = cli_8(cluster);
    let with = |rest: &[&str]| {
        let mut v = base.clone();
        v.extend(words(rest));
        v
    };
    vec![
        (
            "nodes",
            with(&["node", "list", "--reachability-check", "--output", "json"]),
        ),
        (
            "targets",
            with(&["target", "list", "--state", "--output", "json"]),
        ),
        ("health", with(&["health", "check", "--disable-emojis"])),
    ]
}

/// Parses `beegfs-check-servers` (7.x): per type a header and `====`, then
/// `<node> [ID: n]: reachable at <ip:port> (protocol: TCP)` or `<node> [ID: n]: UNREACHABLE`.
pub fn parse_check_servers(text: &str) -> Result<Vec<ServerStatus>, ParseError> {
    let mut kind = None;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("==") {
            continue;
        }
        if let Some(k) = NodeKind::from_word(line.trim_end_matches(':')) {
            kind = Some(k);
            continue;
        }
        let Some((head, tail)) = line.split_once("]:") else {
            continue;
        };
        let Some((node, id)) = head.split_once("[ID:") else {
            continue;
        };
        let Some(k) = kind else {
            return Err(ParseError {
                tool: "beegfs-check-servers",
                reason: format!("`{line}` comes before any node type header"),
            });
        };
        out.push(ServerStatus {
            kind: k,
            node: node.trim().to_owned(),
            id: id.trim().parse().ok(),
            reachable: tail.trim_start().starts_with("reachable"),
        });
    }
    Ok(out)
}

/// Parses `beegfs-ctl --listtargets --state` (7.x): a header with `TargetID`, `Reachability`,
/// `Consistency` and `NodeID`, a `====` row, then one row per target.
pub fn parse_listtargets(text: &str) -> Result<Vec<TargetStatus>, ParseError> {
    let err = |reason: String| ParseError {
        tool: "beegfs-ctl --listtargets",
        reason,
    };
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines
        .next()
        .ok_or_else(|| err("no output".into()))?
        .split_whitespace()
        .collect::<Vec<_>>();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .ok_or_else(|| err(format!("no `{name}` column in `{}`", header.join(" "))))
    };
    let (id, reach, cons) = (col("TargetID")?, col("Reachability")?, col("Consistency")?);
    let mut out = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first().is_some_and(|w| w.starts_with('=')) {
            continue;
        }
        let get = |i: usize| {
            f.get(i)
                .map(|s| (*s).to_owned())
                .ok_or_else(|| err(format!("short row `{}`", line.trim())))
        };
        out.push(TargetStatus {
            id: get(id)?,
            reachability: get(reach)?,
            consistency: get(cons)?,
        });
    }
    Ok(out)
}

/// Parses `beegfs-df` (7.x): `METADATA SERVERS:` and `STORAGE TARGETS:` sections of
/// `TargetID  Cap. Pool  Total  Free  %  ITotal  IFree  %` rows.
pub fn parse_df(text: &str) -> Result<Vec<TargetSpace>, ParseError> {
    let mut kind = None;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("METADATA SERVERS") {
            kind = Some(NodeKind::Meta);
            continue;
        }
        if line.starts_with("STORAGE TARGETS") {
            kind = Some(NodeKind::Storage);
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first()
            .is_none_or(|w| !w.chars().all(|c| c.is_ascii_digit()))
        {
            continue; // headers, `====` rows
        }
        let Some(k) = kind else {
            return Err(ParseError {
                tool: "beegfs-df",
                reason: format!("row `{line}` outside a section"),
            });
        };
        if f.len() < 5 {
            return Err(ParseError {
                tool: "beegfs-df",
                reason: format!("short row `{line}`"),
            });
        }
        out.push(TargetSpace {
            kind: k,
            id: f[0].to_owned(),
            pool: f[1].to_owned(),
            total: f[2].to_owned(),
            free: f[3].to_owned(),
            free_percent: f[4].trim_end_matches('%').parse().ok(),
        });
    }
    Ok(out)
}

/// JSON rows from `--output json` (an array), `json-pretty` or `ndjson`.
fn json_rows(tool: &'static str, text: &str) -> Result<Vec<Json>, ParseError> {
    let err = |reason: String| ParseError { tool, reason };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    if let Ok(v) = serde_json::from_str::<Json>(trimmed) {
        return match v {
            Json::Array(a) => Ok(a),
            o @ Json::Object(_) => Ok(vec![o]),
            other => Err(err(format!("expected rows, got `{other}`"))),
        };
    }
    trimmed
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| err(e.to_string())))
        .collect()
}

fn field<'a>(row: &'a Json, name: &str) -> Option<&'a Json> {
    row.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

/// `id` is `{num_id, node_type}` in JSON, `m:1` in tables.
fn entity_id(v: &Json) -> (Option<u32>, Option<NodeKind>) {
    match v {
        Json::Object(_) => (
            field(v, "num_id")
                .and_then(Json::as_u64)
                .and_then(|n| u32::try_from(n).ok()),
            field(v, "node_type").and_then(|t| NodeKind::from_word(&text(t))),
        ),
        Json::String(s) => {
            let (t, n) = s.split_once(':').unwrap_or(("", s));
            let kind = match t {
                "m" => Some(NodeKind::Meta),
                "s" => Some(NodeKind::Storage),
                "c" => Some(NodeKind::Client),
                "mg" => Some(NodeKind::Management),
                _ => None,
            };
            (n.parse().ok(), kind)
        }
        Json::Number(n) => (n.as_u64().and_then(|n| u32::try_from(n).ok()), None),
        _ => (None, None),
    }
}

/// Parses `beegfs node list --reachability-check --output json` (8.x).
pub fn parse_node_list(json: &str) -> Result<Vec<ServerStatus>, ParseError> {
    let tool = "beegfs node list";
    let mut out = Vec::new();
    for row in json_rows(tool, json)? {
        let (id, id_kind) = field(&row, "id").map(entity_id).unwrap_or((None, None));
        let kind = field(&row, "type")
            .and_then(|t| NodeKind::from_word(&text(t)))
            .or(id_kind)
            .ok_or_else(|| ParseError {
                tool,
                reason: format!("row without a node type: {row}"),
            })?;
        let reachable = field(&row, "reachable")
            .map(|r| match r {
                Json::Bool(b) => *b,
                other => text(other).lines().any(|l| l.trim() == "yes"),
            })
            .unwrap_or(false);
        out.push(ServerStatus {
            kind,
            node: field(&row, "alias").map(text).unwrap_or_default(),
            id,
            reachable,
        });
    }
    Ok(out)
}

/// Parses `beegfs target list --state --output json` (8.x).
pub fn parse_target_list(json: &str) -> Result<Vec<TargetStatus>, ParseError> {
    let tool = "beegfs target list";
    json_rows(tool, json)?
        .iter()
        .map(|row| {
            let id = match field(row, "id") {
                Some(v) => match entity_id(v) {
                    (Some(n), _) => n.to_string(),
                    _ => text(v),
                },
                None => {
                    return Err(ParseError {
                        tool,
                        reason: format!("row without `id`: {row}"),
                    });
                }
            };
            Ok(TargetStatus {
                id,
                reachability: field(row, "reachability").map(text).unwrap_or_default(),
                consistency: field(row, "consistency").map(text).unwrap_or_default(),
            })
        })
        .collect()
}

/// A status mark of `beegfs health check --disable-emojis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    /// `(HEALTHY)`.
    Healthy,
    /// `(UNKNOWN)`.
    Unknown,
    /// `(DEGRADED)`.
    Degraded,
    /// `(CRITICAL)`.
    Critical,
}

/// Parses `beegfs health check --disable-emojis`: every line with a status mark.
pub fn parse_health(text: &str) -> Vec<(Health, String)> {
    let marks = [
        ("(HEALTHY)", Health::Healthy),
        ("(DEGRADED)", Health::Degraded),
        ("(CRITICAL)", Health::Critical),
        ("(UNKNOWN)", Health::Unknown),
    ];
    text.lines()
        .filter_map(|l| {
            marks
                .iter()
                .find(|(m, _)| l.contains(m))
                .map(|(m, h)| (*h, l.replace(m, "").trim().to_owned()))
        })
        .collect()
}

/// Size of each client's test file in the throughput test.
pub const BENCH_MIB: u32 = 64;

const ROUNDTRIP_SCRIPT: &str = r#"set -eu
d="$1/.hpc-up-check"; node=$2; tok=$3; mib=$4
mkdir -p "$d"
printf '%s\n' "$tok" > "$d/$node.tok"
if [ "$(cat "$d/$node.tok")" = "$tok" ]; then echo roundtrip=ok; else echo roundtrip=fail; fi
t0=$(date +%s%N)
dd if=/dev/zero of="$d/$node.bin" bs=1M count="$mib" conv=fsync status=none
t1=$(date +%s%N)
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
dd if="$d/$node.bin" of=/dev/null bs=1M status=none
t2=$(date +%s%N)
rm -f "$d/$node.bin"
echo "write-ns=$((t1 - t0))"
echo "read-ns=$((t2 - t1))"
"#;

const COMPARE_SCRIPT: &str = r#"mib=$1; node=$2; share=${3:-}
bench() {
  f="$1/.hpc-up-beegfs-check-$node.bin"
  t0=$(date +%s%N)
  if ! dd if=/dev/zero of="$f" bs=1M count="$mib" conv=fsync status=none 2>/dev/null; then
    rm -f "$f"; return 0
  fi
  t1=$(date +%s%N)
  echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  dd if="$f" of=/dev/null bs=1M status=none 2>/dev/null
  t2=$(date +%s%N)
  rm -f "$f"
  echo "$2-ns=$((t1 - t0)) $((t2 - t1))"
}
bench /var/tmp local
if [ -n "$share" ]; then bench "$share" share; fi
"#;

/// The figures `check beegfs` prints beside BeeGFS's: the same `mib` MiB written and read
/// on the node's local disk (`/var/tmp`) and, when `share` names a read-write virtio-fs
/// mount point of the node, on that share. Run after the BeeGFS round trips, not during.
pub fn compare_argv(node: &str, mib: u32, share: Option<&str>) -> Vec<String> {
    let mut v = vec![
        "/bin/sh".into(),
        "-c".into(),
        COMPARE_SCRIPT.into(),
        "sh".into(),
        mib.to_string(),
        node.into(),
    ];
    v.extend(share.map(str::to_owned));
    v
}

/// What [`compare_argv`] measured: seconds to write and to read, per place.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Comparison {
    /// The node's local disk (`/var/tmp`).
    pub local_secs: Option<(f64, f64)>,
    /// The virtio-fs share.
    pub share_secs: Option<(f64, f64)>,
}

impl Comparison {
    /// Parses the comparison's output (`local-ns=W R`, `share-ns=W R`).
    pub fn parse(stdout: &str) -> Self {
        let pair = |v: &str| {
            let (w, r) = v.trim().split_once(' ')?;
            Some((ns(w)?, ns(r)?))
        };
        let mut c = Self::default();
        for line in stdout.lines() {
            match line.split_once('=') {
                Some(("local-ns", v)) => c.local_secs = pair(v),
                Some(("share-ns", v)) => c.share_secs = pair(v),
                _ => {}
            }
        }
        c
    }

    /// MiB/s written and read for a `mib` MiB file, from a pair of seconds.
    pub fn rates(secs: Option<(f64, f64)>, mib: u32) -> Option<(f64, f64)> {
        let (w, r) = secs?;
        (w > 0.0 && r > 0.0).then(|| (f64::from(mib) / w, f64::from(mib) / r))
    }
}

const PEER_SCRIPT: &str = r#"cat "$1/.hpc-up-check/$2.tok""#;

/// The round trip one client runs: writes a token file into the mount and reads it back,
/// then writes and reads `mib` MiB (fsync, caches dropped) and prints the times.
pub fn roundtrip_argv(mount: &str, node: &str, token: &str, mib: u32) -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        ROUNDTRIP_SCRIPT.into(),
        "sh".into(),
        mount.into(),
        node.into(),
        token.into(),
        mib.to_string(),
    ]
}

/// Read another client's token file (proves the mount is shared, not a local directory).
pub fn peer_read_argv(mount: &str, peer: &str) -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        PEER_SCRIPT.into(),
        "sh".into(),
        mount.into(),
        peer.into(),
    ]
}

/// Whether `mount` is a BeeGFS mount on the client (exit 0) or not (1): a plain directory
/// would pass the round trip on its own.
pub fn mount_check_argv(mount: &str) -> Vec<String> {
    vec![
        "findmnt".into(),
        "--types".into(),
        "beegfs".into(),
        "--mountpoint".into(),
        mount.into(),
    ]
}

/// Removes the check directory's files of `node`.
pub fn cleanup_argv(mount: &str, node: &str) -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        r#"rm -f "$1/.hpc-up-check/$2.tok" "$1/.hpc-up-check/$2.bin""#.into(),
        "sh".into(),
        mount.into(),
        node.into(),
    ]
}

/// One client's round trip.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoundTrip {
    /// The token read back equals the one written.
    pub ok: bool,
    /// Seconds to write the test file (fsync included).
    pub write_secs: Option<f64>,
    /// Seconds to read it back.
    pub read_secs: Option<f64>,
}

impl RoundTrip {
    /// Parses the round trip's output.
    pub fn parse(stdout: &str) -> Self {
        let mut r = Self::default();
        for line in stdout.lines() {
            match line.split_once('=') {
                Some(("roundtrip", v)) => r.ok = v.trim() == "ok",
                Some(("write-ns", v)) => r.write_secs = ns(v),
                Some(("read-ns", v)) => r.read_secs = ns(v),
                _ => {}
            }
        }
        r
    }

    /// MiB/s written and read for a `mib` MiB file.
    pub fn rates(&self, mib: u32) -> Option<(f64, f64)> {
        let (w, r) = (self.write_secs?, self.read_secs?);
        (w > 0.0 && r > 0.0).then(|| (f64::from(mib) / w, f64::from(mib) / r))
    }
}

fn ns(v: &str) -> Option<f64> {
    v.trim().parse::<u64>().ok().map(|n| n as f64 / 1e9)
}

/// Aggregate throughput of clients that ran at the same time: all bytes over the slowest
/// client's time (MiB/s write, read).
pub fn aggregate(results: &[RoundTrip], mib: u32) -> Option<(f64, f64)> {
    let done: Vec<&RoundTrip> = results
        .iter()
        .filter(|r| r.write_secs.is_some() && r.read_secs.is_some())
        .collect();
    if done.is_empty() {
        return None;
    }
    let total = f64::from(mib) * done.len() as f64;
    let slowest =
        |f: fn(&RoundTrip) -> Option<f64>| done.iter().filter_map(|r| f(r)).fold(0.0_f64, f64::max);
    let (w, r) = (slowest(|r| r.write_secs), slowest(|r| r.read_secs));
    (w > 0.0 && r > 0.0).then(|| (total / w, total / r))
}
