//! SLURM hostlists: `cn01,cn02,cn03,gpu1` ⇄ `cn[01-03],gpu1`.
//!
//! [`compress`] groups names by the text before and after their last run of digits and by
//! the zero-padded width of that run, then writes each group as one bracket of ranges.
//! The output is sorted and has no duplicates, so equal sets give equal strings.
//! [`expand`] is the inverse (it uses the `hostlist-parser` crate).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// A hostlist expression that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{expr}` is not a hostlist expression like `cn[01-16,20]`: {reason}")]
pub struct HostlistError {
    /// The expression.
    pub expr: String,
    /// What the parser said.
    pub reason: String,
}

/// Numbers longer than this stay literal (they would not fit a `u64`).
const MAX_DIGITS: usize = 18;

/// Expand a hostlist expression (`cn[01-03],gpu[1,4]`) into names, in written order
/// without duplicates. An empty expression gives no names.
pub fn expand(expr: &str) -> Result<Vec<String>, HostlistError> {
    if expr.trim().is_empty() {
        return Ok(Vec::new());
    }
    hostlist_parser::parse(expr).map_err(|e| HostlistError {
        expr: expr.to_owned(),
        reason: e.to_string().replace('\n', " ").trim().to_owned(),
    })
}

/// Group key: prefix, suffix, width (0 = not zero padded).
type Key = (String, String, usize);

/// Split a name at its last run of digits: `(prefix, digits, suffix)`.
fn split(name: &str) -> Option<(&str, &str, &str)> {
    let bytes = name.as_bytes();
    let end = bytes.iter().rposition(u8::is_ascii_digit)? + 1;
    let start = bytes[..end]
        .iter()
        .rposition(|b| !b.is_ascii_digit())
        .map_or(0, |i| i + 1);
    let digits = &name[start..end];
    if digits.len() > MAX_DIGITS {
        return None;
    }
    Some((&name[..start], digits, &name[end..]))
}

/// Compress names into a hostlist expression: `cn01,cn02,cn03,gpu1` → `cn[01-03],gpu1`.
///
/// Zero padding is kept (`cn[01-16]`), and unpadded numbers of the same width join a padded
/// group (`cn09,cn10` → `cn[09-10]`). The result is sorted (groups by prefix, suffix and
/// width; numbers numerically) and has no duplicates, so it does not depend on input order.
/// Names with text after their number (`n1-ib`) are listed as they are: SLURM 22.05 cannot
/// read `n[1-2]-ib`. Names must not contain `[`, `]` or `,`.
pub fn compress(names: &[&str]) -> String {
    let mut literal: BTreeSet<&str> = BTreeSet::new();
    let mut groups: BTreeMap<Key, BTreeSet<u64>> = BTreeMap::new();
    let mut unpadded: Vec<(&str, &str, &str, u64)> = Vec::new();
    for name in names {
        // SLURM 22.05 cannot read a range followed by text (`n[1-2]-ib` is "Invalid
        // hostlist"), so only names that end in their number are compressed.
        let Some((prefix, digits, suffix)) = split(name).filter(|(_, _, s)| s.is_empty()) else {
            literal.insert(name);
            continue;
        };
        let Ok(n) = digits.parse::<u64>() else {
            literal.insert(name);
            continue;
        };
        if digits.len() > 1 && digits.starts_with('0') {
            groups
                .entry((prefix.to_owned(), suffix.to_owned(), digits.len()))
                .or_default()
                .insert(n);
        } else {
            unpadded.push((prefix, digits, suffix, n));
        }
    }
    // An unpadded number joins the padded group of its own width when there is one.
    for (prefix, digits, suffix, n) in unpadded {
        let padded: Key = (prefix.to_owned(), suffix.to_owned(), digits.len());
        let key = if groups.contains_key(&padded) {
            padded
        } else {
            (prefix.to_owned(), suffix.to_owned(), 0)
        };
        groups.entry(key).or_default().insert(n);
    }

    let mut parts: Vec<(String, String)> = Vec::new();
    for ((prefix, suffix, width), numbers) in &groups {
        let num = |n: u64| format!("{n:0width$}", width = *width);
        let text = if numbers.len() == 1 {
            let n = numbers.first().copied().unwrap_or_default();
            format!("{prefix}{}{suffix}", num(n))
        } else {
            let mut ranges = String::new();
            for (lo, hi) in runs(numbers) {
                if !ranges.is_empty() {
                    ranges.push(',');
                }
                if lo == hi {
                    ranges.push_str(&num(lo));
                } else {
                    let _ = write!(ranges, "{}-{}", num(lo), num(hi));
                }
            }
            format!("{prefix}[{ranges}]{suffix}")
        };
        parts.push((prefix.clone(), text));
    }
    parts.extend(literal.iter().map(|l| ((*l).to_owned(), (*l).to_owned())));
    parts.sort();
    parts.dedup();
    parts
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join(",")
}

/// Consecutive runs of a sorted set: `{1,2,3,5}` → `[(1,3),(5,5)]`.
fn runs(numbers: &BTreeSet<u64>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &n in numbers {
        match out.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(n) => *hi = n,
            _ => out.push((n, n)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v.dedup();
        v
    }

    #[test]
    fn compresses_examples() {
        assert_eq!(
            compress(&["cn01", "cn02", "cn03", "gpu1"]),
            "cn[01-03],gpu1"
        );
        assert_eq!(compress(&["cn3", "cn1", "cn2"]), "cn[1-3]");
        assert_eq!(compress(&["cn1", "cn2", "cn4", "cn10"]), "cn[1-2,4,10]");
        assert_eq!(compress(&["cn09", "cn10", "cn11"]), "cn[09-11]");
        assert_eq!(compress(&["cn1", "cn01"]), "cn01,cn1");
        assert_eq!(compress(&["ctl"]), "ctl");
        assert_eq!(compress(&["ctl", "ctl"]), "ctl");
        assert_eq!(compress(&[]), "");
        assert_eq!(compress(&["r1n1", "r1n2", "r2n1"]), "r1n[1-2],r2n1");
        // SLURM 22.05 reads no text after a range: such names stay as they are
        assert_eq!(compress(&["n1-ib", "n2-ib", "n1"]), "n1,n1-ib,n2-ib");
        assert_eq!(compress(&["a0", "a1", "a2"]), "a[0-2]");
    }

    #[test]
    fn expands_examples() {
        assert_eq!(
            expand("cn[01-03],gpu1").ok(),
            Some(vec![
                "cn01".into(),
                "cn02".into(),
                "cn03".into(),
                "gpu1".into()
            ])
        );
        assert_eq!(expand("").ok(), Some(vec![]));
        assert!(expand("cn[1-").is_err());
    }

    /// Deterministic pseudo-random numbers for the property loops (no `rand`).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, below: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % below
        }
    }

    #[test]
    fn round_trips_generated_sets() {
        let prefixes = ["cn", "gpu", "node-", "r1n", "x"];
        let suffixes = ["", "", "", "-ib"];
        let mut rng = Lcg(7);
        for _ in 0..2000 {
            let count = rng.next(12) + 1;
            let mut names = Vec::new();
            for _ in 0..count {
                let prefix = prefixes[rng.next(prefixes.len() as u64) as usize];
                let suffix = suffixes[rng.next(suffixes.len() as u64) as usize];
                let n = rng.next(120);
                let name = match rng.next(4) {
                    0 => format!("{prefix}{n:02}{suffix}"),
                    1 => format!("{prefix}{n:03}{suffix}"),
                    2 => format!("{prefix}{n}{suffix}"),
                    _ => prefix.trim_end_matches('-').to_owned(),
                };
                names.push(name);
            }
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let compressed = compress(&refs);
            let expanded = expand(&compressed).unwrap_or_else(|e| panic!("{compressed}: {e}"));
            assert_eq!(sorted(expanded), sorted(names.clone()), "{compressed}");
            // Deterministic: input order does not matter.
            let mut reversed = refs.clone();
            reversed.reverse();
            assert_eq!(compress(&reversed), compressed);
            // Stable: compressing the expansion gives the same text.
            let again = expand(&compressed).unwrap_or_default();
            let again: Vec<&str> = again.iter().map(String::as_str).collect();
            assert_eq!(compress(&again), compressed);
        }
    }

    #[test]
    fn consecutive_ranges_are_one_bracket() {
        let names: Vec<String> = (1..=16).map(|i| format!("cn{i:02}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(compress(&refs), "cn[01-16]");
    }
}
