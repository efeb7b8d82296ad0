//! Workspace files: the tree of an agent's workspace and single-file downloads.
//!
//! Both are read through the runtime's archive API, so they work on a stopped agent too, and both
//! are confined to the workspace, `/home/developer`:
//! - [`path::normalize`] refuses, lexically, anything that names a place outside it (`..` above
//!   it, absolute paths elsewhere, control characters).
//! - `resolve` then walks the path one component at a time with `stat_path` (an `lstat`):
//!   Docker follows symbolic links in the *parent* components of a path it is given, so each
//!   prefix is checked before anything below it is asked for. A link is followed only when its
//!   fully resolved target lies inside the workspace, and the walk restarts from the target
//!   (whose components are checked again), with a bounded number of hops. Only a path whose
//!   every component was seen to be a real directory (or the final file) reaches `archive`;
//!   nothing outside the workspace is ever fetched.
//! - The check and the fetch are separate runtime calls. An agent that swaps a checked directory
//!   for a link in between could redirect the fetch elsewhere in its own container (never the
//!   host: Docker resolves paths in the container's scope). The archive API leaves this race
//!   open; closing it needs a fetch that refuses links (e.g. an exec with `O_NOFOLLOW` walking
//!   on a running agent).
//!
//! The tree is parsed from the tar stream incrementally (the `tar` crate over a [`SyncIoBridge`]
//! on a blocking thread): entry data is skipped, never held; reading stops at the entry cap, and
//! the whole listing is bounded in time. A download reads the single-entry archive's header the
//! same way, then streams exactly the file's bytes on the async side, chunk by chunk.
//!
//! These are reads: they do not go through the agent's actor, so they never queue behind a slow
//! start or stop (a concurrent delete simply makes them fail).

pub mod path;
pub mod tree;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;
use tokio_util::io::{ReaderStream, StreamReader, SyncIoBridge};
use tracing::warn;

use crate::access::Action;
use crate::error::FleetError;
use crate::fleet::Fleet;
use crate::model::{AgentView, Principal};
use crate::runtime::{ByteStream, ContainerRuntime, PathStat, RuntimeError};

pub use path::{PathError, WORKSPACE, normalize};
pub use tree::{FileEntry, FileKind};

/// Directory levels listed when the caller names none.
pub const DEFAULT_DEPTH: usize = 10;
/// Most directory levels a listing may ask for.
pub const MAX_DEPTH: usize = 32;
/// Entries listed when the caller names no limit.
pub const DEFAULT_LIMIT: usize = 5_000;
/// Most entries a listing may ask for.
pub const MAX_LIMIT: usize = 20_000;

/// Symbolic links followed while resolving one path.
const MAX_LINK_HOPS: usize = 40;
/// `stat_path` calls made while resolving one path (links re-walk their targets).
const MAX_STAT_CALLS: usize = 512;
/// Size of the chunks a download is streamed in.
const DOWNLOAD_CHUNK: usize = 64 * 1024;

/// What a tree listing asks for; `None` means the default.
#[derive(Debug, Clone, Default)]
pub struct TreeRequest {
    /// Directory to list, relative to the workspace or absolute inside it (default: the root).
    pub path: Option<String>,
    /// Levels to list, `1..=MAX_DEPTH` (default [`DEFAULT_DEPTH`]).
    pub depth: Option<usize>,
    /// Most entries to list, `1..=MAX_LIMIT` (default [`DEFAULT_LIMIT`]).
    pub limit: Option<usize>,
}

/// A listing of (part of) an agent's workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTree {
    pub agent_name: String,
    /// The listed directory, relative to the workspace (`""` for the root).
    pub path: String,
    pub tree: Vec<FileEntry>,
    /// The entry cap was hit (or the time bound ran out): there is more than is listed.
    pub truncated: bool,
    /// Entries in `tree`, at every level.
    pub entry_count: usize,
}

/// A file being downloaded: its metadata and a stream of exactly `size` bytes.
pub struct Download {
    /// The file's name as requested (the last component of `path`).
    pub name: String,
    /// The requested path, normalised, relative to the workspace.
    pub path: String,
    pub size: u64,
    pub modified: DateTime<Utc>,
    /// The file's bytes. Ends with an error if the file cannot be read to its full size.
    pub content: ByteStream,
}

impl fmt::Debug for Download {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Download")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("size", &self.size)
            .field("modified", &self.modified)
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// The workspace tree of agent `name` (anyone who may read the agent), below `request.path`.
    /// `Invalid` for a bad path, depth or limit, or a path that is not a directory; `NotFound`
    /// for a missing path; `Conflict` when the agent has no container.
    pub async fn files(
        &self,
        who: &Principal,
        name: &str,
        request: TreeRequest,
    ) -> Result<FileTree, FleetError> {
        let visible = self.agent(who, name, Action::Read)?;
        let depth = bounded_param("depth", request.depth, DEFAULT_DEPTH, MAX_DEPTH)?;
        let limit = bounded_param("limit", request.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
        let requested = normalize(request.path.as_deref().unwrap_or(""))
            .map_err(|e| FleetError::invalid("path", e.to_string()))?;
        let container = container_of(&visible.view)?;
        let reader = Reader {
            runtime: self.inner.runtime.clone(),
            container,
            agent: visible.view.record.name.clone(),
            timeout: self.inner.config.docker_timeout,
        };
        match reader.tree(&requested, depth, limit).await {
            Ok((tree, entry_count, truncated)) => Ok(FileTree {
                agent_name: reader.agent,
                path: path::display(&requested),
                tree,
                truncated,
                entry_count,
            }),
            Err(e) => Err(reader.explain(e).await),
        }
    }

    /// One file of agent `name`'s workspace (anyone who may read the agent), streamed.
    /// `Invalid` for a bad path or a directory; `NotFound` for a missing file; `Conflict` when
    /// the agent has no container. Symbolic links are followed only inside the workspace.
    pub async fn download(
        &self,
        who: &Principal,
        name: &str,
        file: &str,
    ) -> Result<Download, FleetError> {
        let visible = self.agent(who, name, Action::Read)?;
        let requested = normalize(file).map_err(|e| FleetError::invalid("path", e.to_string()))?;
        let container = container_of(&visible.view)?;
        let reader = Reader {
            runtime: self.inner.runtime.clone(),
            container,
            agent: visible.view.record.name.clone(),
            timeout: self.inner.config.docker_timeout,
        };
        match reader.file(&requested).await {
            Ok(download) => Ok(download),
            Err(e) => Err(reader.explain(e).await),
        }
    }
}

/// Reads one agent's container through the runtime.
struct Reader {
    runtime: Arc<dyn ContainerRuntime>,
    container: String,
    /// The agent's name, for messages.
    agent: String,
    /// Bound of the whole listing, and of each wait for a download's next chunk.
    timeout: Duration,
}

impl Reader {
    /// List `requested` (a directory) to `depth` levels, at most `limit` entries: the tree, its
    /// entry count, and whether it was cut short.
    async fn tree(
        &self,
        requested: &[String],
        depth: usize,
        limit: usize,
    ) -> Result<(Vec<FileEntry>, usize, bool), FleetError> {
        let shown = path::display(requested);
        let deadline = Instant::now() + self.timeout;
        let target = tokio::time::timeout_at(deadline, self.resolve(requested))
            .await
            .map_err(|_| timed_out("resolving the path", self.timeout))??;
        if !target.is_dir {
            return Err(FleetError::invalid(
                "path",
                format!("'{shown}' is not a directory"),
            ));
        }

        let fault = Arc::new(StreamFault::default());
        let abandoned = Arc::new(AtomicBool::new(false));
        let _abandon_on_drop = Abandon(abandoned.clone());
        let archive = self
            .runtime
            .archive(&self.container, &path::absolute(&target.components));
        let reader = SyncIoBridge::new(StreamReader::new(guard(
            archive,
            Bound::Deadline(deadline, self.timeout),
            fault.clone(),
            Some(abandoned),
        )));
        let listing = tokio::task::spawn_blocking(move || list_entries(reader, depth, limit))
            .await
            .map_err(|e| FleetError::Internal(format!("listing task failed: {e}")))?;

        let truncated = match listing.end {
            ListingEnd::Complete => false,
            ListingEnd::Capped => true,
            ListingEnd::Failed(error) => match fault.take() {
                Some(RuntimeError::Timeout(_)) if !listing.entries.is_empty() => {
                    warn!(agent = %self.agent, path = %shown, "workspace listing cut short by its time bound");
                    true
                }
                Some(RuntimeError::NotFound(_)) => {
                    return Err(FleetError::NotFound {
                        kind: "directory",
                        name: shown,
                    });
                }
                Some(fault) => return Err(fault.into()),
                None => {
                    return Err(FleetError::Runtime(format!(
                        "cannot read the workspace archive: {error}"
                    )));
                }
            },
        };
        let (tree, entry_count) = tree::build(requested, listing.entries, depth);
        Ok((tree, entry_count, truncated))
    }

    /// Open `requested` (a regular file) for streaming.
    async fn file(&self, requested: &[String]) -> Result<Download, FleetError> {
        let shown = path::display(requested);
        let target = tokio::time::timeout(self.timeout, self.resolve(requested))
            .await
            .map_err(|_| timed_out("resolving the path", self.timeout))??;
        if target.is_dir {
            return Err(FleetError::invalid(
                "path",
                format!("'{shown}' is a directory, not a file"),
            ));
        }

        // The header comes first and fast (bounded by the idle time); from then on the response
        // body owns the stream, and dropping it (client gone) stops the transfer.
        let fault = Arc::new(StreamFault::default());
        let archive = self
            .runtime
            .archive(&self.container, &path::absolute(&target.components));
        let reader = SyncIoBridge::new(StreamReader::new(guard(
            archive,
            Bound::Idle(self.timeout),
            fault.clone(),
            None,
        )));
        let (header, reader) = tokio::task::spawn_blocking(move || first_entry(reader))
            .await
            .map_err(|e| FleetError::Internal(format!("download task failed: {e}")))?;
        let header = match header {
            Ok(Some(header)) => header,
            Ok(None) => return Err(file_not_found(&shown)),
            Err(error) => {
                return Err(match fault.take() {
                    Some(RuntimeError::NotFound(_)) => file_not_found(&shown),
                    Some(fault) => fault.into(),
                    None => FleetError::Runtime(format!("cannot read the file's archive: {error}")),
                });
            }
        };
        if !header.regular {
            // The path was a regular file a moment ago: it was replaced while being fetched.
            return Err(FleetError::Conflict(format!(
                "'{shown}' changed while it was being read; try again"
            )));
        }
        Ok(Download {
            name: requested.last().cloned().unwrap_or_default(),
            path: shown,
            size: header.size,
            modified: header.modified,
            content: exact_bytes(reader.into_inner(), header.size),
        })
    }

    async fn resolve(&self, requested: &[String]) -> Result<Resolved, FleetError> {
        let runtime = &self.runtime;
        let container = &self.container;
        resolve(
            |path: String| async move { runtime.stat_path(container, &path).await },
            requested,
        )
        .await
    }

    /// A path reported missing may mean the container itself has gone (removed outside
    /// flotilla, or a concurrent delete): say so rather than blame the path.
    async fn explain(&self, error: FleetError) -> FleetError {
        if matches!(&error, FleetError::NotFound { kind, .. } if *kind != "agent")
            && let Ok(None) = self.runtime.inspect_container(&self.container).await
        {
            return no_container(&self.agent);
        }
        error
    }
}

/// A `depth` or `limit` parameter: the default when absent, else within `1..=max`.
fn bounded_param(
    field: &str,
    value: Option<usize>,
    default: usize,
    max: usize,
) -> Result<usize, FleetError> {
    match value {
        None => Ok(default),
        Some(v) if (1..=max).contains(&v) => Ok(v),
        Some(_) => Err(FleetError::invalid(
            field,
            format!("must be between 1 and {max}"),
        )),
    }
}

/// The agent's container, or `Conflict` when it has none (the next start recreates it).
fn container_of(view: &AgentView) -> Result<String, FleetError> {
    match &view.container_id {
        Some(id) if !view.container_missing => Ok(id.clone()),
        _ => Err(no_container(&view.record.name)),
    }
}

fn no_container(agent: &str) -> FleetError {
    FleetError::Conflict(format!(
        "agent '{agent}' has no container; start it to recreate its container, then retry"
    ))
}

fn file_not_found(shown: &str) -> FleetError {
    FleetError::NotFound {
        kind: "file",
        name: shown.to_string(),
    }
}

fn too_many_links() -> FleetError {
    FleetError::invalid("path", "has too many levels of symbolic links")
}

fn timed_out(what: &str, timeout: Duration) -> FleetError {
    FleetError::RuntimeTimeout(format!("{what} took longer than {}s", timeout.as_secs()))
}

/// A path resolved inside the workspace: every component a real directory but the last.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Resolved {
    components: Vec<String>,
    is_dir: bool,
}

/// Resolve normalised `requested` components to a real path inside the workspace, following
/// symbolic links that stay inside it. Each prefix is `lstat`ed before anything below it, so the
/// runtime never follows a link we have not checked. `NotFound` when a component is missing or a
/// non-final component is not a directory; `Invalid` when a link leads outside the workspace or
/// there are too many links.
///
/// `stat` is the runtime's `stat_path` for the agent's container (a parameter so the walk can be
/// tested against a model of Docker's behaviour).
async fn resolve<F, Fut>(mut stat: F, requested: &[String]) -> Result<Resolved, FleetError>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<Option<PathStat>, RuntimeError>>,
{
    let shown = path::display(requested);
    let mut real: Vec<String> = Vec::new();
    let mut pending: VecDeque<String> = requested.iter().cloned().collect();
    let mut is_dir = true;
    let mut hops = 0;
    let mut calls = 0;
    while let Some(part) = pending.pop_front() {
        calls += 1;
        if calls > MAX_STAT_CALLS {
            return Err(FleetError::invalid(
                "path",
                "has too many symbolic links to follow",
            ));
        }
        real.push(part);
        let stat = match stat(path::absolute(&real)).await {
            Ok(Some(stat)) => stat,
            Ok(None) => return Err(file_not_found(&shown)),
            // Every prefix above is a real directory, so Docker fails a stat only when it cannot
            // resolve a final symbolic link (a loop): a 500 with no message, as the request is
            // a HEAD. That is the client's path, not a server fault.
            Err(RuntimeError::Other(message)) => {
                warn!(path = %path::display(&real), %message, "stat failed while resolving a path");
                return Err(FleetError::invalid(
                    "path",
                    format!(
                        "'{}' cannot be resolved (a loop of symbolic links?)",
                        path::display(&real)
                    ),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        if stat.is_symlink {
            hops += 1;
            if hops > MAX_LINK_HOPS {
                return Err(too_many_links());
            }
            let target = stat.link_target.ok_or_else(|| file_not_found(&shown))?;
            let inside = match normalize(&target) {
                Ok(components) if target.starts_with('/') => components,
                _ => {
                    return Err(FleetError::invalid(
                        "path",
                        format!(
                            "'{}' is a symbolic link that leads outside {WORKSPACE}",
                            path::display(&real)
                        ),
                    ));
                }
            };
            // Walk the target again from the workspace root: its components are checked too.
            let rest = std::mem::take(&mut pending);
            pending = inside.into_iter().chain(rest).collect();
            real.clear();
            is_dir = true;
            continue;
        }
        if !stat.is_dir && !pending.is_empty() {
            return Err(file_not_found(&shown));
        }
        is_dir = stat.is_dir;
    }
    Ok(Resolved {
        components: real,
        is_dir,
    })
}

// ---- reading archives -------------------------------------------------------------------

/// How long an archive stream may run.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// Until this instant (the listing's whole time bound, `Duration` for the message).
    Deadline(Instant, Duration),
    /// At most this long waiting for each chunk.
    Idle(Duration),
}

/// The runtime error that ended an archive stream, kept so the caller can classify it (the tar
/// parser only sees an `io::Error`).
#[derive(Debug, Default)]
struct StreamFault(Mutex<Option<RuntimeError>>);

impl StreamFault {
    fn record(&self, error: RuntimeError) {
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert(error);
        }
    }

    fn take(&self) -> Option<RuntimeError> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// Sets its flag when dropped: the caller went away, so the blocking reader should stop.
struct Abandon(Arc<AtomicBool>);

impl Drop for Abandon {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The runtime's stream as an `io` stream that ends in an error — recorded in `fault` — when the
/// runtime fails, when `bound` runs out, or once the caller has gone (`abandoned`, if given).
fn guard(
    archive: ByteStream,
    bound: Bound,
    fault: Arc<StreamFault>,
    abandoned: Option<Arc<AtomicBool>>,
) -> BoxStream<'static, io::Result<Bytes>> {
    stream::unfold(Some(archive), move |state| {
        let fault = fault.clone();
        let abandoned = abandoned.clone();
        async move {
            let mut archive = state?;
            if abandoned
                .as_ref()
                .is_some_and(|a| a.load(Ordering::Relaxed))
            {
                return Some((Err(io::Error::other("the caller went away")), None));
            }
            let next = match bound {
                Bound::Deadline(at, total) => tokio::time::timeout_at(at, archive.next())
                    .await
                    .map_err(|_| {
                        format!("reading the archive took longer than {}s", total.as_secs())
                    }),
                Bound::Idle(idle) => tokio::time::timeout(idle, archive.next())
                    .await
                    .map_err(|_| format!("the archive stalled for {}s", idle.as_secs())),
            };
            match next {
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(archive))),
                Ok(None) => None,
                Ok(Some(Err(error))) => {
                    let message = error.to_string();
                    fault.record(error);
                    Some((Err(io::Error::other(message)), None))
                }
                Err(message) => {
                    fault.record(RuntimeError::Timeout(message.clone()));
                    Some((Err(io::Error::new(io::ErrorKind::TimedOut, message)), None))
                }
            }
        }
    })
    .boxed()
}

/// How a listing ended.
#[derive(Debug)]
enum ListingEnd {
    /// The whole archive was read.
    Complete,
    /// The entry cap was hit; the rest of the archive was not read.
    Capped,
    /// Reading failed; the entries so far are kept.
    Failed(io::Error),
}

#[derive(Debug)]
struct Listing {
    entries: Vec<tree::FlatEntry>,
    end: ListingEnd,
}

/// Read a directory's tar archive (blocking), keeping entries at depth `1..=depth` below the
/// archived directory, at most `limit` of them. Entry data is skipped as the archive is read.
fn list_entries<R: Read>(reader: R, depth: usize, limit: usize) -> Listing {
    let mut archive = tar::Archive::new(reader);
    let mut entries = Vec::new();
    // Sizes of the regular files seen, by archive path, for hard links to them.
    let mut sizes: HashMap<Vec<u8>, u64> = HashMap::new();
    let iter = match archive.entries() {
        Ok(iter) => iter,
        Err(e) => {
            return Listing {
                entries,
                end: ListingEnd::Failed(e),
            };
        }
    };
    for item in iter {
        let entry = match item {
            Ok(entry) => entry,
            Err(e) => {
                return Listing {
                    entries,
                    end: ListingEnd::Failed(e),
                };
            }
        };
        let raw_path = entry.path_bytes();
        let Some(components) = below_archived_dir(&raw_path) else {
            continue;
        };
        if components.is_empty() || components.len() > depth {
            continue;
        }
        if entries.len() >= limit {
            return Listing {
                entries,
                end: ListingEnd::Capped,
            };
        }
        let header = entry.header();
        let entry_type = header.entry_type();
        let kind = if entry_type.is_dir() {
            FileKind::Directory
        } else if entry_type.is_symlink() {
            FileKind::Symlink
        } else if entry_type.is_pax_global_extensions()
            || entry_type.is_pax_local_extensions()
            || entry_type.is_gnu_longname()
            || entry_type.is_gnu_longlink()
        {
            continue;
        } else {
            FileKind::File
        };
        let size =
            if entry_type.is_file() || entry_type.is_contiguous() || entry_type.is_gnu_sparse() {
                sizes.insert(raw_path.to_vec(), entry.size());
                entry.size()
            } else if entry_type.is_hard_link() {
                entry
                    .link_name_bytes()
                    .and_then(|target| sizes.get(target.as_ref()).copied())
                    .unwrap_or(0)
            } else {
                0
            };
        let link_target = (kind == FileKind::Symlink)
            .then(|| entry.link_name_bytes())
            .flatten()
            .map(|t| String::from_utf8_lossy(&t).into_owned());
        entries.push(tree::FlatEntry {
            components,
            kind,
            size,
            modified: mtime(header),
            link_target,
        });
    }
    Listing {
        entries,
        end: ListingEnd::Complete,
    }
}

/// An archive path's components below the archived directory (whose own name comes first), or
/// `None` for a path that climbs (never produced by Docker; skipped rather than trusted).
fn below_archived_dir(raw: &[u8]) -> Option<Vec<String>> {
    let mut parts = raw
        .split(|b| *b == b'/')
        .filter(|p| !p.is_empty() && *p != b".");
    parts.next()?;
    let mut out = Vec::new();
    for part in parts {
        if part == b".." {
            return None;
        }
        out.push(String::from_utf8_lossy(part).into_owned());
    }
    Some(out)
}

fn mtime(header: &tar::Header) -> DateTime<Utc> {
    header
        .mtime()
        .ok()
        .and_then(|secs| i64::try_from(secs).ok())
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// What the first entry of a single-file archive says.
#[derive(Debug, Clone, Copy)]
struct FileHeader {
    regular: bool,
    size: u64,
    modified: DateTime<Utc>,
}

/// Read the first entry's header of a tar archive (blocking) and hand the reader back positioned
/// at that entry's data: the `tar` crate reads headers exactly and buffers nothing.
fn first_entry<R: Read>(reader: R) -> (io::Result<Option<FileHeader>>, R) {
    let mut archive = tar::Archive::new(reader);
    let header = match archive.entries() {
        Ok(mut entries) => match entries.next() {
            None => Ok(None),
            Some(Err(e)) => Err(e),
            Some(Ok(entry)) => {
                let entry_type = entry.header().entry_type();
                Ok(Some(FileHeader {
                    regular: entry_type.is_file() || entry_type.is_contiguous(),
                    size: entry.size(),
                    modified: mtime(entry.header()),
                }))
            }
        },
        Err(e) => Err(e),
    };
    (header, archive.into_inner())
}

/// Exactly `size` bytes from `reader`, in chunks; an error if it ends sooner.
fn exact_bytes<R: AsyncRead + Unpin + Send + 'static>(reader: R, size: u64) -> ByteStream {
    let chunks = ReaderStream::with_capacity(reader.take(size), DOWNLOAD_CHUNK);
    stream::unfold(
        (chunks, 0u64, false),
        move |(mut chunks, sent, done)| async move {
            if done {
                return None;
            }
            match chunks.next().await {
                Some(Ok(chunk)) => {
                    let sent = sent + chunk.len() as u64;
                    Some((Ok(chunk), (chunks, sent, false)))
                }
                Some(Err(e)) => Some((
                    Err(RuntimeError::Other(format!("reading the file failed: {e}"))),
                    (chunks, sent, true),
                )),
                None if sent < size => Some((
                    Err(RuntimeError::Other(format!(
                        "the file ended after {sent} of {size} bytes (it changed while being read)"
                    ))),
                    (chunks, sent, true),
                )),
                None => None,
            }
        },
    )
    .boxed()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mtime(1_700_000_000);
            header.set_mode(0o644);
            if *kind == tar::EntryType::Symlink {
                header.set_size(0);
                builder
                    .append_link(&mut header, name, "/etc")
                    .expect("append link");
            } else {
                builder
                    .append_data(&mut header, name, *data)
                    .expect("append");
            }
        }
        builder.into_inner().expect("finish")
    }

    #[test]
    fn listing_skips_data_and_respects_depth_and_limit() {
        use tar::EntryType as T;
        let big = vec![7u8; 100_000];
        let archive = tar_of(&[
            ("developer/", T::Directory, b""),
            ("developer/big.bin", T::Regular, &big),
            ("developer/sub/", T::Directory, b""),
            ("developer/sub/a.txt", T::Regular, b"hello"),
            ("developer/sub/deep/", T::Directory, b""),
            ("developer/sub/deep/x", T::Regular, b"x"),
            ("developer/link", T::Symlink, b""),
        ]);
        let all = list_entries(archive.as_slice(), 10, 100);
        assert!(matches!(all.end, ListingEnd::Complete));
        assert_eq!(all.entries.len(), 6);
        assert_eq!(all.entries[0].size, 100_000);
        assert_eq!(all.entries[0].components, ["big.bin"]);
        assert_eq!(all.entries[5].kind, FileKind::Symlink);
        assert_eq!(all.entries[5].link_target.as_deref(), Some("/etc"));
        assert_eq!(all.entries[0].modified.timestamp(), 1_700_000_000);

        let shallow = list_entries(archive.as_slice(), 2, 100);
        assert_eq!(shallow.entries.len(), 5);

        let capped = list_entries(archive.as_slice(), 10, 3);
        assert!(matches!(capped.end, ListingEnd::Capped));
        assert_eq!(capped.entries.len(), 3);
    }

    #[test]
    fn a_broken_archive_keeps_what_was_read() {
        let archive = tar_of(&[
            ("developer/", tar::EntryType::Directory, b""),
            ("developer/a", tar::EntryType::Regular, b"abc"),
            ("developer/b", tar::EntryType::Regular, &[1u8; 2048]),
        ]);
        let cut = &archive[..archive.len() - 3000];
        let listing = list_entries(cut, 10, 100);
        assert!(matches!(listing.end, ListingEnd::Failed(_)), "{listing:?}");
        assert_eq!(listing.entries.len(), 2);
    }

    #[test]
    fn first_entry_leaves_the_reader_at_the_data() {
        let data: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let archive = tar_of(&[("file.bin", tar::EntryType::Regular, &data)]);
        let (header, mut rest) = first_entry(archive.as_slice());
        let header = header.expect("read").expect("entry");
        assert!(header.regular);
        assert_eq!(header.size, 5000);
        let mut body = vec![0u8; 5000];
        Read::read_exact(&mut rest, &mut body).expect("data");
        assert_eq!(body, data);
    }

    #[test]
    fn archive_paths_are_taken_below_the_archived_dir() {
        assert_eq!(below_archived_dir(b"developer/"), Some(vec![]));
        assert_eq!(
            below_archived_dir(b"developer/a/b.txt"),
            Some(vec!["a".to_string(), "b.txt".to_string()])
        );
        assert_eq!(
            below_archived_dir(b"./developer/./a/"),
            Some(vec!["a".to_string()])
        );
        assert_eq!(below_archived_dir(b"developer/../etc"), None);
        assert_eq!(below_archived_dir(b""), None);
    }

    #[test]
    fn params_default_and_are_bounded() {
        assert_eq!(bounded_param("depth", None, 10, 32).ok(), Some(10));
        assert_eq!(bounded_param("depth", Some(32), 10, 32).ok(), Some(32));
        assert!(bounded_param("depth", Some(33), 10, 32).is_err());
        assert!(bounded_param("limit", Some(0), 10, 32).is_err());
    }

    #[tokio::test]
    async fn exact_bytes_fails_on_a_short_file() {
        let stream = exact_bytes(&b"abc"[..], 5);
        let items: Vec<_> = stream.collect().await;
        assert!(matches!(items.first(), Some(Ok(b)) if b.as_ref() == b"abc"));
        assert!(matches!(items.last(), Some(Err(_))));
        let whole: Vec<_> = exact_bytes(&b"abcdef"[..], 4).collect().await;
        assert_eq!(whole.len(), 1);
        assert!(matches!(whole.first(), Some(Ok(b)) if b.as_ref() == b"abcd"));
    }

    #[tokio::test]
    async fn guard_ends_a_stalled_stream_with_a_recorded_timeout() {
        let stalled: ByteStream = stream::iter(vec![Ok(Bytes::from_static(b"abc"))])
            .chain(stream::pending())
            .boxed();
        let fault = Arc::new(StreamFault::default());
        let deadline = Instant::now() + Duration::from_millis(50);
        let items: Vec<io::Result<Bytes>> = guard(
            stalled,
            Bound::Deadline(deadline, Duration::from_millis(50)),
            fault.clone(),
            None,
        )
        .collect()
        .await;
        assert_eq!(items.len(), 2);
        assert!(matches!(&items[1], Err(e) if e.kind() == io::ErrorKind::TimedOut));
        assert!(matches!(fault.take(), Some(RuntimeError::Timeout(_))));
    }

    #[tokio::test]
    async fn guard_stops_once_abandoned_and_records_runtime_errors() {
        let abandoned = Arc::new(AtomicBool::new(true));
        let endless: ByteStream = stream::repeat_with(|| Ok(Bytes::from_static(b"x"))).boxed();
        let fault = Arc::new(StreamFault::default());
        let items: Vec<_> = guard(
            endless,
            Bound::Idle(Duration::from_secs(5)),
            fault.clone(),
            Some(abandoned),
        )
        .collect()
        .await;
        assert!(matches!(items.as_slice(), [Err(_)]));

        let failing: ByteStream =
            stream::iter(vec![Err(RuntimeError::NotFound("gone".into()))]).boxed();
        let items: Vec<_> = guard(
            failing,
            Bound::Idle(Duration::from_secs(5)),
            fault.clone(),
            None,
        )
        .collect()
        .await;
        assert!(matches!(items.as_slice(), [Err(_)]));
        assert_eq!(fault.take(), Some(RuntimeError::NotFound("gone".into())));
    }

    // ---- resolve, against a model of Docker's stat -----------------------------------------

    use std::cell::RefCell;

    enum Node {
        Dir,
        File(i64),
        Link(&'static str),
    }

    /// A container filesystem as Docker's archive HEAD sees it: parent components are
    /// followed (even through links leading anywhere), the final one is `lstat`ed, and a link's
    /// target is reported fully resolved. Records every path asked for.
    struct FakeFs {
        nodes: HashMap<String, Node>,
        asked: RefCell<Vec<String>>,
    }

    impl FakeFs {
        fn new(nodes: Vec<(&str, Node)>) -> Self {
            let mut map: HashMap<String, Node> = nodes
                .into_iter()
                .map(|(p, n)| (format!("/home/developer/{p}"), n))
                .collect();
            for dir in ["/", "/home", "/home/developer", "/etc"] {
                map.insert(dir.to_string(), Node::Dir);
            }
            map.insert("/etc/passwd".into(), Node::File(138));
            Self {
                nodes: map,
                asked: RefCell::new(Vec::new()),
            }
        }

        /// Follow every link in `path` (lexically cleaned), as Docker's `FollowSymlinkInScope`.
        fn follow(&self, path: &str, hops: &mut usize) -> Result<String, RuntimeError> {
            let mut done: Vec<String> = Vec::new();
            let mut todo: VecDeque<String> = path.split('/').map(str::to_string).collect();
            while let Some(part) = todo.pop_front() {
                match part.as_str() {
                    "" | "." => continue,
                    ".." => {
                        done.pop();
                        continue;
                    }
                    _ => done.push(part),
                }
                let here = format!("/{}", done.join("/"));
                if let Some(Node::Link(target)) = self.nodes.get(&here) {
                    *hops += 1;
                    if *hops > 40 {
                        return Err(RuntimeError::Other("too many links".into()));
                    }
                    done.pop();
                    let base = if target.starts_with('/') {
                        Vec::new()
                    } else {
                        done.clone()
                    };
                    let mut next: VecDeque<String> =
                        target.split('/').map(str::to_string).collect();
                    next.extend(todo.drain(..));
                    todo = next;
                    done = base;
                }
            }
            Ok(format!("/{}", done.join("/")))
        }

        fn stat(&self, path: &str) -> Result<Option<PathStat>, RuntimeError> {
            self.asked.borrow_mut().push(path.to_string());
            let (parent, base) = path.rsplit_once('/').unwrap_or(("", path));
            let parent = self.follow(parent, &mut 0)?;
            let full = format!("{}/{base}", parent.trim_end_matches('/'));
            let stat = |size, is_dir, is_symlink, link_target| PathStat {
                name: base.to_string(),
                size,
                is_dir,
                is_symlink,
                modified: None,
                link_target,
            };
            Ok(match self.nodes.get(&full) {
                None => None,
                Some(Node::Dir) => Some(stat(4096, true, false, None)),
                Some(Node::File(size)) => Some(stat(*size, false, false, None)),
                Some(Node::Link(_)) => {
                    Some(stat(4, false, true, Some(self.follow(&full, &mut 0)?)))
                }
            })
        }

        /// True if some path asked for went through a link in a parent component.
        fn followed_a_parent_link(&self) -> bool {
            self.asked.borrow().iter().any(|asked| {
                let parts: Vec<&str> = asked.split('/').collect();
                (1..parts.len())
                    .any(|n| matches!(self.nodes.get(&parts[..n].join("/")), Some(Node::Link(_))))
            })
        }

        fn asked_outside(&self) -> bool {
            self.asked
                .borrow()
                .iter()
                .any(|a| a != "/home/developer" && !a.starts_with("/home/developer/"))
        }
    }

    fn workspace() -> FakeFs {
        FakeFs::new(vec![
            ("sub", Node::Dir),
            ("sub/a.txt", Node::File(3)),
            ("sub/deep", Node::Dir),
            ("notes.txt", Node::File(5)),
            ("etc-link", Node::Link("/etc")),
            ("passwd-link", Node::Link("/etc/passwd")),
            ("rel-link", Node::Link("../../etc/passwd")),
            ("in-link", Node::Link("sub/a.txt")),
            ("sub-link", Node::Link("/home/developer/sub")),
            ("chain", Node::Link("in-link")),
            ("up", Node::Link("sub/deep/../..")),
            ("sub/out", Node::Link("../../../etc")),
            ("dangling", Node::Link("nowhere")),
            ("loop-a", Node::Link("loop-b")),
            ("loop-b", Node::Link("loop-a")),
        ])
    }

    fn run(fs: &FakeFs, path: &str) -> Result<Resolved, FleetError> {
        let requested = normalize(path).map_err(|e| FleetError::invalid("path", e.to_string()))?;
        let stat = |p: String| std::future::ready(fs.stat(&p));
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(resolve(stat, &requested))
    }

    fn resolved(fs: &FakeFs, path: &str) -> (String, bool) {
        match run(fs, path) {
            Ok(r) => (r.components.join("/"), r.is_dir),
            Err(e) => panic!("{path} refused: {e}"),
        }
    }

    #[test]
    fn resolve_follows_links_that_stay_inside() {
        let fs = workspace();
        assert_eq!(resolved(&fs, ""), (String::new(), true));
        assert_eq!(resolved(&fs, "sub/a.txt"), ("sub/a.txt".into(), false));
        assert_eq!(resolved(&fs, "in-link"), ("sub/a.txt".into(), false));
        assert_eq!(resolved(&fs, "chain"), ("sub/a.txt".into(), false));
        assert_eq!(resolved(&fs, "sub-link/a.txt"), ("sub/a.txt".into(), false));
        assert_eq!(resolved(&fs, "sub-link"), ("sub".into(), true));
        assert_eq!(resolved(&fs, "up/notes.txt"), ("notes.txt".into(), false));
        assert!(!fs.followed_a_parent_link());
        assert!(!fs.asked_outside());
    }

    #[test]
    fn resolve_refuses_links_leading_outside_without_looking_there() {
        let fs = workspace();
        for path in [
            "etc-link",
            "etc-link/passwd",
            "passwd-link",
            "rel-link",
            "sub/out/passwd",
            "sub-link/out/passwd",
        ] {
            match run(&fs, path) {
                Err(FleetError::Invalid { field, reason }) => {
                    assert_eq!(field, "path");
                    assert!(reason.contains("outside"), "{path}: {reason}");
                }
                other => panic!("{path}: {other:?}"),
            }
        }
        assert!(!fs.followed_a_parent_link(), "{:?}", fs.asked.borrow());
        assert!(!fs.asked_outside(), "{:?}", fs.asked.borrow());
    }

    #[test]
    fn resolve_reports_missing_paths_and_files_used_as_directories() {
        let fs = workspace();
        for path in ["nope", "sub/nope", "dangling", "notes.txt/x", "in-link/x"] {
            assert!(
                matches!(
                    run(&fs, path),
                    Err(FleetError::NotFound { kind: "file", .. })
                ),
                "{path}"
            );
        }
        assert!(!fs.followed_a_parent_link());
    }

    #[test]
    fn resolve_refuses_link_loops() {
        let fs = workspace();
        for path in ["loop-a", "loop-a/x"] {
            match run(&fs, path) {
                Err(FleetError::Invalid { reason, .. }) => assert!(reason.contains("resolved")),
                other => panic!("{path}: {other:?}"),
            }
        }
    }
}
