//! `hpc-beegfs`: BeeGFS 7.4.x and 8.x deployment plans that the real daemons accept.
//!
//! Renders the management, metadata, storage and client configuration for the version the
//! cluster file names (key=value files for 7.4 and the 8.x C/C++ daemons, TOML for the 8.x
//! management service), the shared-secret auth file, the setup sequence and mounts, the
//! kernel-compatibility rules for the client module, and the checks. Held to the key lists in
//! the project's BeeGFS reference (taken from BeeGFS's own source). Pure: no SSH here.
//!
//! Status: rendering lands with the BeeGFS issue.

pub use hpc_config;
