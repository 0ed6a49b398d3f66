//! Single-field newtypes that validate themselves while the file is parsed.
//!
//! Each type implements `FromStr` with a typed error and a `Deserialize` that maps that error
//! through `de::Error::custom`, plus a hand-written JSON Schema that says the same thing in a
//! way editors understand (patterns, ranges), so that the schema check reports the problem
//! with its position before serde ever sees it.

use std::borrow::Cow;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Why a single value in the file is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(String);

impl ValueError {
    fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// Implements `Display`, `Serialize` and string `Deserialize` in terms of `FromStr`/`Display`.
macro_rules! string_newtype_serde {
    ($ty:ty, $expecting:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// ByteSize

/// An amount of memory or disk, in bytes.
///
/// Written like libvirt writes sizes: an integer with a unit. `K`, `M`, `G`, `T` and their
/// `KiB`… spellings are powers of 1024; `KB`, `MB`, `GB`, `TB` are powers of 1000; `B` or a
/// bare integer is bytes. (Hand-written rather than taken from a size crate because those
/// read `G` as 10⁹, and an admin who writes `memory: 4G` for a VM means what libvirt means.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(u64);

impl ByteSize {
    /// One kibibyte.
    pub const KIB: u64 = 1 << 10;
    /// One mebibyte.
    pub const MIB: u64 = 1 << 20;
    /// One gibibyte.
    pub const GIB: u64 = 1 << 30;

    /// A size of `bytes` bytes.
    pub const fn from_bytes(bytes: u64) -> Self {
        Self(bytes)
    }
    /// A size of `mib` mebibytes.
    pub const fn from_mib(mib: u64) -> Self {
        Self(mib * Self::MIB)
    }
    /// A size of `gib` gibibytes.
    pub const fn from_gib(gib: u64) -> Self {
        Self(gib * Self::GIB)
    }
    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
    /// The size in whole KiB, rounded up (libvirt's default unit for memory).
    pub const fn kib_ceil(self) -> u64 {
        self.0.div_ceil(Self::KIB)
    }
    /// The size in whole MiB, rounded down.
    pub const fn mib(self) -> u64 {
        self.0 / Self::MIB
    }
}

impl FromStr for ByteSize {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        if num.is_empty() {
            return Err(ValueError::new(format!(
                "`{s}` is not a size: write an integer with a unit, like `2GiB` or `512MiB`"
            )));
        }
        let n: u64 = num
            .parse()
            .map_err(|_| ValueError::new(format!("`{s}` is too large")))?;
        let mult: u64 = match unit.trim() {
            "" | "B" | "b" => 1,
            "K" | "k" | "KiB" => 1 << 10,
            "M" | "m" | "MiB" => 1 << 20,
            "G" | "g" | "GiB" => 1 << 30,
            "T" | "t" | "TiB" => 1 << 40,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "TB" => 1_000_000_000_000,
            other => {
                return Err(ValueError::new(format!(
                    "unknown size unit `{other}` in `{s}`: use B, KiB, MiB, GiB, TiB (or K, M, G, T), or KB, MB, GB, TB"
                )));
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| ValueError::new(format!("`{s}` is too large")))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 4] = [
            (1 << 40, "TiB"),
            (1 << 30, "GiB"),
            (1 << 20, "MiB"),
            (1 << 10, "KiB"),
        ];
        for (size, name) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{name}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as `4GiB`, or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// The pattern every textual size must match (kept in step with [`ByteSize::from_str`]).
pub(crate) const BYTE_SIZE_PATTERN: &str =
    r"^\s*[0-9]+\s*(B|b|K|k|M|m|G|g|T|t|KiB|MiB|GiB|TiB|KB|kB|MB|GB|TB)?\s*$";

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size: an integer with a unit as libvirt reads it. K/M/G/T and KiB/MiB/GiB/TiB are powers of 1024, KB/MB/GB/TB powers of 1000; a bare integer is bytes.",
            "oneOf": [
                { "type": "string", "pattern": BYTE_SIZE_PATTERN },
                { "type": "integer", "minimum": 0, "maximum": u64::MAX }
            ],
            "examples": ["2GiB", "512MiB", "20G"]
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Names

/// A node's host name: one DNS label (RFC 1123), lower case, at most 63 bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(String);

impl NodeName {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub(crate) const LABEL_PATTERN: &str = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";

pub(crate) fn check_label(s: &str, what: &str) -> Result<(), ValueError> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ValueError::new(format!(
            "`{s}` is not a valid {what}: use 1 to 63 lower-case letters, digits and `-`, not starting or ending with `-`"
        )))
    }
}

impl FromStr for NodeName {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check_label(s, "host name")?;
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

string_newtype_serde!(NodeName, "a host name");

impl JsonSchema for NodeName {
    fn schema_name() -> Cow<'static, str> {
        "NodeName".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A host name: one DNS label of lower-case letters, digits and `-`.",
            "pattern": LABEL_PATTERN,
            "examples": ["ctl", "cn1"]
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Network

/// An IPv4 network in CIDR notation whose host bits are zero, e.g. `10.77.0.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(Ipv4Net);

impl Cidr {
    /// The network.
    pub fn net(&self) -> Ipv4Net {
        self.0
    }
}

impl FromStr for Cidr {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let net: Ipv4Net = s.parse().map_err(|_| {
            ValueError::new(format!(
                "`{s}` is not an IPv4 network in CIDR notation, like `10.77.0.0/24`"
            ))
        })?;
        if net.addr() != net.network() {
            return Err(ValueError::new(format!(
                "`{s}` has host bits set: the network is `{}`",
                net.trunc()
            )));
        }
        if net.prefix_len() > 30 {
            return Err(ValueError::new(format!(
                "`{s}` is too small for a cluster: use a prefix of /30 or shorter"
            )));
        }
        // The parser reads `010` as ten, where inet_aton(3) reads eight: take only the plain
        // form, as `Ipv4Addr` does for the addresses elsewhere in the file.
        if net.to_string() != s {
            return Err(ValueError::new(format!(
                "`{s}` has leading zeros: write `{net}`"
            )));
        }
        Ok(Self(net))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

string_newtype_serde!(Cidr, "an IPv4 network like `10.77.0.0/24`");

/// Four octets of 0 to 255 without leading zeros (as `Ipv4Addr` reads them, and as
/// [`Cidr::from_str`] wants them), then a prefix of 0 to 30.
pub(crate) const CIDR_PATTERN: &str = concat!(
    r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}",
    "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])",
    "/([0-9]|[12][0-9]|30)$"
);

impl JsonSchema for Cidr {
    fn schema_name() -> Cow<'static, str> {
        "Cidr".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "An IPv4 network in CIDR notation with the host bits zero.",
            "pattern": CIDR_PATTERN,
            "examples": ["10.77.0.0/24"]
        })
    }
}

/// A bridge device name: at most 15 bytes (the kernel's IFNAMSIZ), no `/`, no white space.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BridgeName(String);

impl BridgeName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for BridgeName {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= 15
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValueError::new(format!(
                "`{s}` is not a valid bridge name: 1 to 15 letters, digits, `-`, `_` or `.`"
            )))
        }
    }
}

impl fmt::Display for BridgeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

string_newtype_serde!(BridgeName, "a bridge name");

impl JsonSchema for BridgeName {
    fn schema_name() -> Cow<'static, str> {
        "BridgeName".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A Linux bridge device name (at most 15 bytes).",
            "pattern": "^[A-Za-z0-9_.-]{1,15}$",
            "examples": ["hpcbr0"]
        })
    }
}

/// A DNS domain, e.g. `hpc.test`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DnsDomain(String);

impl DnsDomain {
    /// The domain.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DnsDomain {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > 253 || s.is_empty() {
            return Err(ValueError::new(format!("`{s}` is not a valid DNS domain")));
        }
        for label in s.split('.') {
            check_label(label, "DNS domain label")?;
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for DnsDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

string_newtype_serde!(DnsDomain, "a DNS domain");

impl JsonSchema for DnsDomain {
    fn schema_name() -> Cow<'static, str> {
        "DnsDomain".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A DNS domain made of lower-case labels.",
            "pattern": r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$",
            "examples": ["hpc.test"]
        })
    }
}

/// A libvirt connection URI, e.g. `qemu:///system` or `qemu+ssh://host2/system`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectUri(String);

impl ConnectUri {
    /// The URI text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The host part of a remote URI (`qemu+ssh://host2/system` → `host2`); `None` when local.
    pub fn remote_host(&self) -> Option<&str> {
        let rest = self.0.split_once("://")?.1;
        let authority = rest.split('/').next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or("");
        let host = host.split(':').next().unwrap_or("");
        (!host.is_empty()).then_some(host)
    }
}

impl FromStr for ConnectUri {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let scheme_ok = s.split_once("://").is_some_and(|(scheme, _)| {
            !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_lowercase())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c))
        });
        if scheme_ok && !s.contains(char::is_whitespace) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValueError::new(format!(
                "`{s}` is not a libvirt URI: write e.g. `qemu:///system` or `qemu+ssh://host/system`"
            )))
        }
    }
}

impl fmt::Display for ConnectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

string_newtype_serde!(ConnectUri, "a libvirt URI");

impl JsonSchema for ConnectUri {
    fn schema_name() -> Cow<'static, str> {
        "ConnectUri".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A libvirt connection URI.",
            "pattern": r"^[a-z][a-z0-9+.-]*://\S*$",
            "examples": ["qemu:///system", "qemu+ssh://root@host2/system", "test:///default"]
        })
    }
}

// ---------------------------------------------------------------------------------------------
// virtio-fs

/// A virtio-fs tag: what the guest names in `mount -t virtiofs TAG …`. At most 36 bytes (the
/// virtio-fs device's tag field).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VirtiofsTag(String);

/// The longest tag the virtio-fs device can carry, in bytes.
pub const VIRTIOFS_TAG_MAX: usize = 36;

impl VirtiofsTag {
    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for VirtiofsTag {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > VIRTIOFS_TAG_MAX {
            return Err(ValueError::new(format!(
                "virtio-fs tag `{s}` is {} bytes long; the device allows at most {VIRTIOFS_TAG_MAX}",
                s.len()
            )));
        }
        let ok = !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValueError::new(format!(
                "`{s}` is not a valid virtio-fs tag: use letters, digits, `-`, `_` and `.`"
            )))
        }
    }
}

impl fmt::Display for VirtiofsTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

string_newtype_serde!(VirtiofsTag, "a virtio-fs tag");

impl JsonSchema for VirtiofsTag {
    fn schema_name() -> Cow<'static, str> {
        "VirtiofsTag".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "The virtio-fs tag the guest mounts by (at most 36 bytes).",
            "pattern": "^[A-Za-z0-9_.-]{1,36}$",
            "examples": ["datasets", "shared"]
        })
    }
}

/// A file mode in octal, written as a string (`"0755"`): YAML reads an unquoted `0755` as
/// the decimal number 755.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileMode(u32);

impl FileMode {
    /// The mode bits.
    pub const fn bits(self) -> u32 {
        self.0
    }
    /// A mode from its bits.
    pub const fn from_bits(bits: u32) -> Self {
        Self(bits & 0o7777)
    }
}

impl FromStr for FileMode {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix("0o").unwrap_or(s);
        // Octal digits only: `from_str_radix` would also take a sign (`+777`).
        if (3..=4).contains(&digits.len())
            && digits.bytes().all(|b| matches!(b, b'0'..=b'7'))
            && let Ok(bits) = u32::from_str_radix(digits, 8)
        {
            return Ok(Self(bits));
        }
        Err(ValueError::new(format!(
            "`{s}` is not an octal file mode like \"0755\""
        )))
    }
}

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for FileMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = FileMode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an octal mode as a quoted string, like \"0755\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileMode, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FileMode, E> {
                Err(E::custom(format!(
                    "write the mode as a quoted string (\"0{v}\"): YAML reads an unquoted number as decimal"
                )))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FileMode, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!(
                        "`{v}` is not a file mode: write an octal mode as a quoted string, like \"0755\""
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for FileMode {
    fn schema_name() -> Cow<'static, str> {
        "FileMode".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "An octal file mode, quoted so that YAML does not read it as a decimal number.",
            "pattern": "^(0o)?[0-7]{3,4}$",
            "examples": ["0755", "2775"]
        })
    }
}

// ---------------------------------------------------------------------------------------------
// PCI

/// A PCI address `DDDD:BB:SS.F` (the domain may be left out: `01:00.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    /// PCI domain (segment).
    pub domain: u16,
    /// Bus number.
    pub bus: u8,
    /// Slot (device) number, at most 0x1f.
    pub slot: u8,
    /// Function number, at most 7.
    pub function: u8,
}

impl FromStr for PciAddress {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ValueError::new(format!(
                "`{s}` is not a PCI address like `0000:01:00.0` (domain:bus:slot.function, hex)"
            ))
        };
        let parts: Vec<&str> = s.split(':').collect();
        let (domain, bus, rest) = match parts.as_slice() {
            [d, b, r] if d.len() == 4 => (*d, *b, *r),
            [b, r] => ("0000", *b, *r),
            _ => return Err(bad()),
        };
        let (slot, function) = rest.split_once('.').ok_or_else(bad)?;
        // Exactly `len` hex digits (no sign, which `from_str_radix` would take), so the
        // value always fits its field.
        let digits = |t: &str, len: usize| -> Result<(), ValueError> {
            if t.len() == len && t.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(())
            } else {
                Err(bad())
            }
        };
        digits(domain, 4)?;
        digits(bus, 2)?;
        digits(slot, 2)?;
        digits(function, 1)?;
        let domain = u16::from_str_radix(domain, 16).map_err(|_| bad())?;
        let bus = u8::from_str_radix(bus, 16).map_err(|_| bad())?;
        let slot = u8::from_str_radix(slot, 16).map_err(|_| bad())?;
        let function = u8::from_str_radix(function, 16).map_err(|_| bad())?;
        if slot > 0x1f || function > 7 {
            return Err(ValueError::new(format!(
                "`{s}`: the slot must be at most 1f and the function at most 7"
            )));
        }
        Ok(Self {
            domain,
            bus,
            slot,
            function,
        })
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.slot, self.function
        )
    }
}

string_newtype_serde!(PciAddress, "a PCI address");

impl JsonSchema for PciAddress {
    fn schema_name() -> Cow<'static, str> {
        "PciAddress".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A PCI address, domain:bus:slot.function in hex (the domain may be left out).",
            "pattern": "^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[01][0-9a-fA-F]\\.[0-7]$",
            "examples": ["0000:01:00.0", "3b:00.0"]
        })
    }
}

/// A 16-bit PCI vendor or device id, four hex digits (`10de`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciId(pub u16);

impl FromStr for PciId {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.strip_prefix("0x").unwrap_or(s);
        if t.len() == 4 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            u16::from_str_radix(t, 16)
                .map(PciId)
                .map_err(|_| ValueError::new(format!("`{s}` is not a PCI id")))
        } else {
            Err(ValueError::new(format!(
                "`{s}` is not a PCI id: write four hex digits, like `10de`"
            )))
        }
    }
}

impl fmt::Display for PciId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}", self.0)
    }
}

string_newtype_serde!(PciId, "a PCI vendor or device id");

impl JsonSchema for PciId {
    fn schema_name() -> Cow<'static, str> {
        "PciId".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A PCI vendor or device id: four hex digits.",
            "pattern": "^(0x)?[0-9a-fA-F]{4}$",
            "examples": ["10de", "20b0"]
        })
    }
}

// ---------------------------------------------------------------------------------------------
// SLURM time limits

/// A SLURM time limit: `UNLIMITED`, minutes, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM` or
/// `D-HH:MM:SS`. Kept in minutes (`None` = unlimited), at most [`TimeLimit::MAX_MINUTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeLimit(Option<u64>);

impl TimeLimit {
    /// No limit.
    pub const UNLIMITED: Self = Self(None);

    /// The longest limit, in minutes, that SLURM reads back as written: 35,791,393 minutes,
    /// `24855-03:13:00` (about 68 years).
    ///
    /// SLURM keeps a limit as a 32-bit count of minutes with the top two values reserved
    /// (`INFINITE` = 0xffffffff, `NO_VAL` = 0xfffffffe, `slurm/slurm.h`), but it reads
    /// `MaxTime` from slurm.conf with `time_str2mins` (`src/common/parse_time.c`, the same
    /// in 22.05 and 24.11, the releases of bookworm and trixie). That adds days, hours,
    /// minutes and seconds up as seconds in a C `int`, then rounds up to minutes with
    /// `(secs + 59) / 60`. The largest number of minutes for which neither step overflows
    /// is `(i32::MAX - 59) / 60`; one more would wrap inside slurmctld. For no limit, write
    /// `UNLIMITED`.
    pub const MAX_MINUTES: u64 = (i32::MAX as u64 - 59) / 60;

    /// The limit in minutes, `None` for unlimited.
    pub fn minutes(self) -> Option<u64> {
        self.0
    }

    fn too_long(written: impl fmt::Display) -> ValueError {
        ValueError::new(format!(
            "{written} is longer than SLURM can keep: a time limit is at most {} ({} minutes); write UNLIMITED for none",
            Self(Some(Self::MAX_MINUTES)),
            Self::MAX_MINUTES
        ))
    }

    fn from_minutes(minutes: u64) -> Result<Self, ValueError> {
        if minutes <= Self::MAX_MINUTES {
            Ok(Self(Some(minutes)))
        } else {
            Err(Self::too_long(format_args!("{minutes} minutes")))
        }
    }
}

impl FromStr for TimeLimit {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ValueError::new(format!(
                "`{s}` is not a SLURM time limit: use UNLIMITED, minutes, HH:MM:SS or D-HH:MM:SS"
            ))
        };
        let t = s.trim();
        if t.eq_ignore_ascii_case("unlimited") || t.eq_ignore_ascii_case("infinite") {
            return Ok(Self(None));
        }
        let (days, clock) = match t.split_once('-') {
            Some((d, c)) => (Some(d), c),
            None => (None, t),
        };
        let parts: Vec<&str> = clock.split(':').collect();
        // The seconds in one unit of each part, as SLURM reads the forms.
        let units: &[u64] = match (days.is_some(), parts.len()) {
            (true, 1) => &[3600],     // D-HH
            (true, 2) => &[3600, 60], // D-HH:MM
            (_, 3) => &[3600, 60, 1], // D-HH:MM:SS, HH:MM:SS
            (false, 1) => &[60],      // MM
            (false, 2) => &[60, 1],   // MM:SS
            _ => return Err(bad()),
        };
        // Each number with the seconds in one unit of it.
        let fields: Vec<(&str, u64)> = days
            .map(|d| (d, 86_400))
            .into_iter()
            .chain(parts.iter().copied().zip(units.iter().copied()))
            .collect();
        let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
        if !fields.iter().all(|(x, _)| digits(x)) {
            return Err(bad());
        }
        // Digits only, so a number fails to parse only beyond u64; every step is checked.
        let secs = fields.iter().try_fold(0u64, |sum, (x, unit)| {
            x.parse::<u64>().ok()?.checked_mul(*unit)?.checked_add(sum)
        });
        let too_long = || Self::too_long(format_args!("`{s}`"));
        let minutes = secs.ok_or_else(too_long)?.div_ceil(60);
        Self::from_minutes(minutes).map_err(|_| too_long())
    }
}

impl fmt::Display for TimeLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("UNLIMITED"),
            Some(m) => {
                let (d, h, mm) = (m / 1440, (m % 1440) / 60, m % 60);
                if d > 0 {
                    write!(f, "{d}-{h:02}:{mm:02}:00")
                } else {
                    write!(f, "{h:02}:{mm:02}:00")
                }
            }
        }
    }
}

impl Serialize for TimeLimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TimeLimit;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a SLURM time limit")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TimeLimit, E> {
                TimeLimit::from_minutes(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TimeLimit, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom("a time limit cannot be negative"))
                    .and_then(|m| self.visit_u64(m))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TimeLimit, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for TimeLimit {
    fn schema_name() -> Cow<'static, str> {
        "TimeLimit".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A SLURM time limit: UNLIMITED, minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS; at most 24855-03:13:00 (35791393 minutes), the longest SLURM reads back.",
            "oneOf": [
                { "type": "integer", "minimum": 0, "maximum": TimeLimit::MAX_MINUTES },
                { "type": "string", "pattern": "^([Uu][Nn][Ll][Ii][Mm][Ii][Tt][Ee][Dd]|[Ii][Nn][Ff][Ii][Nn][Ii][Tt][Ee]|[0-9]+(:[0-9]+){0,2}|[0-9]+-[0-9]+(:[0-9]+){0,2})$" }
            ],
            "examples": ["UNLIMITED", "1-00:00:00", 60]
        })
    }
}

// ---------------------------------------------------------------------------------------------
// BeeGFS version

/// A BeeGFS release: 7.4.x or 8.x. Other majors (and 7.0–7.3) are not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BeegfsVersion {
    /// Major version (7 or 8).
    pub major: u8,
    /// Minor version.
    pub minor: u8,
    /// Patch level, when given.
    pub patch: Option<u8>,
}

impl FromStr for BeegfsVersion {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ValueError::new(format!(
                "`{s}` is not a BeeGFS version: write 7.4, 7.4.6, 8.1 or 8.1.0"
            ))
        };
        let parts: Vec<&str> = s.trim().split('.').collect();
        // Plain decimal numbers of at most 255 (`u8::from_str` alone would take `+4` and
        // `04`, which the schema refuses).
        let n = |x: &str| {
            let plain = !x.is_empty()
                && x.bytes().all(|b| b.is_ascii_digit())
                && (x == "0" || !x.starts_with('0'));
            if !plain {
                return Err(bad());
            }
            x.parse::<u8>().map_err(|_| {
                ValueError::new(format!(
                    "`{s}` is not a BeeGFS version: each part is at most 255"
                ))
            })
        };
        let (major, minor, patch) = match parts.as_slice() {
            [a] => (n(a)?, 0, None),
            [a, b] => (n(a)?, n(b)?, None),
            [a, b, c] => (n(a)?, n(b)?, Some(n(c)?)),
            _ => return Err(bad()),
        };
        if !(major == 7 && minor == 4 || major == 8) {
            return Err(ValueError::new(format!(
                "BeeGFS {s} is not supported: hpc-up deploys 7.4.x and 8.x"
            )));
        }
        Ok(Self {
            major,
            minor,
            patch,
        })
    }
}

impl fmt::Display for BeegfsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)?;
        if let Some(p) = self.patch {
            write!(f, ".{p}")?;
        }
        Ok(())
    }
}

string_newtype_serde!(BeegfsVersion, "a BeeGFS version");

impl JsonSchema for BeegfsVersion {
    fn schema_name() -> Cow<'static, str> {
        "BeegfsVersion".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "The BeeGFS release to deploy: 7.4.x or 8.x. Quote it so YAML keeps it a string.",
            "pattern": concat!(
                r"^(7\.4(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9]))?",
                r"|8(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){0,2})$"
            ),
            "examples": ["7.4.6", "8.1.0"]
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Debian release

/// The Debian release of the guests: what `hpc-up image build` installs and what `up` expects
/// the image to be.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
#[schemars(
    description = "The Debian release of the guests: `bookworm` (Debian 12: kernel 6.1, SLURM 22.05) or `trixie` (Debian 13: kernel 6.12, SLURM 24.11).",
    extend("examples" = ["bookworm", "trixie"])
)]
pub enum DebianRelease {
    /// Debian 12: kernel 6.1, SLURM 22.05.
    #[default]
    Bookworm,
    /// Debian 13: kernel 6.12, SLURM 24.11.
    Trixie,
}

impl DebianRelease {
    /// Every release hpc-up builds, oldest first.
    pub const ALL: [Self; 2] = [Self::Bookworm, Self::Trixie];

    /// The suite name (`bookworm`, `trixie`), as apt and mmdebstrap write it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Bookworm => "bookworm",
            Self::Trixie => "trixie",
        }
    }

    /// Debian's version number of the release (12, 13).
    pub const fn version(self) -> u8 {
        match self {
            Self::Bookworm => 12,
            Self::Trixie => 13,
        }
    }
}

impl FromStr for DebianRelease {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(r) = Self::ALL.into_iter().find(|r| r.as_str() == s) {
            return Ok(r);
        }
        let names: Vec<&str> = Self::ALL.iter().map(|r| r.as_str()).collect();
        let hint = crate::validate::closest(s, &names)
            .map(|n| format!(" (did you mean `{n}`?)"))
            .unwrap_or_default();
        Err(ValueError::new(format!(
            "`{s}` is not a Debian release hpc-up builds: use `bookworm` or `trixie`{hint}"
        )))
    }
}

impl fmt::Display for DebianRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// `Ipv4Addr` helpers used by validation.
pub(crate) fn is_special(net: Ipv4Net, ip: Ipv4Addr) -> Option<&'static str> {
    if ip == net.network() {
        Some("the network address")
    } else if ip == net.broadcast() {
        Some("the broadcast address")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_follow_libvirt_units() {
        assert_eq!("4G".parse::<ByteSize>().unwrap(), ByteSize::from_gib(4));
        assert_eq!("4GiB".parse::<ByteSize>().unwrap(), ByteSize::from_gib(4));
        assert_eq!("1GB".parse::<ByteSize>().unwrap().bytes(), 1_000_000_000);
        assert_eq!(
            "1536MiB".parse::<ByteSize>().unwrap().to_string(),
            "1536MiB"
        );
        assert_eq!("2048 MiB".parse::<ByteSize>().unwrap().to_string(), "2GiB");
        assert!("4 gigs".parse::<ByteSize>().is_err());
        assert!("GiB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn cidr_rejects_host_bits() {
        let e = "10.77.0.5/24".parse::<Cidr>().unwrap_err();
        assert!(e.to_string().contains("10.77.0.0/24"), "{e}");
        assert!("10.77.0.0/31".parse::<Cidr>().is_err());
        assert!("10.77.0.0/24".parse::<Cidr>().is_ok());
        // `010` is ten to the parser and eight to inet_aton(3).
        let e = "010.77.0.0/24".parse::<Cidr>().unwrap_err();
        assert!(e.to_string().contains("write `10.77.0.0/24`"), "{e}");
        assert!("10.77.0.0/024".parse::<Cidr>().is_err());
    }

    #[test]
    fn pci_addresses() {
        let a: PciAddress = "3b:00.0".parse().unwrap();
        assert_eq!(a.to_string(), "0000:3b:00.0");
        assert!("0000:01:20.0".parse::<PciAddress>().is_err());
        assert!("0000:01:00.8".parse::<PciAddress>().is_err());
        assert!("01:00".parse::<PciAddress>().is_err());
        let a: PciAddress = "ffff:ff:1f.7".parse().unwrap();
        assert_eq!(
            (a.domain, a.bus, a.slot, a.function),
            (0xffff, 0xff, 0x1f, 7)
        );
        for s in [
            "10000:00:00.0",
            "0000:100:00.0",
            "+fff:00:00.0",
            "0000:+f:00.0",
        ] {
            assert!(s.parse::<PciAddress>().is_err(), "{s}");
        }
    }

    #[test]
    fn time_limits() {
        assert_eq!("60".parse::<TimeLimit>().unwrap().minutes(), Some(60));
        assert_eq!(
            "1-00:00:00".parse::<TimeLimit>().unwrap().minutes(),
            Some(1440)
        );
        assert_eq!(
            "02:30:00".parse::<TimeLimit>().unwrap().to_string(),
            "02:30:00"
        );
        assert_eq!(
            "UNLIMITED".parse::<TimeLimit>().unwrap(),
            TimeLimit::UNLIMITED
        );
        assert!("1:2:3:4".parse::<TimeLimit>().is_err());
    }

    #[test]
    fn time_limits_stop_where_slurm_does() {
        let minutes = |s: &str| s.parse::<TimeLimit>().map(TimeLimit::minutes);
        assert_eq!(TimeLimit::MAX_MINUTES, 35_791_393);
        assert_eq!(minutes("24855-03:13:00"), Ok(Some(TimeLimit::MAX_MINUTES)));
        assert_eq!(minutes("0:0:2147483580"), Ok(Some(TimeLimit::MAX_MINUTES)));
        // Once wrapped to 17:00:00 (release) or panicked (debug).
        let e = "213503982334602-00".parse::<TimeLimit>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "`213503982334602-00` is longer than SLURM can keep: a time limit is at most 24855-03:13:00 (35791393 minutes); write UNLIMITED for none"
        );
        for s in [
            "24855-03:13:01",
            "35791394",
            "4294967295:00:00",
            "1-99999999999999999999",
            "0:0:18446744073709551615",
            "18446744073709551615-23:59:59",
        ] {
            let e = s.parse::<TimeLimit>().unwrap_err().to_string();
            assert!(e.contains("longer than SLURM can keep"), "{s}: {e}");
        }
        for s in ["-1", "1-", "+5", "1:-1", "0x10", "1.5"] {
            let e = s.parse::<TimeLimit>().unwrap_err().to_string();
            assert!(e.contains("is not a SLURM time limit"), "{s}: {e}");
        }
    }

    #[test]
    fn beegfs_versions() {
        assert!("7.4.6".parse::<BeegfsVersion>().is_ok());
        assert!("8".parse::<BeegfsVersion>().is_ok());
        assert!("8.255.255".parse::<BeegfsVersion>().is_ok());
        // Each part a plain number that fits a byte: 263 is 7 once wrapped.
        for s in ["263.4", "7.4.256", "7.+4", "07.4", "8.01", "8.-0", "8."] {
            assert!(s.parse::<BeegfsVersion>().is_err(), "{s}");
        }
        assert!("7.3.2".parse::<BeegfsVersion>().is_err());
        assert!("9.0".parse::<BeegfsVersion>().is_err());
    }

    #[test]
    fn tags_and_modes() {
        assert!("a".repeat(36).parse::<VirtiofsTag>().is_ok());
        assert!("a".repeat(37).parse::<VirtiofsTag>().is_err());
        assert_eq!("0755".parse::<FileMode>().unwrap().bits(), 0o755);
        assert!("0855".parse::<FileMode>().is_err());
        assert!("+777".parse::<FileMode>().is_err());
        assert!("0o+77".parse::<FileMode>().is_err());
        assert_eq!("0o7777".parse::<FileMode>().unwrap().bits(), 0o7777);
    }

    #[test]
    fn debian_releases() {
        for r in DebianRelease::ALL {
            assert_eq!(r.as_str().parse::<DebianRelease>().unwrap(), r);
            assert_eq!(r.to_string(), r.as_str());
        }
        assert_eq!(DebianRelease::default(), DebianRelease::Bookworm);
        let e = "trixy".parse::<DebianRelease>().unwrap_err().to_string();
        assert!(e.contains("did you mean `trixie`?"), "{e}");
        assert!("Trixie".parse::<DebianRelease>().is_err());
    }

    #[test]
    fn remote_hosts_from_uris() {
        let u: ConnectUri = "qemu+ssh://root@host2:22/system".parse().unwrap();
        assert_eq!(u.remote_host(), Some("host2"));
        let u: ConnectUri = "qemu:///system".parse().unwrap();
        assert_eq!(u.remote_host(), None);
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus durations

/// A Prometheus duration: one or more `<number><unit>` pairs, units largest first, from
/// `y`, `w`, `d`, `h`, `m`, `s`, `ms` (`15d`, `1h30m`, `500ms`), as Prometheus's own
/// `model.ParseDuration` reads them. Kept as written; at most 10 years.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PromDuration {
    text: String,
    millis: u64,
}

impl PromDuration {
    /// The longest duration accepted: 10 years (Prometheus itself holds up to ~292 years).
    pub const MAX_MILLIS: u64 = 10 * 365 * 24 * 3600 * 1000;

    /// The duration in milliseconds.
    pub fn millis(&self) -> u64 {
        self.millis
    }

    /// The duration as written (`15d`).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for PromDuration {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const UNITS: [(&str, u64); 7] = [
            ("y", 365 * 24 * 3600 * 1000),
            ("w", 7 * 24 * 3600 * 1000),
            ("d", 24 * 3600 * 1000),
            ("h", 3600 * 1000),
            ("ms", 1),
            ("m", 60 * 1000),
            ("s", 1000),
        ];
        // the order units must come in (largest first), by their index in ORDER
        const ORDER: [&str; 7] = ["y", "w", "d", "h", "m", "s", "ms"];
        let bad = |why: &str| {
            ValueError::new(format!(
                "`{s}` is not a Prometheus duration like `15d`, `1h30m` or `30s`: {why}"
            ))
        };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        let mut rest = s;
        let mut total: u64 = 0;
        let mut last: Option<usize> = None;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad("each part is a number followed by a unit"));
            }
            if digits > 12 {
                return Err(bad("a number is too large"));
            }
            let n: u64 = rest[..digits]
                .parse()
                .map_err(|_| bad("a number is too large"))?;
            rest = &rest[digits..];
            let Some((unit, scale)) = UNITS.iter().find(|(u, _)| rest.starts_with(u)) else {
                return Err(bad("units are y, w, d, h, m, s and ms"));
            };
            rest = &rest[unit.len()..];
            let idx = ORDER.iter().position(|u| u == unit).unwrap_or(0);
            if last.is_some_and(|l| l >= idx) {
                return Err(bad("units go from the largest to the smallest, each once"));
            }
            last = Some(idx);
            total = n
                .checked_mul(*scale)
                .and_then(|v| total.checked_add(v))
                .filter(|v| *v <= Self::MAX_MILLIS)
                .ok_or_else(|| bad("it is longer than 10 years"))?;
        }
        if total == 0 {
            return Err(bad("it must be longer than 0"));
        }
        Ok(Self {
            text: s.to_owned(),
            millis: total,
        })
    }
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.text)
    }
}

string_newtype_serde!(PromDuration, "a Prometheus duration like `15d`");

impl JsonSchema for PromDuration {
    fn schema_name() -> Cow<'static, str> {
        "PromDuration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A Prometheus duration: `<number><unit>` parts, largest unit first, units y, w, d, h, m, s, ms.",
            "pattern": "^([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$",
            "minLength": 2,
            "examples": ["15d", "30s", "1h30m"]
        })
    }
}

#[cfg(test)]
mod prom_duration_tests {
    #![allow(clippy::unwrap_used)]
    use super::PromDuration;

    #[test]
    fn durations_parse_as_prometheus_reads_them() {
        for (s, ms) in [
            ("15d", 15 * 86_400_000),
            ("30s", 30_000),
            ("1h30m", 5_400_000),
            ("500ms", 500),
            ("1m30s", 90_000),
            ("2w", 14 * 86_400_000),
            ("10y", PromDuration::MAX_MILLIS),
        ] {
            assert_eq!(s.parse::<PromDuration>().unwrap().millis(), ms, "{s}");
        }
        for s in [
            "", "15", "d", "1x", "30m1h", "1s1s", "0s", "11y", "1.5h", "-1s", "1 d",
        ] {
            assert!(s.parse::<PromDuration>().is_err(), "{s}");
        }
    }
}
