//! The files in an agent's state directory through which flotilla configures its runtime:
//! autonomy (Claude Code's permission mode, Gemini CLI's approval mode), the read-only hook (a
//! second layer under the read-only mount) and `flotilla.json`, the agent's own config file.
//!
//! Pure functions: given the agent record and the runtime's current `settings.json` (which the
//! user or the runtime may have edited), they return the files to write. Only flotilla's own
//! keys are touched; everything else in `settings.json` is kept.

use serde_json::{Map, Value, json};

use crate::model::{AgentRecord, AgentRuntime};

/// Directory (under the state directory) of flotilla's hook script.
pub const HOOKS_DIR: &str = "hooks";
pub const HOOK_SCRIPT: &str = "hooks/flotilla-read-only.sh";
pub const HOOK_PATTERNS: &str = "hooks/flotilla-read-only.patterns";
pub const SETTINGS: &str = "settings.json";
pub const FLOTILLA_CONFIG: &str = "flotilla.json";

/// Tools whose writes the read-only hook inspects (Claude Code).
const WRITE_TOOLS: &str = "Write|Edit|MultiEdit|NotebookEdit";

/// The read-only hook: allowed patterns win, then blocked ones; with no blocked pattern every
/// write is blocked. Exit 2 tells the runtime to refuse the tool call.
const HOOK: &str = r#"#!/bin/sh
# flotilla read-only hook: a second layer under the read-only workspace mount.
# Reads the tool call on stdin; refuses writes to blocked paths (exit 2).
input=$(cat)
path=$(printf '%s' "$input" | sed -n 's/.*"file_path"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' | head -n 1)
[ -z "$path" ] && exit 0
patterns="$(dirname "$0")/flotilla-read-only.patterns"
[ -f "$patterns" ] || exit 0
blocked=0
any_block=0
while read -r kind glob; do
  case "$kind" in
    allow) case "$path" in $glob) exit 0 ;; esac ;;
    block) any_block=1; case "$path" in $glob) blocked=1 ;; esac ;;
  esac
done < "$patterns"
if [ "$any_block" = 0 ] || [ "$blocked" = 1 ]; then
  echo "flotilla: $path is read-only for this agent" >&2
  exit 2
fi
exit 0
"#;

/// A file to write into the state directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StateFile {
    /// Relative to the state directory.
    pub path: &'static str,
    pub content: Vec<u8>,
    pub mode: u32,
}

fn object(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    match value {
        Value::Object(map) => map,
        _ => unreachable!("replaced by an object just above"),
    }
}

fn child<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    object(map.entry(key).or_insert_with(|| json!({})))
}

/// The runtime's `settings.json` with flotilla's keys set from the record.
pub fn settings(record: &AgentRecord, current: Option<&[u8]>) -> Vec<u8> {
    let mut settings: Value = current
        .and_then(|bytes| serde_json::from_slice(bytes).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    let root = object(&mut settings);
    match record.runtime {
        AgentRuntime::ClaudeCode => {
            let mode = if record.autonomy_enabled {
                "bypassPermissions"
            } else {
                "default"
            };
            child(root, "permissions").insert("defaultMode".into(), json!(mode));
            let hooks = child(root, "hooks");
            let pre = hooks.entry("PreToolUse").or_insert_with(|| json!([]));
            if !pre.is_array() {
                *pre = json!([]);
            }
            if let Value::Array(entries) = pre {
                entries.retain(|e| !is_flotilla_hook(e));
                if record.read_only_enabled {
                    entries.push(json!({
                        "matcher": WRITE_TOOLS,
                        "hooks": [{"type": "command", "command": hook_command(record.runtime)}]
                    }));
                }
            }
        }
        AgentRuntime::GeminiCli => {
            // Gemini CLI only accepts full auto-approval ("yolo") on its command line: the
            // settings file gets the most it allows (auto-approving edits); `flotilla.json`
            // carries `approval_mode: yolo` for the launcher.
            let mode = if record.autonomy_enabled {
                "auto_edit"
            } else {
                "default"
            };
            child(root, "general").insert("defaultApprovalMode".into(), json!(mode));
        }
    }
    let mut out = serde_json::to_vec_pretty(&settings).unwrap_or_default();
    out.push(b'\n');
    out
}

fn hook_command(runtime: AgentRuntime) -> String {
    format!("{}/{HOOK_SCRIPT}", crate::agent::spec::state_dir(runtime))
}

fn is_flotilla_hook(entry: &Value) -> bool {
    entry["hooks"].as_array().is_some_and(|hooks| {
        hooks.iter().any(|h| {
            h["command"]
                .as_str()
                .is_some_and(|c| c.ends_with(HOOK_SCRIPT))
        })
    })
}

/// `flotilla.json`: everything flotilla knows about the agent's configuration, for the runtime
/// and its launcher.
pub fn flotilla_config(record: &AgentRecord) -> Vec<u8> {
    let approval = match (record.runtime, record.autonomy_enabled) {
        (_, false) => "default",
        (AgentRuntime::ClaudeCode, true) => "bypassPermissions",
        (AgentRuntime::GeminiCli, true) => "yolo",
    };
    let config = json!({
        "agent_name": record.name,
        "agent_id": record.id.to_string(),
        "runtime": record.runtime,
        "runtime_model": record.runtime_model,
        "autonomy_enabled": record.autonomy_enabled,
        "approval_mode": approval,
        "execution_timeout_seconds": record.execution_timeout_seconds,
        "read_only": {
            "enabled": record.read_only_enabled,
            "blocked_patterns": record.read_only_patterns.blocked_patterns,
            "allowed_patterns": record.read_only_patterns.allowed_patterns,
        }
    });
    let mut out = serde_json::to_vec_pretty(&config).unwrap_or_default();
    out.push(b'\n');
    out
}

/// The patterns file the hook reads: `allow <glob>` and `block <glob>` lines.
pub fn hook_patterns(record: &AgentRecord) -> Vec<u8> {
    let p = &record.read_only_patterns;
    let mut out = String::new();
    for glob in &p.allowed_patterns {
        out.push_str(&format!("allow {glob}\n"));
    }
    for glob in &p.blocked_patterns {
        out.push_str(&format!("block {glob}\n"));
    }
    out.into_bytes()
}

/// Every file flotilla writes into the state directory for this record.
pub fn state_files(record: &AgentRecord, current_settings: Option<&[u8]>) -> Vec<StateFile> {
    vec![
        StateFile {
            path: SETTINGS,
            content: settings(record, current_settings),
            mode: 0o644,
        },
        StateFile {
            path: FLOTILLA_CONFIG,
            content: flotilla_config(record),
            mode: 0o644,
        },
        StateFile {
            path: HOOK_SCRIPT,
            content: HOOK.as_bytes().to_vec(),
            mode: 0o755,
        },
        StateFile {
            path: HOOK_PATTERNS,
            content: hook_patterns(record),
            mode: 0o644,
        },
    ]
}

/// The files as one tar archive to extract at the agent's home: each under the runtime's state
/// directory.
pub fn home_archive(
    runtime: AgentRuntime,
    files: &[StateFile],
) -> Result<bytes::Bytes, crate::error::FleetError> {
    let state_dir = runtime.state_dir();
    let paths: Vec<String> = files
        .iter()
        .map(|f| format!("{state_dir}/{}", f.path))
        .collect();
    let entries: Vec<(&str, &[u8], u32)> = files
        .iter()
        .zip(&paths)
        .map(|(f, path)| (path.as_str(), f.content.as_slice(), f.mode))
        .collect();
    crate::agent::spec::archive(&entries)
}

/// A digest of the files (paths, modes and contents), to tell whether what would be written
/// now is what was written before. Not cryptographic: both sides are flotilla's own.
pub fn digest(files: &[StateFile]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    files.hash(&mut hasher);
    hasher.finish()
}

/// Whether writing `files` would change nothing: the runtime's `settings.json` (`current`)
/// already is the merged one, and the rest is what was last written (`written`, a [`digest`]).
/// flotilla's other files are its own; the agent can still change them while it runs, which is
/// why read-only mode is enforced by the mount and the hook is only a second layer.
pub fn up_to_date(files: &[StateFile], current: Option<&[u8]>, written: Option<u64>) -> bool {
    let settings = files.iter().find(|f| f.path == SETTINGS);
    written == Some(digest(files))
        && settings.is_some_and(|f| current == Some(f.content.as_slice()))
}

/// Check read-only patterns from a client: at most 100 of each, 1–256 printable characters,
/// no spaces at the ends (they are written one per line).
pub fn validate_patterns(patterns: &[String]) -> Result<(), String> {
    if patterns.len() > 100 {
        return Err("at most 100 patterns".into());
    }
    for p in patterns {
        if p.is_empty() || p.len() > 256 {
            return Err("each pattern must be 1 to 256 characters".into());
        }
        if p.chars().any(char::is_control) || p.trim() != p {
            return Err(format!(
                "pattern {p:?} must not contain control characters or surrounding spaces"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AgentId, Phase, ReadOnlyPatterns, Resources};

    fn record(runtime: AgentRuntime) -> AgentRecord {
        AgentRecord {
            id: AgentId::new(),
            name: "a".into(),
            owner: "admin".into(),
            agent_type: "t".into(),
            runtime,
            runtime_model: None,
            template: None,
            resources: Resources::default(),
            custom_instructions: None,
            github_repo: None,
            tags: vec![],
            system: false,
            ssh_port: 2222,
            autonomy_enabled: false,
            read_only_enabled: false,
            read_only_patterns: ReadOnlyPatterns::default(),
            execution_timeout_seconds: 900,
            expose_enabled: false,
            consume_enabled: false,
            avatar_version: 0,
            created: chrono::Utc::now(),
            phase: Phase::Ready,
        }
    }

    #[test]
    fn claude_settings_keep_user_keys_and_toggle_flotilla_ones() {
        let mut r = record(AgentRuntime::ClaudeCode);
        r.autonomy_enabled = true;
        r.read_only_enabled = true;
        let user = br#"{"theme": "dark", "permissions": {"allow": ["Bash(ls)"]},
                        "hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": []}]}}"#;
        let on: Value = serde_json::from_slice(&settings(&r, Some(user))).unwrap();
        assert_eq!(on["theme"], "dark");
        assert_eq!(on["permissions"]["allow"], json!(["Bash(ls)"]));
        assert_eq!(on["permissions"]["defaultMode"], "bypassPermissions");
        assert_eq!(on["hooks"]["PreToolUse"].as_array().unwrap().len(), 2);
        // Applying twice does not duplicate the hook; turning off removes only ours.
        let twice: Value =
            serde_json::from_slice(&settings(&r, Some(&serde_json::to_vec(&on).unwrap()))).unwrap();
        assert_eq!(twice["hooks"]["PreToolUse"].as_array().unwrap().len(), 2);
        r.autonomy_enabled = false;
        r.read_only_enabled = false;
        let off: Value =
            serde_json::from_slice(&settings(&r, Some(&serde_json::to_vec(&twice).unwrap())))
                .unwrap();
        assert_eq!(off["permissions"]["defaultMode"], "default");
        assert_eq!(
            off["hooks"]["PreToolUse"],
            json!([{"matcher": "Bash", "hooks": []}])
        );
    }

    #[test]
    fn files_are_up_to_date_only_when_settings_and_the_last_write_match() {
        let mut r = record(AgentRuntime::ClaudeCode);
        let first = state_files(&r, None);
        let written = Some(digest(&first));
        let on_disk = first[0].content.clone();
        assert_eq!(first[0].path, SETTINGS);
        // What is on disk is what was written: nothing to do.
        let again = state_files(&r, Some(&on_disk));
        assert!(up_to_date(&again, Some(&on_disk), written));
        // Never written by this actor, settings missing, or changed by the agent: write.
        assert!(!up_to_date(&again, Some(&on_disk), None));
        assert!(!up_to_date(&state_files(&r, None), None, written));
        let edited = br#"{"theme":"dark"}"#;
        assert!(!up_to_date(
            &state_files(&r, Some(edited)),
            Some(edited),
            written
        ));
        // The record changed (another file's content): write.
        r.execution_timeout_seconds = 60;
        let changed = state_files(&r, Some(&on_disk));
        assert_eq!(changed[0].content, on_disk);
        assert!(!up_to_date(&changed, Some(&on_disk), written));
    }

    #[test]
    fn the_home_archive_puts_every_file_under_the_state_directory() {
        let r = record(AgentRuntime::GeminiCli);
        let files = state_files(&r, None);
        let tar = home_archive(r.runtime, &files).unwrap();
        let mut archive = tar::Archive::new(tar.as_ref());
        let paths: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .filter(|p| !p.ends_with('/'))
            .collect();
        for f in &files {
            assert!(paths.contains(&format!(".gemini/{}", f.path)), "{paths:?}");
        }
    }

    #[test]
    fn broken_settings_are_replaced_not_fatal() {
        let r = record(AgentRuntime::GeminiCli);
        let out: Value = serde_json::from_slice(&settings(&r, Some(b"{not json"))).unwrap();
        assert_eq!(out["general"]["defaultApprovalMode"], "default");
    }

    #[test]
    fn patterns_are_checked() {
        assert!(validate_patterns(&["*.env".into(), "/home/developer/secret/*".into()]).is_ok());
        assert!(validate_patterns(&["".into()]).is_err());
        assert!(validate_patterns(&["a\nb".into()]).is_err());
        assert!(validate_patterns(&[" x".into()]).is_err());
    }
}
