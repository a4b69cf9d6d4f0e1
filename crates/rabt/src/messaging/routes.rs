//! HTTP routes of conversations and messages (API.md §6).

use std::collections::HashMap;

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    model::{Conversation, Message, MessageEdit, NewConversation, NewMessage, Participant},
    store::{self, ConversationRow},
};
use crate::{
    auth::AuthUser,
    files::{self, model::Purpose},
    http::{
        ApiError, AppJson, AppPath, AppQuery, ErrorCode, FieldError,
        error::violated_constraint,
        idempotency::{IdempotencyKey, Idempotent},
        openapi::{Conflict, Forbidden, NotFound, Validation},
        pagination::{self, Page},
    },
    projects,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_conversation, list_conversations))
        .routes(routes!(get_conversation))
        .routes(routes!(history, send_message))
        .routes(routes!(edit_message, delete_message))
        .routes(routes!(read_conversation))
}

/// The contract's errors for what the database refuses when a conversation
/// starts.
fn on_start_constraint(err: sqlx::Error) -> ApiError {
    let field = |code: &str, message: &str| {
        ApiError::validation(vec![FieldError::new("participant_ids", code, message)])
    };
    match violated_constraint(&err) {
        Some("conversations_participants_max") => field(
            "too_long",
            "A conversation has at most 50 participants, you included.",
        ),
        Some("conversations_participants_min") => {
            field("too_short", "Name at least one other person.")
        }
        Some("conversations_participants_known") => {
            field("not_found", "Every participant must be an active user.")
        }
        Some("conversations_project_known") => ApiError::validation(vec![FieldError::new(
            "project_id",
            "not_found",
            "No project you can see has this id.",
        )]),
        _ => err.into(),
    }
}

/// Adds each row's participants.
async fn with_members(
    conn: &mut sqlx::PgConnection,
    rows: Vec<ConversationRow>,
) -> Result<Vec<Conversation>, ApiError> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut members: HashMap<Uuid, Vec<Participant>> = HashMap::new();
    for (conversation, participant) in store::members(conn, &ids).await? {
        members.entry(conversation).or_default().push(participant);
    }
    rows.into_iter()
        .map(|row| {
            let last_message = row
                .last_message
                .map(serde_json::from_value::<Message>)
                .transpose()
                .map_err(ApiError::internal)?;
            Ok(Conversation {
                participants: members.remove(&row.id).unwrap_or_default(),
                id: row.id,
                kind: row.kind,
                title: row.title,
                project_id: row.project_id,
                last_message,
                unread_count: row.unread_count,
                last_activity_at: row.last_activity_at,
                created_at: row.created_at,
            })
        })
        .collect()
}

/// One of `caller`'s conversations, with its participants; 404 if it is not.
async fn one(
    conn: &mut sqlx::PgConnection,
    caller: Uuid,
    id: Uuid,
) -> Result<Conversation, ApiError> {
    let row = store::conversation(conn, caller, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    with_members(conn, vec![row])
        .await?
        .pop()
        .ok_or_else(ApiError::not_found)
}

/// Start a conversation. With one other person it is your direct
/// conversation with them: asking again returns the existing one (200).
#[utoipa::path(post, path = "/conversations", tag = "messaging",
    request_body = NewConversation, params(
        ("Idempotency-Key" = Option<String>, Header,
            description = "Replays the first response for 24 hours")),
    security(("bearer" = [])),
    responses(
        (status = 201, body = Conversation, description = "Started"),
        (status = 200, body = Conversation, description = "The existing direct conversation"),
        Validation,
    ))]
pub async fn start_conversation(
    State(state): State<AppState>,
    caller: AuthUser,
    key: IdempotencyKey,
    AppJson(request): AppJson<NewConversation>,
) -> Result<Response, ApiError> {
    let idem = Idempotent::new(key, caller.id, "POST /v1/conversations", &request)?;
    let request = request.validate(caller.id)?;
    let actor = caller.actor();
    let mut tx = state.db.begin(&actor).await?;
    if let Some(saved) = idem.claim(&mut tx).await? {
        return Ok(saved);
    }
    // A project the caller can see (its policy decides), or none.
    if let Some(project) = request.project_id
        && projects::store::find(&mut tx, project).await?.is_none()
    {
        return Err(ApiError::validation(vec![FieldError::new(
            "project_id",
            "not_found",
            "No project you can see has this id.",
        )]));
    }
    let (id, created) = store::start(
        &mut tx,
        &request.participant_ids,
        request.project_id,
        request.title.as_deref(),
    )
    .await
    .map_err(on_start_constraint)?;
    let conversation = one(&mut tx, caller.id, id).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    idem.commit(&state.db, &actor, tx, status, &conversation)
        .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConversationParams {
    /// 1..=100, default 20.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// A page of conversations.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationPage {
    pub items: Vec<Conversation>,
    pub next_cursor: Option<String>,
}

/// The caller's conversations, most recent activity first, each with its
/// participants, last message and the caller's unread count.
#[utoipa::path(get, path = "/conversations", tag = "messaging",
    params(ConversationParams), security(("bearer" = [])),
    responses(
        (status = 200, body = ConversationPage),
        Validation,
    ))]
pub async fn list_conversations(
    State(state): State<AppState>,
    caller: AuthUser,
    AppQuery(params): AppQuery<ConversationParams>,
) -> Result<Json<ConversationPage>, ApiError> {
    let limit = pagination::limit(params.limit)?;
    let after: Option<(DateTime<Utc>, Uuid)> = params
        .cursor
        .as_deref()
        .map(|c| state.cursors.decode(c))
        .transpose()?;
    let mut tx = state.db.read(&caller.actor()).await?;
    let rows = store::page(&mut tx, caller.id, after, limit + 1).await?;
    let page = Page::from_rows(&state.cursors, rows, limit, |last| {
        (last.last_activity_at, last.id)
    })?;
    let items = with_members(&mut tx, page.items).await?;
    Ok(Json(ConversationPage {
        items,
        next_cursor: page.next_cursor,
    }))
}

/// One of the caller's conversations.
#[utoipa::path(get, path = "/conversations/{id}", tag = "messaging",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = Conversation),
        NotFound,
    ))]
pub async fn get_conversation(
    State(state): State<AppState>,
    caller: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> Result<Json<Conversation>, ApiError> {
    let mut tx = state.db.read(&caller.actor()).await?;
    let conversation = one(&mut tx, caller.id, id).await?;
    Ok(Json(conversation))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// Messages older than this message (its id).
    pub before: Option<Uuid>,
    /// 1..=100, default 20.
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page (instead of `before`).
    pub cursor: Option<String>,
}

/// A page of messages, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    pub items: Vec<Message>,
    pub next_cursor: Option<String>,
}

/// A conversation's messages, newest first; only participants read them.
/// Deleted messages are tombstones (`deleted: true`, no body).
#[utoipa::path(get, path = "/conversations/{id}/messages", tag = "messaging",
    params(("id" = Uuid, Path), HistoryParams), security(("bearer" = [])),
    responses(
        (status = 200, body = MessagePage),
        NotFound,
        Validation,
    ))]
pub async fn history(
    State(state): State<AppState>,
    caller: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppQuery(params): AppQuery<HistoryParams>,
) -> Result<Json<MessagePage>, ApiError> {
    let limit = pagination::limit(params.limit)?;
    let mut tx = state.db.read(&caller.actor()).await?;
    if !store::is_participant(&mut tx, id).await? {
        return Err(ApiError::not_found());
    }
    let before = match (params.before, params.cursor.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(vec![FieldError::new(
                "before",
                "invalid",
                "Send `before` or `cursor`, not both.",
            )]));
        }
        (Some(message), None) => Some(store::position_of(&mut tx, id, message).await?.ok_or_else(
            || {
                ApiError::validation(vec![FieldError::new(
                    "before",
                    "not_found",
                    "Not a message of this conversation.",
                )])
            },
        )?),
        (None, Some(cursor)) => Some(state.cursors.decode::<(Uuid, i64)>(cursor).and_then(
            |(conversation, position)| {
                if conversation == id {
                    Ok(position)
                } else {
                    Err(pagination::wrong_order())
                }
            },
        )?),
        (None, None) => None,
    };
    let rows = store::history(&mut tx, id, before, limit + 1).await?;
    let page = Page::from_rows(&state.cursors, rows, limit, |(_, position)| (id, *position))?;
    Ok(Json(MessagePage {
        items: page.items.into_iter().map(|(message, _)| message).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Send a message. Idempotent on `client_message_id`: the same id in the same
/// conversation returns the first message. It is stored before anyone is
/// told, then every participant's sockets receive `message.created`.
#[utoipa::path(post, path = "/conversations/{id}/messages", tag = "messaging",
    request_body = NewMessage, params(("id" = Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header,
            description = "Replays the first response for 24 hours")),
    security(("bearer" = [])),
    responses(
        (status = 201, body = Message),
        NotFound,
        Validation,
    ))]
pub async fn send_message(
    State(state): State<AppState>,
    caller: AuthUser,
    key: IdempotencyKey,
    AppPath(id): AppPath<Uuid>,
    AppJson(request): AppJson<NewMessage>,
) -> Result<Response, ApiError> {
    let idem = Idempotent::new(
        key,
        caller.id,
        &format!("POST /v1/conversations/{id}/messages"),
        &request,
    )?;
    let request = request.validate()?;
    let actor = caller.actor();
    let mut tx = state.db.begin(&actor).await?;
    if let Some(saved) = idem.claim(&mut tx).await? {
        return Ok(saved);
    }
    let (message, _) = super::send(
        &mut tx,
        id,
        caller.id,
        &request,
        state.settings.realtime.message_email_delay,
    )
    .await?;
    idem.commit(&state.db, &actor, tx, StatusCode::CREATED, &message)
        .await
}

/// What the caller can see of a message, and whether they wrote it.
async fn own_message(
    conn: &mut sqlx::PgConnection,
    caller: Uuid,
    id: Uuid,
) -> Result<Message, ApiError> {
    let message = store::message(conn, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if message.author_id != Some(caller) {
        return Err(super::not_the_author());
    }
    Ok(message)
}

/// Edit one of your messages (its body, its files, or both); `edited_at` is
/// set. A deleted message cannot be edited (409).
#[utoipa::path(patch, path = "/messages/{id}", tag = "messaging",
    request_body = MessageEdit, params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = Message),
        Forbidden,
        NotFound,
        Conflict,
        Validation,
    ))]
pub async fn edit_message(
    State(state): State<AppState>,
    caller: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppJson(edit): AppJson<MessageEdit>,
) -> Result<Json<Message>, ApiError> {
    let edit = edit.validate()?;
    let mut tx = state.db.begin(&caller.actor()).await?;
    let message = own_message(&mut tx, caller.id, id).await?;
    if message.deleted {
        return Err(ApiError::new(ErrorCode::Conflict).with_detail("This message was deleted."));
    }
    if let Some(files) = &edit.attachment_file_ids {
        let added: Vec<Uuid> = files
            .iter()
            .filter(|f| !message.attachment_file_ids.contains(f))
            .copied()
            .collect();
        files::attach_own_ready(
            &mut tx,
            caller.id,
            &added,
            Purpose::MessageAttachment,
            "attachment_file_ids",
        )
        .await?;
    }
    let edited = store::edit(
        &mut tx,
        id,
        caller.id,
        edit.body.as_deref(),
        edit.attachment_file_ids.as_deref(),
    )
    .await?
    .ok_or_else(ApiError::not_found)?;
    tx.commit().await?;
    Ok(Json(edited))
}

/// Delete one of your messages: it stays in the history as a tombstone
/// (`deleted: true`, no body), and sockets receive `message.deleted`.
/// Deleting it again changes nothing.
#[utoipa::path(delete, path = "/messages/{id}", tag = "messaging",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        Forbidden,
        NotFound,
    ))]
pub async fn delete_message(
    State(state): State<AppState>,
    caller: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin(&caller.actor()).await?;
    own_message(&mut tx, caller.id, id).await?;
    store::delete(&mut tx, id, caller.id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Where the caller has read to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadMarker {
    pub message_id: Uuid,
}

/// Move your read marker forward to a message (never back): the unread
/// count is recounted and every participant's sockets receive
/// `conversation.read`.
#[utoipa::path(post, path = "/conversations/{id}/read", tag = "messaging",
    request_body = ReadMarker, params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 204, description = "Marked"),
        NotFound,
        Validation,
    ))]
pub async fn read_conversation(
    State(state): State<AppState>,
    caller: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppJson(marker): AppJson<ReadMarker>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = state.db.begin(&caller.actor()).await?;
    if !store::is_participant(&mut tx, id).await? {
        return Err(ApiError::not_found());
    }
    if !store::read(&mut tx, id, marker.message_id).await? {
        return Err(ApiError::validation(vec![FieldError::new(
            "message_id",
            "not_found",
            "Not a message of this conversation.",
        )]));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
