//! SSH access keys: which public keys may log in to which agent until when, and the gateway's
//! own host key.
//!
//! - [`SshKey`] is one public key issued for one agent, with its expiry. Private keys are never
//!   kept: a generated one is handed to the caller once, as a [`Secret`], and dropped.
//! - [`SshKeys`] is the in-memory mirror of the `ssh_key` table that the gateway authenticates
//!   against, so a login costs no database round trip. Like `Accounts` for users, it is written
//!   only by the registry actor, after the store has committed; every change wakes the gateway,
//!   which opens or closes listeners to match. Expiry is checked at every login: an expired key
//!   is refused at once, whether or not anything has cleaned it up.
//! - [`parse_public_key`] accepts exactly the key types flotilla allows (ed25519, ECDSA, RSA of
//!   at least 2048 bits) and [`generate_key_pair`] makes an ed25519 pair; both go through the
//!   `ssh-key` crate russh uses. No cryptography is written here.
//! - [`load_or_create_host_key`] keeps the gateway's ed25519 host key in the data dir (mode
//!   0600), generated on first start, so clients see the same host key across restarts.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use russh::keys::ssh_key::public::KeyData;
use russh::keys::ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey};
use tokio::sync::Notify;
use tracing::{info, warn};
use zeroize::Zeroize;

use crate::error::FleetError;
use crate::model::AgentId;

/// File name of the gateway's host key inside the data dir.
pub const HOST_KEY_FILE: &str = "ssh_host_ed25519_key";

/// Longest public key text accepted (a 16384-bit RSA key is about 2.8 KB).
pub const MAX_PUBLIC_KEY_LEN: usize = 16 * 1024;

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// One public key allowed to log in to one agent until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKey {
    /// Row key, unique per issued key.
    pub id: String,
    pub agent_id: AgentId,
    /// The key in OpenSSH one-line form (`ssh-ed25519 AAAA... comment`).
    pub public_key: String,
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// Username of whoever issued it.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl SshKey {
    /// Whether the key still lets its holder in at `now`.
    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > now
    }
}

/// A secret string (a private key) that never shows in `Debug` output or logs, and is wiped from
/// memory when dropped.
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// An issued key with its parsed form, as the mirror holds it.
#[derive(Debug, Clone)]
struct Entry {
    key: SshKey,
    data: KeyData,
}

/// The in-memory mirror of issued SSH keys (see the module doc). Cheap to clone.
#[derive(Debug, Default, Clone)]
pub struct SshKeys {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Agent id → its issued keys. Written only by the registry actor, after the store
    /// committed; read by the gateway on every login and by the fleet to count keys. No shard
    /// guard is held across anything but the read or write of one entry.
    by_agent: DashMap<AgentId, Vec<Entry>>,
    /// Woken after every change, so the gateway can open or close listeners.
    changed: Notify,
}

impl SshKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// The expiry of `agent`'s key equal to `key`, if it is still valid at `now`.
    pub fn authorize(
        &self,
        agent: AgentId,
        key: &KeyData,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let entries = self.inner.by_agent.get(&agent)?;
        entries
            .iter()
            .filter(|e| e.key.is_valid_at(now) && e.data == *key)
            .map(|e| e.key.expires_at)
            .max()
    }

    /// The agent's keys still valid at `now`, oldest first.
    pub fn active(&self, agent: AgentId, now: DateTime<Utc>) -> Vec<SshKey> {
        let mut keys: Vec<SshKey> = self
            .inner
            .by_agent
            .get(&agent)
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e.key.is_valid_at(now))
                    .map(|e| e.key.clone())
                    .collect()
            })
            .unwrap_or_default();
        keys.sort_by_key(|k| k.created_at);
        keys
    }

    /// Agents with at least one key valid at `now`.
    pub fn agents_with_active(&self, now: DateTime<Utc>) -> Vec<AgentId> {
        self.inner
            .by_agent
            .iter()
            .filter(|e| e.value().iter().any(|k| k.key.is_valid_at(now)))
            .map(|e| *e.key())
            .collect()
    }

    /// Resolves after the next change (or at once if one happened since the last call).
    pub(crate) async fn changed(&self) {
        self.inner.changed.notified().await;
    }

    /// Fill the mirror at start-up: keys valid at `now` are kept, expired ones skipped, and rows
    /// that do not parse reported and skipped (they can never match a login anyway).
    pub(crate) fn load(&self, keys: Vec<SshKey>, now: DateTime<Utc>) {
        for key in keys.into_iter().filter(|k| k.is_valid_at(now)) {
            match PublicKey::from_openssh(&key.public_key) {
                Ok(public) => self.insert(key, public.key_data().clone()),
                Err(error) => {
                    warn!(agent = %key.agent_id, %error, "unreadable stored SSH key skipped")
                }
            }
        }
        self.inner.changed.notify_one();
    }

    /// Add a key the store has just committed, dropping the agent's expired keys (the same
    /// transaction removed their rows).
    pub(crate) fn put(&self, key: SshKey, now: DateTime<Utc>) -> Result<(), FleetError> {
        let public = PublicKey::from_openssh(&key.public_key)
            .map_err(|e| FleetError::Internal(format!("issued SSH key does not parse: {e}")))?;
        if let Some(mut entries) = self.inner.by_agent.get_mut(&key.agent_id) {
            entries.retain(|e| e.key.is_valid_at(now));
        }
        self.insert(key, public.key_data().clone());
        self.inner.changed.notify_one();
        Ok(())
    }

    fn insert(&self, key: SshKey, data: KeyData) {
        self.inner
            .by_agent
            .entry(key.agent_id)
            .or_default()
            .push(Entry { key, data });
    }

    /// Remove one of the agent's keys (`Some(id)`) or all of them; returns how many of the
    /// removed keys were still valid at `now`.
    pub(crate) fn remove(&self, agent: AgentId, key_id: Option<&str>, now: DateTime<Utc>) -> usize {
        let removed = match key_id {
            None => self
                .inner
                .by_agent
                .remove(&agent)
                .map(|(_, entries)| entries)
                .unwrap_or_default(),
            Some(id) => {
                let mut removed = Vec::new();
                if let Some(mut entries) = self.inner.by_agent.get_mut(&agent) {
                    let (gone, kept): (Vec<Entry>, Vec<Entry>) =
                        entries.drain(..).partition(|e| e.key.id == id);
                    *entries = kept;
                    removed = gone;
                }
                self.inner
                    .by_agent
                    .remove_if(&agent, |_, entries| entries.is_empty());
                removed
            }
        };
        self.inner.changed.notify_one();
        removed.iter().filter(|e| e.key.is_valid_at(now)).count()
    }
}

/// Parse a client's public key, accepting only ed25519, ECDSA (NIST P-256/384/521) and RSA keys
/// of at least [`MIN_RSA_BITS`]. The error is a reason for the client; it never repeats the
/// input (which might be a private key pasted by mistake).
pub fn parse_public_key(text: &str) -> Result<PublicKey, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    if text.len() > MAX_PUBLIC_KEY_LEN {
        return Err(format!("must be at most {MAX_PUBLIC_KEY_LEN} bytes"));
    }
    if text.contains("PRIVATE KEY") {
        return Err(
            "looks like a private key; send the public key (the .pub file) and keep the private \
             key to yourself"
                .into(),
        );
    }
    if text.contains(['\n', '\r']) {
        return Err("must be a single line, like 'ssh-ed25519 AAAA... comment'".into());
    }
    let key = PublicKey::from_openssh(text).map_err(|_| {
        "is not an OpenSSH public key (expected a line like 'ssh-ed25519 AAAA... comment')"
            .to_string()
    })?;
    let data = key.key_data();
    if data.is_ed25519() || data.is_ecdsa() {
        return Ok(key);
    }
    if let Some(rsa) = data.rsa() {
        let bits = rsa.n().as_positive_bytes().map_or(0, significant_bits);
        if bits < MIN_RSA_BITS {
            return Err(format!(
                "RSA keys must have at least {MIN_RSA_BITS} bits; this one has {bits}"
            ));
        }
        return Ok(key);
    }
    Err(format!(
        "keys of type '{}' are not accepted; use ed25519, ECDSA or RSA (at least {MIN_RSA_BITS} \
         bits)",
        key.algorithm().as_str()
    ))
}

/// Bits in a big-endian unsigned integer, leading zeros not counted.
fn significant_bits(bytes: &[u8]) -> usize {
    let Some(first) = bytes.iter().position(|b| *b != 0) else {
        return 0;
    };
    let rest = bytes.len() - first - 1;
    rest * 8 + (8 - bytes[first].leading_zeros() as usize)
}

/// The `SHA256:...` fingerprint of a public key.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// A fresh ed25519 key pair: the public key, and the private key in OpenSSH format. Cheap (tens
/// of microseconds), so it runs inline.
pub fn generate_key_pair(comment: &str) -> Result<(PublicKey, Secret), FleetError> {
    let mut private = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
        .map_err(|e| FleetError::Internal(format!("generating an SSH key: {e}")))?;
    private.set_comment(comment);
    let pem = private
        .to_openssh(LineEnding::LF)
        .map_err(|e| FleetError::Internal(format!("encoding an SSH key: {e}")))?;
    Ok((
        private.public_key().clone(),
        Secret(pem.as_str().to_owned()),
    ))
}

/// The gateway's host key, from `dir` (see [`HOST_KEY_FILE`]); generated and written there with
/// mode 0600 the first time. A key file readable by others is tightened to 0600. Blocking file
/// I/O: call it off the async threads.
pub fn load_or_create_host_key(dir: &Path) -> Result<PrivateKey, FleetError> {
    let path = dir.join(HOST_KEY_FILE);
    let fail = |what: &str, e: &dyn fmt::Display| {
        FleetError::Internal(format!("{what} {}: {e}", path.display()))
    };
    match std::fs::read(&path) {
        Ok(pem) => {
            let mode = std::fs::metadata(&path)
                .map_err(|e| fail("reading", &e))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                warn!(path = %path.display(), "SSH host key was readable by others; setting mode 0600");
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| fail("restricting", &e))?;
            }
            let key = PrivateKey::from_openssh(&pem).map_err(|e| fail("parsing", &e))?;
            if key.is_encrypted() {
                return Err(fail("reading", &"the host key is encrypted"));
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| fail("creating the folder of", &e))?;
            let mut key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
                .map_err(|e| fail("generating", &e))?;
            key.set_comment("flotilla-ssh-gateway");
            let pem = key
                .to_openssh(LineEnding::LF)
                .map_err(|e| fail("encoding", &e))?;
            // Written under a temporary name and renamed, so a crash never leaves a partial key.
            let temporary = dir.join(format!("{HOST_KEY_FILE}.tmp"));
            let _ = std::fs::remove_file(&temporary);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temporary)
                .map_err(|e| fail("creating", &e))?;
            file.write_all(pem.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| fail("writing", &e))?;
            std::fs::rename(&temporary, &path).map_err(|e| fail("storing", &e))?;
            info!(path = %path.display(), fingerprint = %fingerprint(key.public_key()), "SSH host key generated");
            Ok(key)
        }
        Err(e) => Err(fail("reading", &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti foo@bar";

    #[test]
    fn accepts_ed25519_and_generated_keys() {
        assert!(parse_public_key(ED25519).is_ok());
        let (public, private) = generate_key_pair("test").unwrap();
        assert!(private.expose().contains("OPENSSH PRIVATE KEY"));
        assert_eq!(format!("{private:?}"), "Secret(***)");
        let text = public.to_openssh().unwrap();
        assert!(text.starts_with("ssh-ed25519 "));
        assert_eq!(
            parse_public_key(&text).unwrap().key_data(),
            public.key_data()
        );
    }

    #[test]
    fn refuses_garbage_private_keys_and_short_rsa() {
        for bad in ["", "hello", "ssh-ed25519 AAAA", "ssh-ed25519 !!!! x"] {
            assert!(parse_public_key(bad).is_err(), "{bad:?}");
        }
        let (_, private) = generate_key_pair("x").unwrap();
        let reason = parse_public_key(private.expose()).unwrap_err();
        assert!(reason.contains("private key"), "{reason}");
        assert!(!reason.contains("BEGIN"), "{reason}");
        // ssh-keygen -t rsa -b 1024 / -b 2048, and -t ecdsa.
        let rsa1024 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDEd2UdZerGcmg1nnBIqjkW2jXLAyKoI9L9JCnGBbes/D23ngomUEhh/Ii4M7H3AUR1ZE2UBqsW7AqiMlc83WCuI65xtbPS/tmeOE6UHjaQdeNAWIhQEOuG9siA8/+wHXEA5sz875dmhq5/Pq6PqMLnKIPNn2rtLPZfQ2Byz+LT+w== x";
        let reason = parse_public_key(rsa1024).unwrap_err();
        assert!(
            reason.contains("2048") && reason.contains("1024"),
            "{reason}"
        );
        let rsa2048 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDnn7hmXFJR4WGjy+G6/hVGiF38aZmLSddyclvgSuNsdpFaKTMPMbN3Ntd96HX1k4R0TItauwdx7LcEo/+COL88bAqda9QnnYkGw5CdxXH+duYzO3j1KmAjD9YvANQKtypel2L3Y1cShk1Wsfbb/2rHwj5HgmvNSkUIc0HjWJFLE7XCXrT+0mwEJhsm73fO3rRoTHunoJfTWTih9iJezFz8/iophaWQTids2c+kxa1f601AYPeBAxdZS9pmVHOxy3OoXjd14GqR+kUpdVTQPOb2Q1Q0fwdaXSb2HiQYgutlXRGFG2eEEsVVi6iiXxm548xQeHJal8bK3FWPWNY6pSd/ x";
        assert!(parse_public_key(rsa2048).is_ok());
        let ecdsa = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBDJ1TG18tDcfix8HwaViE2QBJ/Ib5bBCaHsYEtE+xBPCGmXJN/n+Eys0zu6cF0ky/faC9UVkTGeL0rEySF4pxcc= x";
        assert!(parse_public_key(ecdsa).is_ok());
    }

    #[test]
    fn counts_significant_bits() {
        assert_eq!(significant_bits(&[]), 0);
        assert_eq!(significant_bits(&[0, 0]), 0);
        assert_eq!(significant_bits(&[1]), 1);
        assert_eq!(significant_bits(&[0, 0x80, 0]), 16);
        assert_eq!(significant_bits(&[0x7f; 256]), 2047);
    }

    #[test]
    fn mirror_authorizes_only_valid_keys_of_the_agent() {
        let keys = SshKeys::new();
        let (public, _) = generate_key_pair("k").unwrap();
        let (other, _) = generate_key_pair("o").unwrap();
        let agent = AgentId::new();
        let now = Utc::now();
        let key = SshKey {
            id: "k1".into(),
            agent_id: agent,
            public_key: public.to_openssh().unwrap(),
            fingerprint: fingerprint(&public),
            created_by: "admin".into(),
            created_at: now,
            expires_at: now + chrono::Duration::seconds(60),
        };
        keys.put(key, now).unwrap();
        assert!(keys.authorize(agent, public.key_data(), now).is_some());
        assert!(keys.authorize(agent, other.key_data(), now).is_none());
        assert!(
            keys.authorize(AgentId::new(), public.key_data(), now)
                .is_none()
        );
        let later = now + chrono::Duration::seconds(61);
        assert!(keys.authorize(agent, public.key_data(), later).is_none());
        assert_eq!(keys.agents_with_active(now), vec![agent]);
        assert!(keys.agents_with_active(later).is_empty());
        assert_eq!(keys.remove(agent, None, now), 1);
        assert!(keys.authorize(agent, public.key_data(), now).is_none());
    }

    #[test]
    fn host_key_is_created_once_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("flotilla-hostkey-{}", uuid::Uuid::new_v4()));
        let first = load_or_create_host_key(&dir).unwrap();
        let mode = std::fs::metadata(dir.join(HOST_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = load_or_create_host_key(&dir).unwrap();
        assert_eq!(first.public_key(), second.public_key());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
