//! Context-window figures of every agent, read from the runtime's own transcripts in the
//! agent's state volume (`GET /api/agents/context-stats`).
//!
//! ## Where the figures come from
//! - **Claude Code** writes one JSONL transcript per session,
//!   `~/.claude/projects/<cwd with / as ->/<session id>.jsonl`. Every assistant line carries the
//!   API's `message.usage`; the context in use is the *last* main-chain assistant message's
//!   `input_tokens + cache_creation_input_tokens + cache_read_input_tokens` (what the model read
//!   for that turn). Lines of sub-agents (`isSidechain: true`, or their own `agent-*.jsonl`
//!   files and `<session>/subagents/` folders) and synthetic error messages (model
//!   `<synthetic>`) are skipped; a `compact_boundary` system line after the last assistant
//!   message means the context was just compacted, shown as 0 until the next answer.
//! - **Gemini CLI** records sessions as `~/.gemini/tmp/<project>/chats/session-<time>-<id>.jsonl`
//!   (gemini-cli ≥ 0.3x: a metadata line, then one line per message, a message re-appended
//!   whole when it changes, `{"$set": ...}` metadata updates and `{"$rewindTo": id}`), or, in
//!   older versions, one pretty-printed `session-*.json` holding `{"messages": [...]}`. A
//!   `gemini` message's `tokens.input` (the API's `promptTokenCount`, cached tokens included)
//!   is the context in use; the last message that has tokens counts. Sub-agent chats (in a
//!   folder below `chats/`) are skipped. This is the format as read from gemini-cli's
//!   `chatRecordingService.ts`; nothing here depends on fields beyond `id`, `type`, `tokens`,
//!   `model`, `$set.messages` and `$rewindTo`.
//!
//! ## Context window (`contextMax`)
//! | runtime | model name | window |
//! |---|---|---|
//! | claude-code | has a `1m` word (`sonnet[1m]`, `claude-sonnet-4-5[1m]`, `...-1m`) | 1 000 000 |
//! | claude-code | anything else, or none | 200 000 |
//! | gemini-cli | contains `1.5-pro` | 2 097 152 |
//! | gemini-cli | anything else, or none | 1 048 576 (gemini-cli's own `tokenLimit`) |
//!
//! The name looked at is the agent's configured `runtime_model`, then the model named in the
//! transcript. Claude's transcripts never say `[1m]`, so a Claude context above 200 000 tokens
//! means the session runs with the 1M window and is shown against 1 000 000.
//!
//! ## Activity
//! `offline` when the agent is not running; `active` when its transcript changed in the last
//! [`ACTIVE_WINDOW`]; `idle` otherwise. `lastActivityTime` is the transcript's modification time.
//!
//! ## Bounded cost
//! Transcripts are read through the runtime's archive API (so stopped agents answer too) and
//! the archive API has no directory listing: finding the newest transcript means reading an
//! archive of the whole transcript folder. That full scan skips every file's data as it streams
//! past except the newest-so-far candidate's, of which only the last [`TAIL_BYTES`] are kept
//! (the context is in the last lines). It is made once, then only when a watched folder changes:
//! - a cheap check (one `stat` per watched folder — the root, each project folder, each Gemini
//!   `chats` folder — and one of the newest transcript) answers most refreshes without reading
//!   anything; a new session file changes its folder's mtime and triggers a full scan;
//! - if only the newest transcript grew, just that file is fetched (again keeping its tail).
//!
//! An assumption follows: a *resumed older* session (appending to a transcript that is not the
//! newest, without creating a file) is noticed at the next folder change. Claude Code and
//! Gemini CLI both start a new file for a resumed session in their current versions.
//!
//! ## Concurrency and the cache
//! Results are cached per agent for [`CACHE_TTL`]. A request refreshes every stale agent at once,
//! each refresh on a task of its own that runs to completion (bounded by the Docker timeout and
//! [`MAX_SCAN_BYTES`]) even if the request stops waiting, at most [`CONCURRENCY`] of them against
//! Docker at a time across all requests, and one at a time per agent (a second request joins the
//! refresh in flight). A request waits at most [`WAIT`] for them together, then answers with
//! what is known — the previous figures, or none yet — so a call over hundreds of agents stays
//! within about [`WAIT`] even on a cold cache.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use futures_util::{StreamExt, TryStreamExt};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio_util::io::{StreamReader, SyncIoBridge};
use tracing::debug;

use crate::agent::spec::HOME;
use crate::directory::Directory;
use crate::fleet::Fleet;
use crate::model::{AgentId, AgentRuntime, AgentView, Principal, Status};
use crate::runtime::{ContainerRuntime, RuntimeError};

/// A transcript changed this recently means the agent is working.
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(60);
/// How long an agent's figures are reused before they are checked again.
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// How long a request waits for the refreshes it needs (together, not each).
pub const WAIT: Duration = Duration::from_secs(3);
/// Refreshes reading from Docker at once, across all requests.
pub const CONCURRENCY: usize = 16;
/// Bytes kept from the end of the newest transcript.
pub const TAIL_BYTES: usize = 1024 * 1024;
/// Most bytes one full scan of a transcript folder reads from Docker before giving up.
pub const MAX_SCAN_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Claude's standard context window, and its 1M-token one.
pub const CLAUDE_WINDOW: u64 = 200_000;
pub const CLAUDE_1M_WINDOW: u64 = 1_000_000;
/// Gemini CLI's window for its current models, and Gemini 1.5 Pro's.
pub const GEMINI_WINDOW: u64 = 1_048_576;
pub const GEMINI_15_PRO_WINDOW: u64 = 2_097_152;

/// What an agent is doing, as far as its transcript tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Not running.
    Offline,
    /// Running; its transcript has not changed within [`ACTIVE_WINDOW`].
    Idle,
    /// Running, and its transcript changed within [`ACTIVE_WINDOW`].
    Active,
}

impl Activity {
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::Offline => "offline",
            Activity::Idle => "idle",
            Activity::Active => "active",
        }
    }
}

/// One agent's context figures.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentContext {
    pub name: String,
    pub status: Status,
    pub activity: Activity,
    /// Tokens in the context at the last answer; 0 when unknown.
    pub context_used: u64,
    pub context_max: u64,
    /// `context_used / context_max`, in percent, one decimal, at most 100.
    pub context_percent: f64,
    /// When the newest transcript last changed.
    pub last_activity: Option<DateTime<Utc>>,
}

/// What a transcript's tail says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TranscriptFacts {
    /// Tokens in the context at the last answer, if any answer was found.
    pub used: Option<u64>,
    /// The model that gave that answer.
    pub model: Option<String>,
}

// ---- parsing (pure) -------------------------------------------------------------------------

/// The complete lines of `tail`: when the tail was `cut` from a longer file its first line is
/// partial and dropped.
fn lines(tail: &[u8], cut: bool) -> impl Iterator<Item = &[u8]> {
    let start = if cut {
        tail.iter()
            .position(|b| *b == b'\n')
            .map_or(tail.len(), |i| i + 1)
    } else {
        0
    };
    tail[start..]
        .split(|b| *b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
}

#[derive(Deserialize)]
struct ClaudeLine {
    #[serde(rename = "type")]
    kind: Option<String>,
    subtype: Option<String>,
    #[serde(rename = "isSidechain", default)]
    sidechain: bool,
    message: Option<ClaudeMessage>,
}

#[derive(Deserialize)]
struct ClaudeMessage {
    model: Option<String>,
    usage: Option<ClaudeUsage>,
}

#[derive(Deserialize)]
struct ClaudeUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
}

/// The context in use according to the tail of a Claude Code JSONL transcript (see the module
/// doc). Unparseable lines are skipped.
pub fn claude_facts(tail: &[u8], cut: bool) -> TranscriptFacts {
    let mut facts = TranscriptFacts::default();
    for line in lines(tail, cut) {
        let Ok(line) = serde_json::from_slice::<ClaudeLine>(line) else {
            continue;
        };
        match line.kind.as_deref() {
            Some("assistant") if !line.sidechain => {
                let Some(message) = line.message else {
                    continue;
                };
                let Some(usage) = message.usage else {
                    continue;
                };
                if message.model.as_deref() == Some("<synthetic>") {
                    continue;
                }
                facts.used = Some(
                    usage
                        .input_tokens
                        .saturating_add(usage.cache_creation_input_tokens)
                        .saturating_add(usage.cache_read_input_tokens),
                );
                facts.model = message.model.or(facts.model);
            }
            Some("system") if line.subtype.as_deref() == Some("compact_boundary") => {
                facts.used = Some(0);
            }
            _ => {}
        }
    }
    facts
}

#[derive(Deserialize)]
struct GeminiRecord {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    tokens: Option<GeminiTokens>,
    model: Option<String>,
    #[serde(rename = "$rewindTo")]
    rewind_to: Option<String>,
    #[serde(rename = "$set")]
    set: Option<GeminiSet>,
    /// Legacy single-JSON sessions.
    messages: Option<Vec<GeminiRecord>>,
}

#[derive(Deserialize)]
struct GeminiSet {
    messages: Option<Vec<GeminiRecord>>,
}

#[derive(Deserialize)]
struct GeminiTokens {
    #[serde(default)]
    input: u64,
}

/// A Gemini message as far as the context is concerned.
struct GeminiTurn {
    id: String,
    used: Option<u64>,
    model: Option<String>,
}

fn gemini_turn(record: GeminiRecord) -> Option<GeminiTurn> {
    Some(GeminiTurn {
        id: record.id?,
        used: (record.kind.as_deref() == Some("gemini"))
            .then_some(record.tokens.map(|t| t.input))
            .flatten(),
        model: record.model,
    })
}

fn gemini_last(turns: &[GeminiTurn]) -> TranscriptFacts {
    turns
        .iter()
        .rev()
        .find_map(|t| {
            Some(TranscriptFacts {
                used: Some(t.used?),
                model: t.model.clone(),
            })
        })
        .unwrap_or_default()
}

/// The context in use according to the tail of a Gemini CLI JSONL session (see the module
/// doc). A rewind to a message before the tail clears what the tail had.
pub fn gemini_jsonl_facts(tail: &[u8], cut: bool) -> TranscriptFacts {
    let mut turns: Vec<GeminiTurn> = Vec::new();
    for line in lines(tail, cut) {
        let Ok(record) = serde_json::from_slice::<GeminiRecord>(line) else {
            continue;
        };
        if let Some(target) = &record.rewind_to {
            match turns.iter().position(|t| &t.id == target) {
                Some(i) => turns.truncate(i),
                None => turns.clear(),
            }
            continue;
        }
        if let Some(GeminiSet {
            messages: Some(messages),
        }) = record.set
        {
            turns = messages.into_iter().filter_map(gemini_turn).collect();
            continue;
        }
        let Some(turn) = gemini_turn(record) else {
            continue;
        };
        match turns.iter_mut().find(|t| t.id == turn.id) {
            Some(existing) => *existing = turn,
            None => turns.push(turn),
        }
    }
    gemini_last(&turns)
}

/// The context in use according to a whole legacy Gemini CLI session (`session-*.json`).
pub fn gemini_json_facts(content: &[u8]) -> TranscriptFacts {
    let Ok(record) = serde_json::from_slice::<GeminiRecord>(content) else {
        return TranscriptFacts::default();
    };
    let turns: Vec<GeminiTurn> = record
        .messages
        .unwrap_or_default()
        .into_iter()
        .filter_map(gemini_turn)
        .collect();
    gemini_last(&turns)
}

/// Whether a model name says it has the 1M-token window: a `1m` word (`sonnet[1m]`,
/// `claude-sonnet-4-5-1m`), case-insensitive.
fn says_1m(model: &str) -> bool {
    model
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| word.eq_ignore_ascii_case("1m"))
}

/// The context window for an agent (see the table in the module doc).
pub fn context_max(
    runtime: AgentRuntime,
    configured: Option<&str>,
    observed: Option<&str>,
    used: u64,
) -> u64 {
    let names = || configured.into_iter().chain(observed);
    match runtime {
        AgentRuntime::ClaudeCode => {
            if names().any(says_1m) || used > CLAUDE_WINDOW {
                CLAUDE_1M_WINDOW
            } else {
                CLAUDE_WINDOW
            }
        }
        AgentRuntime::GeminiCli => {
            if names().any(|m| m.to_ascii_lowercase().contains("1.5-pro")) {
                GEMINI_15_PRO_WINDOW
            } else {
                GEMINI_WINDOW
            }
        }
    }
}

/// `used` in percent of `max`, one decimal, within 0–100.
pub fn percent(used: u64, max: u64) -> f64 {
    if max == 0 {
        return 0.0;
    }
    let p = (used as f64 / max as f64 * 100.0).min(100.0);
    (p * 10.0).round() / 10.0
}

/// What the agent is doing: offline unless running; active if the transcript changed within
/// [`ACTIVE_WINDOW`] of `now`.
pub fn activity(status: Status, modified: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Activity {
    if status != Status::Running {
        return Activity::Offline;
    }
    let window = chrono::Duration::from_std(ACTIVE_WINDOW).unwrap_or(chrono::Duration::MAX);
    match modified {
        Some(t) if now - t <= window => Activity::Active,
        _ => Activity::Idle,
    }
}

// ---- where transcripts live -------------------------------------------------------------------

/// The transcript layout of a runtime, relative to its transcript root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Claude,
    Gemini,
}

impl Layout {
    fn of(runtime: AgentRuntime) -> Self {
        match runtime {
            AgentRuntime::ClaudeCode => Layout::Claude,
            AgentRuntime::GeminiCli => Layout::Gemini,
        }
    }

    /// The folder holding every transcript, inside the runtime's state volume.
    fn root(self) -> String {
        match self {
            Layout::Claude => format!("{HOME}/.claude/projects"),
            Layout::Gemini => format!("{HOME}/.gemini/tmp"),
        }
    }

    /// Whether a file at `path` (components below the root) is a main-session transcript.
    fn is_transcript(self, path: &[String]) -> bool {
        match (self, path) {
            (Layout::Claude, [_, file]) => file.ends_with(".jsonl") && !file.starts_with("agent-"),
            (Layout::Gemini, [_, chats, file]) => {
                chats == "chats"
                    && file.starts_with("session-")
                    && (file.ends_with(".jsonl") || file.ends_with(".json"))
            }
            _ => false,
        }
    }

    /// Whether a folder at `path` is one a new transcript would appear in (or above): its
    /// mtime changes when one does.
    fn is_watched(self, path: &[String]) -> bool {
        match (self, path) {
            (_, []) | (_, [_]) => true,
            (Layout::Gemini, [_, chats]) => chats == "chats",
            _ => false,
        }
    }

    fn facts(self, path: &str, tail: &[u8], cut: bool) -> TranscriptFacts {
        match self {
            Layout::Claude => claude_facts(tail, cut),
            Layout::Gemini if path.ends_with(".json") => {
                if cut {
                    TranscriptFacts::default()
                } else {
                    gemini_json_facts(tail)
                }
            }
            Layout::Gemini => gemini_jsonl_facts(tail, cut),
        }
    }
}

// ---- reading archives (blocking) --------------------------------------------------------------

/// A file found in an archive, with the end of its content.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    /// Components below the archived folder (empty when a single file was archived).
    path: Vec<String>,
    size: u64,
    /// Modification time, whole seconds.
    modified: i64,
    /// The last [`TAIL_BYTES`] (at most) of the file.
    tail: Vec<u8>,
    /// The file was longer than `tail`.
    cut: bool,
}

/// What one pass over an archive found.
#[derive(Debug)]
struct Scan {
    newest: Option<Found>,
    /// Watched folders and their mtimes (whole seconds).
    folders: Vec<(Vec<String>, i64)>,
}

/// Read a tar archive once (blocking): keep the tail of the newest file `wanted` accepts, and
/// the mtimes of the folders `watched` accepts. Every other file's data is skipped as it
/// streams past. Paths are taken below the archived folder (its own name comes first).
fn scan_archive<R: Read>(
    reader: R,
    wanted: impl Fn(&[String]) -> bool,
    watched: impl Fn(&[String]) -> bool,
    tail_bytes: usize,
) -> io::Result<Scan> {
    let mut archive = tar::Archive::new(reader);
    let mut scan = Scan {
        newest: None,
        folders: Vec::new(),
    };
    for entry in archive.entries()? {
        let mut entry = entry?;
        let Some(path) = below_root(&entry.path_bytes()) else {
            continue;
        };
        let header = entry.header();
        let kind = header.entry_type();
        let modified = header
            .mtime()
            .ok()
            .and_then(|t| i64::try_from(t).ok())
            .unwrap_or(0);
        if kind.is_dir() {
            if watched(&path) {
                scan.folders.push((path, modified));
            }
            continue;
        }
        if !(kind.is_file() || kind.is_contiguous()) || !wanted(&path) {
            continue;
        }
        let size = entry.size();
        let newer = scan
            .newest
            .as_ref()
            .is_none_or(|best| (modified, size) > (best.modified, best.size));
        if newer {
            let (tail, cut) = read_tail(&mut entry, tail_bytes)?;
            scan.newest = Some(Found {
                path,
                size,
                modified,
                tail,
                cut,
            });
        }
    }
    Ok(scan)
}

/// The last `keep` bytes of `reader`, and whether anything before them was dropped. Memory
/// stays below `2 × keep` however long the input.
fn read_tail(reader: &mut impl Read, keep: usize) -> io::Result<(Vec<u8>, bool)> {
    let mut buf = Vec::with_capacity(keep.min(64 * 1024) * 2);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut cut = false;
    loop {
        let n = reader.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > keep * 2 {
            buf.drain(..buf.len() - keep);
            cut = true;
        }
    }
    if buf.len() > keep {
        buf.drain(..buf.len() - keep);
        cut = true;
    }
    Ok((buf, cut))
}

/// An archive path's components below the archived folder, or `None` for one that climbs.
fn below_root(raw: &[u8]) -> Option<Vec<String>> {
    let mut parts = raw
        .split(|b| *b == b'/')
        .filter(|p| !p.is_empty() && *p != b".");
    parts.next()?;
    parts
        .map(|p| (p != b"..").then(|| String::from_utf8_lossy(p).into_owned()))
        .collect()
}

/// Stops reading with an error after a byte budget.
struct Budget<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Budget<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::other(
                "the transcript folder is too large to scan",
            ));
        }
        let max = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Sets its flag when dropped: the refresh was given up, so the blocking reader should stop.
struct Abandon(Arc<AtomicBool>);

impl Drop for Abandon {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Archive `path` in `container` and scan it on the blocking pool. `Ok(None)` when the path
/// does not exist.
async fn scan_path(
    runtime: &Arc<dyn ContainerRuntime>,
    container: &str,
    path: &str,
    wanted: impl Fn(&[String]) -> bool + Send + 'static,
    watched: impl Fn(&[String]) -> bool + Send + 'static,
) -> Result<Option<Scan>, RuntimeError> {
    let fault: Arc<Mutex<Option<RuntimeError>>> = Arc::new(Mutex::new(None));
    let abandoned = Arc::new(AtomicBool::new(false));
    let _abandon_on_drop = Abandon(abandoned.clone());
    let stream = {
        let fault = fault.clone();
        runtime
            .archive(container, path)
            .map(move |chunk| {
                if abandoned.load(Ordering::Relaxed) {
                    return Err(RuntimeError::Other("abandoned".into()));
                }
                chunk
            })
            .map_err(move |e| {
                let message = e.to_string();
                if let Ok(mut slot) = fault.lock() {
                    slot.get_or_insert(e);
                }
                io::Error::other(message)
            })
    };
    let reader = Budget {
        inner: SyncIoBridge::new(StreamReader::new(stream)),
        left: MAX_SCAN_BYTES,
    };
    let scanned =
        tokio::task::spawn_blocking(move || scan_archive(reader, wanted, watched, TAIL_BYTES))
            .await
            .map_err(|e| RuntimeError::Other(format!("transcript scan failed: {e}")))?;
    match scanned {
        Ok(scan) => Ok(Some(scan)),
        Err(error) => match fault.lock().ok().and_then(|mut f| f.take()) {
            Some(RuntimeError::NotFound(_)) => Ok(None),
            Some(fault) => Err(fault),
            None => Err(RuntimeError::Other(format!(
                "cannot read the transcript archive: {error}"
            ))),
        },
    }
}

// ---- the cache --------------------------------------------------------------------------------

/// The newest transcript of an agent, as last read.
#[derive(Debug, Clone)]
struct Transcript {
    /// Absolute path inside the container.
    path: String,
    size: u64,
    /// Whole seconds.
    modified: i64,
    facts: TranscriptFacts,
}

/// What is known of one agent's transcripts.
#[derive(Debug, Clone)]
struct Known {
    transcript: Option<Transcript>,
    /// Watched folders (absolute) and their mtimes, from the last full scan.
    folders: Vec<(String, i64)>,
    /// The next refresh must scan in full: the last one failed, found no transcript folder,
    /// or saw a folder change within the second it scanned (mtimes have whole seconds, so a
    /// change later in that second would go unnoticed).
    rescan: bool,
    checked_at: Instant,
}

type Refresh = Shared<BoxFuture<'static, ()>>;

/// One agent's cache entry.
#[derive(Default)]
struct Entry {
    known: Mutex<Option<Arc<Known>>>,
    /// The refresh in flight, joined by every request that needs it.
    refresh: Mutex<Option<Refresh>>,
}

impl Entry {
    fn known(&self) -> Option<Arc<Known>> {
        self.known.lock().ok().and_then(|k| k.clone())
    }

    fn set(&self, known: Known) {
        if let Ok(mut slot) = self.known.lock() {
            *slot = Some(Arc::new(known));
        }
    }
}

/// Per-agent transcript figures, refreshed on demand (see the module doc). Cheap to clone.
#[derive(Clone)]
pub(crate) struct ContextCache {
    entries: Arc<DashMap<AgentId, Arc<Entry>>>,
    /// Refreshes reading from Docker at once.
    permits: Arc<Semaphore>,
}

impl ContextCache {
    pub(crate) fn new() -> Self {
        Self {
            entries: Arc::new(DashMap::new()),
            permits: Arc::new(Semaphore::new(CONCURRENCY)),
        }
    }

    fn entry(&self, agent: AgentId) -> Arc<Entry> {
        self.entries.entry(agent).or_default().clone()
    }

    /// Forget agents that no longer exist.
    fn prune(&self, directory: &Directory) {
        self.entries.retain(|id, _| directory.get(*id).is_some());
    }
}

/// Everything one refresh needs, owned (it runs on a task of its own).
struct Job {
    runtime: Arc<dyn ContainerRuntime>,
    container: String,
    layout: Layout,
    timeout: Duration,
}

/// The refresh of `entry` in flight, or a new one.
fn refresh(entry: &Arc<Entry>, permits: &Arc<Semaphore>, job: Job) -> Refresh {
    let Ok(mut slot) = entry.refresh.lock() else {
        return futures_util::future::ready(()).boxed().shared();
    };
    if let Some(running) = slot.as_ref() {
        return running.clone();
    }
    let task = {
        let entry = entry.clone();
        let permits = permits.clone();
        tokio::spawn(async move {
            if let Ok(_permit) = permits.acquire_owned().await {
                let previous = entry.known();
                let outcome = tokio::time::timeout(job.timeout, check(&job, previous.as_deref()))
                    .await
                    .unwrap_or_else(|_| {
                        Err(RuntimeError::Timeout(
                            "reading transcripts took too long".into(),
                        ))
                    });
                match outcome {
                    Ok(known) => entry.set(known),
                    Err(error) => {
                        debug!(container = %job.container, %error, "transcript refresh failed");
                        // Keep what was known; try again in full after the TTL.
                        entry.set(Known {
                            rescan: true,
                            checked_at: Instant::now(),
                            ..previous.as_deref().cloned().unwrap_or(Known {
                                transcript: None,
                                folders: Vec::new(),
                                rescan: true,
                                checked_at: Instant::now(),
                            })
                        });
                    }
                }
            }
            if let Ok(mut slot) = entry.refresh.lock() {
                *slot = None;
            }
        })
    };
    let shared = task.map(|_| ()).boxed().shared();
    *slot = Some(shared.clone());
    shared
}

/// Whole seconds of an RFC 3339 time.
fn seconds(rfc3339: Option<&str>) -> Option<i64> {
    DateTime::parse_from_rfc3339(rfc3339?)
        .ok()
        .map(|t| t.timestamp())
}

/// Bring `previous` up to date: cheap checks first, a full scan when they cannot tell.
async fn check(job: &Job, previous: Option<&Known>) -> Result<Known, RuntimeError> {
    if let Some(previous) = previous.filter(|p| !p.rescan)
        && let Some(known) = quick_check(job, previous).await?
    {
        return Ok(known);
    }
    full_scan(job).await
}

/// `Some` when the folders are unchanged (so the newest transcript is still the same file):
/// the previous figures, or that file read again if it grew.
async fn quick_check(job: &Job, previous: &Known) -> Result<Option<Known>, RuntimeError> {
    let stats = futures_util::future::join_all(
        previous
            .folders
            .iter()
            .map(|(path, _)| job.runtime.stat_path(&job.container, path)),
    )
    .await;
    for ((_, mtime), stat) in previous.folders.iter().zip(stats) {
        match stat? {
            Some(stat) if stat.is_dir && seconds(stat.modified.as_deref()) == Some(*mtime) => {}
            _ => return Ok(None),
        }
    }
    let Some(transcript) = &previous.transcript else {
        return Ok(Some(Known {
            checked_at: Instant::now(),
            ..previous.clone()
        }));
    };
    let Some(stat) = job
        .runtime
        .stat_path(&job.container, &transcript.path)
        .await?
    else {
        return Ok(None);
    };
    if stat.is_dir || stat.is_symlink {
        return Ok(None);
    }
    let size = u64::try_from(stat.size).unwrap_or(0);
    if size == transcript.size && seconds(stat.modified.as_deref()) == Some(transcript.modified) {
        return Ok(Some(Known {
            checked_at: Instant::now(),
            ..previous.clone()
        }));
    }
    // The newest transcript grew: read just that file.
    let scan = scan_path(
        &job.runtime,
        &job.container,
        &transcript.path,
        |path| path.is_empty(),
        |_| false,
    )
    .await?;
    let Some(found) = scan.and_then(|s| s.newest) else {
        return Ok(None);
    };
    Ok(Some(Known {
        transcript: Some(Transcript {
            path: transcript.path.clone(),
            size: found.size,
            modified: found.modified,
            facts: job.layout.facts(&transcript.path, &found.tail, found.cut),
        }),
        checked_at: Instant::now(),
        ..previous.clone()
    }))
}

/// Read the whole transcript folder once.
async fn full_scan(job: &Job) -> Result<Known, RuntimeError> {
    let started = Utc::now().timestamp();
    let root = job.layout.root();
    let layout = job.layout;
    let scan = scan_path(
        &job.runtime,
        &job.container,
        &root,
        move |path| layout.is_transcript(path),
        move |path| layout.is_watched(path),
    )
    .await?;
    let Some(scan) = scan else {
        // No transcript folder yet (the runtime never ran): look again next time.
        return Ok(Known {
            transcript: None,
            folders: Vec::new(),
            rescan: true,
            checked_at: Instant::now(),
        });
    };
    let absolute = |path: &[String]| {
        std::iter::once(root.as_str())
            .chain(path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("/")
    };
    let rescan = scan.folders.iter().any(|(_, mtime)| *mtime >= started - 1);
    let transcript = scan.newest.map(|found| {
        let path = absolute(&found.path);
        Transcript {
            facts: job.layout.facts(&path, &found.tail, found.cut),
            path,
            size: found.size,
            modified: found.modified,
        }
    });
    Ok(Known {
        transcript,
        folders: scan
            .folders
            .iter()
            .map(|(path, mtime)| (absolute(path), *mtime))
            .collect(),
        rescan,
        checked_at: Instant::now(),
    })
}

/// The container to read `view`'s transcripts from, if it has one.
fn container_of(view: &AgentView) -> Option<String> {
    view.container_id
        .clone()
        .filter(|_| !view.container_missing)
}

impl Fleet {
    /// Context figures of every agent `who` can see, by name (see the module doc). Never fails:
    /// an agent whose transcripts cannot be read shows its last known figures, or none.
    pub async fn context_stats(&self, who: &Principal) -> Vec<AgentContext> {
        let cache = &self.inner.context;
        cache.prune(&self.inner.directory);
        let visible = self.list_agents(who, &[]);
        let timeout = self.inner.config.docker_timeout;
        let refreshes: Vec<Refresh> = visible
            .iter()
            .filter_map(|v| {
                let view = &v.view;
                let container = container_of(view)?;
                let entry = cache.entry(view.record.id);
                let fresh = entry
                    .known()
                    .is_some_and(|k| k.checked_at.elapsed() < CACHE_TTL);
                (!fresh).then(|| {
                    let job = Job {
                        runtime: self.inner.runtime.clone(),
                        container,
                        layout: Layout::of(view.record.runtime),
                        timeout,
                    };
                    refresh(&entry, &cache.permits, job)
                })
            })
            .collect();
        if !refreshes.is_empty() {
            // Together, not each: the whole call waits at most WAIT.
            let _ = tokio::time::timeout(WAIT, futures_util::future::join_all(refreshes)).await;
        }
        let now = Utc::now();
        visible
            .iter()
            .map(|v| {
                let view = &v.view;
                let transcript = cache
                    .entries
                    .get(&view.record.id)
                    .and_then(|e| e.known())
                    .and_then(|k| k.transcript.clone());
                figures(view, transcript.as_ref(), now)
            })
            .collect()
    }
}

/// An agent's figures from its snapshot and its newest transcript.
fn figures(view: &AgentView, transcript: Option<&Transcript>, now: DateTime<Utc>) -> AgentContext {
    let record = &view.record;
    let used = transcript.and_then(|t| t.facts.used).unwrap_or(0);
    let observed = transcript.and_then(|t| t.facts.model.as_deref());
    let max = context_max(
        record.runtime,
        record.runtime_model.as_deref(),
        observed,
        used,
    );
    let modified = transcript.and_then(|t| DateTime::from_timestamp(t.modified, 0));
    AgentContext {
        name: record.name.clone(),
        status: view.status,
        activity: activity(view.status, modified, now),
        context_used: used,
        context_max: max,
        context_percent: percent(used, max),
        last_activity: modified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Claude Code session as it is written to disk (abridged content, real structure):
    /// summary, user prompt, a streamed assistant answer (two lines, one message id), a tool
    /// round trip, a sub-agent's sidechain line, a synthetic API-error line, and a final answer.
    const CLAUDE_SESSION: &str = r#"{"type":"summary","summary":"Refactor the parser","leafUuid":"6f1c"}
{"parentUuid":null,"isSidechain":false,"userType":"external","cwd":"/home/developer","sessionId":"2b9f6c1e-8d4a-4f3e-9a51-0c7d2e4b1a90","version":"2.0.14","gitBranch":"main","type":"user","message":{"role":"user","content":"Refactor src/parser.rs to stream its input"},"uuid":"a1","timestamp":"2025-10-10T09:00:00.000Z"}
{"parentUuid":"a1","isSidechain":false,"userType":"external","cwd":"/home/developer","sessionId":"2b9f6c1e-8d4a-4f3e-9a51-0c7d2e4b1a90","version":"2.0.14","gitBranch":"main","message":{"id":"msg_01A","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"thinking","thinking":"Let me read the file first.","signature":"abc"}],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":4,"cache_creation_input_tokens":5123,"cache_read_input_tokens":13870,"cache_creation":{"ephemeral_5m_input_tokens":5123,"ephemeral_1h_input_tokens":0},"output_tokens":8,"service_tier":"standard"}},"requestId":"req_011","type":"assistant","uuid":"a2","timestamp":"2025-10-10T09:00:03.100Z"}
{"parentUuid":"a2","isSidechain":false,"userType":"external","cwd":"/home/developer","sessionId":"2b9f6c1e-8d4a-4f3e-9a51-0c7d2e4b1a90","version":"2.0.14","gitBranch":"main","message":{"id":"msg_01A","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"tool_use","id":"toolu_01","name":"Read","input":{"file_path":"/home/developer/src/parser.rs"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":4,"cache_creation_input_tokens":5123,"cache_read_input_tokens":13870,"output_tokens":131,"service_tier":"standard"}},"requestId":"req_011","type":"assistant","uuid":"a3","timestamp":"2025-10-10T09:00:04.500Z"}
{"parentUuid":"a3","isSidechain":false,"userType":"external","cwd":"/home/developer","sessionId":"2b9f6c1e-8d4a-4f3e-9a51-0c7d2e4b1a90","version":"2.0.14","gitBranch":"main","type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_01","type":"tool_result","content":"pub fn parse(input: &str) -> Ast {\n    todo!()\n}"}]},"uuid":"a4","timestamp":"2025-10-10T09:00:04.700Z","toolUseResult":{"type":"text","file":{"filePath":"/home/developer/src/parser.rs","numLines":3}}}
{"parentUuid":"s1","isSidechain":true,"userType":"external","cwd":"/home/developer","sessionId":"2b9f6c1e-8d4a-4f3e-9a51-0c7d2e4b1a90","version":"2.0.14","agentId":"5e1d","message":{"id":"msg_01S","type":"message","role":"assistant","model":"claude-haiku-4-5-20251001","content":[{"type":"text","text":"Found 3 call sites."}],"usage":{"input_tokens":900,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":12}},"type":"assistant","uuid":"s2","timestamp":"2025-10-10T09:00:05.000Z"}
{"parentUuid":"a4","isSidechain":false,"userType":"external","cwd":"/home/developer","sessionId":"2b9f6c1e-8d4a-4f3e-9a51-0c7d2e4b1a90","version":"2.0.14","gitBranch":"main","message":{"id":"msg_01B","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"I rewrote `parse` to take a `Read`."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":6,"cache_creation_input_tokens":412,"cache_read_input_tokens":18993,"output_tokens":245,"service_tier":"standard"}},"requestId":"req_012","type":"assistant","uuid":"a5","timestamp":"2025-10-10T09:00:09.000Z"}
{"parentUuid":"a5","isSidechain":false,"userType":"external","cwd":"/home/developer","sessionId":"2b9f6c1e-8d4a-4f3e-9a51-0c7d2e4b1a90","version":"2.0.14","gitBranch":"main","type":"assistant","uuid":"a6","timestamp":"2025-10-10T09:00:10.000Z","message":{"id":"e1","type":"message","role":"assistant","model":"<synthetic>","content":[{"type":"text","text":"API Error: Request was aborted."}],"usage":{"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}},"isApiErrorMessage":true}
"#;

    #[test]
    fn claude_context_is_the_last_main_chain_answer() {
        let facts = claude_facts(CLAUDE_SESSION.as_bytes(), false);
        assert_eq!(facts.used, Some(6 + 412 + 18_993));
        assert_eq!(facts.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
    }

    #[test]
    fn claude_tail_cut_mid_line_and_garbage_are_skipped() {
        let text = format!("{{\"type\":\"assistant\",\"broken\n{CLAUDE_SESSION}not json\n\n");
        // The partial first line (as a cut tail starts) is dropped, garbage lines skipped.
        let cut = &text.as_bytes()[10..];
        assert_eq!(claude_facts(cut, true).used, Some(19_411));
        assert_eq!(claude_facts(b"", false), TranscriptFacts::default());
        assert_eq!(claude_facts(b"{\"type\":\"user\"}\n", false).used, None);
    }

    #[test]
    fn claude_compaction_resets_the_context() {
        let text = format!(
            "{CLAUDE_SESSION}{}\n",
            r#"{"type":"system","subtype":"compact_boundary","content":"Conversation compacted","compactMetadata":{"trigger":"manual","preTokens":19411},"isSidechain":false}"#
        );
        assert_eq!(claude_facts(text.as_bytes(), false).used, Some(0));
    }

    const GEMINI_SESSION: &str = r#"{"sessionId":"0f7d2c1a-1111-2222-3333-444455556666","projectHash":"9c1e","startTime":"2025-12-01T10:00:00.000Z","lastUpdated":"2025-12-01T10:00:00.000Z"}
{"id":"u1","timestamp":"2025-12-01T10:00:01.000Z","type":"user","content":[{"text":"Summarise README.md"}]}
{"$set":{"lastUpdated":"2025-12-01T10:00:01.000Z"}}
{"id":"g1","timestamp":"2025-12-01T10:00:03.000Z","type":"gemini","content":"","toolCalls":[{"id":"t1","name":"read_file","args":{"path":"README.md"},"status":"success","timestamp":"2025-12-01T10:00:02.000Z"}],"thoughts":[],"tokens":null,"model":"gemini-2.5-pro"}
{"id":"g1","timestamp":"2025-12-01T10:00:03.000Z","type":"gemini","content":"","toolCalls":[],"thoughts":[],"tokens":{"input":8123,"output":40,"cached":2048,"thoughts":12,"tool":0,"total":8175},"model":"gemini-2.5-pro"}
{"id":"g2","timestamp":"2025-12-01T10:00:06.000Z","type":"gemini","content":"README.md describes a fleet manager.","thoughts":[],"tokens":{"input":9500,"output":120,"cached":8000,"thoughts":0,"tool":0,"total":9620},"model":"gemini-2.5-pro"}
{"$set":{"lastUpdated":"2025-12-01T10:00:06.000Z"}}
"#;

    #[test]
    fn gemini_context_is_the_last_answer_with_tokens() {
        let facts = gemini_jsonl_facts(GEMINI_SESSION.as_bytes(), false);
        assert_eq!(facts.used, Some(9_500));
        assert_eq!(facts.model.as_deref(), Some("gemini-2.5-pro"));
        // A rewind to g2 drops it: g1 (updated in place with its tokens) is the last answer.
        let rewound = format!("{GEMINI_SESSION}{{\"$rewindTo\":\"g2\"}}\n");
        assert_eq!(
            gemini_jsonl_facts(rewound.as_bytes(), false).used,
            Some(8_123)
        );
        // A rewind to a message before the tail leaves nothing known.
        let lost = format!("{GEMINI_SESSION}{{\"$rewindTo\":\"zz\"}}\n");
        assert_eq!(gemini_jsonl_facts(lost.as_bytes(), false).used, None);
    }

    #[test]
    fn gemini_legacy_json_sessions_are_read_whole() {
        let legacy = r#"{
  "sessionId": "s", "projectHash": "p", "startTime": "t", "lastUpdated": "t",
  "messages": [
    {"id": "u1", "timestamp": "t", "type": "user", "content": "hi"},
    {"id": "g1", "timestamp": "t", "type": "gemini", "content": "hello",
     "tokens": {"input": 321, "output": 5, "cached": 0, "thoughts": 0, "tool": 0, "total": 326},
     "model": "gemini-1.5-pro"},
    {"id": "i1", "timestamp": "t", "type": "info", "content": "saved"}
  ]
}"#;
        let facts = gemini_json_facts(legacy.as_bytes());
        assert_eq!(facts.used, Some(321));
        assert_eq!(
            Layout::Gemini.facts("/x/session-1.json", legacy.as_bytes(), true),
            TranscriptFacts::default()
        );
    }

    #[test]
    fn context_windows_follow_the_model() {
        use AgentRuntime::*;
        assert_eq!(context_max(ClaudeCode, None, None, 0), 200_000);
        assert_eq!(
            context_max(ClaudeCode, Some("sonnet[1m]"), Some("claude-sonnet-4-5"), 5),
            1_000_000
        );
        assert_eq!(
            context_max(ClaudeCode, None, Some("claude-sonnet-4-5-1m"), 5),
            1_000_000
        );
        assert_eq!(
            context_max(ClaudeCode, Some("opus"), None, 250_000),
            1_000_000
        );
        assert_eq!(
            context_max(ClaudeCode, Some("claude-41m"), None, 5),
            200_000
        );
        assert_eq!(
            context_max(GeminiCli, None, Some("gemini-2.5-pro"), 5),
            1_048_576
        );
        assert_eq!(
            context_max(GeminiCli, Some("gemini-1.5-pro-002"), None, 5),
            2_097_152
        );
        assert_eq!(percent(19_411, 200_000), 9.7);
        assert_eq!(percent(5, 0), 0.0);
        assert_eq!(percent(300, 200), 100.0);
    }

    #[test]
    fn activity_needs_a_running_agent_and_a_recent_change() {
        let now = Utc::now();
        let recent = Some(now - chrono::Duration::seconds(5));
        let old = Some(now - chrono::Duration::seconds(600));
        assert_eq!(activity(Status::Running, recent, now), Activity::Active);
        assert_eq!(activity(Status::Running, old, now), Activity::Idle);
        assert_eq!(activity(Status::Running, None, now), Activity::Idle);
        assert_eq!(activity(Status::Stopped, recent, now), Activity::Offline);
    }

    fn tar_of(entries: &[(&str, Option<&[u8]>, u64)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data, mtime) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(*mtime);
            header.set_mode(0o644);
            match data {
                Some(data) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(data.len() as u64);
                    builder.append_data(&mut header, path, *data).unwrap();
                }
                None => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    builder.append_data(&mut header, path, &[][..]).unwrap();
                }
            }
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn a_scan_keeps_the_tail_of_the_newest_transcript_only() {
        let big = vec![b'x'; 3000];
        let archive = tar_of(&[
            ("projects/", None, 100),
            ("projects/-home-developer/", None, 300),
            ("projects/-home-developer/old.jsonl", Some(&big), 200),
            (
                "projects/-home-developer/new.jsonl",
                Some(b"line1\nline2\n"),
                250,
            ),
            (
                "projects/-home-developer/agent-1.jsonl",
                Some(b"sub\n"),
                290,
            ),
            ("projects/-home-developer/new/subagents/", None, 260),
            (
                "projects/-home-developer/new/subagents/a.jsonl",
                Some(b"s\n"),
                295,
            ),
            ("projects/-tmp/", None, 120),
        ]);
        let layout = Layout::Claude;
        let scan = scan_archive(
            &archive[..],
            |p| layout.is_transcript(p),
            |p| layout.is_watched(p),
            8,
        )
        .unwrap();
        let newest = scan.newest.unwrap();
        assert_eq!(newest.path, ["-home-developer", "new.jsonl"]);
        assert_eq!(newest.size, 12);
        assert_eq!(newest.modified, 250);
        assert_eq!(newest.tail, b"e1\nline2\n"[1..]);
        assert!(newest.cut);
        let folders: Vec<_> = scan
            .folders
            .iter()
            .map(|(p, m)| (p.join("/"), *m))
            .collect();
        assert_eq!(
            folders,
            [
                (String::new(), 100),
                ("-home-developer".into(), 300),
                ("-tmp".into(), 120)
            ]
        );
    }

    #[test]
    fn gemini_layout_watches_chats_folders_and_reads_sessions_only() {
        let g = Layout::Gemini;
        let p = |s: &str| s.split('/').map(String::from).collect::<Vec<_>>();
        assert!(g.is_transcript(&p("abc/chats/session-2025-12-01T10-00-0f7d2c1a.jsonl")));
        assert!(g.is_transcript(&p("abc/chats/session-2025-12-01T10-00-0f7d2c1a.json")));
        assert!(!g.is_transcript(&p("abc/chats/0f7d/sub.jsonl")));
        assert!(!g.is_transcript(&p("abc/logs.json")));
        assert!(g.is_watched(&p("abc/chats")));
        assert!(!g.is_watched(&p("abc/tool-outputs")));
        assert!(Layout::Claude.is_transcript(&p("-home-developer/x.jsonl")));
        assert!(!Layout::Claude.is_transcript(&p("-home-developer/agent-x.jsonl")));
    }

    #[test]
    fn tails_are_bounded_and_budgets_stop_reading() {
        let data = vec![7u8; 100_000];
        let (tail, cut) = read_tail(&mut &data[..], 1000).unwrap();
        assert_eq!(tail.len(), 1000);
        assert!(cut);
        let (tail, cut) = read_tail(&mut &data[..10], 1000).unwrap();
        assert_eq!(tail.len(), 10);
        assert!(!cut);
        let mut budget = Budget {
            inner: &data[..],
            left: 50,
        };
        let mut out = Vec::new();
        assert!(budget.read_to_end(&mut out).is_err());
        assert_eq!(out.len(), 50);
        assert_eq!(below_root(b"projects/a/../b"), None);
        assert_eq!(
            below_root(b"./projects/a/b.jsonl").unwrap(),
            ["a", "b.jsonl"]
        );
    }
}
