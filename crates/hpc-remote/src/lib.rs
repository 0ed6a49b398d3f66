//! `hpc-remote`: remote execution for hpc-up.
//!
//! The "host step" vocabulary planners speak — put a file (content, mode, owner; atomic,
//! idempotent by checksum), run a command (argv, quoted by this crate, never a shell string
//! built from user input), ensure a service, ensure a mount — and its executors: one over SSH
//! (russh + tokio, one connection per host, many hosts at once) and a local/recording one for
//! tests. It knows nothing of what the steps are for.
//!
//! Status: the SSH executor lands with the remote-execution issue.

pub use hpc_config;
