//! Reading libvirt's XML back: does a live object still match the plan, who owns it, and the
//! few facts `status` shows.
//!
//! **How desired and live XML are compared.** libvirt never hands back the XML it was given:
//! it adds a `<uuid>`, defaults (`placement='static'`, PCI addresses, controllers, a `<mac>`
//! for a network bridge…), reorders devices, and rescales sizes (`<memory unit='MiB'>1536`
//! comes back as `<memory unit='KiB'>1572864`). So the comparison is a *normalised inclusion*:
//! the desired document must be contained in the live one —
//!
//! - same element names (namespace URI + local name; prefixes do not matter),
//! - every attribute of a desired element present on the live element with the same value,
//! - the same trimmed text where the desired element has text; an element with a `unit`
//!   attribute and a number as text is compared in bytes (`unit` itself is not compared),
//! - every desired child matched by a distinct live child, in any order.
//!
//! What libvirt adds is ignored, what the plan says must be there. This needs nothing but the
//! two documents, so it works without the journal (after a crash, or on a cluster created by
//! another machine), and it notices edits made behind hpc-up's back (`virsh edit`).

use roxmltree::{Document, Node};

use crate::plan::METADATA_NS;

/// Whether everything `desired` says is also in `live` (see the module docs). Unparsable XML
/// never matches.
pub(crate) fn xml_matches(desired: &str, live: &str) -> bool {
    let (Ok(d), Ok(l)) = (Document::parse(desired), Document::parse(live)) else {
        return false;
    };
    element_contained(d.root_element(), l.root_element())
}

/// Children libvirt adds on its own next to planned ones (PCI/USB controllers, PS/2 inputs,
/// video and graphics defaults, security labels, a `<console>` for a serial port).
const LIBVIRT_ADDS: &[&str] = &[
    "controller",
    "input",
    "video",
    "graphics",
    "audio",
    "sound",
    "seclabel",
    "console",
];

fn element_contained(d: Node<'_, '_>, l: Node<'_, '_>) -> bool {
    if d.tag_name() != l.tag_name() {
        return false;
    }
    let d_bytes = scaled_bytes(d);
    for a in d.attributes() {
        if a.name() == "unit" && a.namespace().is_none() && d_bytes.is_some() {
            continue;
        }
        let live = match a.namespace() {
            Some(ns) => l.attribute((ns, a.name())),
            None => l.attribute(a.name()),
        };
        if live != Some(a.value()) && !machine_alias(d, a.name(), a.value(), live) {
            return false;
        }
    }
    match d_bytes {
        Some(bytes) => {
            if scaled_bytes(l) != Some(bytes) {
                return false;
            }
        }
        None => {
            let text = own_text(d);
            if !text.is_empty() && own_text(l) != text {
                return false;
            }
        }
    }
    let live_children: Vec<_> = l.children().filter(Node::is_element).collect();
    // Inclusion alone would not notice a removed list item (a DHCP host, a disk, a share):
    // every kind of child the plan names must occur as often live as planned, except the
    // kinds libvirt adds by itself.
    let desired_children: Vec<_> = d.children().filter(Node::is_element).collect();
    for dc in &desired_children {
        let name = dc.tag_name();
        if LIBVIRT_ADDS.contains(&name.name()) {
            continue;
        }
        let count = |v: &[Node<'_, '_>]| v.iter().filter(|c| c.tag_name() == name).count();
        if count(&desired_children) != count(&live_children) {
            return false;
        }
    }
    let mut used = vec![false; live_children.len()];
    for dc in desired_children {
        let hit = live_children
            .iter()
            .enumerate()
            .find(|(i, lc)| !used[*i] && element_contained(dc, **lc));
        match hit {
            Some((i, _)) => used[i] = true,
            None => return false,
        }
    }
    true
}

/// The element's own text (not its children's), trimmed.
/// libvirt expands a machine type alias to the versioned type it stands for (`q35` →
/// `pc-q35-7.2`), so the live value is the alias's versioned form.
fn machine_alias(d: Node<'_, '_>, attr: &str, want: &str, live: Option<&str>) -> bool {
    d.tag_name().name() == "type"
        && attr == "machine"
        && live.is_some_and(|l| {
            l.strip_prefix("pc-")
                .and_then(|rest| rest.strip_prefix(want))
                .is_some_and(|v| v.starts_with('-'))
        })
}

fn own_text(n: Node<'_, '_>) -> String {
    n.children()
        .filter(Node::is_text)
        .filter_map(|t| t.text())
        .collect::<String>()
        .trim()
        .to_owned()
}

/// For `<x unit='…'>N</x>` (and `<x>N</x>` on elements libvirt scales), the size in bytes.
fn scaled_bytes(n: Node<'_, '_>) -> Option<u128> {
    let unit = n.attribute("unit");
    let default_kib = matches!(n.tag_name().name(), "memory" | "currentMemory");
    if unit.is_none() && !default_kib {
        return None;
    }
    let value: u128 = own_text(n).parse().ok()?;
    let scale: u128 = match unit.unwrap_or("KiB") {
        "b" | "bytes" => 1,
        "KB" => 1000,
        "k" | "K" | "KiB" => 1 << 10,
        "MB" => 1000u128.pow(2),
        "m" | "M" | "MiB" => 1 << 20,
        "GB" => 1000u128.pow(3),
        "g" | "G" | "GiB" => 1 << 30,
        "TB" => 1000u128.pow(4),
        "t" | "T" | "TiB" => 1 << 40,
        "PB" => 1000u128.pow(5),
        "p" | "P" | "PiB" => 1 << 50,
        _ => return None,
    };
    value.checked_mul(scale)
}

/// Who owns a domain or network: `(cluster, node)` from our `<metadata>` element.
pub(crate) fn owner(xml: &str) -> Option<(String, Option<String>)> {
    let doc = Document::parse(xml).ok()?;
    let meta = doc
        .root_element()
        .children()
        .find(|n| n.has_tag_name("metadata"))?;
    let ours = meta
        .descendants()
        .find(|n| n.is_element() && n.tag_name().namespace() == Some(METADATA_NS))?;
    let cluster = ours
        .attribute("name")
        .or_else(|| ours.attribute("cluster"))?;
    let node = ours.attribute("node").filter(|n| !n.is_empty());
    Some((cluster.to_owned(), node.map(str::to_owned)))
}

/// The text of the first child element `name` of the root (`uuid`, `name`…).
pub(crate) fn root_child_text(xml: &str, name: &str) -> Option<String> {
    let doc = Document::parse(xml).ok()?;
    let el = doc
        .root_element()
        .children()
        .find(|n| n.has_tag_name(name))?;
    Some(own_text(el))
}

/// `xml` with `<uuid>UUID</uuid>` inserted after the root's first child start, unless it
/// already has one. libvirt refuses to redefine an object under a new UUID, and a planned
/// document has none.
pub(crate) fn with_uuid(xml: &str, uuid: &str) -> String {
    if root_child_text(xml, "uuid").is_some() {
        return xml.to_owned();
    }
    let Ok(doc) = Document::parse(xml) else {
        return xml.to_owned();
    };
    let Some(name) = doc
        .root_element()
        .children()
        .find(|n| n.has_tag_name("name"))
    else {
        return xml.to_owned();
    };
    let end = name.range().end;
    format!("{}\n  <uuid>{uuid}</uuid>{}", &xml[..end], &xml[end..])
}

/// What `status` shows about a domain, read from its XML.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct DomainFacts {
    pub(crate) macs: Vec<String>,
    pub(crate) vcpus: Option<u32>,
    pub(crate) memory_kib: Option<u64>,
}

pub(crate) fn domain_facts(xml: &str) -> DomainFacts {
    let Ok(doc) = Document::parse(xml) else {
        return DomainFacts::default();
    };
    let root = doc.root_element();
    let vcpus = root
        .children()
        .find(|n| n.has_tag_name("vcpu"))
        .and_then(|n| own_text(n).parse().ok());
    let memory_kib = root
        .children()
        .find(|n| n.has_tag_name("memory"))
        .and_then(scaled_bytes)
        .and_then(|b| u64::try_from(b / 1024).ok());
    let macs = root
        .descendants()
        .filter(|n| n.has_tag_name("interface"))
        .filter_map(|i| i.children().find(|n| n.has_tag_name("mac")))
        .filter_map(|m| m.attribute("address"))
        .map(str::to_ascii_lowercase)
        .collect();
    DomainFacts {
        macs,
        vcpus,
        memory_kib,
    }
}

/// A network's static DHCP host entries: `(mac, ip)`.
pub(crate) fn dhcp_hosts(xml: &str) -> Vec<(String, String)> {
    let Ok(doc) = Document::parse(xml) else {
        return Vec::new();
    };
    doc.descendants()
        .filter(|n| n.has_tag_name("host"))
        .filter(|n| n.parent().is_some_and(|p| p.has_tag_name("dhcp")))
        .filter_map(|h| {
            Some((
                h.attribute("mac")?.to_ascii_lowercase(),
                h.attribute("ip")?.to_owned(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_aliases_match_their_versioned_type() {
        let want = "<domain><os><type arch='x86_64' machine='q35'>hvm</type></os></domain>";
        let live = "<domain><os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os></domain>";
        assert!(xml_matches(want, live));
        let other =
            "<domain><os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os></domain>";
        assert!(!xml_matches(want, other));
    }

    #[test]
    fn libvirt_additions_and_rescaling_still_match() {
        let desired = "<domain type='qemu'><name>a</name><memory unit='MiB'>1536</memory>\
            <vcpu>1</vcpu><devices><interface type='network'><mac address='52:54:00:00:00:01'/>\
            <source network='n'/></interface><disk type='file'/></devices></domain>";
        let live = "<domain type='qemu' id='3'><name>a</name><uuid>x</uuid>\
            <memory unit='KiB'>1572864</memory><vcpu placement='static'>1</vcpu><devices>\
            <disk type='file' device='disk'/><interface type='network'>\
            <mac address='52:54:00:00:00:01'/><source network='n' bridge='b'/></interface>\
            </devices></domain>";
        assert!(xml_matches(desired, live));
        assert!(!xml_matches(desired, &live.replace("1572864", "1048576")));
        assert!(!xml_matches(
            desired,
            &live
                .replace("bridge='b'/>", "bridge='b'/><x/>")
                .replace("network='n'", "network='m'")
        ));
        assert!(!xml_matches(&desired.replace("<vcpu>1", "<vcpu>2"), live));
    }

    #[test]
    fn metadata_owner_and_uuid_insertion() {
        let xml = format!(
            "<network><name>c-net</name><metadata><hpc:cluster xmlns:hpc='{METADATA_NS}' \
             name='c' role='network'/></metadata></network>"
        );
        assert_eq!(owner(&xml), Some(("c".to_owned(), None)));
        let with = with_uuid(&xml, "u-1");
        assert_eq!(root_child_text(&with, "uuid").as_deref(), Some("u-1"));
        assert_eq!(owner("<network><name>x</name></network>"), None);
    }
}
