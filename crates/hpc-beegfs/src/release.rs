//! The release being deployed, and the lines of releases whose config keys differ.

use std::fmt;

use hpc_config::types::BeegfsVersion;

/// A BeeGFS release as hpc-up reasons about it: a missing patch level counts as `.0` (the
/// oldest release of that minor), so a rule never assumes more than the file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Release {
    /// 7 or 8.
    pub major: u8,
    /// Minor.
    pub minor: u8,
    /// Patch (0 when the file names none).
    pub patch: u8,
    /// The file named a patch level.
    pub exact: bool,
}

impl Release {
    /// A release from its numbers.
    pub const fn new(major: u8, minor: u8, patch: u8) -> Self {
        Self {
            major,
            minor,
            patch,
            exact: true,
        }
    }

    /// The release the cluster file names.
    pub fn from_version(v: BeegfsVersion) -> Self {
        Self {
            major: v.major,
            minor: v.minor,
            patch: v.patch.unwrap_or(0),
            exact: v.patch.is_some(),
        }
    }

    /// The line of releases that shares this one's config keys.
    pub fn line(self) -> Line {
        match (self.major, self.minor) {
            (7, _) => Line::V7_4,
            (8, 0) => Line::V8_0,
            (8, 1 | 2) => Line::V8_1,
            _ => Line::V8_3,
        }
    }

    /// BeeGFS 8 or later (Rust management service, no helperd, single port keys).
    pub fn is_v8(self) -> bool {
        self.major >= 8
    }

    fn key(self) -> (u8, u8, u8) {
        (self.major, self.minor, self.patch)
    }

    /// At least `other` (ignoring whether the patch was written).
    pub fn at_least(self, other: Release) -> bool {
        self.key() >= other.key()
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.exact {
            write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
        } else {
            write!(f, "{}.{}", self.major, self.minor)
        }
    }
}

/// Releases whose daemons accept the same config keys (from BeeGFS's own source: 7.4.4,
/// 8.1.0 and 8.3.1 were compared key by key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Line {
    /// 7.4.x: key=value everywhere, C++ management daemon, helperd, TCP/UDP port keys.
    V7_4,
    /// 8.0.x: Rust management service (TOML), single port keys, no helperd.
    V8_0,
    /// 8.1.x and 8.2.x: adds the meta file-event persistence keys.
    V8_1,
    /// 8.3.x and later: adds IPv6 switches, chunk balancing and client SELinux keys.
    V8_3,
}
