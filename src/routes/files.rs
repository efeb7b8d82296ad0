//! Workspace files over HTTP: the tree (`GET /api/agents/{name}/files`) and single-file
//! downloads (`GET /api/agents/{name}/files/download?path=`). Confinement to the workspace,
//! symlink checks and archive reading live in `flotilla_actors::files`; this module shapes the
//! JSON and the download headers (type, disposition, length).

use actix_web::body::SizedStream;
use actix_web::http::header::{
    self, Charset, ContentDisposition, DispositionParam, DispositionType, ExtendedValue,
};
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use flotilla_actors::files::{FileEntry, TreeRequest};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Auth;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TreeQuery {
    /// Directory to list: relative to `/home/developer`, or absolute inside it (default: the
    /// workspace root).
    pub path: Option<String>,
    /// Directory levels to list, 1–32 (default 10).
    #[param(minimum = 1, maximum = 32)]
    pub depth: Option<usize>,
    /// Most entries to list, 1–20000 (default 5000); `truncated` is set when there are more.
    #[param(minimum = 1, maximum = 20000)]
    pub limit: Option<usize>,
}

/// One file, directory or symbolic link of the workspace.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileEntryBody {
    pub name: String,
    /// Relative to `/home/developer`, `/`-separated.
    pub path: String,
    /// `file`, `directory` or `symlink`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Bytes (0 for directories and symbolic links).
    pub size: u64,
    pub modified: DateTime<Utc>,
    /// For a symbolic link: its target as written in the link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// For a directory: its entries. Absent for directories at the depth limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub children: Option<Vec<FileEntryBody>>,
}

impl From<FileEntry> for FileEntryBody {
    fn from(e: FileEntry) -> Self {
        Self {
            name: e.name,
            path: e.path,
            kind: e.kind.as_str(),
            size: e.size,
            modified: e.modified,
            target: e.link_target,
            children: e
                .children
                .map(|c| c.into_iter().map(FileEntryBody::from).collect()),
        }
    }
}

/// The workspace tree.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileTreeResponse {
    pub agent_name: String,
    /// The listed directory, relative to `/home/developer` (`""` for the root).
    pub path: String,
    pub tree: Vec<FileEntryBody>,
    /// More entries exist than are listed (the entry limit, or the time bound, was reached).
    pub truncated: bool,
    /// Entries in `tree`, at every level.
    pub entry_count: usize,
}

/// The agent's workspace tree (`/home/developer`), read through Docker's archive API, so it
/// works on a stopped agent too. Owners, admins and users it is shared with may read it.
#[utoipa::path(get, path = "/api/agents/{name}/files", tag = "files", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name"), TreeQuery),
    responses((status = 200, body = FileTreeResponse), (status = 401, body = ErrorBody),
        (status = 404, description = "Unknown agent, or no such directory", body = ErrorBody),
        (status = 409, description = "The agent has no container", body = ErrorBody),
        (status = 422, description = "Bad path (outside the workspace, not a directory), depth or limit", body = ErrorBody),
        (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
pub async fn tree(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
    query: web::Query<TreeQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let request = TreeRequest {
        path: q.path,
        depth: q.depth,
        limit: q.limit,
    };
    let listing = state.fleet.files(&auth.principal, &name, request).await?;
    Ok(HttpResponse::Ok().json(FileTreeResponse {
        agent_name: listing.agent_name,
        path: listing.path,
        tree: listing.tree.into_iter().map(FileEntryBody::from).collect(),
        truncated: listing.truncated,
        entry_count: listing.entry_count,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// File to download: relative to `/home/developer`, or absolute inside it. Symbolic links
    /// are followed only while they stay inside the workspace.
    pub path: String,
}

/// Download one file of the agent's workspace: its exact bytes, streamed, as an attachment.
#[utoipa::path(get, path = "/api/agents/{name}/files/download", tag = "files",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name"), DownloadQuery),
    responses(
        (status = 200, description = "The file's bytes, typed after its name's extension \
            (`application/octet-stream` when unknown): any content", content_type = "*/*",
            body = serde_json::Value),
        (status = 401, body = ErrorBody),
        (status = 404, description = "Unknown agent, or no such file", body = ErrorBody),
        (status = 409, description = "The agent has no container", body = ErrorBody),
        (status = 422, description = "A directory, or a path outside the workspace", body = ErrorBody),
        (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
pub async fn download(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
    query: web::Query<DownloadQuery>,
) -> Result<HttpResponse, ApiError> {
    let file = state
        .fleet
        .download(&auth.principal, &name, &query.path)
        .await?;
    let content_type = mime_guess::from_path(&file.name).first_or_octet_stream();
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type.essence_str().to_string()))
        .insert_header(attachment(&file.name))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(header::LastModified(
            std::time::SystemTime::from(file.modified).into(),
        ))
        .body(SizedStream::new(file.size, file.content)))
}

/// `Content-Disposition: attachment` naming `file_name`: a plain-ASCII `filename` every client
/// understands (anything else replaced by `_`), plus an RFC 5987 `filename*` with the exact
/// UTF-8 name when it differs.
fn attachment(file_name: &str) -> ContentDisposition {
    let ascii: String = file_name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let ascii = if ascii.is_empty() {
        "download".to_string()
    } else {
        ascii
    };
    let mut parameters = vec![DispositionParam::Filename(ascii.clone())];
    if ascii != file_name && !file_name.is_empty() {
        parameters.push(DispositionParam::FilenameExt(ExtendedValue {
            charset: Charset::Ext("UTF-8".into()),
            language_tag: None,
            value: file_name.as_bytes().to_vec(),
        }));
    }
    ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_names_are_quoted_safely() {
        assert_eq!(
            attachment("report.pdf").to_string(),
            r#"attachment; filename="report.pdf""#
        );
        assert_eq!(
            attachment(r#"a "b"\c.txt"#).to_string(),
            r#"attachment; filename="a _b__c.txt"; filename*=UTF-8''a%20%22b%22%5Cc.txt"#
        );
        assert_eq!(
            attachment("résumé.txt").to_string(),
            r#"attachment; filename="r_sum_.txt"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt"#
        );
        assert_eq!(
            attachment("").to_string(),
            r#"attachment; filename="download""#
        );
    }
}
