//! What a guest image needs for monitoring. The guests have no network while they are
//! deployed, so both daemons are baked into every image, and stay off until a plan starts
//! them on the nodes that run them.

/// The Debian packages every image carries (bookworm: Prometheus 2.42 and node exporter
/// 1.5; trixie: 2.53 and 1.9). trixie's `prometheus` depends on `promtool`, which comes
/// with it.
pub const IMAGE_PACKAGES: &[&str] = &["prometheus", "prometheus-node-exporter"];

/// The script (POSIX `sh`) run in the image's root while it is built, after the packages
/// are in: no monitoring service starts on a node that does not run it. It disables both
/// services and any `prometheus-node-exporter-*` timers the recommended collectors package
/// brings (when recommends come in), and removes their SysV init scripts (as the image
/// recipe does for SLURM's), since `systemctl enable` would otherwise run update-rc.d for
/// them, which is slow on an emulated CPU. The plans enable and start what a node needs.
pub const IMAGE_SCRIPT: &str = r#"set -eu
for u in prometheus.service prometheus-node-exporter.service \
	/lib/systemd/system/prometheus-node-exporter-*.timer \
	/usr/lib/systemd/system/prometheus-node-exporter-*.timer; do
	case "$u" in
	*'*'*) continue ;;
	esac
	systemctl disable "${u##*/}" >/dev/null 2>&1 || true
done
for s in prometheus prometheus-node-exporter; do
	update-rc.d -f "$s" remove >/dev/null 2>&1 || true
	rm -f "/etc/init.d/$s"
done
"#;
