//! `hpc-slurm`: a working SLURM cluster from a validated [`hpc_config::Cluster`].
//!
//! Renders `slurm.conf`, `gres.conf`, `cgroup.conf` and `slurmdbd.conf`, compresses node
//! lists into hostlists, plans the munge key and the services per node (slurmctld on the
//! controller, slurmd on compute nodes, slurmdbd + MariaDB where accounting runs), and
//! defines the health checks (`scontrol ping`, nodes idle, a real `srun`). Pure: no SSH here;
//! the remote-execution crate carries the plan out.
//!
//! Status: rendering and deployment land with the SLURM issue.

pub use hpc_config;
