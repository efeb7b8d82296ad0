//! Credential files in memory: [`Secret`] contents (zeroed on drop, never printed) keyed by
//! normalised workspace-relative paths, the limits every set of them obeys, and the one
//! plaintext encoding used both inside the vault and inside export bundles.
//!
//! A [`CredentialFiles`] value is valid by construction: every path went through
//! [`crate::files::path::normalize`] (so it stays inside `/home/developer`, has no `..` and no
//! control characters), none is the workspace itself or a runtime's state directory, no path is
//! both a file and the folder of another, and the counts and sizes are within the limits below.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::error::FleetError;
use crate::files::path;

/// Most files a vault (and one injection) may hold.
pub const MAX_FILES: usize = 64;
/// Largest single credential file, in bytes.
pub const MAX_FILE_BYTES: usize = 256 * 1024;
/// Largest total of a vault's (and one injection's) file contents, in bytes.
pub const MAX_TOTAL_BYTES: usize = 1024 * 1024;

/// Paths that name a folder flotilla mounts a volume on: a file cannot replace them.
const RESERVED: &[&str] = &[".claude", ".gemini"];

/// Version tag of the plaintext encoding ([`CredentialFiles::encode`]).
const FORMAT: &str = "flotilla-credentials/v1";

/// The content of one credential file. Zeroed when dropped; its `Debug` shows only the length.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self::new(s.into_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// A validated set of credential files: normalised workspace-relative path → content.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CredentialFiles {
    files: BTreeMap<String, Secret>,
}

impl fmt::Debug for CredentialFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.files.iter().map(|(p, s)| (p, s.len())))
            .finish()
    }
}

impl CredentialFiles {
    /// Validate files a client (or the host directory, or a bundle) supplied. `field` names the
    /// input in errors (`files`, `bundle`). Paths are normalised; two names of one path, a file
    /// that is also another's folder, a reserved path, or a path outside the workspace are
    /// `Invalid`; too many files or too many bytes are `TooLarge`.
    pub fn from_entries(
        field: &str,
        entries: impl IntoIterator<Item = (String, Secret)>,
    ) -> Result<Self, FleetError> {
        let mut files = BTreeMap::new();
        for (raw, content) in entries {
            if files.len() == MAX_FILES {
                return Err(FleetError::TooLarge(format!(
                    "{field}: at most {MAX_FILES} credential files are accepted"
                )));
            }
            let normalised = normalise(field, &raw)?;
            if content.len() > MAX_FILE_BYTES {
                return Err(FleetError::TooLarge(format!(
                    "{field}: '{normalised}' is {} bytes; a credential file may have at most {MAX_FILE_BYTES}",
                    content.len()
                )));
            }
            if files.insert(normalised.clone(), content).is_some() {
                return Err(FleetError::invalid(
                    format!("{field}[{raw:?}]"),
                    format!("names '{normalised}', which another entry names too"),
                ));
            }
        }
        let set = Self { files };
        set.check(field)?;
        Ok(set)
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The paths, sorted.
    pub fn paths(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Secret)> {
        self.files.iter().map(|(p, s)| (p.as_str(), s))
    }

    pub fn total_bytes(&self) -> usize {
        self.files.values().map(Secret::len).sum()
    }

    /// This set with `newer`'s files added, replacing files of the same path; checked against
    /// the limits as a whole (`field` names the input in errors).
    pub fn merged(&self, newer: &CredentialFiles, field: &str) -> Result<Self, FleetError> {
        let mut files = self.files.clone();
        for (path, content) in &newer.files {
            files.insert(path.clone(), content.clone());
        }
        let set = Self { files };
        if set.len() > MAX_FILES {
            return Err(FleetError::TooLarge(format!(
                "{field}: the vault would hold {} files; it may hold at most {MAX_FILES}",
                set.len()
            )));
        }
        set.check(field)?;
        Ok(set)
    }

    /// The limits and the file/folder rule, over the whole set.
    fn check(&self, field: &str) -> Result<(), FleetError> {
        let total = self.total_bytes();
        if total > MAX_TOTAL_BYTES {
            return Err(FleetError::TooLarge(format!(
                "{field}: credential files total {total} bytes; at most {MAX_TOTAL_BYTES} are accepted"
            )));
        }
        // The first path at or after "path/" in sorted order is inside that folder if any is.
        for path in self.files.keys() {
            let folder = format!("{path}/");
            if let Some((inner, _)) = self
                .files
                .range(folder.clone()..)
                .next()
                .filter(|(p, _)| p.starts_with(&folder))
            {
                return Err(FleetError::invalid(
                    field,
                    format!("'{path}' cannot be a file and also the folder of '{inner}'"),
                ));
            }
        }
        Ok(())
    }

    /// The plaintext encoding: JSON `{"format", "files": [{"path", "content"}]}` with contents
    /// in base64 (credential files need not be UTF-8). Readable with `age -d | jq` when it is
    /// the payload of an export bundle. The buffer is zeroed when dropped.
    pub(crate) fn encode(
        &self,
        agent_name: Option<&str>,
    ) -> Result<Zeroizing<Vec<u8>>, FleetError> {
        let entries: Vec<Entry> = self
            .files
            .iter()
            .map(|(path, content)| Entry {
                path: path.clone(),
                content: BASE64.encode(content.expose()),
            })
            .collect();
        let payload = Payload {
            format: FORMAT.to_string(),
            agent_name: agent_name.map(str::to_string),
            exported_at: agent_name.map(|_| chrono::Utc::now()),
            files: entries,
        };
        // Sized up front so the buffer never reallocates (a reallocation would leave a copy of
        // the plaintext behind in freed memory).
        let capacity = 256
            + payload
                .files
                .iter()
                .map(|e| e.content.len() + 2 * e.path.len() + 64)
                .sum::<usize>();
        let mut out = Zeroizing::new(Vec::with_capacity(capacity));
        serde_json::to_writer(&mut *out, &payload)
            .map_err(|e| FleetError::Internal(format!("encoding credentials: {e}")))?;
        Ok(out)
    }

    /// Parse the plaintext encoding and validate it like client input (`field` names the input
    /// in errors). Contents that are not valid base64 or an unknown format are `Invalid`.
    pub(crate) fn decode(field: &str, plaintext: &[u8]) -> Result<Self, FleetError> {
        let payload: Payload = serde_json::from_slice(plaintext)
            .map_err(|_| FleetError::invalid(field, "does not hold flotilla credential files"))?;
        if payload.format != FORMAT {
            return Err(FleetError::invalid(
                field,
                format!(
                    "has format {:?}; this server reads {FORMAT:?}",
                    payload.format
                ),
            ));
        }
        let mut entries = Vec::with_capacity(payload.files.len());
        for entry in &payload.files {
            let content = BASE64.decode(entry.content.as_bytes()).map_err(|_| {
                FleetError::invalid(
                    field,
                    format!("the content of '{}' is not base64", entry.path),
                )
            })?;
            entries.push((entry.path.clone(), Secret::new(content)));
        }
        Self::from_entries(field, entries)
    }
}

/// One file in the plaintext encoding; its base64 content is zeroed when dropped.
#[derive(Serialize, Deserialize)]
struct Entry {
    path: String,
    content: String,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.content.zeroize();
    }
}

#[derive(Serialize, Deserialize)]
struct Payload {
    format: String,
    /// The agent an export bundle was made from (absent inside the vault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    agent_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exported_at: Option<chrono::DateTime<chrono::Utc>>,
    files: Vec<Entry>,
}

/// `raw` as a workspace-relative path, or why it cannot be one.
fn normalise(field: &str, raw: &str) -> Result<String, FleetError> {
    let bad = |reason: String| FleetError::invalid(format!("{field}[{raw:?}]"), reason);
    let components = path::normalize(raw).map_err(|e| bad(e.to_string()))?;
    if components.is_empty() {
        return Err(bad("must name a file inside the workspace".into()));
    }
    let shown = path::display(&components);
    if RESERVED.contains(&shown.as_str()) {
        return Err(bad(format!(
            "'{shown}' is the runtime's state folder, not a file"
        )));
    }
    Ok(shown)
}

/// Zero a string that held secret material before it is dropped.
pub fn wipe(mut s: String) {
    s.zeroize();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(entries: &[(&str, &str)]) -> Result<CredentialFiles, FleetError> {
        CredentialFiles::from_entries(
            "files",
            entries
                .iter()
                .map(|(p, c)| (p.to_string(), Secret::from(c.to_string()))),
        )
    }

    #[test]
    fn paths_are_normalised_and_confined() {
        let set = files(&[
            ("/home/developer/.env", "A=1"),
            ("./.claude/.credentials.json", "{}"),
            ("a/../b.txt", "x"),
        ])
        .unwrap();
        assert_eq!(
            set.paths(),
            vec![".claude/.credentials.json", ".env", "b.txt"]
        );
        for bad in [
            "../x",
            "/etc/passwd",
            "a/../../x",
            "",
            ".",
            "/home/developer",
            "a\nb",
            "x\0",
            ".claude",
            "/home/developer/.gemini/",
        ] {
            match files(&[(bad, "x")]) {
                Err(FleetError::Invalid { .. }) => {}
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn duplicates_and_file_folder_clashes_are_refused() {
        assert!(matches!(
            files(&[(".env", "1"), ("./.env", "2")]),
            Err(FleetError::Invalid { .. })
        ));
        assert!(matches!(
            files(&[("a", "1"), ("a/b", "2")]),
            Err(FleetError::Invalid { .. })
        ));
        assert!(matches!(
            files(&[("a", "1"), ("a-b", "2"), ("a.c", "3"), ("a/b", "4")]),
            Err(FleetError::Invalid { .. })
        ));
        files(&[("a", "1"), ("ab/c", "2"), ("a-b/c", "3")]).unwrap();
        let base = files(&[("dir/x", "1")]).unwrap();
        let clash = files(&[("dir", "2")]).unwrap();
        assert!(matches!(
            base.merged(&clash, "files"),
            Err(FleetError::Invalid { .. })
        ));
    }

    #[test]
    fn limits_are_enforced() {
        let big = "x".repeat(MAX_FILE_BYTES + 1);
        assert!(matches!(
            files(&[("big", &big)]),
            Err(FleetError::TooLarge(_))
        ));
        let quarter = "y".repeat(MAX_FILE_BYTES);
        let names: Vec<String> = (0..5).map(|i| format!("f{i}")).collect();
        let entries: Vec<(&str, &str)> = names
            .iter()
            .map(|n| (n.as_str(), quarter.as_str()))
            .collect();
        assert!(matches!(files(&entries), Err(FleetError::TooLarge(_))));
        let many: Vec<String> = (0..=MAX_FILES).map(|i| format!("f{i}")).collect();
        let entries: Vec<(&str, &str)> = many.iter().map(|n| (n.as_str(), "z")).collect();
        assert!(matches!(files(&entries), Err(FleetError::TooLarge(_))));
        let full = files(&entries[..MAX_FILES]).unwrap();
        let one_more = files(&[("another", "z")]).unwrap();
        assert!(matches!(
            full.merged(&one_more, "files"),
            Err(FleetError::TooLarge(_))
        ));
        // Replacing an existing file does not count twice.
        let replace = files(&[("f0", "new")]).unwrap();
        assert_eq!(full.merged(&replace, "files").unwrap().len(), MAX_FILES);
    }

    #[test]
    fn encoding_round_trips_binary_content() {
        let set = CredentialFiles::from_entries(
            "files",
            [
                (".env".to_string(), Secret::from("KEY=value\n".to_string())),
                (
                    "bin/key".to_string(),
                    Secret::new(vec![0, 159, 146, 150, 255]),
                ),
            ],
        )
        .unwrap();
        let encoded = set.encode(Some("agent")).unwrap();
        assert_eq!(CredentialFiles::decode("bundle", &encoded).unwrap(), set);
        let encoded = set.encode(None).unwrap();
        assert_eq!(CredentialFiles::decode("bundle", &encoded).unwrap(), set);
        assert!(matches!(
            CredentialFiles::decode("bundle", b"{\"format\":\"other\",\"files\":[]}"),
            Err(FleetError::Invalid { .. })
        ));
        assert!(matches!(
            CredentialFiles::decode("bundle", b"not json"),
            Err(FleetError::Invalid { .. })
        ));
    }

    #[test]
    fn debug_never_shows_contents() {
        let set = files(&[(".env", "TOP_SECRET_VALUE=1")]).unwrap();
        let shown = format!("{set:?} {:?}", Secret::from("TOP_SECRET_VALUE".to_string()));
        assert!(!shown.contains("TOP_SECRET"), "{shown}");
        assert!(shown.contains(".env"));
    }
}
