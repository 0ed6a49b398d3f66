//! The on-disk journal of the libvirt objects a cluster owns.
//!
//! Every object is recorded *before* it is created (state [`EntryState::Intent`]) and marked
//! [`EntryState::Created`] once libvirt has it. A process killed between the two leaves an
//! intent behind; `down` treats intents and created entries alike (it removes whatever of them
//! exists). Each change rewrites the whole file atomically and durably with
//! [`hpc_fs::write_atomic`]: a temporary file in the same directory (mode 0600), `fsync`,
//! `rename`, then `fsync` of the directory.
//!
//! Format (`<state-dir>/journal.json`, versioned):
//!
//! ```json
//! { "version": 1, "cluster": "minimal",
//!   "entries": [ { "uri": "qemu:///system", "kind": "network", "name": "minimal-net",
//!                  "state": "created" } ] }
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::ObjectKind;

/// The journal's file name inside the cluster's state directory.
pub const JOURNAL_FILE: &str = "journal.json";

const FORMAT_VERSION: u32 = 1;

/// Whether an object is known to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    /// About to be created: it may or may not exist.
    Intent,
    /// Created by hpc-up.
    Created,
}

/// One object in the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// The libvirt connection it lives on.
    pub uri: String,
    /// Kind.
    pub kind: ObjectKind,
    /// libvirt name.
    pub name: String,
    /// For volumes, the pool.
    pub pool: Option<String>,
    /// Intent or created.
    pub state: EntryState,
}

/// Reading or writing the journal failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// File I/O (the error names the path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The file is not a journal this version understands.
    #[error("cannot read the journal `{}`", path.display())]
    Parse {
        /// The journal's path.
        path: PathBuf,
        /// What was wrong.
        #[source]
        source: serde_json::Error,
    },
    /// The journal belongs to another cluster.
    #[error("the journal `{}` belongs to cluster `{found}`, not `{expected}`", path.display())]
    WrongCluster {
        /// The journal's path.
        path: PathBuf,
        /// The cluster asked for.
        expected: String,
        /// The cluster in the file.
        found: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct JournalWire {
    version: u32,
    cluster: String,
    #[serde(default)]
    entries: Vec<EntryWire>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct EntryWire {
    uri: String,
    kind: KindWire,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pool: Option<String>,
    state: StateWire,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum KindWire {
    Network,
    Pool,
    Volume,
    Domain,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum StateWire {
    Intent,
    Created,
}

impl From<ObjectKind> for KindWire {
    fn from(k: ObjectKind) -> Self {
        match k {
            ObjectKind::Network => Self::Network,
            ObjectKind::Pool => Self::Pool,
            ObjectKind::Volume => Self::Volume,
            ObjectKind::Domain => Self::Domain,
        }
    }
}

impl From<KindWire> for ObjectKind {
    fn from(k: KindWire) -> Self {
        match k {
            KindWire::Network => Self::Network,
            KindWire::Pool => Self::Pool,
            KindWire::Volume => Self::Volume,
            KindWire::Domain => Self::Domain,
        }
    }
}

/// The journal of one cluster, loaded in memory; every change is written through to disk.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
    cluster: String,
    entries: Vec<JournalEntry>,
}

impl Journal {
    /// Open the journal of `cluster` in `state_dir` (`<state_dir>/journal.json`). A missing
    /// file is an empty journal; nothing is written until the first change.
    pub fn open(state_dir: &Path, cluster: &str) -> Result<Self, JournalError> {
        let path = state_dir.join(JOURNAL_FILE);
        let entries = match fs_err::read_to_string(&path) {
            Ok(text) => {
                let wire: JournalWire =
                    serde_json::from_str(&text).map_err(|source| JournalError::Parse {
                        path: path.clone(),
                        source,
                    })?;
                if wire.cluster != cluster {
                    return Err(JournalError::WrongCluster {
                        path,
                        expected: cluster.to_owned(),
                        found: wire.cluster,
                    });
                }
                wire.entries
                    .into_iter()
                    .map(|e| JournalEntry {
                        uri: e.uri,
                        kind: e.kind.into(),
                        name: e.name,
                        pool: e.pool,
                        state: match e.state {
                            StateWire::Intent => EntryState::Intent,
                            StateWire::Created => EntryState::Created,
                        },
                    })
                    .collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(Self {
            path,
            cluster: cluster.to_owned(),
            entries,
        })
    }

    /// The journal file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cluster this journal belongs to.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The entries, in the order they were recorded.
    pub fn entries(&self) -> &[JournalEntry] {
        &self.entries
    }

    /// Whether the journal has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry for an object, if any.
    pub fn get(
        &self,
        uri: &str,
        kind: ObjectKind,
        pool: Option<&str>,
        name: &str,
    ) -> Option<&JournalEntry> {
        self.entries
            .iter()
            .find(|e| e.uri == uri && e.kind == kind && e.name == name && e.pool.as_deref() == pool)
    }

    /// Record that an object is about to be created, and persist it. An existing entry for
    /// the same object is kept as it is.
    pub fn record_intent(
        &mut self,
        uri: &str,
        kind: ObjectKind,
        pool: Option<&str>,
        name: &str,
    ) -> Result<(), JournalError> {
        if self.get(uri, kind, pool, name).is_some() {
            return Ok(());
        }
        self.entries.push(JournalEntry {
            uri: uri.to_owned(),
            kind,
            name: name.to_owned(),
            pool: pool.map(str::to_owned),
            state: EntryState::Intent,
        });
        self.save()
    }

    /// Mark an object as created, and persist it.
    pub fn mark_created(
        &mut self,
        uri: &str,
        kind: ObjectKind,
        pool: Option<&str>,
        name: &str,
    ) -> Result<(), JournalError> {
        match self
            .entries
            .iter_mut()
            .find(|e| e.uri == uri && e.kind == kind && e.name == name && e.pool.as_deref() == pool)
        {
            Some(e) => e.state = EntryState::Created,
            None => self.entries.push(JournalEntry {
                uri: uri.to_owned(),
                kind,
                name: name.to_owned(),
                pool: pool.map(str::to_owned),
                state: EntryState::Created,
            }),
        }
        self.save()
    }

    /// Forget an object (it was removed), and persist it.
    pub fn remove(
        &mut self,
        uri: &str,
        kind: ObjectKind,
        pool: Option<&str>,
        name: &str,
    ) -> Result<(), JournalError> {
        let before = self.entries.len();
        self.entries.retain(|e| {
            !(e.uri == uri && e.kind == kind && e.name == name && e.pool.as_deref() == pool)
        });
        if self.entries.len() == before {
            return Ok(());
        }
        self.save()
    }

    /// Forget every entry of connection `uri` (and persist), deleting the file once the
    /// journal is empty.
    pub fn clear_uri(&mut self, uri: &str) -> Result<(), JournalError> {
        self.entries.retain(|e| e.uri != uri);
        if self.entries.is_empty() {
            self.clear()
        } else {
            self.save()
        }
    }

    /// Forget everything and delete the file.
    pub fn clear(&mut self) -> Result<(), JournalError> {
        self.entries.clear();
        match fs_err::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Write the journal atomically and durably (see [`hpc_fs::write_atomic`]), making its
    /// directory first if needed.
    fn save(&self) -> Result<(), JournalError> {
        let wire = JournalWire {
            version: FORMAT_VERSION,
            cluster: self.cluster.clone(),
            entries: self
                .entries
                .iter()
                .map(|e| EntryWire {
                    uri: e.uri.clone(),
                    kind: e.kind.into(),
                    name: e.name.clone(),
                    pool: e.pool.clone(),
                    state: match e.state {
                        EntryState::Intent => StateWire::Intent,
                        EntryState::Created => StateWire::Created,
                    },
                })
                .collect(),
        };
        let mut text =
            serde_json::to_string_pretty(&wire).map_err(|source| JournalError::Parse {
                path: self.path.clone(),
                source,
            })?;
        text.push('\n');
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs_err::create_dir_all(dir)?;
        // As an io::Error whose message names the path, like fs_err's: `JournalError::Io`.
        hpc_fs::write_atomic(&self.path, text.as_bytes()).map_err(std::io::Error::from)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "test:///default";

    #[test]
    fn missing_journal_is_empty_and_changes_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), "c1").unwrap();
        assert!(j.is_empty());
        assert!(!j.path().exists());
        j.record_intent(U, ObjectKind::Network, None, "c1-net")
            .unwrap();
        j.record_intent(U, ObjectKind::Volume, Some("c1"), "c1-ctl.qcow2")
            .unwrap();
        j.mark_created(U, ObjectKind::Network, None, "c1-net")
            .unwrap();

        let again = Journal::open(dir.path(), "c1").unwrap();
        assert_eq!(again.entries(), j.entries());
        assert_eq!(again.entries()[0].state, EntryState::Created);
        assert_eq!(again.entries()[1].state, EntryState::Intent);
        assert_eq!(again.entries()[1].pool.as_deref(), Some("c1"));
        // No temporary file is left beside it.
        let names: Vec<_> = fs_err::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["journal.json"]);

        j.remove(U, ObjectKind::Network, None, "c1-net").unwrap();
        assert_eq!(Journal::open(dir.path(), "c1").unwrap().entries().len(), 1);
        j.clear().unwrap();
        assert!(!j.path().exists());
        assert!(Journal::open(dir.path(), "c1").unwrap().is_empty());
    }

    #[test]
    fn journal_of_another_cluster_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), "c1").unwrap();
        j.record_intent(U, ObjectKind::Domain, None, "c1-ctl")
            .unwrap();
        assert!(matches!(
            Journal::open(dir.path(), "c2"),
            Err(JournalError::WrongCluster { .. })
        ));
    }
}
