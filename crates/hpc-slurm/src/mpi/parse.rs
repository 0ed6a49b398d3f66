//! The MPI check program's output (see `mpi-check.c`), parsed. Pure.

use std::collections::BTreeMap;

/// What the check program printed.
#[derive(Debug, Clone, PartialEq)]
pub struct MpiOutput {
    /// The first line of `MPI_Get_library_version` (`Open MPI v4.1.4, …`).
    pub library: Option<String>,
    /// `MPI_COMM_WORLD`'s size.
    pub size: u32,
    /// Node of each rank, by rank.
    pub ranks: BTreeMap<u32, String>,
    /// The allreduce's sum of every rank number.
    pub sum: u64,
    /// n(n-1)/2.
    pub expected: u64,
    /// The ping-pong between rank 0 and the first rank on another node; `None` when every
    /// rank ran on one node.
    pub pingpong: Option<PingPong>,
}

impl MpiOutput {
    /// The sum is n(n-1)/2 for the size the program saw.
    pub fn sum_ok(&self) -> bool {
        let n = u64::from(self.size);
        self.sum == self.expected && self.expected == n * n.saturating_sub(1) / 2
    }

    /// Ranks from 0 to size-1 that printed no line.
    pub fn missing_ranks(&self) -> Vec<u32> {
        (0..self.size)
            .filter(|r| !self.ranks.contains_key(r))
            .collect()
    }
}

/// Point-to-point figures between two ranks on different nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct PingPong {
    /// Rank 0's node.
    pub from: String,
    /// The other rank.
    pub peer_rank: u32,
    /// Its node.
    pub to: String,
    /// Half the median round trip of a small message, in microseconds.
    pub latency_us: f64,
    /// Bytes moved by large messages per second, in MB/s (10^6 bytes).
    pub bandwidth_mbs: f64,
}

/// Output that is not the check program's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MpiParseError {
    /// No `mpi-check 1` line: not the program, or it died before printing.
    #[error("no `mpi-check 1` line in the output")]
    NoHeader,
    /// A line of the program's vocabulary that does not parse.
    #[error("line {line}: cannot read {text:?}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// Two lines for one rank, or ranks disagreeing on the size.
    #[error("line {line}: {problem}")]
    Inconsistent {
        /// 1-based line number.
        line: usize,
        /// What disagrees.
        problem: String,
    },
    /// A line the program always prints is missing.
    #[error("no `{0}` line in the output")]
    Missing(&'static str),
}

/// Reads the check program's output. Lines of other programs (warnings on stdout) are
/// ignored; the program's own lines must parse. Missing ranks are not an error here
/// ([`MpiOutput::missing_ranks`]).
pub fn parse_mpi_output(out: &str) -> Result<MpiOutput, MpiParseError> {
    let mut header = false;
    let mut library = None;
    let mut size: Option<u32> = None;
    let mut ranks = BTreeMap::new();
    let mut allreduce: Option<(u64, u64)> = None;
    let mut pingpong_seen = false;
    let mut pair: Option<(String, u32, String)> = None;
    let mut latency = None;
    let mut bandwidth = None;

    for (i, raw) in out.lines().enumerate() {
        let line = i + 1;
        let text = raw.trim_end();
        let bad = || MpiParseError::BadLine {
            line,
            text: text.to_owned(),
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.first().copied() {
            Some("mpi-check") => {
                if words.get(1..) != Some(&["1"][..]) {
                    return Err(bad());
                }
                header = true;
            }
            Some("library") => {
                library = text
                    .strip_prefix("library")
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty());
            }
            Some("rank") => {
                let [_, r, "of", n, "on", node] = words[..] else {
                    return Err(bad());
                };
                let (Ok(r), Ok(n)) = (r.parse::<u32>(), n.parse::<u32>()) else {
                    return Err(bad());
                };
                if r >= n {
                    return Err(bad());
                }
                if let Some(s) = size.filter(|s| *s != n) {
                    return Err(MpiParseError::Inconsistent {
                        line,
                        problem: format!("rank {r} says {n} ranks, an earlier line {s}"),
                    });
                }
                size = Some(n);
                if ranks.insert(r, node.to_owned()).is_some() {
                    return Err(MpiParseError::Inconsistent {
                        line,
                        problem: format!("rank {r} reported twice"),
                    });
                }
            }
            Some("allreduce") => {
                let [_, sum, expected, _verdict] = words[..] else {
                    return Err(bad());
                };
                let num = |w: &str, key: &str| -> Option<u64> {
                    w.strip_prefix(key)?.strip_prefix('=')?.parse().ok()
                };
                let (Some(sum), Some(expected)) = (num(sum, "sum"), num(expected, "expected"))
                else {
                    return Err(bad());
                };
                allreduce = Some((sum, expected));
            }
            Some("pingpong") => {
                pingpong_seen = true;
                match words[..] {
                    [_, "none"] => {}
                    [_, "0", from, peer, to] => {
                        let Ok(peer) = peer.parse::<u32>() else {
                            return Err(bad());
                        };
                        pair = Some((from.to_owned(), peer, to.to_owned()));
                    }
                    _ => return Err(bad()),
                }
            }
            Some("latency-us") => latency = Some(number(&words).ok_or_else(bad)?),
            Some("bandwidth-mbs") => bandwidth = Some(number(&words).ok_or_else(bad)?),
            _ => {}
        }
    }

    if !header {
        return Err(MpiParseError::NoHeader);
    }
    let size = size.ok_or(MpiParseError::Missing("rank"))?;
    let (sum, expected) = allreduce.ok_or(MpiParseError::Missing("allreduce"))?;
    let pingpong = match pair {
        Some((from, peer_rank, to)) => Some(PingPong {
            from,
            peer_rank,
            to,
            latency_us: latency.ok_or(MpiParseError::Missing("latency-us"))?,
            bandwidth_mbs: bandwidth.ok_or(MpiParseError::Missing("bandwidth-mbs"))?,
        }),
        // A wrong sum ends the program before the ping-pong.
        None if !pingpong_seen && sum == expected => {
            return Err(MpiParseError::Missing("pingpong"));
        }
        None => None,
    };
    Ok(MpiOutput {
        library,
        size,
        ranks,
        sum,
        expected,
        pingpong,
    })
}

/// The second word as a finite, non-negative number.
fn number(words: &[&str]) -> Option<f64> {
    match words {
        [_, v] => v.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOUR: &str = "mpi-check 1
library Open MPI v4.1.4, package: Debian OpenMPI, ident: 4.1.4, repo rev: v4.1.4, May 26, 2022
rank 0 of 4 on cn1
rank 1 of 4 on cn1
rank 2 of 4 on cn2
rank 3 of 4 on cn2
allreduce sum=6 expected=6 ok
pingpong 0 cn1 2 cn2
latency-us 123.4
bandwidth-mbs 456.7
";

    #[test]
    fn four_ranks_on_two_nodes() {
        let o = parse_mpi_output(FOUR).expect("parses");
        assert_eq!(o.size, 4);
        assert_eq!(
            o.library.as_deref(),
            Some(
                "Open MPI v4.1.4, package: Debian OpenMPI, ident: 4.1.4, repo rev: v4.1.4, May 26, 2022"
            )
        );
        assert_eq!(
            o.ranks.values().map(String::as_str).collect::<Vec<_>>(),
            ["cn1", "cn1", "cn2", "cn2"]
        );
        assert!(o.sum_ok());
        assert!(o.missing_ranks().is_empty());
        assert_eq!(
            o.pingpong,
            Some(PingPong {
                from: "cn1".into(),
                peer_rank: 2,
                to: "cn2".into(),
                latency_us: 123.4,
                bandwidth_mbs: 456.7,
            })
        );
    }

    #[test]
    fn one_node_has_no_pingpong() {
        let out = "mpi-check 1\nrank 0 of 2 on cn1\nrank 1 of 2 on cn1\nallreduce sum=1 expected=1 ok\npingpong none\n";
        let o = parse_mpi_output(out).expect("parses");
        assert_eq!(o.pingpong, None);
        assert_eq!(o.library, None);
        assert!(o.sum_ok());
    }

    #[test]
    fn foreign_lines_are_ignored_and_missing_ranks_counted() {
        let out = "warning: something\nmpi-check 1\nrank 0 of 3 on a\nrank 2 of 3 on b\n\
                   allreduce sum=3 expected=3 ok\npingpong 0 a 2 b\nlatency-us 1\nbandwidth-mbs 2\n";
        let o = parse_mpi_output(out).expect("parses");
        assert_eq!(o.missing_ranks(), [1]);
    }

    #[test]
    fn a_wrong_sum_is_read_not_refused() {
        let out = "mpi-check 1\nrank 0 of 3 on a\nrank 1 of 3 on a\nrank 2 of 3 on a\nallreduce sum=2 expected=3 wrong\n";
        let o = parse_mpi_output(out).expect("parses");
        assert!(!o.sum_ok());
        assert_eq!(o.pingpong, None);
    }

    #[test]
    fn the_expected_sum_is_checked_against_the_size() {
        let out = "mpi-check 1\nrank 0 of 3 on a\nallreduce sum=1 expected=1 ok\npingpong none\n";
        assert!(!parse_mpi_output(out).expect("parses").sum_ok());
    }

    #[test]
    fn refusals() {
        let cases: [(&str, MpiParseError); 8] = [
            ("", MpiParseError::NoHeader),
            ("rank 0 of 1 on a\n", MpiParseError::NoHeader),
            (
                "mpi-check 2\n",
                MpiParseError::BadLine {
                    line: 1,
                    text: "mpi-check 2".into(),
                },
            ),
            (
                "mpi-check 1\nrank 1 of 1 on a\n",
                MpiParseError::BadLine {
                    line: 2,
                    text: "rank 1 of 1 on a".into(),
                },
            ),
            (
                "mpi-check 1\nrank 0 of 2 on a\nrank 0 of 2 on b\n",
                MpiParseError::Inconsistent {
                    line: 3,
                    problem: "rank 0 reported twice".into(),
                },
            ),
            (
                "mpi-check 1\nrank 0 of 2 on a\nrank 1 of 3 on b\n",
                MpiParseError::Inconsistent {
                    line: 3,
                    problem: "rank 1 says 3 ranks, an earlier line 2".into(),
                },
            ),
            (
                "mpi-check 1\nrank 0 of 1 on a\nallreduce sum=0 expected=0 ok\n",
                MpiParseError::Missing("pingpong"),
            ),
            (
                "mpi-check 1\nrank 0 of 2 on a\nrank 1 of 2 on b\nallreduce sum=1 expected=1 ok\npingpong 0 a 1 b\nlatency-us -1\n",
                MpiParseError::BadLine {
                    line: 6,
                    text: "latency-us -1".into(),
                },
            ),
        ];
        for (out, want) in cases {
            assert_eq!(parse_mpi_output(out), Err(want), "{out:?}");
        }
        assert_eq!(
            parse_mpi_output("mpi-check 1\nrank 0 of 1 on a\npingpong none\n"),
            Err(MpiParseError::Missing("allreduce"))
        );
        assert_eq!(
            parse_mpi_output(
                "mpi-check 1\nrank 0 of 2 on a\nrank 1 of 2 on b\nallreduce sum=1 expected=1 ok\npingpong 0 a 1 b\nlatency-us 3\n"
            ),
            Err(MpiParseError::Missing("bandwidth-mbs"))
        );
    }
}
