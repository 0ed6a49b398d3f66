//! The `/dev/kvm` decision over hand-made facts, and the gathering over a fake `/proc`.

use std::path::PathBuf;

use super::*;

const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
                      alice:x:1000:1000:Alice:/home/alice:/bin/bash\n\
                      libvirt-qemu:x:64055:109:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nkvm:x:109:\nalice:x:1000:\nlibvirt-qemu:x:64055:libvirt-qemu\n\
                     vmusers:x:2000:alice,libvirt-qemu\n";
/// Debian 12's qemu.conf, as far as the check reads it.
const DEBIAN_CONF: &str = "# The user for QEMU processes run by the system instance.\n\
                           #       user = \"qemu\"   # A user named \"qemu\"\n\
                           #       user = \"+0\"     # Super user (uid=0)\n\
                           #user = \"libvirt-qemu\"\n\n\
                           #group = \"libvirt-qemu\"\n#swtpm_user = \"tss\"\n";

fn root_daemon() -> Daemon {
    Daemon {
        name: "libvirtd".to_owned(),
        pid: 4242,
        euid: 0,
        egid: 0,
        groups: vec![0],
    }
}

/// A system daemon with Debian's defaults and `/dev/kvm` of `mode` owned by `uid`:`gid`.
fn facts(mode: u32, uid: u32, gid: u32) -> KvmFacts {
    KvmFacts {
        uri: "qemu:///system".to_owned(),
        instance: Instance::System,
        daemon: root_daemon(),
        own_view: false,
        dev_kvm: Ok(Some(DevKvm { mode, uid, gid })),
        qemu_conf: Ok(Some(DEBIAN_CONF.to_owned())),
        passwd: Ok(PASSWD.to_owned()),
        group: Ok(GROUP.to_owned()),
    }
}

fn with_conf(mut f: KvmFacts, conf: &str) -> KvmFacts {
    f.qemu_conf = Ok(Some(format!("{DEBIAN_CONF}{conf}")));
    f
}

fn warns(f: &KvmFacts) -> bool {
    decide(f).expect("decidable").is_some()
}

#[test]
fn no_dev_kvm_no_warning() {
    let mut f = facts(0o600, 0, 0);
    f.dev_kvm = Ok(None);
    assert_eq!(decide(&f), Ok(None));
}

#[test]
fn root_only_dev_kvm_warns_naming_cause_and_fixes() {
    let f = facts(0o600, 0, 0);
    let w = decide(&f).expect("decidable").expect("a warning");
    assert_eq!(
        w,
        PreflightWarning::KvmCacheReprobed {
            uri: "qemu:///system".to_owned(),
            daemon: "libvirtd (pid 4242)".to_owned(),
            own_view: false,
            mode: 0o600,
            owner: "root".to_owned(),
            group: "root".to_owned(),
            qemu_user: "libvirt-qemu".to_owned(),
            qemu_uid: 64055,
            qemu_groups: vec![
                "libvirt-qemu".to_owned(),
                "kvm".to_owned(),
                "vmusers".to_owned()
            ],
            fix_group: "kvm".to_owned(),
        }
    );
    assert_eq!(
        w.to_string(),
        "libvirt re-probes QEMU on every define and capabilities lookup on `qemu:///system` \
         (~1 min each): libvirtd (pid 4242) sees /dev/kvm (mode 0600, root:root); its QEMU \
         probe runs with root's file access and records KVM, but its QEMU user `libvirt-qemu` \
         (uid 64055, groups libvirt-qemu, kvm, vmusers) cannot open /dev/kvm read-write, so \
         libvirt finds its capabilities cache outdated at every lookup. Fix one of: give the \
         QEMU user access as udev normally does (`chgrp kvm /dev/kvm && chmod 0660 /dev/kvm`); \
         on a host for TCG guests only, run libvirtd in a mount namespace without /dev/kvm (as \
         scripts/libvirt-sandbox does); or set `user` in /etc/libvirt/qemu.conf to a user \
         that can open /dev/kvm"
    );
}

#[test]
fn accessible_through_other_bits() {
    assert!(!warns(&facts(0o666, 0, 0)));
    // read-only for others is not enough: QEMU opens it read-write
    assert!(warns(&facts(0o644, 0, 0)));
}

#[test]
fn accessible_through_the_group() {
    // kvm is libvirt-qemu's passwd group (Debian)
    assert!(!warns(&facts(0o660, 0, 109)));
    // a group listing the user
    assert!(!warns(&facts(0o660, 0, 2000)));
    // qemu.conf's group (libvirt-qemu, 64055, by default)
    assert!(!warns(&facts(0o660, 0, 64055)));
    // a group the user is not in
    assert!(warns(&facts(0o660, 0, 1000)));
    assert!(warns(&facts(0o640, 0, 109)));
}

#[test]
fn accessible_as_the_owner_and_the_owner_class_decides_alone() {
    assert!(!warns(&facts(0o600, 64055, 0)));
    // the owner class applies and denies, whatever the other bits say
    assert!(warns(&facts(0o066, 64055, 109)));
}

#[test]
fn qemu_conf_user_as_name_plus_id_or_digits() {
    // a named user set in qemu.conf: alice is not in kvm
    let f = with_conf(facts(0o660, 0, 109), "user = \"alice\"\ngroup = 'alice'\n");
    let w = decide(&f).expect("decidable").expect("warning");
    let PreflightWarning::KvmCacheReprobed {
        qemu_user,
        qemu_groups,
        fix_group,
        ..
    } = w
    else {
        panic!("not the KVM warning: {w:?}");
    };
    assert_eq!(qemu_user, "alice");
    assert_eq!(qemu_groups, ["alice", "vmusers"]);
    assert_eq!(fix_group, "alice");
    // `+N` is the id, with the entry's groups
    let f = with_conf(facts(0o660, 0, 109), "user = \"+64055\"  # comment\n");
    assert!(!warns(&f));
    // digits naming no user are the id
    let f = with_conf(facts(0o600, 64055, 0), "user = \"64055\"\n");
    assert!(!warns(&f));
    // an id without a passwd entry: only qemu.conf's group
    let f = with_conf(facts(0o660, 0, 109), "user = \"+3000\"\ngroup = \"+109\"\n");
    assert!(!warns(&f));
    let f = with_conf(
        facts(0o660, 0, 109),
        "user = \"+3000\"\ngroup = \"+2000\"\n",
    );
    assert!(warns(&f));
}

#[test]
fn root_qemu_user_can_always_open_it() {
    let f = with_conf(facts(0o600, 0, 0), "user = \"+0\"\n");
    assert_eq!(decide(&f), Ok(None));
    let f = with_conf(facts(0o000, 5, 5), "user = \"root\"\n");
    assert_eq!(decide(&f), Ok(None));
}

#[test]
fn unknown_user_or_group_is_no_warning_but_a_reason() {
    let f = with_conf(facts(0o600, 0, 0), "user = \"qemu\"\n");
    assert_eq!(
        decide(&f),
        Err("QEMU user `qemu` (qemu.conf) is not in /etc/passwd".to_owned())
    );
    let f = with_conf(facts(0o600, 0, 0), "group = \"qemu\"\n");
    assert_eq!(
        decide(&f),
        Err("QEMU group `qemu` (qemu.conf) is not in /etc/group".to_owned())
    );
    // No setting and no shown default: libvirt's built-in default is not known.
    let mut f = facts(0o600, 0, 0);
    f.qemu_conf = Ok(None);
    assert!(decide(&f).is_err());
}

#[test]
fn unreadable_facts_are_no_warning_but_a_reason() {
    const DENIED: &str = "Permission denied (os error 13)";
    let denied = || Err(DENIED.to_owned());
    let mut f = facts(0o600, 0, 0);
    f.dev_kvm = denied();
    assert_eq!(
        decide(&f),
        Err("cannot look at /dev/kvm: Permission denied (os error 13)".to_owned())
    );
    let mut f = facts(0o600, 0, 0);
    f.qemu_conf = Err(DENIED.to_owned());
    assert!(decide(&f).is_err_and(|e| e.starts_with("cannot read /etc/libvirt/qemu.conf")));
    let mut f = facts(0o600, 0, 0);
    f.passwd = Err(DENIED.to_owned());
    assert!(decide(&f).is_err_and(|e| e.starts_with("cannot read /etc/passwd")));
    let mut f = facts(0o600, 0, 0);
    f.group = Err(DENIED.to_owned());
    assert!(decide(&f).is_err_and(|e| e.starts_with("cannot read /etc/group")));
}

#[test]
fn session_daemons_probe_with_their_qemus_access() {
    // alice's own daemon: its probe cannot open /dev/kvm either, so nothing re-probes.
    let mut f = facts(0o600, 0, 0);
    f.instance = Instance::Session;
    f.uri = "qemu:///session".to_owned();
    f.daemon.euid = 1000;
    f.daemon.egid = 1000;
    f.daemon.groups = vec![1000];
    f.qemu_conf = Err("not looked at".to_owned());
    assert_eq!(decide(&f), Ok(None));
    // root's session daemon: QEMU runs as root.
    f.daemon = root_daemon();
    assert_eq!(decide(&f), Ok(None));
}

#[test]
fn own_view_is_said() {
    let mut f = facts(0o600, 0, 0);
    f.own_view = true;
    let text = decide(&f).expect("decidable").expect("warning").to_string();
    assert!(
        text.contains(
            "sees /dev/kvm (mode 0600, root:root) as read in hpc-up's mount namespace (the \
             daemon's /proc/<pid>/root is not readable);"
        ),
        "{text}"
    );
}

#[test]
fn qemu_conf_values() {
    assert_eq!(
        conf_value(DEBIAN_CONF, "user", true).as_deref(),
        Some("libvirt-qemu")
    );
    assert_eq!(conf_value(DEBIAN_CONF, "user", false), None);
    let conf = "  user = 'qemu' # x\n#user = \"other\"\nuser_x = \"no\"\n";
    assert_eq!(conf_value(conf, "user", false).as_deref(), Some("qemu"));
    assert_eq!(conf_value("user = qemu\n", "user", false), None);
}

#[test]
fn local_qemu_uris_only() {
    assert_eq!(qemu_instance("qemu:///system"), Some(Instance::System));
    assert_eq!(qemu_instance("qemu+unix:///system"), Some(Instance::System));
    assert_eq!(
        qemu_instance("qemu:///system?socket=/run/x"),
        Some(Instance::System)
    );
    assert_eq!(qemu_instance("qemu:///session"), Some(Instance::Session));
    assert_eq!(qemu_instance("qemu+ssh://root@host2/system"), None);
    assert_eq!(qemu_instance("qemu://host2/system"), None);
    assert_eq!(qemu_instance("test:///default"), None);
    assert_eq!(qemu_instance("qemu:///embed?root=/x"), None);
    let host = Host::real();
    assert_eq!(check(host, "qemu+ssh://root@host2/system"), Ok(None));
}

// ---------------------------------------------------------------------------------------------
// gathering, over a fake /proc and root

/// A fake host in a temp dir: `proc/` and `root/` (hpc-up's namespace), and `daemon-root/`,
/// the root a daemon's `proc/<pid>/root` links to, with `/dev/kvm` (a plain file of mode
/// 0600), qemu.conf, passwd and group.
struct FakeHost {
    dir: tempfile::TempDir,
    proc: PathBuf,
    root: PathBuf,
}

impl FakeHost {
    fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        for sub in [
            "proc/self",
            "root/run",
            "daemon-root/dev",
            "daemon-root/etc/libvirt",
        ] {
            fs_err::create_dir_all(d.join(sub)).expect("mkdir");
        }
        fs_err::write(d.join("proc/self/status"), "Uid:\t1000\t1000\t1000\t1000\n").expect("self");
        let kvm = d.join("daemon-root/dev/kvm");
        fs_err::write(&kvm, "").expect("kvm");
        fs_err::set_permissions(&kvm, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        fs_err::write(d.join("daemon-root/etc/libvirt/qemu.conf"), DEBIAN_CONF).expect("conf");
        fs_err::write(d.join("daemon-root/etc/passwd"), PASSWD).expect("passwd");
        fs_err::write(d.join("daemon-root/etc/group"), GROUP).expect("group");
        let (proc, root) = (d.join("proc"), d.join("root"));
        Self { dir, proc, root }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn host(&self) -> Host<'_> {
        Host {
            proc: &self.proc,
            root: &self.root,
        }
    }

    /// A process `pid` called `comm` of effective uid `euid`, in state `state`.
    fn process(&self, pid: u32, comm: &str, euid: u32, state: &str) {
        let p = self.path(&format!("proc/{pid}"));
        fs_err::create_dir_all(&p).expect("mkdir");
        fs_err::write(p.join("comm"), format!("{comm}\n")).expect("comm");
        fs_err::write(
            p.join("status"),
            format!(
                "Name:\t{comm}\nState:\t{state}\nUid:\t{euid}\t{euid}\t{euid}\t{euid}\n\
                 Gid:\t{euid}\t{euid}\t{euid}\t{euid}\nGroups:\t{euid} 27 \n"
            ),
        )
        .expect("status");
        std::os::unix::fs::symlink(self.path("daemon-root"), p.join("root")).expect("root link");
    }
}

#[test]
fn gathers_the_daemons_view_from_its_pid_file() {
    let fake = FakeHost::new();
    fake.process(10, "bash", 0, "S (sleeping)");
    fake.process(20, "libvirtd", 0, "S (sleeping)");
    fake.process(30, "libvirtd", 0, "S (sleeping)");
    fs_err::create_dir_all(fake.path("root/run/hpc-up-sandbox")).expect("mkdir");
    fs_err::write(fake.path("root/run/hpc-up-sandbox/libvirtd.pid"), "30\n").expect("pid");
    let facts = gather(fake.host(), "qemu:///system", Instance::System).expect("facts");
    assert_eq!(
        facts.daemon,
        Daemon {
            name: "libvirtd".to_owned(),
            pid: 30,
            euid: 0,
            egid: 0,
            groups: vec![0, 27],
        }
    );
    assert!(!facts.own_view);
    let dev = facts
        .dev_kvm
        .as_ref()
        .expect("readable")
        .expect("/dev/kvm exists");
    assert_eq!(dev.mode, 0o600);
    assert_eq!(facts.qemu_conf, Ok(Some(DEBIAN_CONF.to_owned())));
    assert_eq!(facts.passwd.as_deref(), Ok(PASSWD));
    // The fake /dev/kvm belongs to whoever runs the test, not to libvirt-qemu: a warning.
    assert!(decide(&facts).expect("decidable").is_some(), "{facts:?}");
    // Without /dev/kvm in the daemon's root: nothing to say.
    fs_err::remove_file(fake.path("daemon-root/dev/kvm")).expect("rm");
    assert_eq!(check(fake.host(), "qemu:///system"), Ok(None));
}

#[test]
fn stale_pid_files_and_zombies_are_passed_over() {
    let fake = FakeHost::new();
    fs_err::write(fake.path("root/run/libvirtd.pid"), "99\n").expect("pid");
    fake.process(40, "virtqemud", 0, "Z (zombie)");
    fake.process(50, "virtqemud", 1000, "S (sleeping)");
    fake.process(60, "virtqemud", 0, "S (sleeping)");
    let facts = gather(fake.host(), "qemu:///system", Instance::System).expect("facts");
    assert_eq!(
        (facts.daemon.name.as_str(), facts.daemon.pid),
        ("virtqemud", 60)
    );
    // The session daemon is the one of hpc-up's own user (1000 in the fake /proc/self).
    let facts = gather(fake.host(), "qemu:///session", Instance::Session).expect("facts");
    assert_eq!(facts.daemon.pid, 50);
    assert_eq!(check(fake.host(), "qemu:///session"), Ok(None));
}

#[test]
fn no_daemon_in_sight_is_a_reason() {
    let fake = FakeHost::new();
    fake.process(10, "sshd", 0, "S (sleeping)");
    let reason = check(fake.host(), "qemu:///system").expect_err("no daemon");
    assert!(
        reason.starts_with("no libvirtd or virtqemud process of uid 0 is visible in "),
        "{reason}"
    );
}
