//! `hpc-remote`: remote execution for hpc-up.
//!
//! Placeholder docs; filled below.

mod diff;
mod error;
mod executor;
mod local;
mod quote;
mod report;
mod script;
mod ssh;
mod step;

pub use error::{HostError, PlanError};
pub use executor::{CommandOutput, Executor, Mode, apply_all};
pub use local::LocalExecutor;
pub use quote::{quote, quote_argv};
pub use report::{HostReport, StepReport, StepStatus, Summary};
pub use russh;
pub use script::validate;
pub use ssh::{KeyError, SshExecutor, SshHost, SshOptions};
pub use step::{
    EnsureDirectory, EnsureFile, EnsureMount, EnsureService, HostPlan, Owner, RunCommand, RunWhen,
    ServiceState, Step, StepKind,
};
