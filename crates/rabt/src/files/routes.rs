//! HTTP routes for files (API.md §8): create an upload, complete it, read
//! and delete a file; and, with the local store, the signed upload and
//! download URLs rabt serves itself (`/storage/files/{id}`).

use axum::{
    Json,
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::{StreamExt as _, TryStreamExt as _};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    DeleteObject,
    model::{
        CreatedUpload, FileStatus, FileType, FileView, NewUpload, Rejection, TextCheck,
        UploadInstructions, UploadRequest, content_disposition,
    },
    storage::{self, LocalMethod, LocalQuery, Refused, Storage, WriteError},
    store::{self, FileRow},
};
use crate::{
    auth::AuthUser,
    http::{
        ApiError, AppJson, AppPath, AppQuery, ErrorCode,
        error::ProblemBody,
        idempotency::{IdempotencyKey, Idempotent},
        openapi::{Forbidden, NotFound, Validation},
    },
    jobs,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_upload))
        .routes(routes!(complete_upload))
        .routes(routes!(get_file, delete_file))
        .routes(routes!(local_upload))
        .routes(routes!(local_download))
        .routes(routes!(local_export_download))
}

/// Start an upload: checks the declared name, type and size against the
/// purpose's limits and the caller's quota, and answers a signed `PUT` to
/// send the bytes to, with the headers it must carry. Avatars take PNG, JPEG
/// or WebP up to 5 MiB; attachments PDF, PNG, JPEG, WebP, plain text or DOCX
/// up to 25 MiB; each user keeps up to 1 GiB of ready files (defaults).
#[utoipa::path(post, path = "/files", tag = "files", request_body = UploadRequest,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Replays the first response for 24 hours")),
    security(("bearer" = [])),
    responses(
        (status = 201, body = CreatedUpload),
        (status = 413, description = "Larger than the purpose allows, or past the storage \
            quota (`payload_too_large`)", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 415, description = "A type the purpose does not take \
            (`unsupported_media_type`)", body = ProblemBody,
            content_type = "application/problem+json"),
        Validation,
    ))]
pub async fn create_upload(
    State(state): State<AppState>,
    caller: AuthUser,
    key: IdempotencyKey,
    AppJson(request): AppJson<UploadRequest>,
) -> Result<Response, ApiError> {
    let idem = Idempotent::new(key, caller.id, "POST /v1/files", &request)?;
    let files = &state.settings.files;
    let upload = NewUpload::parse(request, files).inspect_err(|err| {
        let reason = match err.code() {
            ErrorCode::UnsupportedMediaType => "type",
            ErrorCode::PayloadTooLarge => "too_large",
            _ => "invalid",
        };
        metrics::counter!("files_uploads_rejected_total", "reason" => reason).increment(1);
    })?;
    let actor = caller.actor();
    let mut tx = state.db.begin(&actor).await?;
    if let Some(saved) = idem.claim(&mut tx).await? {
        return Ok(saved);
    }
    let used = u64::try_from(store::ready_bytes(&mut tx, caller.id).await?).unwrap_or(0);
    if used.saturating_add(upload.size_bytes) > files.quota_bytes {
        metrics::counter!("files_uploads_rejected_total", "reason" => "quota").increment(1);
        return Err(
            ApiError::new(ErrorCode::PayloadTooLarge).with_detail(format!(
                "Your files use {used} of your {} bytes of storage; this one needs {} more. \
                 Delete files you no longer need.",
                files.quota_bytes, upload.size_bytes
            )),
        );
    }
    let id = Uuid::now_v7();
    let object_key = storage::object_key(id);
    store::insert(&mut tx, id, caller.id, &upload, &object_key).await?;
    let signed = state
        .storage
        .upload_url(
            &storage::upload_key(id),
            upload.file_type.stored_content_type(),
            &content_disposition(upload.file_type, upload.filename.as_str()),
            upload.size_bytes,
            files.upload_url_ttl,
        )
        .await
        .map_err(storage::unavailable)?;
    metrics::counter!("files_uploads_started_total", "purpose" => upload.purpose.as_str())
        .increment(1);
    let created = CreatedUpload {
        id,
        status: FileStatus::Pending,
        upload: UploadInstructions {
            method: "PUT".into(),
            url: signed.url.to_string(),
            headers: signed.headers,
            expires_at: signed.expires_at,
        },
    };
    idem.commit(&state.db, &actor, tx, StatusCode::CREATED, &created)
        .await
}

/// Check an upload: the object must be there (else 409 `upload_missing`),
/// of the declared size and content (else 422 `file_content_mismatch`, and
/// the object is removed so the upload can be tried again). Then the file
/// is `ready`. Completing a ready file again answers it unchanged.
#[utoipa::path(post, path = "/files/{id}/complete", tag = "files",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = FileView),
        NotFound,
        (status = 409, description = "Nothing was uploaded (`upload_missing`)",
            body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "The bytes are not what was declared \
            (`file_content_mismatch`)", body = ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub async fn complete_upload(
    State(state): State<AppState>,
    caller: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> Result<Json<FileView>, ApiError> {
    let row = own_file(&state, &caller, id).await?;
    if row.status == FileStatus::Ready {
        return Ok(Json(view(&state, row).await?));
    }
    // No transaction is held while the store is read.
    if let Err(rejection) = check_object(&state.storage, &row).await? {
        metrics::counter!("files_uploads_rejected_total", "reason" => rejection.as_str())
            .increment(1);
        return Err(match rejection {
            Rejection::Missing => ApiError::new(ErrorCode::UploadMissing)
                .with_detail("Nothing was uploaded for this file yet."),
            Rejection::Size => ApiError::new(ErrorCode::FileContentMismatch).with_detail(format!(
                "The upload is not the declared {} bytes.",
                row.size_bytes
            )),
            Rejection::Content => ApiError::new(ErrorCode::FileContentMismatch)
                .with_detail(format!("The upload is not {}.", row.content_type)),
        });
    }
    // Checked: the file is the copy only rabt writes. Copied before the row
    // says ready, so a crash in between leaves a pending file to complete again.
    let upload = storage::upload_key(id);
    state
        .storage
        .copy(&upload, &row.object_key)
        .await
        .map_err(storage::unavailable)?;
    let mut tx = state.db.begin(&caller.actor()).await?;
    store::mark_ready(&mut tx, id, caller.id).await?;
    let row = store::find(&mut tx, id)
        .await?
        .filter(|r| r.owner_id == caller.id)
        .ok_or_else(ApiError::not_found)?;
    // The upload goes now; again once its URL has expired, in case the client
    // sent more meanwhile.
    let url_expired = row.created_at
        + chrono::Duration::from_std(state.settings.files.upload_url_ttl)
            .unwrap_or_else(|_| chrono::Duration::days(7))
        + chrono::Duration::minutes(1);
    jobs::queue::enqueue_at(
        &mut tx,
        &DeleteObject {
            object_key: upload.clone(),
        },
        100,
        Some(url_expired),
    )
    .await?;
    tx.commit().await?;
    if let Err(err) = state.storage.delete(&upload).await {
        tracing::info!(error = %err, "upload not removed yet; its job will");
    }
    metrics::counter!("files_uploads_completed_total", "purpose" => row.purpose.as_str())
        .increment(1);
    metrics::counter!("files_completed_bytes_total")
        .increment(u64::try_from(row.size_bytes).unwrap_or(0));
    Ok(Json(view(&state, row).await?))
}

/// The caller's own file; 404 for anyone else's, seen or not.
async fn own_file(state: &AppState, caller: &AuthUser, id: Uuid) -> Result<FileRow, ApiError> {
    let mut tx = state.db.begin(&caller.actor()).await?;
    let row = store::find(&mut tx, id).await?;
    tx.commit().await?;
    row.filter(|r| r.owner_id == caller.id)
        .ok_or_else(ApiError::not_found)
}

/// One HEAD and one ranged GET of the upload (text is read whole, for
/// UTF-8). A rejected upload is removed.
async fn check_object(storage: &Storage, row: &FileRow) -> Result<Result<(), Rejection>, ApiError> {
    let key = storage::upload_key(row.id);
    let Some(size) = storage.size(&key).await.map_err(storage::unavailable)? else {
        return Ok(Err(Rejection::Missing));
    };
    let declared = u64::try_from(row.size_bytes).unwrap_or(0);
    let verdict = if size != declared {
        Err(Rejection::Size)
    } else {
        let file_type = FileType::parse(&row.content_type).ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("stored content type is not checkable"))
        })?;
        let fits = if file_type == FileType::Text {
            is_text(storage, &key).await?
        } else {
            let head = storage
                .first_bytes(&key, size.min(FileType::HEAD_BYTES))
                .await
                .map_err(storage::unavailable)?;
            file_type.matches_head(&head)
        };
        if fits {
            Ok(())
        } else {
            Err(Rejection::Content)
        }
    };
    if verdict.is_err() {
        storage.delete(&key).await.map_err(storage::unavailable)?;
    }
    Ok(verdict)
}

async fn is_text(storage: &Storage, key: &str) -> Result<bool, ApiError> {
    let mut chunks = storage.read(key).await.map_err(storage::unavailable)?;
    let mut check = TextCheck::default();
    while let Some(chunk) = chunks.next().await {
        if !check.feed(&chunk.map_err(storage::unavailable)?) {
            return Ok(false);
        }
    }
    Ok(check.finish())
}

/// What a viewer is answered, with a fresh download URL once ready.
async fn view(state: &AppState, row: FileRow) -> Result<FileView, ApiError> {
    let download = match (row.status, FileType::parse(&row.content_type)) {
        (FileStatus::Ready, Some(file_type)) => Some(
            state
                .storage
                .download_url(
                    &row.object_key,
                    file_type.stored_content_type(),
                    &content_disposition(file_type, &row.filename),
                    state.settings.files.download_url_ttl,
                )
                .await
                .map_err(storage::unavailable)?,
        ),
        _ => None,
    };
    Ok(FileView {
        id: row.id,
        owner_id: row.owner_id,
        purpose: row.purpose,
        filename: row.filename,
        content_type: row.content_type,
        size_bytes: row.size_bytes,
        status: row.status,
        created_at: row.created_at,
        completed_at: row.completed_at,
        download_expires_at: download.as_ref().map(|d| d.1),
        download_url: download.map(|d| d.0.to_string()),
    })
}

/// A signed URL is not to be kept by shared caches.
fn no_store(body: Json<FileView>) -> Response {
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        )],
        body,
    )
        .into_response()
}

/// A file's metadata and a `download_url` valid for minutes: for the
/// uploader, and for whoever can see what it is attached to (an avatar
/// through a visible profile, an application's attachment through the
/// application). Anyone else gets 404.
#[utoipa::path(get, path = "/files/{id}", tag = "files",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = FileView),
        NotFound,
    ))]
pub async fn get_file(
    State(state): State<AppState>,
    caller: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> Result<Response, ApiError> {
    let mut tx = state.db.begin(&caller.actor()).await?;
    let row = store::find(&mut tx, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    tx.commit().await?;
    Ok(no_store(Json(view(&state, row).await?)))
}

/// Delete one of the caller's files: the row goes at once (an avatar that
/// was this file is cleared), the stored object shortly after.
#[utoipa::path(delete, path = "/files/{id}", tag = "files",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        Forbidden,
        NotFound,
    ))]
pub async fn delete_file(
    State(state): State<AppState>,
    caller: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin(&caller.actor()).await?;
    let row = store::find(&mut tx, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if row.owner_id != caller.id {
        return Err(
            ApiError::new(ErrorCode::Forbidden).with_detail("Only the uploader deletes a file.")
        );
    }
    if !store::delete(&mut tx, id, caller.id).await? {
        return Err(ApiError::not_found());
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

fn refused(refusal: Refused) -> ApiError {
    match refusal {
        Refused::NotServed => ApiError::not_found(),
        Refused::BadSignature => ApiError::new(ErrorCode::Forbidden)
            .with_detail("The URL's signature does not match the request."),
        Refused::Expired => ApiError::new(ErrorCode::Forbidden).with_detail("The URL has expired."),
    }
}

/// The local store's upload URL (`RABT_STORAGE_URL=file://…`), as `POST
/// /files` hands it out: `Content-Type` and `Content-Disposition` must be
/// the signed ones and the body at most the signed size. 403 for a
/// tampered or expired URL; 404 with an S3 store.
#[utoipa::path(put, path = "/storage/uploads/{id}", tag = "files",
    params(("id" = Uuid, Path), LocalQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Stored"),
        Forbidden,
        NotFound,
        Validation,
        (status = 413, description = "More bytes than signed (`payload_too_large`)",
            body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn local_upload(
    State(storage): State<Storage>,
    AppPath(id): AppPath<Uuid>,
    AppQuery(query): AppQuery<LocalQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let grant = storage
        .verify(LocalMethod::Put, &storage::upload_key(id), &query)
        .map_err(refused)?;
    let header_is = |name: header::HeaderName, value: &str| {
        headers.get(name).and_then(|v| v.to_str().ok()) == Some(value)
    };
    // As S3 does: the signed headers are part of the signature.
    if !header_is(header::CONTENT_TYPE, &grant.content_type)
        || !header_is(header::CONTENT_DISPOSITION, &grant.disposition)
    {
        return Err(refused(Refused::BadSignature));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        ApiError::new(ErrorCode::PayloadTooLarge)
            .with_detail(format!("At most {} bytes.", grant.max_bytes))
    };
    if declared.is_some_and(|len| len > grant.max_bytes) {
        return Err(too_large());
    }
    let stream = body.into_data_stream().boxed();
    match storage.write(&grant, stream).await {
        Ok(()) => Ok(StatusCode::OK),
        Err(WriteError::TooLarge) => Err(too_large()),
        Err(WriteError::Body(err)) => {
            tracing::info!(error = %err, "upload body ended early");
            Err(ApiError::new(ErrorCode::ValidationFailed)
                .with_detail("The upload ended before its last byte."))
        }
        Err(WriteError::Store(err)) => Err(ApiError::internal(err)),
    }
}

/// The local store's download URL, as `GET /files/{id}` hands it out. Served
/// with the signed `Content-Type` and `Content-Disposition` (attachment
/// unless an image), `nosniff` and a sandboxing CSP, so an uploaded
/// document never runs in this origin.
#[utoipa::path(get, path = "/storage/files/{id}", tag = "files",
    params(("id" = Uuid, Path), LocalQuery),
    responses(
        (status = 200, description = "The bytes", content_type = "application/octet-stream",
            body = Vec<u8>),
        Forbidden,
        NotFound,
        Validation,
    ))]
pub async fn local_download(
    State(storage): State<Storage>,
    AppPath(id): AppPath<Uuid>,
    AppQuery(query): AppQuery<LocalQuery>,
) -> Result<Response, ApiError> {
    serve_local(&storage, &storage::object_key(id), &query).await
}

/// The local store's download URL of a data export (API.md §11), as `GET
/// /me/exports/{id}` and its email hand it out; served like a file.
#[utoipa::path(get, path = "/storage/exports/{id}", tag = "files",
    params(("id" = Uuid, Path), LocalQuery),
    responses(
        (status = 200, description = "The ZIP", content_type = "application/zip",
            body = Vec<u8>),
        Forbidden,
        NotFound,
        Validation,
    ))]
pub async fn local_export_download(
    State(storage): State<Storage>,
    AppPath(id): AppPath<Uuid>,
    AppQuery(query): AppQuery<LocalQuery>,
) -> Result<Response, ApiError> {
    serve_local(&storage, &storage::export_key(id), &query).await
}

/// Serves the object `key` to the holder of a signed URL for it.
async fn serve_local(
    storage: &Storage,
    key: &str,
    query: &LocalQuery,
) -> Result<Response, ApiError> {
    let key = key.to_owned();
    let grant = storage
        .verify(LocalMethod::Get, &key, query)
        .map_err(refused)?;
    if storage
        .size(&key)
        .await
        .map_err(storage::unavailable)?
        .is_none()
    {
        return Err(ApiError::not_found());
    }
    let chunks = storage
        .read(&key)
        .await
        .map_err(storage::unavailable)?
        .map_err(std::io::Error::other);
    let value = |v: &str| HeaderValue::from_str(v).map_err(storage::unavailable);
    let remaining = (grant.expires - chrono::Utc::now().timestamp()).max(0);
    Ok((
        [
            (header::CONTENT_TYPE, value(&grant.content_type)?),
            (header::CONTENT_DISPOSITION, value(&grant.disposition)?),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox; frame-ancestors 'none'"),
            ),
            // The web app, on another origin, shows images (avatars) from here.
            (
                header::HeaderName::from_static("cross-origin-resource-policy"),
                HeaderValue::from_static("cross-origin"),
            ),
            (
                header::CACHE_CONTROL,
                value(&format!("private, max-age={remaining}"))?,
            ),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}
