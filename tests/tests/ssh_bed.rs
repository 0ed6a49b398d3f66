//! The SSH test bed (`tests/testbed`): real hosts as namespaces, each with its own sshd,
//! host key, hostname and private `/etc`; torn down without a trace.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use hpc_tests::ssh_bed::SshBed;

/// `ssh -F <bed config> <host> <cmd>` from the bed's ctl namespace (OpenSSH client).
fn ssh(bed: &SshBed, host: &str, cmd: &str) -> Output {
    Command::new("ip")
        .args(["netns", "exec", bed.ctl_netns(), "ssh", "-F"])
        .arg(bed.ssh_config_path())
        .args([host, cmd])
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn netns_list() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bed_of_three_hosts_ssh_isolation_and_teardown() {
    let Some(bed) = SshBed::start(3).unwrap() else {
        return;
    };
    let names: Vec<&str> = bed.hosts().iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["h01", "h02", "h03"]);

    // The client files are there, the private key private.
    let mode = fs_err::metadata(bed.key_path()).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    // OpenSSH, strict host key checking against the generated known_hosts.
    let out = ssh(&bed, "h02", "hostname");
    assert!(out.status.success(), "ssh h02: {out:?}");
    assert_eq!(stdout(&out), "h02");

    // Each host has its own host key, the one known_hosts lists for it.
    let known = fs_err::read_to_string(bed.known_hosts_path()).unwrap();
    let mut keys = BTreeSet::new();
    for h in bed.hosts() {
        let line = known
            .lines()
            .find(|l| l.starts_with(&format!("{},{} ", h.name, h.ip)))
            .unwrap_or_else(|| panic!("no known_hosts line for {h:?}:\n{known}"));
        let key = line.split(' ').nth(2).unwrap().to_owned();
        let on_host = bed.exec_on(&h.name, &["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]);
        assert!(stdout(&on_host).contains(&key), "{h:?}: {on_host:?}");
        keys.insert(key);
    }
    assert_eq!(keys.len(), 3, "host keys are not distinct: {keys:?}");

    // Each host has a private /etc: h01's file is neither on h02 nor on the real machine.
    let probe = format!("/etc/hpcup-bed-probe-{}", std::process::id());
    let w = ssh(&bed, "h01", &format!("echo from-h01 > {probe}"));
    assert!(w.status.success(), "{w:?}");
    assert_eq!(
        stdout(&bed.exec_on("h01", &["cat", &probe])),
        "from-h01",
        "the file written over ssh is in h01's /etc"
    );
    assert!(!bed.exec_on("h02", &["test", "-e", &probe]).status.success());
    assert!(
        !Path::new(&probe).exists(),
        "{probe} leaked to the real /etc"
    );
    // Its own PID namespace: sshd is PID 1.
    assert_eq!(
        stdout(&bed.exec_on("h03", &["cat", "/proc/1/comm"])),
        "sshd"
    );
    // The cgroup tree stays visible (SLURM needs it); `ip netns exec` would hide it.
    let real_cgroups = fs_err::read_dir("/sys/fs/cgroup").map_or(0, Iterator::count);
    let cg = bed.exec_on("h01", &["ls", "/sys/fs/cgroup"]);
    assert!(
        real_cgroups == 0 || !stdout(&cg).is_empty(),
        "/sys/fs/cgroup is empty in h01: {cg:?}"
    );

    // Rust code reaches the hosts from inside the ctl namespace.
    let addr = SocketAddr::from((bed.hosts()[0].ip, 22));
    let banner = bed.in_netns(|| {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        line
    });
    assert!(banner.starts_with("SSH-2.0-"), "banner: {banner:?}");

    // After drop: no namespace, no process, no state of the bed.
    let pids = bed.pids();
    assert_eq!(pids.len(), 6, "3 hosts × (PID 1 + launcher): {pids:?}");
    let state = bed.state_dir().to_owned();
    let prefix = format!("{}-", bed.ctl_netns().trim_end_matches("-ctl"));
    drop(bed);
    for p in pids {
        assert!(
            !Path::new(&format!("/proc/{p}")).exists(),
            "pid {p} of the bed still exists"
        );
    }
    let left: Vec<String> = netns_list()
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .map(str::to_owned)
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    assert!(!state.exists(), "{} left", state.display());
}

#[test]
fn stopped_host_is_unreachable_others_stay() {
    let Some(bed) = SshBed::start(2).unwrap() else {
        return;
    };
    bed.stop_host("h01").unwrap();
    assert_eq!(bed.pid1("h01"), None);
    let down = ssh(&bed, "h01", "true");
    assert!(!down.status.success(), "h01 answered after stop: {down:?}");
    let up = ssh(&bed, "h02", "hostname");
    assert_eq!(stdout(&up), "h02", "{up:?}");
    assert!(bed.stop_host("h01").is_err(), "stopping twice is an error");
}
