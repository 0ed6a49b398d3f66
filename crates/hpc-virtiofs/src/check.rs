//! The check one node runs for one share: the script ([`check_argv`]) and its reading
//! ([`parse_check`]).

use hpc_config::Mount;

/// Size of the throughput test file, in MiB (small: guests run under TCG in CI).
pub const BENCH_MIB: u32 = 32;

/// The file the host writes into a share's directory before the nodes check it (the
/// script of [`check_argv`] names it too).
pub(crate) const HOST_FILE: &str = ".hpc-up-check-host";

/// The name of the file a check writes on a share for `node`.
pub fn probe_name(node: &str) -> String {
    format!(".hpc-up-check-{node}")
}

/// The command a node runs to check one share. It expects the host to have written
/// `<share>/.hpc-up-check-host` with `host_token` first, and prints `key=value` lines that
/// [`parse_check`] reads.
pub fn check_argv(node: &str, m: &Mount, host_token: &str) -> Vec<String> {
    const SCRIPT: &str = r#"
mp=$1 tag=$2 want=$3 probe=$4 token=$5 mib=$6
line=$(awk -v t="$mp" '$2 == t { print $1, $3, $4 }' /proc/self/mounts | tail -n 1)
set -- $line
echo "source=${1-}"
echo "fstype=${2-}"
case ",${3-}," in *,ro,*) echo "mode=ro" ;; *) echo "mode=rw" ;; esac
if [ "$(cat "$mp/.hpc-up-check-host" 2>/dev/null)" = "$token" ]; then echo "host_to_guest=ok"; else echo "host_to_guest=fail"; fi
if [ "$want" = ro ]; then
  if ( : > "$mp/$probe" ) 2>/dev/null; then rm -f "$mp/$probe"; echo "write_refused=no"; else echo "write_refused=yes"; fi
else
  if printf '%s\n' "$token" > "$mp/$probe" 2>/dev/null; then echo "guest_to_host=written"; else echo "guest_to_host=fail"; fi
fi
ms() { date +%s%N | cut -b1-13; }
bench() { # DIR → write_ms read_ms
  f=$1/.hpc-up-bench.$$
  t0=$(ms); dd if=/dev/zero of="$f" bs=1M count="$mib" conv=fsync 2>/dev/null || { echo "- -"; return; }
  t1=$(ms); sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null
  t2=$(ms); dd if="$f" of=/dev/null bs=1M 2>/dev/null; t3=$(ms)
  rm -f "$f"; echo "$((t1 - t0)) $((t3 - t2))"
}
if [ "$want" = rw ]; then set -- $(bench "$mp"); echo "share_write_ms=$1"; echo "share_read_ms=$2"; fi
set -- $(bench /var/tmp); echo "local_write_ms=$1"; echo "local_read_ms=$2"
"#;
    vec![
        "sh".to_owned(),
        "-c".to_owned(),
        SCRIPT.to_owned(),
        "hpc-up-check".to_owned(),
        m.mount_point.clone(),
        m.tag.to_string(),
        if m.readonly { "ro" } else { "rw" }.to_owned(),
        probe_name(node),
        host_token.to_owned(),
        BENCH_MIB.to_string(),
    ]
}

/// What a node's check of one share found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MountCheck {
    /// Mounted with type virtiofs from the right tag.
    pub mounted: bool,
    /// Mounted `ro` exactly when the share is read-only.
    pub mode_ok: bool,
    /// The node read the file the host wrote.
    pub host_to_guest: bool,
    /// For read-only shares: a write was refused (`None` for read-write shares).
    pub write_refused: Option<bool>,
    /// For read-write shares: the node wrote its probe file (the host then reads it back).
    pub guest_wrote: Option<bool>,
    /// Share write/read throughput in MiB/s (read-write shares).
    pub share_mibps: Option<(f64, f64)>,
    /// Local disk write/read throughput in MiB/s.
    pub local_mibps: Option<(f64, f64)>,
}

impl MountCheck {
    /// Whether everything the node can see is right (the host-side read of the guest's file
    /// is judged by the caller).
    pub fn passed(&self) -> bool {
        self.mounted
            && self.mode_ok
            && self.host_to_guest
            && self.write_refused != Some(false)
            && self.guest_wrote != Some(false)
    }
}

/// Read the output of [`check_argv`] for share `m`.
pub fn parse_check(m: &Mount, stdout: &str) -> MountCheck {
    let get = |k: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
            .map(str::trim)
    };
    let rate = |ms: Option<&str>| -> Option<f64> {
        let ms: f64 = ms?.parse().ok()?;
        Some(f64::from(BENCH_MIB) / (ms.max(1.0) / 1000.0))
    };
    let pair = |w: &str, r: &str| Some((rate(get(w))?, rate(get(r))?));
    MountCheck {
        mounted: get("fstype") == Some("virtiofs") && get("source") == Some(m.tag.as_str()),
        mode_ok: get("mode") == Some(if m.readonly { "ro" } else { "rw" }),
        host_to_guest: get("host_to_guest") == Some("ok"),
        write_refused: m.readonly.then(|| get("write_refused") == Some("yes")),
        guest_wrote: (!m.readonly).then(|| get("guest_to_host") == Some("written")),
        share_mibps: pair("share_write_ms", "share_read_ms"),
        local_mibps: pair("local_write_ms", "local_read_ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::node;

    #[test]
    fn check_output_is_parsed() {
        let n = node(
            "[{tag: a, host-path: /a, mount-point: /a}, {tag: r, host-path: /r, mount-point: /r, readonly: true}]",
        );
        let out = "source=a\nfstype=virtiofs\nmode=rw\nhost_to_guest=ok\nguest_to_host=written\nshare_write_ms=320\nshare_read_ms=160\nlocal_write_ms=640\nlocal_read_ms=-\n";
        let c = parse_check(&n.virtiofs[0], out);
        assert!(c.passed(), "{c:?}");
        assert_eq!(c.share_mibps, Some((100.0, 200.0)));
        assert_eq!(c.local_mibps, None);
        let ro = "source=r\nfstype=virtiofs\nmode=ro\nhost_to_guest=ok\nwrite_refused=no\n";
        let c = parse_check(&n.virtiofs[1], ro);
        assert!(!c.passed());
        assert_eq!(c.write_refused, Some(false));
    }

    #[test]
    fn the_script_reads_the_host_file() {
        let n = node("[{tag: a, host-path: /a, mount-point: /a}]");
        let argv = check_argv("cn1", &n.virtiofs[0], "tok");
        assert!(argv[2].contains(&format!("\"$mp/{HOST_FILE}\"")));
        assert_eq!(
            &argv[3..],
            [
                "hpc-up-check",
                "/a",
                "a",
                "rw",
                ".hpc-up-check-cn1",
                "tok",
                "32"
            ]
        );
    }
}
