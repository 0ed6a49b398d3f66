#!/usr/bin/python3
"""The peer of `hpc-up render` in bench/render-scale: what the seed stack did.

The stack hpc-up replaces was a Python CLI that read a YAML cluster file and rendered libvirt
XML from Jinja2 templates (`vm_management/templates/*.xml.j2`). This is a minimal, faithful
version of that for the files `hpc-up render` writes under `libvirt/local/`: the network,
the pool, and one volume and one domain per node, for the subset of the cluster file the
benchmark uses (one local libvirt connection; controller and compute groups, listed or
counted; direct kernel boot; shared virtio-fs directories). Nodes, addresses and MACs are
decided the way hpc-config decides them, so that the files come out byte for byte the same.

It does what such a tool does and nothing more: no schema, no cross-field checks, no
inventory, no SLURM files. Files are written with a plain open/write, as the seed's tool did
(cheaper than hpc-up's temporary file + rename per file).

    render.py CLUSTER.yaml OUT_DIR
"""

import hashlib
import ipaddress
import os
import re
import sys

import jinja2
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))

UNITS = {
    "": 1, "B": 1, "b": 1,
    "K": 1 << 10, "k": 1 << 10, "KiB": 1 << 10,
    "M": 1 << 20, "m": 1 << 20, "MiB": 1 << 20,
    "G": 1 << 30, "g": 1 << 30, "GiB": 1 << 30,
    "T": 1 << 40, "t": 1 << 40, "TiB": 1 << 40,
    "KB": 10**3, "kB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
}
DEFAULTS = {"vcpus": 2, "memory": "2GiB", "disk": "20GiB"}


def size(text):
    m = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", str(text))
    if not m:
        raise SystemExit(f"not a size: {text!r}")
    return int(m.group(1)) * UNITS[m.group(2)]


def expand(group, role, shares):
    """The nodes of one group: listed, or `name: cn{index:0N}` with `count`."""
    common = {
        "role": role,
        "vcpus": group.get("vcpus", DEFAULTS["vcpus"]),
        "memory_kib": -(-size(group.get("memory", DEFAULTS["memory"])) // 1024),
        "disk_bytes": size(group.get("disk", DEFAULTS["disk"])),
        "shares": shares + group.get("virtiofs", []),
    }
    if "nodes" in group:
        for n in group["nodes"]:
            yield dict(common, name=n["name"], ip=n.get("ip"),
                       shares=common["shares"] + n.get("virtiofs", []))
        return
    m = re.fullmatch(r"(.*)\{index(?::0(\d+))?\}(.*)", group["name"])
    width = int(m.group(2) or 0)
    first = group.get("first-index", 1)
    first_ip = group.get("first-ip")
    for k in range(group["count"]):
        ip = None if first_ip is None else str(ipaddress.IPv4Address(first_ip) + k)
        yield dict(common, name=f"{m.group(1)}{first + k:0{width}d}{m.group(3)}", ip=ip)


def main(path, out):
    with open(path) as f:
        c = yaml.safe_load(f)
    name = c["name"]
    net = ipaddress.IPv4Network(c["network"]["cidr"])
    hosts = net.hosts()
    gateway = c["network"].get("gateway") or str(next(net.hosts()))
    shares = c.get("virtiofs", [])
    nodes = list(expand(c["controller"], "controller", shares))
    for g in c.get("compute", []):
        nodes.extend(expand(g, "compute", shares))

    # Addresses: the file's first, then the lowest free ones after the gateway.
    taken = {n["ip"] for n in nodes if n["ip"]}
    gw = ipaddress.IPv4Address(gateway)
    free = (str(a) for a in hosts if a > gw and str(a) not in taken)
    for n in nodes:
        if not n["ip"]:
            n["ip"] = next(free)
        d = hashlib.sha256(f"{name}/{n['name']}".encode()).digest()
        n["mac"] = "52:54:00:%02x:%02x:%02x" % (d[0], d[1], d[2])

    image = c["image"]
    state = c.get("state-dir") or os.path.expanduser(f"~/.local/state/hpc-up/{name}")
    ctx = {
        "cluster": name,
        "network": dict(c["network"], gateway=gateway, netmask=str(net.netmask),
                        domain=c["network"].get("domain") or f"{name}.test"),
        "image": image,
        "cmdline": (image.get("cmdline") or "").strip(),
        "pool_path": f"{state}/pool",
        "console_dir": f"{state}/console",
        "seed_dir": f"{state}/seed",
        "domain_type": c.get("libvirt", {}).get("domain-type", "kvm"),
        "nodes": nodes,
    }
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.path.join(HERE, "templates")),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    base = os.path.join(out, "libvirt", "local")
    files = [(f"network/{name}-net.xml", env.get_template("network.xml.j2").render(ctx)),
             (f"pool/{name}-pool.xml", env.get_template("pool.xml.j2").render(ctx))]
    volume = env.get_template("volume.xml.j2")
    domain = env.get_template("domain.xml.j2")
    files += [(f"volume/{name}-{n['name']}.qcow2.xml", volume.render(ctx, node=n)) for n in nodes]
    files += [(f"domain/{name}-{n['name']}.xml", domain.render(ctx, node=n)) for n in nodes]
    for rel, text in files:
        p = os.path.join(base, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
    print(f"wrote {len(files)} files under {base}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.rsplit("\n\n", 1)[-1].strip())
    main(sys.argv[1], sys.argv[2])
