//! Does the client kernel module of a release build on a node's kernel?
//!
//! The rules are the reference's compatibility table (§4.1): release notes, the feature
//! detections in each release's `client_module/build`, and test builds against Debian's
//! 6.12 headers. A release that fails on a kernel also fails on every later one (the
//! failures are kernel API removals it does not detect).

use std::fmt;

use crate::release::Release;

/// A kernel version, from `uname -r` (`6.12.117+deb13-amd64` → 6.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Kernel {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
}

impl Kernel {
    /// A kernel version.
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// Parses `uname -r` output.
    pub fn parse(release: &str) -> Option<Self> {
        let mut it = release.trim().split(['.', '-', '+']);
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        Some(Self { major, minor })
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The verdict for one release on one kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compat {
    /// Builds (documented or test-built).
    Builds,
    /// Nobody has shown it either way; deployment goes ahead with a warning.
    Unverified(&'static str),
    /// Does not build; the reason.
    Fails(&'static str),
}

const K6_1: Kernel = Kernel::new(6, 1);
const K6_2: Kernel = Kernel::new(6, 2);
const K6_11: Kernel = Kernel::new(6, 11);
const K6_12: Kernel = Kernel::new(6, 12);
const K6_14: Kernel = Kernel::new(6, 14);

/// The newest kernel a release's client module is known to build on, and why it stops.
fn limits(r: Release) -> (Kernel, Compat) {
    let v = |a, b, c| r.at_least(Release::new(a, b, c));
    if v(8, 3, 0) {
        (
            K6_14,
            Compat::Unverified("newer than the 6.14 that 8.3 documents"),
        )
    } else if v(8, 1, 0) {
        (
            K6_12,
            Compat::Fails("6.14 changed `d_revalidate`; detected from 8.3 on (BeeGFS issue #73)"),
        )
    } else if v(8, 0, 0) {
        (
            K6_11,
            Compat::Fails(
                "6.12 moved `asm/unaligned.h` and removed `SetPageError` (8.0.1 test-built: fails)",
            ),
        )
    } else if v(7, 4, 7) {
        (
            K6_12,
            Compat::Fails(
                "6.14 changed `d_revalidate`; 7.4.7 lacks the detection 8.3 added (inferred)",
            ),
        )
    } else if v(7, 4, 6) {
        (
            K6_11,
            Compat::Fails(
                "6.12 moved `asm/unaligned.h` and removed `SetPageError`; fixed in 7.4.7",
            ),
        )
    } else {
        (
            K6_1,
            Compat::Fails(
                "6.3 added `mnt_idmap` to `generic_fillattr`/`inode_owner_or_capable`, 6.6 the ctime accessors, 6.8 removed `d_subdirs` (7.4.4 test-built on 6.12: fails)",
            ),
        )
    }
}

/// Whether the client module of `release` builds on `kernel`.
pub fn client_compat(release: Release, kernel: Kernel) -> Compat {
    let (newest, beyond) = limits(release);
    if kernel <= newest {
        return Compat::Builds;
    }
    // 7.4.0–7.4.5 on 6.2: documented for 6.1 only, failures start at 6.3.
    if !release.at_least(Release::new(7, 4, 6)) && kernel == K6_2 {
        return Compat::Unverified("7.4 before 7.4.6 documents Linux up to 6.1");
    }
    // 7.4.5 claims Ubuntu 24.04 (6.8), but 6.6's ctime change broke it until 7.4.6.
    if release == Release::new(7, 4, 5) && kernel < K6_12 {
        return Compat::Unverified(
            "7.4.5 announces Ubuntu 24.04 (6.8) but 6.6 broke the build until 7.4.6",
        );
    }
    // Between 6.12 and 6.14: 8.3 documents both ends.
    if release.at_least(Release::new(8, 3, 0)) {
        return beyond;
    }
    if kernel < K6_14 && matches!(beyond, Compat::Fails(_)) && newest == K6_12 {
        return Compat::Unverified("6.13 was not test-built");
    }
    beyond
}

/// The first release of each line whose client builds on `kernel` (for the refusal message).
pub fn releases_that_build(kernel: Kernel) -> Vec<Release> {
    let candidates = [
        Release::new(7, 4, 4),
        Release::new(7, 4, 6),
        Release::new(7, 4, 7),
        Release::new(8, 0, 0),
        Release::new(8, 1, 0),
        Release::new(8, 3, 0),
    ];
    let mut out: Vec<Release> = Vec::new();
    for r in candidates {
        if client_compat(r, kernel) == Compat::Builds && !out.iter().any(|o| o.major == r.major) {
            out.push(r);
        }
    }
    out
}

/// A refusal: the client of this release does not build on this node's kernel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{node}: the BeeGFS {release} client module does not build on Linux {kernel} (`{uname}`): {reason}; {}", suggest(.kernel))]
pub struct KernelRefusal {
    /// The node.
    pub node: String,
    /// `uname -r`.
    pub uname: String,
    /// Parsed kernel.
    pub kernel: Kernel,
    /// The release.
    pub release: Release,
    /// Why it fails.
    pub reason: &'static str,
}

fn suggest(kernel: &Kernel) -> String {
    let ok = releases_that_build(*kernel);
    if ok.is_empty() {
        format!("no release hpc-up knows builds on Linux {kernel}")
    } else {
        let names: Vec<String> = ok.iter().map(|r| format!("{r} or later")).collect();
        format!("releases that build: {}", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_uname() {
        assert_eq!(
            Kernel::parse("6.1.0-28-cloud-amd64"),
            Some(Kernel::new(6, 1))
        );
        assert_eq!(
            Kernel::parse("6.12.117+deb13-amd64"),
            Some(Kernel::new(6, 12))
        );
        assert_eq!(Kernel::parse("5.15.0"), Some(Kernel::new(5, 15)));
        assert_eq!(Kernel::parse("garbage"), None);
    }
}
