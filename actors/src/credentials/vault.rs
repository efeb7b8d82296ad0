//! The server's vault key, and sealing vaults to it.
//!
//! The key is an age X25519 identity kept in the data dir as [`IDENTITY_FILE`] (created on first
//! start with mode 0600, in the format `age-keygen` writes, and loaded at every start). Every
//! agent's vault is one age file encrypted to its public half; the store only ever holds that
//! ciphertext. Losing the key file loses every vault (agents keep the files already written into
//! their workspaces); back it up with the data dir, and keep it out of the store's backups if
//! those go elsewhere.
//!
//! All age work here runs on tokio's blocking pool ([`blocking`]), never on an actor's arbiter
//! thread: X25519 sealing is milliseconds, but a passphrase bundle's scrypt is deliberately slow,
//! and at most [`PASSPHRASE_SLOTS`] of those run at once, so a burst of exports or imports
//! cannot take every core (or, at 64 MiB each, the memory).

use std::fmt;
use std::io::{ErrorKind, Write};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use age::secrecy::ExposeSecret;
use age::x25519;
use tokio::sync::Semaphore;
use tracing::{info, warn};
use zeroize::Zeroizing;

use super::bundle::{self, ExportKey, ImportKey, SealedFor};
use super::secret::CredentialFiles;
use crate::error::FleetError;
use crate::model::AgentId;
use crate::store::Store;

/// File name of the server's vault identity inside the data dir.
pub const IDENTITY_FILE: &str = "vault-identity.txt";

/// Passphrase (scrypt) bundle operations allowed to run at once.
pub const PASSPHRASE_SLOTS: usize = 2;

/// A vault as stored: the age ciphertext of its files, and their paths (not secret).
#[derive(Clone, PartialEq, Eq)]
pub struct SealedVault {
    pub sealed: bytes::Bytes,
    pub paths: Vec<String>,
}

impl fmt::Debug for SealedVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedVault")
            .field("sealed_bytes", &self.sealed.len())
            .field("paths", &self.paths)
            .finish()
    }
}

struct Keys {
    identity: x25519::Identity,
    recipient: x25519::Recipient,
}

/// The server's vault key with the store it reads sealed vaults from. Cheap to clone.
#[derive(Clone)]
pub struct Vault {
    keys: Arc<Keys>,
    store: Store,
    passphrase_slots: Arc<Semaphore>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("recipient", &self.keys.recipient.to_string())
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Load the server's identity from `data_dir` (creating it, mode 0600, on first start).
    pub(crate) async fn open(data_dir: &Path, store: Store) -> Result<Self, FleetError> {
        let path = data_dir.join(IDENTITY_FILE);
        let keys = blocking(move || load_or_create(&path)).await?;
        info!(recipient = %keys.recipient, "credential vault key loaded");
        Ok(Self {
            keys: Arc::new(keys),
            store,
            passphrase_slots: Arc::new(Semaphore::new(PASSPHRASE_SLOTS)),
        })
    }

    /// The public key every vault is encrypted to (`age1...`).
    pub fn recipient(&self) -> String {
        self.keys.recipient.to_string()
    }

    /// The agent's sealed vault as stored, if any.
    pub(crate) async fn load_sealed(
        &self,
        agent: AgentId,
    ) -> Result<Option<SealedVault>, FleetError> {
        self.store.load_vault(agent).await
    }

    /// The paths in the agent's vault, without decrypting it.
    pub(crate) async fn paths(&self, agent: AgentId) -> Result<Vec<String>, FleetError> {
        Ok(self
            .load_sealed(agent)
            .await?
            .map(|v| v.paths)
            .unwrap_or_default())
    }

    /// The agent's vault, decrypted (empty if it has none).
    pub(crate) async fn load(&self, agent: AgentId) -> Result<CredentialFiles, FleetError> {
        match self.load_sealed(agent).await? {
            Some(sealed) => self.unseal(sealed).await,
            None => Ok(CredentialFiles::default()),
        }
    }

    /// Decrypt a stored vault.
    pub(crate) async fn unseal(&self, vault: SealedVault) -> Result<CredentialFiles, FleetError> {
        let keys = self.keys.clone();
        blocking(move || {
            let plaintext = age::decrypt(&keys.identity, &vault.sealed)
                .map(Zeroizing::new)
                .map_err(|e| {
                    FleetError::Internal(format!(
                        "a credential vault cannot be decrypted with this server's key: {e}"
                    ))
                })?;
            CredentialFiles::decode("vault", &plaintext)
                .map_err(|e| FleetError::Internal(format!("a credential vault is unreadable: {e}")))
        })
        .await
    }

    /// Encrypt `files` to the server's key, for storing.
    pub(crate) async fn seal(&self, files: CredentialFiles) -> Result<SealedVault, FleetError> {
        let keys = self.keys.clone();
        blocking(move || {
            let plaintext = files.encode(None)?;
            let sealed = age::encrypt(&keys.recipient, &plaintext)
                .map_err(|e| FleetError::Internal(format!("sealing a credential vault: {e}")))?;
            Ok(SealedVault {
                sealed: sealed.into(),
                paths: files.paths(),
            })
        })
        .await
    }

    /// An ASCII-armored age bundle of `files` (exported from `agent_name`), sealed for `key`.
    pub(crate) async fn export_bundle(
        &self,
        files: CredentialFiles,
        agent_name: String,
        key: ExportKey,
    ) -> Result<(String, SealedFor), FleetError> {
        let sealing = key.prepare()?;
        let sealed_for = sealing.sealed_for();
        let permit = match sealed_for {
            SealedFor::Passphrase => Some(self.passphrase_slot().await?),
            _ => None,
        };
        let keys = self.keys.clone();
        let armored = blocking(move || {
            let _permit = permit;
            let plaintext = files.encode(Some(&agent_name))?;
            bundle::seal(&plaintext, sealing, &keys.recipient)
        })
        .await?;
        Ok((armored, sealed_for))
    }

    /// Open an export bundle with `key` and validate its files like client input.
    pub(crate) async fn import_bundle(
        &self,
        armored: String,
        key: ImportKey,
    ) -> Result<CredentialFiles, FleetError> {
        bundle::check_size(&armored)?;
        let permit = match key {
            ImportKey::Passphrase(_) => Some(self.passphrase_slot().await?),
            _ => None,
        };
        let keys = self.keys.clone();
        blocking(move || {
            let _permit = permit;
            bundle::open_files(
                armored.trim().as_bytes(),
                key,
                &keys.identity,
                bundle::MAX_PASSPHRASE_WORK_FACTOR,
            )
        })
        .await
    }

    async fn passphrase_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, FleetError> {
        self.passphrase_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| FleetError::Internal(format!("passphrase slots closed: {e}")))
    }
}

/// Run CPU-bound or blocking work on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, FleetError> + Send + 'static,
) -> Result<T, FleetError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| FleetError::Internal(format!("credential task failed: {e}")))?
}

/// Read the identity file, or create it (mode 0600) if there is none.
fn load_or_create(path: &Path) -> Result<Keys, FleetError> {
    let failed = |what: &str, e: std::io::Error| {
        FleetError::Internal(format!("{what} {}: {e}", path.display()))
    };
    loop {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                restrict_permissions(path);
                let line = text
                    .lines()
                    .map(str::trim)
                    .find(|l| l.starts_with("AGE-SECRET-KEY-"))
                    .ok_or_else(|| {
                        FleetError::Internal(format!(
                            "{} holds no AGE-SECRET-KEY line",
                            path.display()
                        ))
                    })?;
                let identity = x25519::Identity::from_str(line).map_err(|_| {
                    FleetError::Internal(format!(
                        "{} holds an invalid age identity",
                        path.display()
                    ))
                })?;
                let recipient = identity.to_public();
                return Ok(Keys {
                    identity,
                    recipient,
                });
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let identity = x25519::Identity::generate();
                let recipient = identity.to_public();
                let text = Zeroizing::new(format!(
                    "# flotilla credential vault key: every agent's credential vault is encrypted to it.\n\
                     # Back it up with the data dir; without it the vaults cannot be read.\n\
                     # created: {}\n# public key: {recipient}\n{}\n",
                    chrono::Utc::now().to_rfc3339(),
                    identity.to_string().expose_secret()
                ));
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                match options.open(path) {
                    Ok(mut file) => {
                        file.write_all(text.as_bytes())
                            .and_then(|()| file.sync_all())
                            .map_err(|e| failed("writing", e))?;
                        info!(path = %path.display(), "created the credential vault key");
                        return Ok(Keys {
                            identity,
                            recipient,
                        });
                    }
                    // Another process created it first: read theirs.
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(failed("creating", e)),
                }
            }
            Err(e) => return Err(failed("reading", e)),
        }
    }
}

/// Make the key file readable by its owner only, if it is not already.
fn restrict_permissions(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            warn!(path = %path.display(), "the credential vault key was readable by others; restricting it to mode 0600");
            if let Err(error) =
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            {
                warn!(path = %path.display(), %error, "could not restrict the credential vault key");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_is_created_once_with_mode_0600_and_reloaded() {
        let dir = tempfile_dir();
        let path = dir.join(IDENTITY_FILE);
        let first = load_or_create(&path).unwrap();
        let second = load_or_create(&path).unwrap();
        assert_eq!(first.recipient.to_string(), second.recipient.to_string());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            load_or_create(&path).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!("# public key: {}", first.recipient)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("flotilla-vault-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
