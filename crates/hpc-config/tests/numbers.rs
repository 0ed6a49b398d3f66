//! No number from the cluster file wraps (issue 16): every numeric field, tried at its
//! extremes.
//!
//! Each field is tried with 0, 1, the largest value of its type and one more, `i64` and
//! `u64` at both ends and one beyond, -1, a 100-digit number, `1e400`, `.inf`, `.nan`, `1.5`,
//! hex and octal forms, and, where the field is a string, the same extremes inside it
//! (`18446744073709551615TiB`, `213503982334602-00`, `ffffffff:ff:1f.7`, …). For every value
//! the loader must
//!
//! - not panic (a panic is caught and reported with the field and the value), and
//! - either accept the file and resolve the field to exactly the value written (no wrap, no
//!   saturation, no default taking the place of a number YAML could not hold), or refuse the
//!   file with a problem at that field (its JSON pointer or its line).
//!
//! Each field also has values it must accept, so that a field refusing everything fails.
//! What "exactly the value written" is, each test works out on its own with 128-bit
//! arithmetic (so a wrap in the loader cannot hide in the same wrap here).
//!
//! The numeric fields of the file, each with its test:
//!
//! | field                                                    | type           | test                              |
//! |----------------------------------------------------------|----------------|-----------------------------------|
//! | `ssh.port`                                               | u16            | `ssh_port`                        |
//! | `controller`, `compute[]`: `count`                       | u32            | `group_count`                     |
//! | `controller`, `compute[]`: `first-index` with `count`    | u32 + count    | `group_first_index_with_count`    |
//! | `controller`, `compute[]`: `first-ip` with `count`       | IPv4 + count   | `group_first_ip_with_count`       |
//! | `controller`, `compute[]`: `vcpus`                       | u32            | `group_vcpus`                     |
//! | `controller`, `compute[]`: `memory`                      | size           | `group_memory`                    |
//! | `controller`, `compute[]`: `disk`                        | size           | `group_disk`                      |
//! | `controller`, `compute[]`: `name` pad width `{index:0N}` | width          | `group_name_pad_width`            |
//! | `image.size`                                             | size           | `image_size`                      |
//! | `network.cidr` (octets, prefix)                          | CIDR           | `network_cidr`                    |
//! | `network.gateway` (octets)                               | IPv4           | `network_gateway`                 |
//! | `…nodes[].ip` (octets)                                   | IPv4           | `node_ip`                         |
//! | `virtiofs[].mode` (cluster, group, node)                 | octal mode     | `virtiofs_mode`                   |
//! | `pci-devices[].address` (domain, bus, slot, function)    | PCI address    | `pci_address`                     |
//! | `pci-devices[].vendor-id`, `device-id`                   | PCI id         | `pci_vendor_and_device_ids`       |
//! | `slurm.memory-headroom-percent`                          | u8             | `slurm_memory_headroom_percent`   |
//! | `slurm.gres.gpus[].count`                                | u32            | `slurm_gpu_count`                 |
//! | `slurm.partitions[].max-time`                            | time limit     | `slurm_max_time`                  |
//! | hostlist ranges in node lists (`n[1-2]`)                 | index range    | `hostlist_ranges`                 |
//! | `beegfs.version` (major, minor, patch)                   | u8 parts       | `beegfs_version`                  |
//! | `beegfs.extra-config.<service>.<key>`                    | i64 or text    | `beegfs_extra_config_numbers`     |
//! | `monitoring.port`, `monitoring.node-exporter-port`       | u16            | `monitoring_ports`                |
//! | `monitoring.retention`, `monitoring.scrape-interval`     | duration       | `monitoring_durations`            |
//! | `slurm.job-failures.log-lines`                           | u32            | `slurm_job_failure_log_lines`     |
//! | `hosts[].capacity.vcpus`                                 | u32            | `host_capacity_vcpus`             |
//! | `hosts[].capacity.memory`                                | size           | `host_capacity_memory`            |
//! | `hosts[].address` (octets)                               | IPv4           | `host_address`                    |
//!
//! Hostlists are read by one function for every node list (partitions, GPU entries, BeeGFS
//! roles); the test uses a partition's.
#![allow(clippy::unwrap_used)] // test helpers panic on failure, as tests do

mod common;

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use hpc_config::types::TimeLimit;
use hpc_config::{Cluster, LoadError, Node, Problem, load_str};

use common::env;

/// Where a field's value goes in a file template.
const V: &str = "<V>";

/// A network with room for 4096 nodes, and an image.
const HEAD: &str = "\
name: lab
network:
  cidr: 10.77.0.0/16
  bridge: hpcbr0
image:
  base: /images/base.qcow2
";

/// A listed controller and a counted compute group.
const NODES: &str = "\
controller:
  nodes:
    - name: ctl
compute:
  - name: n{index}
    count: 2
";

const HUNDRED_DIGITS: &str = concat!(
    "9999999999",
    "9999999999",
    "9999999999",
    "9999999999",
    "9999999999",
    "9999999999",
    "9999999999",
    "9999999999",
    "9999999999",
    "9999999999",
);

/// Every integer field is tried with these, as plain YAML. Beyond `i64` YAML hands the loader
/// a float; `1e400` and `.inf` are beyond even a float.
const INTEGER_EXTREMES: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "+1",
    "255",
    "256",
    "65535",
    "65536",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "-9223372036854775809",
    HUNDRED_DIGITS,
    "0xff",
    "0xffffffff",
    "0x100000000",
    "0o37777777777",
    "1.5",
    "1e3",
    "1e400",
    "-1e400",
    ".inf",
    "-.inf",
    ".nan",
];

/// Sizes as strings: every unit at and beyond `u64`.
const SIZE_EXTREMES: &[&str] = &[
    "\"0\"",
    "\"0B\"",
    "\"1\"",
    "\"1 B\"",
    "\"-1\"",
    "\"-1GiB\"",
    "\"+1GiB\"",
    "\"1.5GiB\"",
    "\"1e400\"",
    "\"0x10\"",
    "\"4294967296\"",
    "\"18446744073709551615\"",
    "\"18446744073709551615B\"",
    "\"18446744073709551616\"",
    "\"18014398509481983KiB\"",
    "\"18014398509481984KiB\"",
    "\"17592186044415MiB\"",
    "\"17592186044416MiB\"",
    "\"17179869183G\"",
    "\"17179869184G\"",
    "\"16777215TiB\"",
    "\"16777216TiB\"",
    "\"18446744073709551615TiB\"",
    "\"18446744073709551KB\"",
    "\"18446744073709552KB\"",
    "\"18446744073709MB\"",
    "\"18446744073710MB\"",
    "\"18446744073GB\"",
    "\"18446744074GB\"",
    "\"18446744TB\"",
    "\"18446745TB\"",
    concat!("\"", "9999999999", "9999999999", "9999999999", "TiB\""),
];

/// IPv4 addresses at and beyond the ends of each octet and of the whole address.
const ADDRESS_EXTREMES: &[&str] = &[
    "0.0.0.0",
    "0.0.0.1",
    "255.255.255.254",
    "255.255.255.255",
    "256.0.0.0",
    "0.0.0.256",
    "255.255.255.256",
    "4294967296.0.0.0",
    "18446744073709551616.0.0.1",
    "-1.0.0.1",
    "+1.0.0.1",
    "010.0.0.1",
    "1.2.3",
    "1.2.3.4.5",
    "\"255.255.255.254\"",
    "4294967295",
    "4294967296",
    "-1",
    "1.5",
    "1e400",
    ".inf",
];

// ---------------------------------------------------------------------------------------------
// The check

/// One numeric field: a cluster file with [`V`] where the value goes, the value's JSON
/// pointer, what the resolved cluster holds for it, and what it must hold.
struct Field<'a> {
    file: String,
    pointer: String,
    /// What the resolved cluster holds for the field, as text.
    held: &'a dyn Fn(&Cluster) -> String,
    /// What the cluster must hold when the value (as written in the YAML file) is accepted;
    /// `None` when nothing it can hold is what was written, so the file must be refused.
    exact: &'a dyn Fn(&str) -> Option<String>,
}

impl Field<'_> {
    /// What goes wrong with each value: `accepted` must load, and every value (`accepted`
    /// and `extremes`) must be held exactly or refused at the field.
    fn failures(&self, accepted: &[&str], extremes: &[&str]) -> Vec<String> {
        let line = self.file[..self.file.find(V).unwrap()]
            .matches('\n')
            .count()
            + 1;
        let must_load = accepted.iter().map(|v| (*v, true));
        let may_fail = extremes.iter().map(|v| (*v, false));
        let mut out = Vec::new();
        for (value, must_load) in must_load.chain(may_fail) {
            let at = format!("{} = {value}", self.pointer);
            match load(&self.file.replace(V, value)) {
                Outcome::Panicked(msg) => out.push(format!("{at}: the loader panicked: {msg}")),
                Outcome::Failed(e) => out.push(format!("{at}: unexpected error: {e}")),
                Outcome::Loaded(c) => {
                    let held = (self.held)(&c);
                    match (self.exact)(value) {
                        Some(want) if want == held => {}
                        Some(want) => out.push(format!(
                            "{at}: accepted, but the cluster holds {held}, not {want}"
                        )),
                        None => out.push(format!(
                            "{at}: accepted as {held}, but that is not what was written"
                        )),
                    }
                }
                Outcome::Refused(problems) if must_load => {
                    out.push(format!("{at}: refused: {}", summary(&problems)));
                }
                Outcome::Refused(problems) => {
                    let here = |p: &Problem| p.pointer == self.pointer || p.line == line;
                    if !problems.iter().any(here) {
                        out.push(format!(
                            "{at}: refused, but not at the field (line {line}): {}",
                            summary(&problems)
                        ));
                    }
                }
            }
        }
        out
    }
}

enum Outcome {
    Panicked(String),
    Loaded(Box<Cluster>),
    Refused(Vec<Problem>),
    Failed(String),
}

fn load(text: &str) -> Outcome {
    match catch_unwind(AssertUnwindSafe(|| load_str("numbers.yaml", text, &env))) {
        Err(panic) => Outcome::Panicked(panic_message(panic.as_ref())),
        Ok(Ok(c)) => Outcome::Loaded(Box::new(c)),
        Ok(Err(LoadError::Invalid(e))) => Outcome::Refused(e.problems),
        Ok(Err(e)) => Outcome::Failed(e.to_string()),
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => (*s).to_owned(),
        (_, Some(s)) => s.clone(),
        _ => "(no message)".to_owned(),
    }
}

fn summary(problems: &[Problem]) -> String {
    let each: Vec<String> = problems
        .iter()
        .map(|p| format!("{}:{} {} [{}]", p.line, p.column, p.message, p.pointer))
        .collect();
    each.join("; ")
}

fn assert_none(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `a` then `b`, for lists of values.
fn both<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<&'a str> {
    a.iter().chain(b).copied().collect()
}

// ---------------------------------------------------------------------------------------------
// What a value written in YAML is, worked out without the loader

/// The integer a plain YAML scalar is (decimal with an optional sign, `0x…`, `0o…`), at any
/// size; `None` for anything else, quoted scalars included.
fn yaml_int(v: &str) -> Option<i128> {
    let (negative, unsigned) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    let (digits, radix) = if let Some(hex) = unsigned.strip_prefix("0x") {
        (hex, 16)
    } else if let Some(oct) = unsigned.strip_prefix("0o") {
        (oct, 8)
    } else {
        (unsigned, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let n = i128::from_str_radix(digits, radix).ok()?;
    Some(if negative { -n } else { n })
}

/// Whether a plain YAML scalar is a float (`1.5`, `1e400`, `.inf`, `.nan`).
fn yaml_float(v: &str) -> bool {
    let special = [".inf", ".Inf", ".INF", ".nan", ".NaN", ".NAN"];
    special.contains(&v.trim_start_matches(['+', '-']))
        || (v.bytes().any(|b| b.is_ascii_digit()) && v.parse::<f64>().is_ok())
}

/// The text of a YAML scalar that is a string: quoted, or plain and not a number, boolean
/// or null.
fn yaml_string(v: &str) -> Option<&str> {
    if let Some(inner) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        return Some(inner);
    }
    let keywords = [
        "", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE",
    ];
    (!keywords.contains(&v) && yaml_int(v).is_none() && !yaml_float(v)).then_some(v)
}

/// A decimal number of digits only, at any size up to `u128`.
fn decimal(s: &str) -> Option<u128> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| s.parse().ok()).flatten()
}

/// A hex number of hex digits only, at any size up to `u128`.
fn hex(s: &str) -> Option<u128> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    digits.then(|| u128::from_str_radix(s, 16).ok()).flatten()
}

/// A YAML integer that is not negative.
fn unsigned(v: &str) -> Option<String> {
    yaml_int(v).filter(|n| *n >= 0).map(|n| n.to_string())
}

/// The bytes of a size: a YAML integer, or a string `<digits><unit>`.
fn bytes(v: &str) -> Option<String> {
    if let Some(n) = yaml_int(v) {
        return (n >= 0).then(|| n.to_string());
    }
    let s = yaml_string(v)?.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let unit: u128 = match unit.trim() {
        "" | "B" | "b" => 1,
        "K" | "k" | "KiB" => 1 << 10,
        "M" | "m" | "MiB" => 1 << 20,
        "G" | "g" | "GiB" => 1 << 30,
        "T" | "t" | "TiB" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return None,
    };
    decimal(digits)?.checked_mul(unit).map(|b| b.to_string())
}

/// The minutes of a SLURM time limit (rounded up, as SLURM does), or `UNLIMITED`; `None`
/// beyond what SLURM reads back.
fn minutes(v: &str) -> Option<String> {
    let minutes = match yaml_int(v) {
        Some(n) => u128::try_from(n).ok()?,
        None => {
            let s = yaml_string(v)?.trim();
            if s.eq_ignore_ascii_case("unlimited") || s.eq_ignore_ascii_case("infinite") {
                return Some("UNLIMITED".into());
            }
            let (days, clock) = match s.split_once('-') {
                Some((d, c)) => (Some(decimal(d)?), c),
                None => (None, s),
            };
            let parts: Vec<&str> = clock.split(':').collect();
            let units: &[u128] = match (days.is_some(), parts.len()) {
                (true, 1) => &[3600],
                (true, 2) => &[3600, 60],
                (_, 3) => &[3600, 60, 1],
                (false, 1) => &[60],
                (false, 2) => &[60, 1],
                _ => return None,
            };
            let mut secs = days.unwrap_or(0).checked_mul(86_400)?;
            for (part, unit) in parts.iter().zip(units) {
                secs = secs.checked_add(decimal(part)?.checked_mul(*unit)?)?;
            }
            secs.div_ceil(60)
        }
    };
    (minutes <= u128::from(TimeLimit::MAX_MINUTES)).then(|| minutes.to_string())
}

/// The four numbers of a dotted IPv4 address, each 0 to 255.
fn octets(v: &str) -> Option<[u8; 4]> {
    let parts: Vec<&str> = yaml_string(v)?.split('.').collect();
    let [a, b, c, d] = parts.as_slice() else {
        return None;
    };
    let octet = |s: &str| decimal(s).and_then(|n| u8::try_from(n).ok());
    Some([octet(a)?, octet(b)?, octet(c)?, octet(d)?])
}

fn address(v: &str) -> Option<String> {
    octets(v).map(|[a, b, c, d]| format!("{a}.{b}.{c}.{d}"))
}

// ---------------------------------------------------------------------------------------------
// Node groups

/// A node group's keys (`body`, one per line) in the two places a group can be: the
/// controller, and the first compute group next to a listed controller `ctl`. Returns each
/// file with the pointer of `key` in it.
fn groups(head: &str, body: &str, key: &str) -> [(String, String); 2] {
    let indent = |first: &str, rest: &str| {
        let lines: Vec<String> = body
            .lines()
            .enumerate()
            .map(|(i, l)| format!("{}{l}\n", if i == 0 { first } else { rest }))
            .collect();
        lines.concat()
    };
    [
        (
            format!("{head}controller:\n{}", indent("  ", "  ")),
            format!("/controller/{key}"),
        ),
        (
            format!(
                "{head}controller:\n  nodes:\n    - name: ctl\ncompute:\n{}",
                indent("  - ", "    ")
            ),
            format!("/compute/0/{key}"),
        ),
    ]
}

/// The nodes of the group under test (all but the listed controller `ctl`).
fn group_nodes(c: &Cluster) -> impl Iterator<Item = &Node> {
    c.nodes.iter().filter(|n| n.name.as_str() != "ctl")
}

fn group_names(c: &Cluster) -> String {
    let names: Vec<&str> = group_nodes(c).map(|n| n.name.as_str()).collect();
    names.join(",")
}

fn first_group_node(c: &Cluster) -> &Node {
    group_nodes(c).next().unwrap()
}

/// Checks one group key in both places a group can be.
fn check_group_key(
    head: &str,
    body: &str,
    key: &str,
    held: &dyn Fn(&Cluster) -> String,
    exact: &dyn Fn(&str) -> Option<String>,
    accepted: &[&str],
    extremes: &[&str],
) -> Vec<String> {
    let mut failures = Vec::new();
    for (file, pointer) in groups(head, body, key) {
        let field = Field {
            file,
            pointer,
            held,
            exact,
        };
        failures.extend(field.failures(accepted, extremes));
    }
    failures
}

#[test]
fn group_count() {
    let failures = check_group_key(
        HEAD,
        "name: n{index}\ncount: <V>",
        "count",
        &|c| group_nodes(c).count().to_string(),
        &unsigned,
        &["1", "2", "4096"],
        &both(INTEGER_EXTREMES, &["4095", "4097"]),
    );
    assert_none(&failures);
}

#[test]
fn group_first_index_with_count() {
    let mut failures = Vec::new();
    for count in [1u32, 2, 4096] {
        // The largest first index whose last node is still numbered within u32.
        let last_start = u128::from(u32::MAX - (count - 1));
        let edges = [last_start.to_string(), (last_start + 1).to_string()];
        let names = move |v: &str| {
            let first = u128::try_from(yaml_int(v)?).ok()?;
            let names: Vec<String> = (0..u128::from(count))
                .map(|k| format!("n{}", first + k))
                .collect();
            Some(names.join(","))
        };
        failures.extend(check_group_key(
            HEAD,
            &format!("name: n{{index}}\ncount: {count}\nfirst-index: <V>"),
            "first-index",
            &group_names,
            &names,
            &["0", "1", "4096", &edges[0]],
            &both(INTEGER_EXTREMES, &[&edges[1]]),
        ));
    }
    assert_none(&failures);
}

#[test]
fn group_first_ip_with_count() {
    // The whole IPv4 space, so that the last addresses are inside the network (255.255.255.255
    // is its broadcast address, 0.0.0.0 its network address, 0.0.0.1 the gateway).
    let head = HEAD.replace("10.77.0.0/16", "0.0.0.0/0");
    let mut failures = Vec::new();
    for count in [1u32, 2, 3, 4096] {
        let last_start = u32::MAX - 1 - (count - 1);
        let edges = [
            std::net::Ipv4Addr::from(last_start).to_string(),
            std::net::Ipv4Addr::from(last_start + 1).to_string(),
        ];
        let addresses = move |v: &str| {
            let first = u128::from(u32::from_be_bytes(octets(v)?));
            let all: Option<Vec<String>> = (0..u128::from(count))
                .map(|k| {
                    let ip = u32::try_from(first + k).ok()?;
                    Some(std::net::Ipv4Addr::from(ip).to_string())
                })
                .collect();
            all.map(|a| a.join(","))
        };
        let held = |c: &Cluster| {
            let ips: Vec<String> = group_nodes(c).map(|n| n.ip.to_string()).collect();
            ips.join(",")
        };
        failures.extend(check_group_key(
            &head,
            &format!("name: n{{index}}\ncount: {count}\nfirst-ip: <V>"),
            "first-ip",
            &held,
            &addresses,
            &["10.77.0.10", &edges[0]],
            &both(ADDRESS_EXTREMES, &[&edges[1]]),
        ));
    }
    assert_none(&failures);
}

#[test]
fn group_vcpus() {
    let failures = check_group_key(
        HEAD,
        "name: n{index}\ncount: 2\nvcpus: <V>",
        "vcpus",
        &|c| first_group_node(c).vcpus.to_string(),
        &unsigned,
        &["1", "2", "1024"],
        &both(INTEGER_EXTREMES, &["1025"]),
    );
    assert_none(&failures);
}

#[test]
fn group_memory() {
    let failures = check_group_key(
        HEAD,
        "name: n{index}\ncount: 2\nmemory: <V>",
        "memory",
        &|c| first_group_node(c).memory.bytes().to_string(),
        &bytes,
        &["134217728", "\"128MiB\"", "2G", "\"16384GiB\"", "\"16TiB\""],
        &both(INTEGER_EXTREMES, SIZE_EXTREMES),
    );
    assert_none(&failures);
}

#[test]
fn group_disk() {
    let failures = check_group_key(
        HEAD,
        "name: n{index}\ncount: 2\ndisk: <V>",
        "disk",
        &|c| first_group_node(c).disk.bytes().to_string(),
        &bytes,
        &["1073741824", "\"1GiB\"", "20G", "\"65536GiB\"", "\"64TiB\""],
        &both(INTEGER_EXTREMES, SIZE_EXTREMES),
    );
    assert_none(&failures);
}

#[test]
fn group_name_pad_width() {
    // `<V>` is N in `{index:0N}`; a node name has at most 63 bytes, `n` and 62 digits.
    let names = |v: &str| {
        let width = usize::try_from(decimal(v)?).ok().filter(|w| *w <= 1000)?;
        let names: Vec<String> = (1..=2).map(|i| format!("n{i:0width$}")).collect();
        Some(names.join(","))
    };
    let widths = [
        "0",
        "1",
        "2",
        "62",
        "63",
        "64",
        "255",
        "256",
        "4294967296",
        "18446744073709551616",
        HUNDRED_DIGITS,
        "-1",
        "+1",
        "1.5",
        "x",
        "",
    ];
    let failures = check_group_key(
        HEAD,
        "name: \"n{index:0<V>}\"\ncount: 2",
        "name",
        &group_names,
        &names,
        &["0", "2", "62"],
        &widths,
    );
    assert_none(&failures);
}

// ---------------------------------------------------------------------------------------------
// The rest of the file

#[test]
fn ssh_port() {
    let field = Field {
        file: format!("{HEAD}{NODES}ssh:\n  port: {V}\n"),
        pointer: "/ssh/port".into(),
        held: &|c| c.ssh.port.to_string(),
        exact: &unsigned,
    };
    assert_none(&field.failures(&["1", "22", "65535"], INTEGER_EXTREMES));
}

#[test]
fn image_size() {
    let field = Field {
        file: format!("{HEAD}  size: {V}\n{NODES}"),
        pointer: "/image/size".into(),
        held: &|c| c.image.size.bytes().to_string(),
        exact: &bytes,
    };
    let accepted = ["2147483648", "\"2GiB\"", "4G", "\"16TiB\""];
    assert_none(&field.failures(&accepted, &both(INTEGER_EXTREMES, SIZE_EXTREMES)));
}

#[test]
fn network_cidr() {
    let cidr = |v: &str| {
        let (addr, prefix) = yaml_string(v)?.split_once('/')?;
        let parts: Option<Vec<String>> = addr
            .split('.')
            .map(|p| decimal(p).map(|n| n.to_string()))
            .collect();
        let parts = parts.filter(|p| p.len() == 4)?;
        Some(format!("{}/{}", parts.join("."), decimal(prefix)?))
    };
    let field = Field {
        file: format!(
            "{}controller:\n  nodes:\n    - name: ctl\n",
            HEAD.replace("10.77.0.0/16", V)
        ),
        pointer: "/network/cidr".into(),
        held: &|c| c.network.cidr.to_string(),
        exact: &cidr,
    };
    let accepted = [
        "10.77.0.0/16",
        "0.0.0.0/0",
        "10.77.0.0/30",
        "255.255.255.252/30",
        "\"10.0.0.0/8\"",
    ];
    let extremes = [
        "10.77.0.0/31",
        "10.77.0.0/32",
        "10.77.0.0/33",
        "10.77.0.0/255",
        "10.77.0.0/256",
        "10.77.0.0/65536",
        "10.77.0.0/4294967296",
        "10.77.0.0/18446744073709551616",
        "10.77.0.0/-1",
        "10.77.0.0/+8",
        "10.77.0.0/1.5",
        "10.77.0.0/016",
        "010.77.0.0/16",
        "256.0.0.0/8",
        "10.256.0.0/16",
        "4294967296.0.0.0/8",
        "18446744073709551616.0.0.0/8",
        "-1.0.0.0/8",
        "10.77.0/24",
        "4294967295",
        "-1",
        "1.5",
        "1e400",
    ];
    assert_none(&field.failures(&accepted, &extremes));
}

#[test]
fn network_gateway() {
    let head = HEAD.replace("10.77.0.0/16", "0.0.0.0/0");
    // The nodes have their own addresses: the others are taken after the gateway.
    let field = Field {
        file: head.replace("  bridge: hpcbr0\n", "  bridge: hpcbr0\n  gateway: <V>\n")
            + "controller:\n  nodes:\n    - name: ctl\n      ip: 10.0.0.10\n",
        pointer: "/network/gateway".into(),
        held: &|c| c.network.gateway.to_string(),
        exact: &address,
    };
    let accepted = ["0.0.0.1", "10.77.0.1", "255.255.255.254"];
    assert_none(&field.failures(&accepted, ADDRESS_EXTREMES));
}

#[test]
fn node_ip() {
    let head = HEAD.replace("10.77.0.0/16", "0.0.0.0/0");
    let field = Field {
        file: format!("{head}controller:\n  nodes:\n    - name: ctl\n      ip: {V}\n"),
        pointer: "/controller/nodes/0/ip".into(),
        held: &|c| c.nodes[0].ip.to_string(),
        exact: &address,
    };
    let accepted = ["0.0.0.2", "10.77.0.10", "255.255.255.254"];
    assert_none(&field.failures(&accepted, ADDRESS_EXTREMES));
}

#[test]
fn virtiofs_mode() {
    let share = |indent: &str| {
        format!(
            "{indent}- tag: data\n{indent}  host-path: /srv/data\n{indent}  mount-point: /data\n{indent}  mode: {V}\n"
        )
    };
    let places = [
        (
            format!("{HEAD}{NODES}virtiofs:\n{}", share("  ")),
            "/virtiofs/0/mode",
        ),
        (
            format!("{HEAD}{NODES}    virtiofs:\n{}", share("      ")),
            "/compute/0/virtiofs/0/mode",
        ),
        (
            format!(
                "{HEAD}controller:\n  nodes:\n    - name: ctl\n      virtiofs:\n{}",
                share("        ")
            ),
            "/controller/nodes/0/virtiofs/0/mode",
        ),
    ];
    // The octal number written, at any length.
    let mode = |v: &str| {
        let s = yaml_string(v)?;
        let digits = s.strip_prefix("0o").unwrap_or(s);
        let octal = !digits.is_empty() && digits.bytes().all(|b| matches!(b, b'0'..=b'7'));
        let n = octal
            .then(|| u128::from_str_radix(digits, 8).ok())
            .flatten()?;
        Some(format!("{n:o}"))
    };
    let held = |c: &Cluster| {
        let m = c.nodes.iter().find_map(|n| n.virtiofs.first()).unwrap();
        m.mode.map_or("none".into(), |m| format!("{:o}", m.bits()))
    };
    let accepted = ["\"0000\"", "\"0755\"", "\"7777\"", "\"0o7777\"", "\"644\""];
    let extremes = [
        "\"10000\"",
        "\"07777\"",
        "\"77777\"",
        "\"0o10000\"",
        "\"0o0o777\"",
        "\"+777\"",
        "\"-777\"",
        "\"0o+77\"",
        "\"0x1ff\"",
        "\"0800\"",
        "\"37777777777\"",
        "\"40000000000\"",
        "\"1777777777777777777777\"",
        "\"2000000000000000000000\"",
        "755",
        "0755",
        "0o755",
        "0x1ff",
        "-1",
        "-9223372036854775808",
        "18446744073709551616",
        "1.5",
        "1e400",
        ".nan",
    ];
    let mut failures = Vec::new();
    for (file, pointer) in places {
        let field = Field {
            file,
            pointer: pointer.into(),
            held: &held,
            exact: &mode,
        };
        failures.extend(field.failures(&accepted, &extremes));
    }
    assert_none(&failures);
}

/// A node `ctl` with one PCI device whose `key` is [`V`], and a counted group of one node
/// `g1` with the same device. Returns each file with the pointer of `key` in it.
fn pci_places(device: &str) -> [(String, String); 2] {
    let indented = |pad: &str| {
        let lines: Vec<String> = device.lines().map(|l| format!("{pad}{l}\n")).collect();
        lines
            .concat()
            .replacen(&format!("{pad}  "), &format!("{pad}- "), 1)
    };
    [
        (
            format!(
                "{HEAD}controller:\n  nodes:\n    - name: ctl\n      pci-devices:\n{}",
                indented("        ")
            ),
            "/controller/nodes/0/pci-devices/0".into(),
        ),
        (
            format!(
                "{HEAD}controller:\n  nodes:\n    - name: ctl\ncompute:\n  - name: g{{index}}\n    count: 1\n    pci-devices:\n{}",
                indented("      ")
            ),
            "/compute/0/pci-devices/0".into(),
        ),
    ]
}

fn pci_device(c: &Cluster) -> &hpc_config::file::PciDevice {
    c.nodes.iter().find_map(|n| n.pci_devices.first()).unwrap()
}

#[test]
fn pci_address() {
    // Domain (default 0), bus, slot and function, each as the hex number written.
    let exact = |v: &str| {
        let s = yaml_string(v)?;
        let (rest, function) = s.rsplit_once('.')?;
        let parts: Vec<&str> = rest.split(':').collect();
        let (domain, bus, slot) = match parts.as_slice() {
            [d, b, s] => (hex(d)?, hex(b)?, hex(s)?),
            [b, s] => (0, hex(b)?, hex(s)?),
            _ => return None,
        };
        let function = hex(function)?;
        Some(format!("{domain:04x}:{bus:02x}:{slot:02x}.{function:x}"))
    };
    let held = |c: &Cluster| {
        let a = pci_device(c).address;
        format!(
            "{:04x}:{:02x}:{:02x}.{:x}",
            a.domain, a.bus, a.slot, a.function
        )
    };
    let accepted = [
        "\"0000:00:00.0\"",
        "\"ffff:ff:1f.7\"",
        "\"FFFF:FF:1F.7\"",
        "\"3b:00.0\"",
    ];
    let extremes = [
        "\"10000:00:00.0\"",
        "\"fffff:ff:1f.7\"",
        "\"ffffffff:ff:1f.7\"",
        "\"ffffffffffffffffffffffffffffffffff:00:00.0\"",
        "\"0000:100:00.0\"",
        "\"0000:1ff:00.0\"",
        "\"0000:00:20.0\"",
        "\"0000:00:ff.0\"",
        "\"0000:00:100.0\"",
        "\"0000:00:00.8\"",
        "\"0000:00:00.f\"",
        "\"0000:00:00.10\"",
        "\"0000:00:00.-1\"",
        "\"+fff:00:00.0\"",
        "\"-fff:00:00.0\"",
        "\"0000:+f:00.0\"",
        "\"0000:00:+1.0\"",
        "\"0000:00:00.+\"",
        "\"00:00:00:00.0\"",
        "\"00.0\"",
        "0",
        "-1",
        "18446744073709551616",
        "1.5",
        "1e400",
    ];
    let mut failures = Vec::new();
    for (file, at) in pci_places(&format!("  address: {V}\n")) {
        let field = Field {
            file,
            pointer: format!("{at}/address"),
            held: &held,
            exact: &exact,
        };
        failures.extend(field.failures(&accepted, &extremes));
    }
    assert_none(&failures);
}

#[test]
fn pci_vendor_and_device_ids() {
    let exact = |v: &str| {
        let s = yaml_string(v)?;
        let n = hex(s.strip_prefix("0x").unwrap_or(s))?;
        Some(format!("{n:04x}"))
    };
    let show = |id: Option<hpc_config::types::PciId>| {
        id.map_or("none".into(), |id| format!("{:04x}", id.0))
    };
    let vendor = |c: &Cluster| show(pci_device(c).vendor_id);
    let device = |c: &Cluster| show(pci_device(c).device_id);
    let accepted = ["\"0000\"", "\"10de\"", "\"ffff\"", "\"0xFFFF\"", "abcd"];
    let extremes = [
        "\"10000\"",
        "\"0x10000\"",
        "\"fffff\"",
        "\"ffffffff\"",
        "\"ffffffffffffffff\"",
        "\"10000000000000000\"",
        "\"fff\"",
        "\"0x\"",
        "\"+fff\"",
        "\"-fff\"",
        "\"0x+ff\"",
        "\"0x-ff\"",
        "1234",
        "0xffff",
        "-1",
        "65535",
        "65536",
        "18446744073709551616",
        "1.5",
        "1e400",
    ];
    let mut failures = Vec::new();
    for (key, held) in [
        ("vendor-id", &vendor as &dyn Fn(&Cluster) -> String),
        ("device-id", &device),
    ] {
        let spec = format!("  address: \"0000:3b:00.0\"\n  {key}: {V}\n");
        for (file, at) in pci_places(&spec) {
            let field = Field {
                file,
                pointer: format!("{at}/{key}"),
                held,
                exact: &exact,
            };
            failures.extend(field.failures(&accepted, &extremes));
        }
    }
    assert_none(&failures);
}

fn slurm(c: &Cluster) -> &hpc_config::Slurm {
    c.slurm.as_ref().unwrap()
}

#[test]
fn slurm_memory_headroom_percent() {
    let field = Field {
        file: format!("{HEAD}{NODES}slurm:\n  memory-headroom-percent: {V}\n"),
        pointer: "/slurm/memory-headroom-percent".into(),
        held: &|c| slurm(c).memory_headroom_percent.to_string(),
        exact: &unsigned,
    };
    let extremes = both(INTEGER_EXTREMES, &["49", "51", "100", "101"]);
    assert_none(&field.failures(&["0", "5", "50"], &extremes));
}

#[test]
fn slurm_gpu_count() {
    let field = Field {
        file: format!(
            "{HEAD}{NODES}slurm:\n  gres:\n    gpus:\n      - nodes:\n          - n1\n        count: {V}\n"
        ),
        pointer: "/slurm/gres/gpus/0/count".into(),
        held: &|c| slurm(c).gpus[0].count.to_string(),
        exact: &unsigned,
    };
    let extremes = both(INTEGER_EXTREMES, &["63", "65"]);
    assert_none(&field.failures(&["1", "8", "64"], &extremes));
}

#[test]
fn slurm_max_time() {
    let field = Field {
        file: format!(
            "{HEAD}{NODES}slurm:\n  partitions:\n    - name: debug\n      nodes:\n        - ALL\n      max-time: {V}\n"
        ),
        pointer: "/slurm/partitions/0/max-time".into(),
        held: &|c| {
            let limit = slurm(c).partitions[0].max_time;
            limit
                .minutes()
                .map_or("UNLIMITED".into(), |m| m.to_string())
        },
        exact: &minutes,
    };
    let accepted = [
        "0",
        "1",
        "60",
        "35791393",
        "\"UNLIMITED\"",
        "infinite",
        "\"1:00:00\"",
        "\"00:00:01\"",
        "1-00:00:00",
        "\"24855-03:13:00\"",
        "\"24855-03:12:59\"",
        "\"24855-03:13\"",
        "\"35791393:00\"",
        "\"35791392:60\"",
        "\"596523:13:00\"",
        "\"0-0:0:2147483580\"",
        "\"0:0:2147483580\"",
        "\"00000000000000000000000000000001\"",
    ];
    let times = [
        "35791394",
        "\"35791394\"",
        "\"24855-03:13:01\"",
        "\"24855-03:14\"",
        "\"24855-04\"",
        "\"24856\"",
        "\"24856-00\"",
        "\"35791394:00\"",
        "\"35791393:01\"",
        "\"596523:14:00\"",
        "\"0:0:2147483581\"",
        "\"0-0:0:2147483647\"",
        "\"0-0:0:2147483648\"",
        "\"213503982334602-00\"",
        "\"213503982334601-00:00:00\"",
        "\"4294967295:00:00\"",
        "\"4294967295-00\"",
        "\"71582788:00:00\"",
        "\"1-99999999999999999999\"",
        "\"99999999999999999999\"",
        "\"18446744073709551615\"",
        "\"18446744073709551615:00\"",
        "\"307445734561825860:00\"",
        "\"5124095576030431:00:00\"",
        "\"0:0:18446744073709551615\"",
        "\"0-0:0:18446744073709551615\"",
        "\"18446744073709551615-23:59:59\"",
        "\"1-2-3\"",
        "\"1-\"",
        "\"-1\"",
        "\"-\"",
        "\":\"",
        "\"1:2:3:4\"",
        "\"+5\"",
        "\"1.5\"",
        "\"1e400\"",
        "\"0x10\"",
        "\"1:-1\"",
    ];
    assert_none(&field.failures(&accepted, &both(INTEGER_EXTREMES, &times)));
}

#[test]
fn time_limit_bound_is_what_slurm_reads_back() {
    // SLURM reads "D-HH:MM:SS" into seconds in a C int and rounds up with (secs + 59) / 60.
    let int_max = u64::try_from(i32::MAX).unwrap();
    assert!(TimeLimit::MAX_MINUTES * 60 + 59 <= int_max);
    assert!((TimeLimit::MAX_MINUTES + 1) * 60 + 59 > int_max);
    let longest: TimeLimit = "24855-03:13:00".parse().unwrap();
    assert_eq!(longest.minutes(), Some(TimeLimit::MAX_MINUTES));
    assert_eq!(longest.to_string(), "24855-03:13:00");
}

#[test]
fn hostlist_ranges() {
    // `n[a-b]` (or `n[a]`, or a plain name): the names it expands to.
    let expand = |v: &str| {
        let s = yaml_string(v)?;
        let Some(inner) = s.strip_prefix("n[").and_then(|r| r.strip_suffix(']')) else {
            return Some(s.to_owned());
        };
        let (a, b) = inner.split_once('-').unwrap_or((inner, inner));
        let (from, to) = (decimal(a)?, decimal(b)?);
        if from > to || to - from > 10_000 {
            return None;
        }
        let width = if a.len() > 1 && a.starts_with('0') {
            a.len()
        } else {
            0
        };
        let names: Vec<String> = (from..=to).map(|i| format!("n{i:0width$}")).collect();
        Some(names.join(","))
    };
    let field = Field {
        file: format!(
            "{HEAD}{NODES}slurm:\n  partitions:\n    - name: debug\n      nodes:\n        - {V}\n"
        ),
        pointer: "/slurm/partitions/0/nodes/0".into(),
        held: &|c| {
            let names: Vec<&str> = slurm(c).partitions[0]
                .nodes
                .iter()
                .map(|n| n.as_str())
                .collect();
            names.join(",")
        },
        exact: &expand,
    };
    let accepted = ["n1", "\"n[1-2]\"", "\"n[2]\"", "\"n[1-1]\""];
    let extremes = [
        "\"n[0-1]\"",
        "\"n[2-1]\"",
        "\"n[01-02]\"",
        "\"n[4294967295-4294967296]\"",
        "\"n[4294967296]\"",
        "\"n[1-4294967297]\"",
        "\"n[18446744073709551615-18446744073709551616]\"",
        "\"n[18446744073709551616]\"",
        "\"n[0-18446744073709551615]\"",
        "\"n[1-340282366920938463463374607431768211456]\"",
        concat!("\"n[1-", "9999999999", "9999999999", "9999999999", "]\""),
        "\"n[-1-2]\"",
        "\"n[+1-2]\"",
        "\"n[1--2]\"",
        "\"n[1.5]\"",
        "\"n[1-2,4294967295-4294967296]\"",
        "\"n[1-2][1-2]\"",
        "\"n[1-99999999999999999999][1-99999999999999999999]\"",
    ];
    assert_none(&field.failures(&accepted, &extremes));
}

#[test]
fn beegfs_version() {
    let exact = |v: &str| {
        let parts: Option<Vec<u128>> = yaml_string(v)?.split('.').map(decimal).collect();
        match parts?.as_slice() {
            [major] => Some(format!("{major}.0")),
            [major, minor] => Some(format!("{major}.{minor}")),
            [major, minor, patch] => Some(format!("{major}.{minor}.{patch}")),
            _ => None,
        }
    };
    let field = Field {
        file: format!("{HEAD}{NODES}beegfs:\n  version: {V}\n"),
        pointer: "/beegfs/version".into(),
        held: &|c| c.beegfs.as_ref().unwrap().version.to_string(),
        exact: &exact,
    };
    let accepted = [
        "\"7.4\"",
        "\"7.4.0\"",
        "\"7.4.6\"",
        "\"7.4.255\"",
        "\"8\"",
        "\"8.0\"",
        "\"8.1.0\"",
        "\"8.255.255\"",
    ];
    let extremes = [
        "\"7.4.256\"",
        "\"8.256\"",
        "\"8.0.256\"",
        "\"263.4\"",
        "\"264\"",
        "\"7.260.6\"",
        "\"4294967303.4\"",
        "\"18446744073709551623.4\"",
        "\"8.18446744073709551616\"",
        "\"8.1.18446744073709551616\"",
        "\"07.4\"",
        "\"7.04\"",
        "\"8.01\"",
        "\"7.+4\"",
        "\"+8\"",
        "\"-8\"",
        "\"8.-0\"",
        "\"7.4.\"",
        "\"8.1.0.0\"",
        "\"\"",
        "8",
        "7.4",
        "-1",
        "263",
        "18446744073709551616",
        "1e400",
        ".nan",
    ];
    assert_none(&field.failures(&accepted, &both(&extremes, &[HUNDRED_DIGITS])));
}

#[test]
fn beegfs_extra_config_numbers() {
    // An integer YAML holds as an integer is kept as one; text is kept as written.
    let exact = |v: &str| match yaml_int(v) {
        Some(n) => i64::try_from(n).ok().map(|i| format!("Int({i})")),
        None => yaml_string(v).map(|s| format!("Text({s:?})")),
    };
    let field = Field {
        file: format!(
            "{HEAD}{NODES}beegfs:\n  version: \"7.4.6\"\n  extra-config:\n    meta:\n      tuneNumWorkers: {V}\n"
        ),
        pointer: "/beegfs/extra-config/meta/tuneNumWorkers".into(),
        held: &|c| {
            let meta = &c.beegfs.as_ref().unwrap().extra_config.meta;
            format!("{:?}", meta["tuneNumWorkers"])
        },
        exact: &exact,
    };
    let accepted = [
        "8",
        "0",
        "-1",
        "9223372036854775807",
        "-9223372036854775808",
        "\"18446744073709551616\"",
    ];
    // Hex and octal beyond i64 are text to the YAML parser, so they are left out.
    let extremes: Vec<&str> = INTEGER_EXTREMES
        .iter()
        .copied()
        .filter(|v| !v.starts_with("0x") && !v.starts_with("0o"))
        .collect();
    assert_none(&field.failures(&accepted, &extremes));
}

#[test]
fn monitoring_ports() {
    for key in ["port", "node-exporter-port"] {
        let field = Field {
            file: format!("{HEAD}{NODES}monitoring:\n  {key}: {V}\n"),
            pointer: format!("/monitoring/{key}"),
            held: &|c| {
                let m = c.monitoring.as_ref().unwrap();
                if key == "port" {
                    m.port.to_string()
                } else {
                    m.node_exporter_port.to_string()
                }
            },
            exact: &unsigned,
        };
        // 0 and SSH's 22 are refused; 9090/9100 clash with the other port's default
        let extremes = both(INTEGER_EXTREMES, &["22", "65536"]);
        assert_none(&field.failures(&["1", "8080", "65535"], &extremes));
    }
}

#[test]
fn monitoring_durations() {
    for key in ["retention", "scrape-interval"] {
        let field = Field {
            file: format!("{HEAD}{NODES}monitoring:\n  {key}: {V}\n"),
            pointer: format!("/monitoring/{key}"),
            held: &|c| {
                let m = c.monitoring.as_ref().unwrap();
                let d = if key == "retention" {
                    &m.retention
                } else {
                    &m.scrape_interval
                };
                d.millis().to_string()
            },
            // milliseconds, worked out here in 128-bit
            exact: &|v: &str| {
                let v = yaml_string(v).unwrap_or(v);
                let (n, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit())?);
                let n: u128 = n.parse().ok()?;
                let scale: u128 = match unit {
                    "ms" => 1,
                    "s" => 1000,
                    "m" => 60_000,
                    "h" => 3_600_000,
                    "d" => 86_400_000,
                    "w" => 7 * 86_400_000,
                    "y" => 365 * 86_400_000,
                    _ => return None,
                };
                let ms = n.checked_mul(scale)?;
                (ms > 0 && ms <= 10 * 365 * 86_400_000).then(|| ms.to_string())
            },
        };
        let extremes = both(
            INTEGER_EXTREMES,
            &[
                "\"0s\"",
                "\"11y\"",
                "\"3651d\"",
                "\"18446744073709551615ms\"",
                "\"999999999999y\"",
                "\"1.5h\"",
                "\"-1s\"",
            ],
        );
        assert_none(&field.failures(&["\"15d\"", "\"5s\"", "\"10y\"", "\"3650d\""], &extremes));
    }
}

#[test]
fn slurm_job_failure_log_lines() {
    let field = Field {
        file: format!(
            "{HEAD}virtiofs:\n  - {{tag: s, host-path: /srv/s, mount-point: /shared}}\n{NODES}slurm:\n  job-failures:\n    dir: /shared/f\n    log-lines: {V}\n"
        ),
        pointer: "/slurm/job-failures/log-lines".into(),
        held: &|c| {
            slurm(c)
                .job_failures
                .as_ref()
                .unwrap()
                .log_lines
                .to_string()
        },
        exact: &unsigned,
    };
    let extremes = both(INTEGER_EXTREMES, &["10001"]);
    assert_none(&field.failures(&["1", "50", "10000"], &extremes));
}

// ---------------------------------------------------------------------------------------------
// Hosts

/// Two hosts: `hv1` with the capacity under test, `hv2` without one (so every node fits
/// somewhere whatever `hv1` holds). The controller is pinned to `hv2`, this machine: the
/// controller's host must be local.
fn hosts_file(capacity: &str) -> String {
    let nodes = NODES.replace("controller:\n", "controller:\n  host: hv2\n");
    format!(
        "{HEAD}hosts:\n  - name: hv1\n    uri: qemu+ssh://hv1/system\n    address: 192.168.50.1\n    capacity:\n{capacity}  - name: hv2\n    uri: qemu:///system\n    address: 192.168.50.2\n{nodes}"
    )
}

fn capacity(c: &Cluster) -> hpc_config::HostCapacity {
    c.hosts[0].capacity.unwrap()
}

#[test]
fn host_capacity_vcpus() {
    let field = Field {
        file: hosts_file(&format!("      vcpus: {V}\n      memory: 64GiB\n")),
        pointer: "/hosts/0/capacity/vcpus".into(),
        held: &|c| capacity(c).vcpus.to_string(),
        exact: &|v| unsigned(v).filter(|n| n != "0"),
    };
    assert_none(&field.failures(&["1", "16", "4294967295"], INTEGER_EXTREMES));
}

#[test]
fn host_capacity_memory() {
    let field = Field {
        file: hosts_file(&format!("      vcpus: 16\n      memory: {V}\n")),
        pointer: "/hosts/0/capacity/memory".into(),
        held: &|c| capacity(c).memory.bytes().to_string(),
        exact: &|v| bytes(v).filter(|b| b.parse::<u128>().is_ok_and(|b| b >= 128 << 20)),
    };
    let accepted = [
        "134217728",
        "\"128MiB\"",
        "64G",
        "\"18446744073709551615B\"",
        "\"16777215TiB\"",
    ];
    assert_none(&field.failures(
        &accepted,
        &both(INTEGER_EXTREMES, &both(SIZE_EXTREMES, &["\"127MiB\""])),
    ));
}

#[test]
fn host_address() {
    let field = Field {
        file: hosts_file("      vcpus: 16\n      memory: 64GiB\n")
            .replace("address: 192.168.50.2", &format!("address: {V}")),
        pointer: "/hosts/1/address".into(),
        held: &|c| c.hosts[1].address.unwrap().to_string(),
        // The cluster network, loopback, 0.0.0.0, multicast and broadcast are refused.
        exact: &|v| {
            let [a, b, _, _] = octets(v)?;
            let refused = (a, b) == (10, 77) || a == 127 || a == 0 || a >= 224;
            (!refused).then(|| address(v)).flatten()
        },
    };
    assert_none(&field.failures(
        &["192.168.50.3", "10.78.0.1", "223.255.255.254"],
        ADDRESS_EXTREMES,
    ));
}
