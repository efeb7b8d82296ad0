//! The host's credential files (`FLOTILLA_HOST_CREDENTIALS_DIR`), for injecting with no body.
//!
//! Layout: `<dir>/<runtime>/...` (`claude-code/.claude/.credentials.json`,
//! `gemini-cli/.gemini/oauth_creds.json`) and `<dir>/common/...` (`common/.env`), each tree laid
//! out as it should appear in the agent's home. A runtime's file wins over a common one of the
//! same path. The walk is synchronous (callers run it on the blocking pool) and bounded: it
//! descends at most [`MAX_DEPTH`] levels, looks at most at [`MAX_ENTRIES`] entries, never
//! follows a symbolic link (one is skipped with a warning: it could point anywhere on the
//! host), skips anything that is not a regular file, and reads each file with a cap, so a
//! misconfigured directory cannot make the server read the host's disk at large.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use tracing::warn;

use super::secret::{CredentialFiles, MAX_FILE_BYTES, MAX_FILES, Secret};
use crate::error::FleetError;
use crate::model::AgentRuntime;

/// Folder levels descended below `<dir>/<runtime>` and `<dir>/common`.
const MAX_DEPTH: usize = 8;
/// Directory entries looked at, over both trees.
const MAX_ENTRIES: usize = 1024;
/// The folder of files every runtime gets.
const COMMON: &str = "common";

/// The host's credential files for `runtime`, validated like client input. `Invalid` when
/// there are none.
pub(super) fn read(dir: &Path, runtime: AgentRuntime) -> Result<CredentialFiles, FleetError> {
    let mut found: BTreeMap<String, Secret> = BTreeMap::new();
    let mut budget = MAX_ENTRIES;
    for folder in [COMMON, runtime.as_str()] {
        walk(&dir.join(folder), &mut found, &mut budget)?;
    }
    if found.is_empty() {
        return Err(FleetError::invalid(
            "files",
            format!(
                "none given, and the server's host credentials directory has nothing for runtime '{runtime}' (in its '{runtime}/' or '{COMMON}/' folders)"
            ),
        ));
    }
    CredentialFiles::from_entries("host credentials", found)
}

/// Add the regular files below `root` to `found`, keyed by their path relative to `root`.
fn walk(
    root: &Path,
    found: &mut BTreeMap<String, Secret>,
    budget: &mut usize,
) -> Result<(), FleetError> {
    match std::fs::symlink_metadata(root) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            warn!(path = %root.display(), "host credentials: not a directory, skipped");
            return Ok(());
        }
        Err(_) => return Ok(()),
    }
    let mut pending: Vec<(std::path::PathBuf, Vec<String>)> = vec![(root.to_path_buf(), vec![])];
    while let Some((folder, relative)) = pending.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(error) => {
                warn!(path = %folder.display(), %error, "host credentials: folder unreadable, skipped");
                continue;
            }
        };
        for entry in entries {
            if *budget == 0 {
                return Err(FleetError::TooLarge(
                    "host credentials: the directory has too many entries to read".into(),
                ));
            }
            *budget -= 1;
            let Ok(entry) = entry else { continue };
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                warn!(path = %path.display(), "host credentials: name is not UTF-8, skipped");
                continue;
            };
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let mut components = relative.clone();
            components.push(name);
            if meta.file_type().is_symlink() {
                warn!(path = %path.display(), "host credentials: symbolic links are not followed, skipped");
            } else if meta.is_dir() {
                if components.len() < MAX_DEPTH {
                    pending.push((path, components));
                } else {
                    warn!(path = %path.display(), "host credentials: too deep, skipped");
                }
            } else if meta.is_file() {
                let key = components.join("/");
                if !found.contains_key(&key) && found.len() == MAX_FILES {
                    return Err(FleetError::TooLarge(format!(
                        "host credentials: more than {MAX_FILES} files"
                    )));
                }
                let content = read_capped(&path)?;
                found.insert(key, content);
            }
        }
    }
    Ok(())
}

/// A regular file's bytes, or `TooLarge` past [`MAX_FILE_BYTES`].
fn read_capped(path: &Path) -> Result<Secret, FleetError> {
    let too_large = || {
        FleetError::TooLarge(format!(
            "host credentials: a file is larger than {MAX_FILE_BYTES} bytes"
        ))
    };
    let file = std::fs::File::open(path).map_err(|e| {
        FleetError::Internal(format!("reading host credentials {}: {e}", path.display()))
    })?;
    if file.metadata().map(|m| m.len()).unwrap_or(0) > MAX_FILE_BYTES as u64 {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            FleetError::Internal(format!("reading host credentials {}: {e}", path.display()))
        })?;
    let secret = Secret::new(bytes);
    if secret.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("flotilla-host-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn put(root: &Path, path: &str, content: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    #[test]
    fn runtime_files_win_over_common_ones_and_links_are_skipped() {
        let root = dir();
        put(&root, "common/.env", "A=1\n");
        put(&root, "common/shared.txt", "common");
        put(&root, "claude-code/.claude/.credentials.json", "{}");
        put(&root, "claude-code/shared.txt", "runtime");
        put(&root, "gemini-cli/.gemini/oauth_creds.json", "{}");
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc/passwd", root.join("common/passwd")).unwrap();

        let files = read(&root, AgentRuntime::ClaudeCode).unwrap();
        assert_eq!(
            files.paths(),
            vec![".claude/.credentials.json", ".env", "shared.txt"]
        );
        let shared = files.iter().find(|(p, _)| *p == "shared.txt").unwrap().1;
        assert_eq!(shared.expose(), b"runtime");
        let files = read(&root, AgentRuntime::GeminiCli).unwrap();
        assert_eq!(
            files.paths(),
            vec![".env", ".gemini/oauth_creds.json", "shared.txt"]
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn nothing_for_the_runtime_is_invalid_and_big_files_are_refused() {
        let root = dir();
        put(&root, "gemini-cli/.gemini/oauth_creds.json", "{}");
        assert!(matches!(
            read(&root, AgentRuntime::ClaudeCode),
            Err(FleetError::Invalid { .. })
        ));
        assert!(matches!(
            read(&root.join("missing"), AgentRuntime::ClaudeCode),
            Err(FleetError::Invalid { .. })
        ));
        put(&root, "common/big", &"x".repeat(MAX_FILE_BYTES + 1));
        assert!(matches!(
            read(&root, AgentRuntime::GeminiCli),
            Err(FleetError::TooLarge(_))
        ));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
