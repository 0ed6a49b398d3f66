//! A child process's three pipes at once: what the local and OpenSSH executors share.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;

/// Writes `input` (if any) to the child's stdin and closes it, while reading its stdout and
/// stderr to the end, all three at once: a child that fills one pipe never waits on another.
/// Does not wait for the child's exit.
pub(crate) async fn communicate(
    child: &mut Child,
    input: Option<&[u8]>,
) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let write = async {
        if let (Some(s), Some(input)) = (stdin.as_mut(), input) {
            // A runner that exits early closes its stdin; that shows in its report.
            let _ = s.write_all(input).await;
            let _ = s.shutdown().await;
        }
        drop(stdin.take());
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let read_out = async {
        if let Some(s) = stdout.as_mut() {
            s.read_to_end(&mut out).await?;
        }
        Ok::<_, std::io::Error>(())
    };
    let read_err = async {
        if let Some(s) = stderr.as_mut() {
            s.read_to_end(&mut err).await?;
        }
        Ok::<_, std::io::Error>(())
    };
    let ((), r1, r2) = tokio::join!(write, read_out, read_err);
    r1?;
    r2?;
    Ok((out, err))
}
