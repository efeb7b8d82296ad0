//! Export bundles: an agent's vault files as one ASCII-armored age file, sealed with a
//! passphrase (scrypt), for an age X25519 recipient, or for this server's own key (same-server
//! backups). The payload is the JSON of [`CredentialFiles::encode`](super::CredentialFiles),
//! so `age -d bundle.age | jq` shows it.
//!
//! Cost and abuse bounds (every function here is synchronous CPU work; callers run it on the
//! blocking pool, see [`super::vault::blocking`]):
//! - Passphrase bundles are sealed with a fixed scrypt work factor of 2^[`PASSPHRASE_WORK_FACTOR`]
//!   (64 MiB of memory, about 0.2 s in a release build) instead of age's calibrated ~1 s: the
//!   server seals on request and may be asked often, and a bundle's passphrase is chosen by a
//!   person who can make it long. `age -d` opens such bundles as usual.
//! - Opening accepts at most 2^[`MAX_PASSPHRASE_WORK_FACTOR`] (256 MiB, about 1 s): a bundle made
//!   elsewhere (`age -p` calibrates to its machine) opens if it stays under that; a hostile one
//!   is refused before any key derivation, instead of costing minutes of CPU and gigabytes.
//! - Armored bundles are at most [`MAX_BUNDLE_BYTES`] long and their payload is read with a cap,
//!   so neither can make the server buffer more than a vault's worth.
//! - A wrong key, a damaged or altered bundle, or an unknown format is `Invalid` (422) and
//!   nothing is written: the whole payload is authenticated before any file is used.

use std::io::{Read, Write};
use std::str::FromStr;

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use age::secrecy::{ExposeSecret, SecretString};
use age::{DecryptError, Decryptor, Encryptor, scrypt, x25519};
use zeroize::Zeroizing;

use crate::error::FleetError;

/// log2 of the scrypt work factor bundles are sealed with.
pub const PASSPHRASE_WORK_FACTOR: u8 = 16;
/// Largest log2 scrypt work factor accepted when opening a bundle.
pub const MAX_PASSPHRASE_WORK_FACTOR: u8 = 18;
/// Longest armored bundle accepted. A full vault (1 MiB of files) armors to under 2 MiB.
pub const MAX_BUNDLE_BYTES: usize = 3 * 1024 * 1024;
/// Largest decrypted payload read from a bundle.
const MAX_PLAINTEXT_BYTES: usize = MAX_BUNDLE_BYTES;
/// Shortest passphrase a bundle may be sealed with.
pub const MIN_PASSPHRASE_CHARS: usize = 8;
/// Longest passphrase accepted.
pub const MAX_PASSPHRASE_BYTES: usize = 1024;

/// Whom an export bundle is sealed for.
#[derive(Debug)]
pub enum ExportKey {
    /// This server's vault key: only this server (or a restore of its data dir) can open it.
    Server,
    Passphrase(SecretString),
    /// An age X25519 recipient, `age1...`.
    Recipient(String),
}

impl ExportKey {
    /// From the request's optional fields: at most one of them.
    pub fn from_fields(
        passphrase: Option<String>,
        recipient: Option<String>,
    ) -> Result<Self, FleetError> {
        match (passphrase, recipient) {
            (None, None) => Ok(Self::Server),
            (Some(p), None) => Ok(Self::Passphrase(SecretString::from(p))),
            (None, Some(r)) => Ok(Self::Recipient(r)),
            (Some(p), Some(_)) => {
                super::secret::wipe(p);
                Err(FleetError::invalid(
                    "body",
                    "give a passphrase or a recipient, not both",
                ))
            }
        }
    }

    /// Check what can be checked without age work (the passphrase's length).
    pub(super) fn prepare(self) -> Result<Self, FleetError> {
        if let Self::Passphrase(p) = &self {
            let p = p.expose_secret();
            if p.chars().count() < MIN_PASSPHRASE_CHARS {
                return Err(FleetError::invalid(
                    "passphrase",
                    format!("must be at least {MIN_PASSPHRASE_CHARS} characters"),
                ));
            }
            if p.len() > MAX_PASSPHRASE_BYTES {
                return Err(FleetError::invalid(
                    "passphrase",
                    format!("must be at most {MAX_PASSPHRASE_BYTES} bytes"),
                ));
            }
        }
        Ok(self)
    }

    pub(super) fn sealed_for(&self) -> SealedFor {
        match self {
            Self::Server => SealedFor::Server,
            Self::Passphrase(_) => SealedFor::Passphrase,
            Self::Recipient(_) => SealedFor::Recipient,
        }
    }
}

/// What opens an import bundle.
#[derive(Debug)]
pub enum ImportKey {
    /// This server's vault key (bundles exported with neither passphrase nor recipient).
    Server,
    Passphrase(SecretString),
    /// An age X25519 identity, `AGE-SECRET-KEY-1...`.
    Identity(SecretString),
}

impl ImportKey {
    /// From the request's optional fields: at most one of them.
    pub fn from_fields(
        passphrase: Option<String>,
        identity: Option<String>,
    ) -> Result<Self, FleetError> {
        match (passphrase, identity) {
            (None, None) => Ok(Self::Server),
            (Some(p), None) if p.is_empty() || p.len() > MAX_PASSPHRASE_BYTES => {
                super::secret::wipe(p);
                Err(FleetError::invalid(
                    "passphrase",
                    format!("must be 1 to {MAX_PASSPHRASE_BYTES} bytes"),
                ))
            }
            (Some(p), None) => Ok(Self::Passphrase(SecretString::from(p))),
            (None, Some(i)) => Ok(Self::Identity(SecretString::from(i))),
            (Some(p), Some(i)) => {
                super::secret::wipe(p);
                super::secret::wipe(i);
                Err(FleetError::invalid(
                    "body",
                    "give a passphrase or an identity, not both",
                ))
            }
        }
    }
}

/// Whom a bundle was sealed for, as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedFor {
    Server,
    Passphrase,
    Recipient,
}

impl SealedFor {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Passphrase => "passphrase",
            Self::Recipient => "recipient",
        }
    }
}

/// `TooLarge` for a bundle longer than [`MAX_BUNDLE_BYTES`].
pub(super) fn check_size(armored: &str) -> Result<(), FleetError> {
    if armored.len() > MAX_BUNDLE_BYTES {
        return Err(FleetError::TooLarge(format!(
            "bundle: is {} bytes; at most {MAX_BUNDLE_BYTES} are accepted",
            armored.len()
        )));
    }
    Ok(())
}

fn internal(e: impl std::fmt::Display) -> FleetError {
    FleetError::Internal(format!("sealing a credential bundle: {e}"))
}

/// Seal `plaintext` for `key` (the server's own recipient is `server`), ASCII-armored.
pub(super) fn seal(
    plaintext: &[u8],
    key: ExportKey,
    server: &x25519::Recipient,
) -> Result<String, FleetError> {
    let passphrase_recipient;
    let other_recipient;
    let recipient: &dyn age::Recipient = match key {
        ExportKey::Server => server,
        ExportKey::Recipient(text) => {
            other_recipient = x25519::Recipient::from_str(text.trim()).map_err(|_| {
                FleetError::invalid("recipient", "is not an age X25519 recipient (age1...)")
            })?;
            &other_recipient
        }
        ExportKey::Passphrase(passphrase) => {
            let mut r = scrypt::Recipient::new(passphrase);
            r.set_work_factor(PASSPHRASE_WORK_FACTOR);
            passphrase_recipient = r;
            &passphrase_recipient
        }
    };
    let encryptor = Encryptor::with_recipients(std::iter::once(recipient)).map_err(internal)?;
    let mut out = Vec::with_capacity(plaintext.len() * 3 / 2 + 1024);
    let armor = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor).map_err(internal)?;
    let mut writer = encryptor.wrap_output(armor).map_err(internal)?;
    writer.write_all(plaintext).map_err(internal)?;
    writer
        .finish()
        .and_then(|armor| armor.finish())
        .map_err(internal)?;
    String::from_utf8(out).map_err(internal)
}

fn damaged() -> FleetError {
    FleetError::invalid(
        "bundle",
        "is not an intact age bundle (it is damaged, altered, or not an age file)",
    )
}

/// The whole synchronous import path of `POST .../credentials/import` after the HTTP layer:
/// open the bundle with `key`, then decode and validate its files like client input. The
/// scrypt work factor of a passphrase bundle is capped at `max_work_factor` (the server passes
/// [`MAX_PASSPHRASE_WORK_FACTOR`]; the fuzz target, `fuzz/`, passes a cheap one). CPU work: run
/// it off the async threads.
pub fn open_files(
    armored: &[u8],
    key: ImportKey,
    server: &x25519::Identity,
    max_work_factor: u8,
) -> Result<super::CredentialFiles, FleetError> {
    let plaintext = open_capped(
        armored,
        key,
        server,
        max_work_factor.min(MAX_PASSPHRASE_WORK_FACTOR),
    )?;
    super::CredentialFiles::decode("bundle", &plaintext)
}

/// Open an armored (or binary) age bundle with `key` (`server` is this server's identity) and
/// return its whole, authenticated payload.
#[cfg(test)]
pub(super) fn open(
    armored: &[u8],
    key: ImportKey,
    server: &x25519::Identity,
) -> Result<Zeroizing<Vec<u8>>, FleetError> {
    open_capped(armored, key, server, MAX_PASSPHRASE_WORK_FACTOR)
}

/// [`open`], accepting at most 2^`max_work_factor` of scrypt work.
fn open_capped(
    armored: &[u8],
    key: ImportKey,
    server: &x25519::Identity,
    max_work_factor: u8,
) -> Result<Zeroizing<Vec<u8>>, FleetError> {
    let decryptor = Decryptor::new_buffered(ArmoredReader::new(armored)).map_err(|_| damaged())?;
    let sealed_with_passphrase = decryptor.is_scrypt();
    let passphrase_identity;
    let other_identity;
    let (identity, field): (&dyn age::Identity, &str) = match key {
        ImportKey::Passphrase(passphrase) => {
            if !sealed_with_passphrase {
                return Err(FleetError::invalid(
                    "passphrase",
                    "this bundle is not sealed with a passphrase; give the identity it was sealed for, or neither if this server sealed it",
                ));
            }
            let mut id = scrypt::Identity::new(passphrase);
            id.set_max_work_factor(max_work_factor);
            passphrase_identity = id;
            (&passphrase_identity, "passphrase")
        }
        ImportKey::Identity(text) => {
            if sealed_with_passphrase {
                return Err(FleetError::invalid(
                    "identity",
                    "this bundle is sealed with a passphrase; give the passphrase instead",
                ));
            }
            other_identity =
                x25519::Identity::from_str(text.expose_secret().trim()).map_err(|_| {
                    FleetError::invalid(
                        "identity",
                        "is not an age X25519 identity (AGE-SECRET-KEY-1...)",
                    )
                })?;
            (&other_identity, "identity")
        }
        ImportKey::Server => {
            if sealed_with_passphrase {
                return Err(FleetError::invalid(
                    "passphrase",
                    "this bundle is sealed with a passphrase; give it",
                ));
            }
            (server, "bundle")
        }
    };
    let reader = decryptor
        .decrypt(std::iter::once(identity))
        .map_err(|e| refused(e, field, max_work_factor))?;
    let mut plaintext = Zeroizing::new(Vec::new());
    reader
        .take(MAX_PLAINTEXT_BYTES as u64 + 1)
        .read_to_end(&mut plaintext)
        .map_err(|_| damaged())?;
    if plaintext.len() > MAX_PLAINTEXT_BYTES {
        return Err(FleetError::TooLarge(format!(
            "bundle: holds more than {MAX_PLAINTEXT_BYTES} bytes"
        )));
    }
    Ok(plaintext)
}

/// Why `key` (named by `field`) did not open the bundle.
fn refused(e: DecryptError, field: &str, max_work_factor: u8) -> FleetError {
    match e {
        DecryptError::ExcessiveWork { required, .. } => FleetError::invalid(
            "bundle",
            format!(
                "is sealed with a passphrase work factor of 2^{required}; this server accepts at most 2^{max_work_factor}"
            ),
        ),
        DecryptError::DecryptionFailed if field == "passphrase" => {
            FleetError::invalid("passphrase", "does not open this bundle")
        }
        DecryptError::NoMatchingKeys if field == "identity" => FleetError::invalid(
            "identity",
            "does not open this bundle (it was sealed for another recipient)",
        ),
        DecryptError::NoMatchingKeys => FleetError::invalid(
            "bundle",
            "was not sealed for this server; give the passphrase or the identity it was sealed for",
        ),
        _ => damaged(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> x25519::Identity {
        x25519::Identity::generate()
    }

    fn pass(p: &str) -> SecretString {
        SecretString::from(p.to_string())
    }

    #[test]
    fn bundles_round_trip_for_each_kind_of_key() {
        let server = server();
        let other = x25519::Identity::generate();
        let payload = b"{\"secret\": true}";

        let armored = seal(payload, ExportKey::Server, &server.to_public()).unwrap();
        assert!(armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        let opened = open(armored.as_bytes(), ImportKey::Server, &server).unwrap();
        assert_eq!(&opened[..], payload);

        let recipient = ExportKey::Recipient(other.to_public().to_string());
        let armored = seal(payload, recipient, &server.to_public()).unwrap();
        let key = ImportKey::Identity(other.to_string());
        assert_eq!(
            &open(armored.as_bytes(), key, &server).unwrap()[..],
            payload
        );
        // Not for this server, nor for another identity.
        assert!(matches!(
            open(armored.as_bytes(), ImportKey::Server, &server),
            Err(FleetError::Invalid { field, .. }) if field == "bundle"
        ));
        let stranger = ImportKey::Identity(x25519::Identity::generate().to_string());
        assert!(matches!(
            open(armored.as_bytes(), stranger, &server),
            Err(FleetError::Invalid { field, .. }) if field == "identity"
        ));

        let armored = seal(
            payload,
            ExportKey::Passphrase(pass("correct horse")),
            &server.to_public(),
        )
        .unwrap();
        let opened = open(
            armored.as_bytes(),
            ImportKey::Passphrase(pass("correct horse")),
            &server,
        )
        .unwrap();
        assert_eq!(&opened[..], payload);
        assert!(matches!(
            open(armored.as_bytes(), ImportKey::Passphrase(pass("wrong horse")), &server),
            Err(FleetError::Invalid { field, .. }) if field == "passphrase"
        ));
        assert!(matches!(
            open(armored.as_bytes(), ImportKey::Server, &server),
            Err(FleetError::Invalid { field, .. }) if field == "passphrase"
        ));
    }

    #[test]
    fn altered_or_foreign_input_is_refused_as_damaged() {
        let server = server();
        let armored = seal(b"payload", ExportKey::Server, &server.to_public()).unwrap();
        let mut lines: Vec<String> = armored.lines().map(str::to_string).collect();
        // Flip one base64 character in the body.
        let body = &mut lines[2];
        let c = body.remove(10);
        body.insert(10, if c == 'A' { 'B' } else { 'A' });
        let altered = lines.join("\n");
        assert!(matches!(
            open(altered.as_bytes(), ImportKey::Server, &server),
            Err(FleetError::Invalid { field, .. }) if field == "bundle"
        ));
        for junk in ["", "hello", "-----BEGIN AGE ENCRYPTED FILE-----\n!!\n"] {
            assert!(matches!(
                open(junk.as_bytes(), ImportKey::Server, &server),
                Err(FleetError::Invalid { .. })
            ));
        }
    }

    #[test]
    fn excessive_passphrase_work_is_refused_before_deriving_a_key() {
        let server = server();
        let mut recipient = scrypt::Recipient::new(pass("a passphrase"));
        recipient.set_work_factor(10);
        let sealed = age::encrypt(&recipient, b"x").unwrap();
        // Claim 2^30 in the stanza (`-> scrypt <salt> 10`): deriving that key would take
        // minutes and 128 GiB; it must be refused before any work.
        let text = String::from_utf8_lossy(&sealed).into_owned();
        let line_end = text.find("\n---").unwrap();
        let stanza_start = text.find("-> scrypt ").unwrap();
        let stanza_line_end = stanza_start + text[stanza_start..].find('\n').unwrap();
        assert!(stanza_line_end < line_end);
        let mut hostile = sealed[..stanza_line_end - 2].to_vec();
        hostile.extend_from_slice(b"30");
        hostile.extend_from_slice(&sealed[stanza_line_end..]);
        let started = std::time::Instant::now();
        let result = open(
            &hostile,
            ImportKey::Passphrase(pass("a passphrase")),
            &server,
        );
        assert!(
            matches!(&result, Err(FleetError::Invalid { field, reason }) if field == "bundle" && reason.contains("2^30")),
            "{result:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn keys_are_exclusive() {
        assert!(ExportKey::from_fields(Some("p".into()), Some("r".into())).is_err());
        assert!(ImportKey::from_fields(Some("p".into()), Some("i".into())).is_err());
        assert!(ImportKey::from_fields(Some(String::new()), None).is_err());
        assert!(matches!(
            ExportKey::Passphrase(pass("short")).prepare(),
            Err(FleetError::Invalid { .. })
        ));
        let shown = format!(
            "{:?} {:?}",
            ExportKey::Passphrase(pass("hunter2-secret")),
            ImportKey::Identity(pass("AGE-SECRET-KEY-1XYZ"))
        );
        assert!(
            !shown.contains("hunter2") && !shown.contains("XYZ"),
            "{shown}"
        );
    }
}
