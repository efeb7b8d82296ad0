//! # Credentials: a per-agent vault, encrypted at rest
//!
//! Each agent has a vault of credential files (`.env`, `.claude/.credentials.json`,
//! `.mcp.json`, ...) that flotilla writes into its home directory, mode 0600, owned by
//! `developer` (uid 1000) — when they are injected, and again at every start, so they survive a
//! recreated container. The vault is also the unit of export and import.
//!
//! ## Where things live
//! - **At rest**: one `credential_vault` row per agent (`schema/005_credentials.surql`), keyed
//!   by the agent's id, holding one age file encrypted to the server's X25519 identity
//!   ([`vault`]: `vault-identity.txt` in the data dir, mode 0600) plus the list of paths (not
//!   secret). The agent-delete transaction deletes the row. The store never sees a plaintext.
//! - **Writes** go through the agent's own actor ([`InjectCredentials`]): it checks the target
//!   paths against the workspace, merges the new files into the vault, seals it, has the
//!   registry store it ([`SaveVault`]), then writes the new files into the home with the same
//!   `write_home` every flotilla write uses (straight into the container, or through a helper
//!   container when the workspace is mounted read-only or the agent has no container). A failed
//!   write puts the previous vault back, so an injection either happens whole or not at all.
//!   Running in the actor serialises an agent's injections with each other and with its start,
//!   stop and delete — two concurrent injections cannot lose each other's files.
//! - **Start** (`ops::start` in the agent actor) decrypts the vault after the container exists
//!   and writes it before the runtime's own files (so flotilla's settings merge over an injected
//!   `settings.json`, not the reverse); the outcome — [`CredentialsInjection`] — travels back in
//!   [`StartOutcome`](crate::StartOutcome). A failure there is logged (never with contents) and
//!   does not fail the start.
//! - The vault reaches agent actors through `AgentDeps::vault` (a cheap clone holding the key
//!   and a store handle for reads, like the avatar reads of the `Fleet`).
//! - **Reads** (status) do not queue behind the actor: `stat_path` on the agent's container for
//!   `.env`, `.mcp.json` and every vault path, and `.env` read through the archive API to count
//!   its `KEY=` lines. Values are never returned.
//!
//! ## Secrets stay secret
//! File contents are [`Secret`]s (zeroed on drop; `Debug` shows the length only); passphrases
//! and identities are `SecretString`s. Errors, logs, events and metrics name paths and counts,
//! never contents. All age work — X25519 sealing (milliseconds) and scrypt (deliberately slow,
//! see [`bundle`]) — runs on tokio's blocking pool, never on an arbiter thread.
//!
//! ## Limits
//! At most [`MAX_FILES`] files, each at most [`MAX_FILE_BYTES`], together at most
//! [`MAX_TOTAL_BYTES`] — per request and for the vault as a whole. Paths are confined to the
//! workspace by [`crate::files::path::normalize`]; bad paths are `Invalid` (422), too much is
//! `TooLarge` (413). Injecting with no files reads the host's credential directory
//! ([`host`]); when it has nothing for the agent's runtime, or none is configured, that is
//! `Invalid` (422): the request is well-formed but names nothing to inject.
//!
//! [`InjectCredentials`]: crate::agent::messages::InjectCredentials
//! [`SaveVault`]: crate::registry::messages::SaveVault

pub mod bundle;
pub mod host;
pub mod secret;
pub mod vault;

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt;
use tracing::{debug, info};
use zeroize::Zeroizing;

use crate::access::Action;
use crate::agent::messages::InjectCredentials;
use crate::agent::spec;
use crate::error::FleetError;
use crate::files::path::WORKSPACE;
use crate::fleet::Fleet;
use crate::model::{AgentRuntime, Principal};
use crate::runtime::{ContainerRuntime, RuntimeError};

pub use bundle::{ExportKey, ImportKey, SealedFor};
pub use secret::{CredentialFiles, MAX_FILE_BYTES, MAX_FILES, MAX_TOTAL_BYTES, Secret, wipe};
pub use vault::{SealedVault, Vault};

/// Files every status report covers, injected or not.
pub const WELL_KNOWN: &[&str] = &[".env", ".mcp.json"];

/// Largest `.env` read to count its keys.
const MAX_ENV_BYTES: usize = 1024 * 1024;

/// Target paths checked against the workspace at once.
const STAT_CONCURRENCY: usize = 8;

/// What a start did with the agent's vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialsInjection {
    /// The vault had files and they were written.
    Success,
    /// The vault is empty (or the agent was already running).
    Skipped,
    /// The vault could not be read or written; the agent started without it.
    Failed,
}

impl CredentialsInjection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
        }
    }
}

/// What an injection did (the agent actor's answer to [`InjectCredentials`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    /// Paths written, relative to the home directory, sorted.
    pub files_written: Vec<String>,
    /// Files in the vault afterwards.
    pub vault_files: usize,
}

/// Where injected files came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectSource {
    Request,
    Host,
    Bundle,
}

impl InjectSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Host => "host",
            Self::Bundle => "bundle",
        }
    }
}

/// An injection as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectReport {
    pub agent_name: String,
    pub files_written: Vec<String>,
    pub vault_files: usize,
    pub source: InjectSource,
}

/// One credential file in the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStatus {
    pub exists: bool,
    /// Bytes, when it exists.
    pub size: Option<u64>,
    /// RFC 3339, when it exists.
    pub modified: Option<String>,
}

/// The credential files of an agent's workspace, as `stat` sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialStatus {
    pub agent_name: String,
    /// `.env`, `.mcp.json` and every path in the vault.
    pub files: BTreeMap<String, FileStatus>,
    /// `KEY=` lines in `.env`.
    pub credential_count: usize,
}

/// An export bundle.
#[derive(Debug, Clone)]
pub struct ExportedBundle {
    pub agent_name: String,
    /// ASCII-armored age file.
    pub bundle: String,
    pub files: Vec<String>,
    pub sealed_for: SealedFor,
}

impl Fleet {
    /// Inject credential files into agent `name` (owner or admin): store them in its vault and
    /// write them into its home, mode 0600, whether it runs, is stopped, or has a read-only
    /// workspace. `files: None` injects the host's credential files for the agent's runtime.
    pub async fn inject_credentials(
        &self,
        who: &Principal,
        name: &str,
        files: Option<Vec<(String, Secret)>>,
    ) -> Result<InjectReport, FleetError> {
        let visible = self.agent(who, name, Action::Manage)?;
        let (files, source) = match files {
            Some(entries) => {
                let files = CredentialFiles::from_entries("files", entries)?;
                if files.is_empty() {
                    return Err(FleetError::invalid(
                        "files",
                        "must name at least one file (send no body to inject the host's credentials)",
                    ));
                }
                (files, InjectSource::Request)
            }
            None => (
                self.host_credentials(visible.view.record.runtime).await?,
                InjectSource::Host,
            ),
        };
        self.inject(who, name, files, source).await
    }

    /// The credential files in agent `name`'s workspace (owner or admin): `.env`, `.mcp.json`
    /// and every file of its vault, with the number of `KEY=` lines in `.env`. Works on a
    /// stopped agent; `Conflict` when it has no container. Never returns contents.
    pub async fn credentials_status(
        &self,
        who: &Principal,
        name: &str,
    ) -> Result<CredentialStatus, FleetError> {
        let visible = self.agent(who, name, Action::Manage)?;
        let view = &visible.view;
        let container = match &view.container_id {
            Some(id) if !view.container_missing => id.clone(),
            _ => {
                return Err(FleetError::Conflict(format!(
                    "agent '{}' has no container; start it to recreate its container, then retry",
                    view.record.name
                )));
            }
        };
        let mut paths: BTreeSet<String> = WELL_KNOWN.iter().map(|p| p.to_string()).collect();
        paths.extend(self.inner.vault.paths(view.record.id).await?);
        let runtime = self.inner.runtime.clone();
        let timeout = self.inner.config.docker_timeout;
        let work = async {
            let stats: Vec<(
                String,
                Result<Option<crate::runtime::PathStat>, RuntimeError>,
            )> = futures_util::stream::iter(paths)
                .map(|path| {
                    let runtime = runtime.clone();
                    let container = container.clone();
                    async move {
                        let stat = runtime
                            .stat_path(&container, &format!("{WORKSPACE}/{path}"))
                            .await;
                        (path, stat)
                    }
                })
                .buffered(STAT_CONCURRENCY)
                .collect()
                .await;
            let mut files = BTreeMap::new();
            let mut env_is_file = false;
            for (path, stat) in stats {
                let status = match stat? {
                    Some(stat) => {
                        if path == ".env" {
                            env_is_file = !stat.is_dir && !stat.is_symlink;
                        }
                        FileStatus {
                            exists: true,
                            size: Some(stat.size.max(0) as u64),
                            modified: stat.modified,
                        }
                    }
                    None => FileStatus {
                        exists: false,
                        size: None,
                        modified: None,
                    },
                };
                files.insert(path, status);
            }
            let credential_count = if env_is_file {
                read_file(
                    &*runtime,
                    &container,
                    &format!("{WORKSPACE}/.env"),
                    MAX_ENV_BYTES,
                )
                .await?
                .map(|content| count_keys(&content))
                .unwrap_or(0)
            } else {
                0
            };
            Ok::<_, FleetError>((files, credential_count))
        };
        let (files, credential_count) =
            tokio::time::timeout(timeout, work).await.map_err(|_| {
                FleetError::RuntimeTimeout(format!(
                    "reading credential files took longer than {}s",
                    timeout.as_secs()
                ))
            })??;
        Ok(CredentialStatus {
            agent_name: view.record.name.clone(),
            files,
            credential_count,
        })
    }

    /// Agent `name`'s vault as an ASCII-armored age bundle sealed for `key` (owner or admin).
    /// `NotFound` when the vault is empty.
    pub async fn export_credentials(
        &self,
        who: &Principal,
        name: &str,
        key: ExportKey,
    ) -> Result<ExportedBundle, FleetError> {
        let visible = self.agent(who, name, Action::Manage)?;
        let key = key.prepare()?;
        let record = &visible.view.record;
        let files = self.inner.vault.load(record.id).await?;
        if files.is_empty() {
            return Err(FleetError::NotFound {
                kind: "stored credentials of agent",
                name: record.name.clone(),
            });
        }
        let paths = files.paths();
        let (bundle, sealed_for) = self
            .inner
            .vault
            .export_bundle(files, record.name.clone(), key)
            .await?;
        info!(agent = %record.name, files = paths.len(), sealed_for = sealed_for.as_str(), "credentials exported");
        Ok(ExportedBundle {
            agent_name: record.name.clone(),
            bundle,
            files: paths,
            sealed_for,
        })
    }

    /// Open an export bundle with `key` and inject its files into agent `name` (owner or
    /// admin). A wrong key or a damaged bundle is `Invalid` and changes nothing.
    pub async fn import_credentials(
        &self,
        who: &Principal,
        name: &str,
        bundle: String,
        key: ImportKey,
    ) -> Result<InjectReport, FleetError> {
        self.agent(who, name, Action::Manage)?;
        let files = self.inner.vault.import_bundle(bundle, key).await?;
        if files.is_empty() {
            return Err(FleetError::invalid("bundle", "holds no files"));
        }
        self.inject(who, name, files, InjectSource::Bundle).await
    }

    async fn inject(
        &self,
        who: &Principal,
        name: &str,
        files: CredentialFiles,
        source: InjectSource,
    ) -> Result<InjectReport, FleetError> {
        let addr = self.addr_for(who, name, Action::Manage)?;
        let injected = self.ask(name, &addr, InjectCredentials { files }).await?;
        info!(
            agent = name,
            files = injected.files_written.len(),
            vault_files = injected.vault_files,
            source = source.as_str(),
            "credentials injected"
        );
        Ok(InjectReport {
            agent_name: name.to_string(),
            files_written: injected.files_written,
            vault_files: injected.vault_files,
            source,
        })
    }

    async fn host_credentials(&self, runtime: AgentRuntime) -> Result<CredentialFiles, FleetError> {
        let Some(dir) = self.inner.config.host_credentials_dir.clone() else {
            return Err(FleetError::invalid(
                "files",
                "none given, and this server has no host credentials directory configured",
            ));
        };
        vault::blocking(move || host::read(&dir, runtime)).await
    }
}

/// A tar archive of `files` for the home directory: mode 0600, owned by `developer`.
pub(crate) fn home_archive(files: &CredentialFiles) -> Result<bytes::Bytes, FleetError> {
    let entries: Vec<(&str, &[u8], u32)> = files
        .iter()
        .map(|(path, content)| (path, content.expose(), 0o600))
        .collect();
    spec::archive(&entries)
}

/// Refuse, before anything is written, files whose path is a folder in the workspace or
/// whose folder is a file there (the write would fail half-way). Best effort: a path the
/// runtime cannot stat is left to the write.
pub(crate) async fn check_targets(
    runtime: &dyn ContainerRuntime,
    container: &str,
    files: &CredentialFiles,
) -> Result<(), FleetError> {
    let mut folders = BTreeSet::new();
    for (path, _) in files.iter() {
        let parts: Vec<&str> = path.split('/').collect();
        for depth in 1..parts.len() {
            folders.insert(parts[..depth].join("/"));
        }
    }
    let checks = folders
        .into_iter()
        .map(|p| (p, true))
        .chain(files.iter().map(|(p, _)| (p.to_string(), false)));
    let results: Vec<_> = futures_util::stream::iter(checks)
        .map(|(path, is_folder)| async move {
            let stat = runtime
                .stat_path(container, &format!("{WORKSPACE}/{path}"))
                .await;
            (path, is_folder, stat)
        })
        .buffer_unordered(STAT_CONCURRENCY)
        .collect()
        .await;
    for (path, is_folder, stat) in results {
        match stat {
            Ok(Some(stat)) if is_folder && !stat.is_dir && !stat.is_symlink => {
                return Err(FleetError::invalid(
                    "files",
                    format!("'{path}' is a file in the workspace, so it cannot hold other files"),
                ));
            }
            Ok(Some(stat)) if !is_folder && stat.is_dir => {
                return Err(FleetError::invalid(
                    "files",
                    format!("'{path}' is a folder in the workspace; a file cannot replace it"),
                ));
            }
            Ok(_) => {}
            Err(error) => debug!(%path, %error, "could not check a credential path"),
        }
    }
    Ok(())
}

/// A regular file of the container (at most `max` bytes), read through the archive API;
/// `None` if it is missing, not a regular file, or larger.
async fn read_file(
    runtime: &dyn ContainerRuntime,
    container: &str,
    path: &str,
    max: usize,
) -> Result<Option<Zeroizing<Vec<u8>>>, FleetError> {
    let mut stream = runtime.archive(container, path);
    let mut tar = Zeroizing::new(Vec::new());
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => tar.extend_from_slice(&bytes),
            Err(RuntimeError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        if tar.len() > max + 64 * 1024 {
            return Ok(None);
        }
    }
    Ok(spec::single_file(&tar, max as u64).map(Zeroizing::new))
}

/// The number of `KEY=value` lines (an optional `export ` before; `#` comments and other lines
/// do not count).
pub fn count_keys(content: &[u8]) -> usize {
    content
        .split(|b| *b == b'\n')
        .filter(|line| {
            let line = line.trim_ascii();
            let line = line
                .strip_prefix(b"export ")
                .map(<[u8]>::trim_ascii_start)
                .unwrap_or(line);
            let Some(eq) = line.iter().position(|b| *b == b'=') else {
                return false;
            };
            let key = line[..eq].trim_ascii_end();
            key.first()
                .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
                && key.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_counted_and_everything_else_is_not() {
        let env = b"# comment\nA=1\n  B_2 = two\nexport C=3\n\nnot a key\n=nokey\n1X=bad\nD=\r\n#E=commented\nF==x";
        assert_eq!(count_keys(env), 5);
        assert_eq!(count_keys(b""), 0);
        assert_eq!(count_keys(b"KEY=value"), 1);
    }

    #[test]
    fn home_archives_hold_private_files_owned_by_the_developer() {
        let files = CredentialFiles::from_entries(
            "files",
            [(
                ".claude/.credentials.json".to_string(),
                Secret::from("{}".to_string()),
            )],
        )
        .unwrap();
        let archive = home_archive(&files).unwrap();
        let mut tar = tar::Archive::new(&archive[..]);
        let mut seen = Vec::new();
        for entry in tar.entries().unwrap() {
            let entry = entry.unwrap();
            let header = entry.header();
            seen.push((
                entry.path().unwrap().display().to_string(),
                header.mode().unwrap(),
                header.uid().unwrap(),
            ));
        }
        assert_eq!(
            seen,
            vec![
                (".claude/".to_string(), 0o755, 1000),
                (".claude/.credentials.json".to_string(), 0o600, 1000),
            ]
        );
    }
}
