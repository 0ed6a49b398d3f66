//! POSIX shell quoting: every user string that reaches a shell goes through here.

use std::borrow::Cow;

/// Quotes `s` as one POSIX shell word.
///
/// Strings made only of `[A-Za-z0-9_./:,+@%-]` (and not empty) are returned as they are;
/// everything else is wrapped in single quotes, with each `'` written as `'\''`. Inside
/// single quotes a POSIX shell expands nothing (`$`, backticks, `\`, newlines are literal).
/// A leading `-` is not the shell's business: callers put `--` before operands.
/// NUL bytes cannot be passed through a shell at all; plans reject them before quoting.
pub fn quote(s: &str) -> Cow<'_, str> {
    let safe = !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'_' | b'.' | b'/' | b':' | b',' | b'+' | b'@' | b'%' | b'-'
                )
        });
    if safe {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    Cow::Owned(out)
}

/// Quotes every element of `argv` and joins them with spaces.
pub fn quote_argv<S: AsRef<str>>(argv: &[S]) -> String {
    let mut out = String::new();
    for (i, a) in argv.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&quote(a.as_ref()));
    }
    out
}

/// Writes `content` as the body of a single-quoted `printf` format that reproduces it
/// byte for byte (`%` → `%%`, `\` → `\\`, `'` → `'\''`, non-printable bytes as `\ooo`).
pub(crate) fn printf_literal(content: &[u8], out: &mut Vec<u8>) {
    // `--`: content that starts with `-` (an SQL comment, say) is not an option.
    out.extend_from_slice(b"printf -- '");
    for &b in content {
        match b {
            b'%' => out.extend_from_slice(b"%%"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\'' => out.extend_from_slice(b"'\\''"),
            b'\n' | b'\t' | 0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
        }
    }
    out.push(b'\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_plain() {
        assert_eq!(quote("/opt/hpcbench/app.conf"), "/opt/hpcbench/app.conf");
        assert_eq!(quote("--flag"), "--flag");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a=b"), "'a=b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("~root"), "'~root'");
    }
}
