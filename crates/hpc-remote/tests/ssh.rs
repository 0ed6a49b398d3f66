//! SshExecutor against a real OpenSSH sshd, started by the test in a private network
//! namespace (loopback only). Needs root and /usr/sbin/sshd: skips outside CI without
//! them, fails in CI (`CI` set).
#![cfg(feature = "transport")]
#![allow(clippy::unwrap_used)] // test helpers panic on failure, as tests do

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hpc_remote::{
    EnsureDirectory, EnsureFile, Executor, HostError, HostPlan, Mode, RunCommand, SshExecutor,
    SshHost, SshOptions, StepStatus, apply_all,
};

const PORT: u16 = 2222;
const CLOSED_PORT: u16 = 2223;

/// Whether the test may run; outside CI a missing component skips with a message, in CI it fails.
fn require(ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but {what}");
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!("skipping: {what}");
    }
    false
}

fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn keygen(path: &Path) -> String {
    sh(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
        .arg(path));
    fs_err::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_owned()
}

/// A real sshd in its own network namespace.
struct Sshd {
    ns: String,
    child: Child,
    dir: tempfile::TempDir,
    host_pub: String,
}

impl Sshd {
    fn start() -> Option<Self> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout == b"0\n");
        if !require(root, "not root (network namespaces need root)")
            || !require(
                Path::new("/usr/sbin/sshd").exists(),
                "/usr/sbin/sshd missing (apt-get install openssh-server)",
            )
        {
            return None;
        }
        let ns = format!(
            "hpcremote-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let added = Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .is_ok_and(|s| s.success());
        if !require(added, "`ip netns add` failed") {
            return None;
        }
        sh(Command::new("ip").args(["-n", &ns, "link", "set", "lo", "up"]));
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let host_pub = keygen(&d.join("host_key"));
        let client_pub = keygen(&d.join("client_key"));
        fs_err::write(d.join("authorized_keys"), format!("{client_pub}\n")).unwrap();
        fs_err::create_dir_all("/run/sshd").unwrap();
        let cfg = d.join("sshd_config");
        fs_err::write(
            &cfg,
            format!(
                "ListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 StrictModes no\nMaxSessions 10\nLogLevel ERROR\n",
                d = d.display()
            ),
        )
        .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, "/usr/sbin/sshd", "-D", "-e", "-f"])
            .arg(&cfg)
            .args(["-p", &PORT.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let me = Self {
            ns,
            child,
            dir,
            host_pub,
        };
        let up = me.in_netns(|| async {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if tokio::net::TcpStream::connect(("127.0.0.1", PORT))
                    .await
                    .is_ok()
                {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            false
        });
        assert!(up, "sshd did not start listening");
        Some(me)
    }

    fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// Runs `f` on a thread switched into the namespace, on a current-thread runtime.
    fn in_netns<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce() -> Fut + Send,
        Fut: std::future::Future<Output = T>,
        T: Send,
    {
        let path = format!("/run/netns/{}", self.ns);
        std::thread::scope(|s| {
            s.spawn(|| {
                let fd = fs_err::File::open(&path).unwrap();
                nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(f())
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn plan(host: &str, base: &Path, version: &str) -> HostPlan {
    let b = base.display();
    HostPlan::new(host)
        .step("dir", EnsureDirectory::new(format!("{b}/opt"), 0o755))
        .step(
            "confd",
            EnsureDirectory::new(format!("{b}/opt/conf.d"), 0o750),
        )
        .step(
            "app",
            EnsureFile::new(
                format!("{b}/opt/app.conf"),
                format!("host={host} v={version}\n"),
                0o644,
            ),
        )
        .step(
            "key",
            EnsureFile::new(
                format!("{b}/opt/conf.d/secret.key"),
                vec![0u8, 1, 2, 255, b'\n'],
                0o600,
            )
            .secret(),
        )
        .step(
            "handler",
            RunCommand::new(["touch".to_owned(), format!("{b}/handler ran")])
                .when_changed(["app", "key"]),
        )
}

fn options(bed: &Sshd, state: &Path) -> SshOptions {
    let mut o = SshOptions::new(bed.client_key(), state);
    o.connect_attempts = 2;
    o.retry_backoff = Duration::from_millis(50);
    o.connect_timeout = Duration::from_secs(5);
    o
}

#[test]
fn ssh_apply_rerun_and_unreachable_host() {
    let Some(bed) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("h01");
    let state = work.path().join("state");
    let exec = SshExecutor::new(
        options(&bed, &state),
        [
            SshHost::new("h01", "127.0.0.1").port(PORT),
            SshHost::new("h02", "127.0.0.1").port(CLOSED_PORT),
        ],
    )
    .unwrap();
    let plans = [
        plan("h01", &base, "1"),
        plan("h02", &work.path().join("h02"), "1"),
    ];
    let marker = base.join("handler ran");

    let s = bed.in_netns(|| apply_all(&exec, &plans, Mode::APPLY));
    let h01 = s.host("h01").unwrap().as_ref().unwrap();
    assert_eq!(h01.changed(), 5, "{h01:?}");
    assert!(
        matches!(s.host("h02").unwrap(), Err(HostError::Unreachable { host, .. }) if host == "h02"),
        "{s}"
    );
    assert!(!s.is_success());
    assert!(s.to_string().contains("host h02: unreachable"), "{s}");
    assert_eq!(
        fs_err::read_to_string(base.join("opt/app.conf")).unwrap(),
        "host=h01 v=1\n"
    );
    assert_eq!(
        fs_err::read(base.join("opt/conf.d/secret.key")).unwrap(),
        [0u8, 1, 2, 255, b'\n']
    );
    assert!(marker.exists());
    fs_err::remove_file(&marker).unwrap();
    // Trust on first use recorded the key.
    let pinned = fs_err::read_to_string(state.join("known_hosts")).unwrap();
    assert!(
        pinned.starts_with("[h01]:2222,[127.0.0.1]:2222 ssh-ed25519 "),
        "{pinned}"
    );
    assert!(pinned.contains(bed.host_pub.split(' ').nth(1).unwrap()));

    // Re-run over the same connection: nothing changes, handler skipped.
    let mtime = fs_err::metadata(base.join("opt/app.conf"))
        .unwrap()
        .modified()
        .unwrap();
    let r = bed
        .in_netns(|| exec.apply_host(&plans[0], Mode::APPLY))
        .unwrap();
    assert_eq!(r.changed(), 0, "{r:?}");
    assert_eq!(r.step("handler").unwrap().status, StepStatus::Skipped);
    assert!(!marker.exists());
    assert_eq!(
        fs_err::metadata(base.join("opt/app.conf"))
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );

    // Check mode with a diff over SSH; then an ad-hoc command with hostile argv.
    let p2 = plan("h01", &base, "2");
    let r = bed
        .in_netns(|| exec.apply_host(&p2, Mode::CHECK_DIFF))
        .unwrap();
    let diff = r.step("app").unwrap().diff.clone().unwrap();
    assert!(
        diff.contains("-host=h01 v=1") && diff.contains("+host=h01 v=2"),
        "{diff}"
    );
    assert_eq!(
        fs_err::read_to_string(base.join("opt/app.conf")).unwrap(),
        "host=h01 v=1\n"
    );
    let argv: Vec<String> = vec!["printf".into(), "%s".into(), "$(id) `x` 'q'".into()];
    let out = bed.in_netns(|| exec.run("h01", &argv)).unwrap();
    assert_eq!(out.stdout, b"$(id) `x` 'q'");
    bed.in_netns(|| exec.close());
}

#[test]
fn ssh_changed_host_key_is_refused() {
    let Some(bed) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let kh = work.path().join("known_hosts");
    let host = || [SshHost::new("h01", "127.0.0.1").port(PORT)];
    let p = plan("h01", &work.path().join("h01"), "1");

    // The right pinned key works.
    fs_err::write(
        &kh,
        format!(
            "# pinned\n[h01]:{PORT},[127.0.0.1]:{PORT} {}\n",
            bed.host_pub
        ),
    )
    .unwrap();
    let mut o = options(&bed, work.path());
    o.known_hosts = Some(kh.clone());
    let exec = SshExecutor::new(o.clone(), host()).unwrap();
    let r = bed.in_netns(|| exec.apply_host(&p, Mode::APPLY)).unwrap();
    assert!(r.is_ok(), "{r:?}");

    // A different pinned key: hard error naming the host, nothing applied.
    let other = keygen(&work.path().join("other_key"));
    fs_err::write(
        &kh,
        format!("# pinned\n[h01]:{PORT},[127.0.0.1]:{PORT} {other}\n"),
    )
    .unwrap();
    let exec = SshExecutor::new(o.clone(), host()).unwrap();
    let p2 = plan("h01", &work.path().join("h01"), "2");
    let err = bed
        .in_netns(|| exec.apply_host(&p2, Mode::APPLY))
        .unwrap_err();
    assert!(
        matches!(&err, HostError::HostKeyChanged { host, line: 2, .. } if host == "h01"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("h01") && err.to_string().contains("HOST KEY CHANGED"),
        "{err}"
    );
    assert_eq!(
        fs_err::read_to_string(work.path().join("h01/opt/app.conf")).unwrap(),
        "host=h01 v=1\n"
    );

    // A host missing from a user-given known_hosts file is refused too (no silent trust).
    fs_err::write(&kh, "").unwrap();
    let exec = SshExecutor::new(o, host()).unwrap();
    let err = bed
        .in_netns(|| exec.apply_host(&p, Mode::APPLY))
        .unwrap_err();
    assert!(
        matches!(&err, HostError::UnknownHostKey { host, .. } if host == "h01"),
        "{err:?}"
    );
}

/// `ssh-keygen -H -f file`: the host fields hashed, as OpenSSH writes them with
/// `HashKnownHosts yes`.
fn hash_known_hosts(file: &Path) {
    sh(Command::new("ssh-keygen").args(["-H", "-f"]).arg(file));
    let text = fs_err::read_to_string(file).unwrap();
    assert!(
        text.lines().all(|l| l.starts_with("|1|")) && !text.contains("h01"),
        "{text}"
    );
}

#[test]
fn ssh_hashed_and_bracketed_known_hosts() {
    let Some(bed) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let kh = work.path().join("known_hosts");
    let host = || [SshHost::new("h01", "127.0.0.1").port(PORT)];
    let p = plan("h01", &work.path().join("h01"), "1");
    let mut o = options(&bed, work.path());
    o.known_hosts = Some(kh.clone());
    let apply = |o: &SshOptions| {
        let exec = SshExecutor::new(o.clone(), host()).unwrap();
        bed.in_netns(|| exec.apply_host(&p, Mode::APPLY))
    };

    // Only the address, as `[addr]:port` (what `ssh -p PORT 127.0.0.1` records).
    fs_err::write(&kh, format!("[127.0.0.1]:{PORT} {}\n", bed.host_pub)).unwrap();
    let r = apply(&o).unwrap();
    assert!(r.is_ok(), "{r:?}");

    // The same entry for the name, hashed by the real ssh-keygen.
    fs_err::write(&kh, format!("[h01]:{PORT} {}\n", bed.host_pub)).unwrap();
    hash_known_hosts(&kh);
    let r = apply(&o).unwrap();
    assert!(r.is_ok(), "{r:?}");

    // A hashed entry with another key: the hard error, on the entry's line.
    let other = keygen(&work.path().join("other_key"));
    fs_err::write(
        &kh,
        format!("[elsewhere]:{PORT} {other}\n[h01]:{PORT} {other}\n"),
    )
    .unwrap();
    hash_known_hosts(&kh);
    let err = apply(&o).unwrap_err();
    assert!(
        matches!(&err, HostError::HostKeyChanged { host, line: 2, .. } if host == "h01"),
        "{err:?}"
    );

    // The right key, but revoked: refused although pinned.
    fs_err::write(
        &kh,
        format!(
            "[h01]:{PORT} {pubkey}\n@revoked * {pubkey}\n",
            pubkey = bed.host_pub
        ),
    )
    .unwrap();
    let err = apply(&o).unwrap_err();
    assert!(
        matches!(&err, HostError::HostKeyRevoked { host, line: 2, .. } if host == "h01"),
        "{err:?}"
    );
}
