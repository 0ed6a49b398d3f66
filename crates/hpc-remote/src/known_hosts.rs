//! Host keys pinned in an OpenSSH known_hosts file, read with russh's own parser
//! (`russh::keys::known_hosts::known_host_keys_path`): plain host names, `[host]:port` for a
//! port other than 22, and hashed entries (`|1|salt|hash`, what OpenSSH writes with
//! `HashKnownHosts yes` or `ssh-keygen -H`).
//!
//! Where russh's parser falls short of OpenSSH, this module makes up for it:
//!
//! - **Line numbers.** russh does not count comment lines; the line it reports is mapped back
//!   to the file's own line, so an error names the line an editor shows.
//! - **`@revoked` lines.** russh skips marker lines, so a revoked key would still be accepted
//!   through another entry. They are read here: a presented key that is revoked — for any
//!   host, as the host patterns of a revoked line are not matched — is refused.
//! - **Whitespace.** russh splits fields on single spaces; OpenSSH accepts any run of blanks.
//!   A line russh would misread (tabs, several spaces, leading blanks before a host) could
//!   hide a pin, so the file is refused, naming the line, instead of read wrongly. OpenSSH
//!   itself always writes single spaces.
//! - **Unreadable files.** russh treats a file it cannot open as empty; here only a missing
//!   file is (nothing pinned), any other error is reported.
//!
//! Not supported, and failing closed: wildcard (`*`, `?`) and negated (`!`) host patterns
//! are compared literally by russh, so a host pinned only through such a line counts as
//! unknown (refused with a user-given file); `@cert-authority` lines are ignored, as host
//! certificates are refused anyway.

use std::io;
use std::path::Path;

use russh::keys::PublicKey;
use russh::keys::known_hosts::known_host_keys_path;

/// What a known_hosts file says about a presented host key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pin {
    /// A pinned key of the host is this key.
    Known,
    /// Nothing is pinned for the host.
    Unknown,
    /// Keys are pinned for the host, none is this one; `line` holds the first of them.
    Changed { line: usize },
    /// This key is listed as `@revoked` on `line`.
    Revoked { line: usize },
}

/// Checks `key`, presented by a host reachable as any of `names` on `port`, against `file`.
/// A missing file pins nothing.
pub(crate) fn check(file: &Path, names: &[&str], port: u16, key: &PublicKey) -> io::Result<Pin> {
    let text = match fs_err::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Pin::Unknown),
        Err(e) => return Err(e),
    };
    let scan = Scan::new(&text)?;
    if let Some(line) = scan.revoked(key) {
        return Ok(Pin::Revoked { line });
    }
    let mut pinned: Vec<(usize, PublicKey)> = Vec::new();
    for name in names {
        let found = known_host_keys_path(name, port, file).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("russh's parser: {e}"))
        })?;
        pinned.extend(found.into_iter().map(|(n, k)| (scan.line_of(n), k)));
    }
    if pinned.iter().any(|(_, k)| k.key_data() == key.key_data()) {
        return Ok(Pin::Known);
    }
    Ok(match pinned.iter().map(|(line, _)| *line).min() {
        Some(line) => Pin::Changed { line },
        None => Pin::Unknown,
    })
}

/// What this module reads of the file itself, beside russh.
struct Scan {
    /// The file line of each line russh counts (every line not starting with `#`).
    russh_lines: Vec<usize>,
    /// `@revoked` keys with their lines.
    revoked: Vec<(usize, PublicKey)>,
}

impl Scan {
    fn new(text: &str) -> io::Result<Self> {
        let mut russh_lines = Vec::new();
        let mut revoked = Vec::new();
        // russh reads with `read_line`: the same lines as `split_inclusive('\n')`.
        for (i, raw) in text.split_inclusive('\n').enumerate() {
            let n = i + 1;
            if !raw.starts_with('#') {
                russh_lines.push(n);
            }
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.first() == Some(&"@revoked") {
                // @revoked host-patterns type base64
                if let Some(k) = fields
                    .get(3)
                    .and_then(|b64| russh::keys::parse_public_key_base64(b64).ok())
                {
                    revoked.push((n, k));
                }
                continue;
            }
            if line.starts_with('@') {
                continue;
            }
            let russh_fields = raw.trim_end_matches(['\n', '\r']).split(' ');
            if !russh_fields.take(3).eq(fields.iter().take(3).copied()) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "line {n}: fields separated by tabs or several spaces, which russh's \
                         parser misreads; separate them by single spaces"
                    ),
                ));
            }
        }
        Ok(Self {
            russh_lines,
            revoked,
        })
    }

    /// The file line of russh's line `n` (1-based).
    fn line_of(&self, n: usize) -> usize {
        n.checked_sub(1)
            .and_then(|i| self.russh_lines.get(i))
            .copied()
            .unwrap_or(n)
    }

    fn revoked(&self, key: &PublicKey) -> Option<usize> {
        self.revoked
            .iter()
            .find(|(_, k)| k.key_data() == key.key_data())
            .map(|(n, _)| *n)
    }
}

/// Appends a plain entry for `patterns` (joined by `,`) with `key`, and syncs the file.
pub(crate) fn learn(file: &Path, patterns: &[String], key: &PublicKey) -> io::Result<()> {
    use std::io::Write as _;
    let mut entry = key.clone();
    entry.set_comment("");
    let text = entry
        .to_openssh()
        .map_err(|e| io::Error::other(e.to_string()))?;
    if let Some(dir) = file.parent() {
        fs_err::create_dir_all(dir)?;
    }
    let mut f = fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    f.write_all(format!("{} {}\n", patterns.join(","), text.trim_end()).as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::process::Command;

    use super::*;

    /// A new key pair made by OpenSSH's `ssh-keygen`; the public line (`type base64`).
    fn keygen(dir: &Path, name: &str, kind: &str) -> (String, PublicKey) {
        let path = dir.join(name);
        let mut cmd = Command::new("ssh-keygen");
        cmd.args(["-q", "-t", kind, "-N", "", "-C", "", "-f"])
            .arg(&path);
        if kind == "rsa" {
            cmd.args(["-b", "1024"]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = fs_err::read_to_string(path.with_extension("pub")).unwrap();
        let line = line.trim().to_owned();
        let b64 = line.split(' ').nth(1).unwrap();
        (
            line.clone(),
            russh::keys::parse_public_key_base64(b64).unwrap(),
        )
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("known_hosts");
        fs_err::write(&p, text).unwrap();
        p
    }

    /// `ssh-keygen -H`: every host field hashed, as `HashKnownHosts yes` writes them.
    fn hash(file: &Path) -> String {
        let out = Command::new("ssh-keygen")
            .args(["-H", "-f"])
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = fs_err::read_to_string(file).unwrap();
        assert!(text.starts_with("|1|"), "{text}");
        text
    }

    #[test]
    fn hashed_entries_made_by_ssh_keygen_are_read() {
        let d = tempfile::tempdir().unwrap();
        let (line, key) = keygen(d.path(), "host", "ed25519");
        let (_, other) = keygen(d.path(), "other", "ed25519");
        // Port 22 and another port, each hashed as OpenSSH hashes it.
        let f = write(
            d.path(),
            &format!("h01,10.0.0.1 {line}\n[h02]:2222 {line}\n"),
        );
        let text = hash(&f);
        assert!(!text.contains("h01") && !text.contains("h02"), "{text}");
        assert_eq!(check(&f, &["h01"], 22, &key).unwrap(), Pin::Known);
        assert_eq!(
            check(&f, &["nope", "10.0.0.1"], 22, &key).unwrap(),
            Pin::Known
        );
        assert_eq!(check(&f, &["h02"], 2222, &key).unwrap(), Pin::Known);
        // The port is part of the hashed name.
        assert_eq!(check(&f, &["h02"], 22, &key).unwrap(), Pin::Unknown);
        // A hashed entry with another key: changed, on its line (`ssh-keygen -H` wrote one
        // line per name: h01, 10.0.0.1, [h02]:2222), counted with the comment put on top.
        let text = format!("# hashed by ssh-keygen -H\n{text}");
        fs_err::write(&f, &text).unwrap();
        assert_eq!(
            check(&f, &["h02"], 2222, &other).unwrap(),
            Pin::Changed { line: 4 }
        );
        assert_eq!(
            check(&f, &["h01", "10.0.0.1"], 22, &other).unwrap(),
            Pin::Changed { line: 2 }
        );
        assert_eq!(check(&f, &["h03"], 22, &other).unwrap(), Pin::Unknown);
    }

    #[test]
    fn plain_and_bracketed_entries_and_line_numbers() {
        let d = tempfile::tempdir().unwrap();
        let (line, key) = keygen(d.path(), "host", "ed25519");
        let (other_line, other) = keygen(d.path(), "other", "ed25519");
        let (rsa_line, _) = keygen(d.path(), "rsa", "rsa");
        let f = write(
            d.path(),
            &format!(
                "# pinned by hand\n\n#another comment\n[10.0.0.5]:2222 {rsa_line}\n\
                 [10.0.0.5]:2222,[c01]:2222 {line}\nc02 {other_line}\n"
            ),
        );
        assert_eq!(
            check(&f, &["c01", "10.0.0.5"], 2222, &key).unwrap(),
            Pin::Known
        );
        assert_eq!(
            check(&f, &["x", "10.0.0.5"], 2222, &key).unwrap(),
            Pin::Known
        );
        // Another key: changed, naming the first pinned line as an editor counts it
        // (russh skips comments when counting).
        assert_eq!(
            check(&f, &["c01", "10.0.0.5"], 2222, &other).unwrap(),
            Pin::Changed { line: 4 }
        );
        assert_eq!(
            check(&f, &["c02"], 22, &key).unwrap(),
            Pin::Changed { line: 6 }
        );
        // Port 22 entries do not pin other ports.
        assert_eq!(check(&f, &["c02"], 2222, &other).unwrap(), Pin::Unknown);
        // A missing file pins nothing.
        assert_eq!(
            check(&d.path().join("none"), &["c01"], 22, &key).unwrap(),
            Pin::Unknown
        );
    }

    #[test]
    fn revoked_keys_are_refused_even_when_pinned() {
        let d = tempfile::tempdir().unwrap();
        let (line, key) = keygen(d.path(), "host", "ed25519");
        let f = write(
            d.path(),
            &format!("h01 {line}\n# gone\n@revoked * {line}\n"),
        );
        assert_eq!(
            check(&f, &["h01"], 22, &key).unwrap(),
            Pin::Revoked { line: 3 }
        );
    }

    #[test]
    fn lines_russh_would_misread_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let (line, key) = keygen(d.path(), "host", "ed25519");
        let tabbed = line.replace(' ', "\t");
        for bad in [
            format!("h01\t{tabbed}\n"),
            format!("h01  {line}\n"),
            format!("  h01 {line}\n"),
        ] {
            let f = write(d.path(), &format!("# ok\n{bad}"));
            let err = check(&f, &["h01"], 22, &key).unwrap_err();
            assert!(err.to_string().contains("line 2"), "{err}");
        }
        // Comments and blank lines may be indented; trailing comments are fine.
        let f = write(
            d.path(),
            &format!("  # note\n\t\nh01 {line} root@somewhere\n"),
        );
        assert_eq!(check(&f, &["h01"], 22, &key).unwrap(), Pin::Known);
    }

    #[test]
    fn learned_entries_are_read_back() {
        let d = tempfile::tempdir().unwrap();
        let (_, key) = keygen(d.path(), "host", "ed25519");
        let f = d.path().join("state/known_hosts");
        learn(
            &f,
            &["[n1]:2222".to_owned(), "[10.1.0.1]:2222".to_owned()],
            &key,
        )
        .unwrap();
        assert_eq!(check(&f, &["n1"], 2222, &key).unwrap(), Pin::Known);
        assert_eq!(check(&f, &["10.1.0.1"], 2222, &key).unwrap(), Pin::Known);
    }
}
