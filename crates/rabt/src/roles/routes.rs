//! HTTP routes of roles and permissions (API.md §4).
//!
//! Nobody grants a permission they lack, themselves included: creating or
//! editing a role, and granting or taking away a role, all need every
//! permission involved. The policies of `migrations/0004_rbac.sql` hold the
//! same line in the database.

use axum::{Json, extract::State, http::StatusCode, response::Response};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    model::{
        NewRole, Role, RoleChange, UserRoles, builtin_conflict, check_description, valid_role_name,
    },
    store::{self, EVERYONE},
};
use crate::{
    audit::{self, Action},
    auth::{AuthUser, Holding, StepUp, grants, permission, sessions},
    db::Actor,
    http::{
        ApiError, AppJson, AppPath, ClientInfo, ErrorCode, FieldError,
        error::{ProblemBody, violated_constraint},
        idempotency::{IdempotencyKey, Idempotent},
        openapi::{NotFound, Validation},
    },
    state::AppState,
};

/// Lacks `roles.manage`, or the role involves a permission the caller does
/// not hold (`forbidden`).
#[derive(utoipa::IntoResponses)]
#[response(status = 403, content_type = "application/problem+json")]
pub struct RoleForbidden(pub ProblemBody);

/// A built-in role, which the database keeps as it is (`conflict`).
#[derive(utoipa::IntoResponses)]
#[response(status = 409, content_type = "application/problem+json")]
pub struct BuiltinRole(pub ProblemBody);

/// How the roles table's constraints read to a client: a role's name is its
/// key, so a second role of one name is refused there.
fn on_constraint(err: sqlx::Error) -> ApiError {
    match violated_constraint(&err) {
        Some("roles_pkey") => {
            ApiError::new(ErrorCode::Conflict).with_detail("A role with this name exists.")
        }
        Some(grants::LAST_ACTIVE_ADMIN) => grants::last_admin_conflict(),
        _ => err.into(),
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_permissions))
        .routes(routes!(list_roles, create_role))
        .routes(routes!(update_role, delete_role))
        .routes(routes!(set_user_roles))
}

/// Validates a permission list: known names, all held by the caller.
async fn check_permissions(
    tx: &mut sqlx::PgConnection,
    caller: &AuthUser,
    permissions: &[String],
) -> Result<(), ApiError> {
    if permissions.len() > 100 {
        return Err(ApiError::validation(vec![FieldError::new(
            "permissions",
            "too_long",
            "At most 100 permissions.",
        )]));
    }
    let unknown = store::unknown_permissions(tx, permissions).await?;
    if !unknown.is_empty() {
        return Err(ApiError::validation(vec![FieldError::new(
            "permissions",
            "invalid",
            format!("Unknown permissions: {}.", unknown.join(", ")),
        )]));
    }
    if let Some(lacking) = permissions.iter().find(|p| !caller.holds(p)) {
        return Err(ApiError::new(ErrorCode::Forbidden).with_detail(format!(
            "You cannot grant `{lacking}`, which you do not hold."
        )));
    }
    Ok(())
}

/// The catalogue of permission names.
#[utoipa::path(get, path = "/permissions", tag = "roles", security(("bearer" = [])),
    responses((status = 200, body = Vec<String>)))]
pub async fn list_permissions(
    State(state): State<AppState>,
    caller: AuthUser,
) -> Result<Json<Vec<String>>, ApiError> {
    let mut tx = state.db.begin(&caller.actor()).await?;
    let names = store::permission_names(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(names))
}

/// Every role, built-in first.
#[utoipa::path(get, path = "/roles", tag = "roles", security(("bearer" = [])),
    responses((status = 200, body = Vec<Role>)))]
pub async fn list_roles(
    State(state): State<AppState>,
    caller: AuthUser,
) -> Result<Json<Vec<Role>>, ApiError> {
    let mut tx = state.db.begin(&caller.actor()).await?;
    let roles = store::list_roles(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(roles.into_iter().map(Role::from).collect()))
}

/// Create a role (needs `roles.manage`, and every permission it grants).
#[utoipa::path(post, path = "/roles", tag = "roles", request_body = NewRole,
    security(("bearer" = ["roles.manage"])),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Replays the first response for 24 hours")),
    responses(
        (status = 201, body = Role),
        RoleForbidden,
        (status = 409, description = "The name is taken (`conflict`)", body = ProblemBody,
            content_type = "application/problem+json"),
        Validation,
    ))]
pub async fn create_role(
    State(state): State<AppState>,
    caller: Holding<permission::RolesManage>,
    client: ClientInfo,
    key: IdempotencyKey,
    AppJson(body): AppJson<NewRole>,
) -> Result<Response, ApiError> {
    let idem = Idempotent::new(key, caller.id, "POST /v1/roles", &body)?;
    if !valid_role_name(&body.name) {
        return Err(ApiError::validation(vec![FieldError::new(
            "name",
            "invalid",
            "2 to 40 lower-case letters, digits, `_` or `-`, starting with a letter.",
        )]));
    }
    check_description(&body.description)?;
    let actor = caller.actor();
    let mut tx = state.db.begin(&actor).await?;
    if let Some(saved) = idem.claim(&mut tx).await? {
        return Ok(saved);
    }
    check_permissions(&mut tx, &caller, &body.permissions).await?;
    store::insert_role(&mut tx, &body.name, &body.description)
        .await
        .map_err(on_constraint)?;
    store::set_role_permissions(&mut tx, &body.name, &body.permissions).await?;
    let role = store::find_role(&mut tx, &body.name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    record(
        &mut tx,
        &caller,
        &client,
        "role_created",
        json!({"role": body.name}),
    )
    .await?;
    idem.commit(
        &state.db,
        &actor,
        tx,
        StatusCode::CREATED,
        &Role::from(role),
    )
    .await
}

/// Change a custom role's description or permissions (needs `roles.manage`).
#[utoipa::path(patch, path = "/roles/{name}", tag = "roles", request_body = RoleChange,
    params(("name" = String, Path)), security(("bearer" = ["roles.manage"])),
    responses(
        (status = 200, body = Role),
        RoleForbidden,
        NotFound,
        BuiltinRole,
    ))]
pub async fn update_role(
    State(state): State<AppState>,
    caller: Holding<permission::RolesManage>,
    client: ClientInfo,
    AppPath(name): AppPath<String>,
    AppJson(body): AppJson<RoleChange>,
) -> Result<Json<Role>, ApiError> {
    let mut tx = state.db.begin(&caller.actor()).await?;
    let existing = store::find_role(&mut tx, &name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if existing.builtin {
        return Err(builtin_conflict());
    }
    if let Some(description) = &body.description {
        check_description(description)?;
        store::set_description(&mut tx, &name, description).await?;
    }
    if let Some(permissions) = &body.permissions {
        // Both what is added and what is taken away must be the caller's own.
        let mut involved = permissions.clone();
        involved.extend(existing.permissions.iter().cloned());
        involved.sort();
        involved.dedup();
        check_permissions(&mut tx, &caller, &involved).await?;
        store::set_role_permissions(&mut tx, &name, permissions).await?;
    }
    let role = store::find_role(&mut tx, &name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let holders = store::holders(&mut tx, &name).await?;
    record(
        &mut tx,
        &caller,
        &client,
        "role_updated",
        json!({"role": name}),
    )
    .await?;
    tx.commit().await?;
    sessions::publish_grants(&state, &holders).await;
    Ok(Json(role.into()))
}

/// Delete a custom role (needs `roles.manage`); built-in roles stay.
#[utoipa::path(delete, path = "/roles/{name}", tag = "roles", params(("name" = String, Path)),
    security(("bearer" = ["roles.manage"])),
    responses(
        (status = 204),
        RoleForbidden,
        NotFound,
        BuiltinRole,
    ))]
pub async fn delete_role(
    State(state): State<AppState>,
    caller: Holding<permission::RolesManage>,
    client: ClientInfo,
    AppPath(name): AppPath<String>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin(&caller.actor()).await?;
    let existing = store::find_role(&mut tx, &name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if existing.builtin {
        return Err(builtin_conflict());
    }
    check_permissions(&mut tx, &caller, &existing.permissions).await?;
    let holders = store::holders(&mut tx, &name).await?;
    store::delete_role(&mut tx, &name).await?;
    record(
        &mut tx,
        &caller,
        &client,
        "role_deleted",
        json!({"role": name}),
    )
    .await?;
    tx.commit().await?;
    sessions::publish_grants(&state, &holders).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Set a user's roles (needs `roles.assign`, and every permission of every role
/// granted or taken away). Takes effect on the user's next request.
#[utoipa::path(put, path = "/users/{id}/roles", tag = "roles", request_body = UserRoles,
    params(("id" = Uuid, Path)), security(("bearer" = ["roles.assign"])),
    responses(
        (status = 200, body = UserRoles),
        (status = 403, description = "Lacks `roles.assign`, or the change grants or takes away \
            a permission the caller does not hold (`forbidden`); with two-factor sign-in on, no \
            second factor in the last 10 minutes (`mfa_required`, with an `mfa_token` for \
            `POST /v1/auth/mfa/challenge`)", body = ProblemBody,
            content_type = "application/problem+json"),
        NotFound,
        (status = 409, description = "It would take `admin` from the last active admin (`conflict`)",
            body = ProblemBody, content_type = "application/problem+json"),
        Validation,
    ))]
pub async fn set_user_roles(
    State(state): State<AppState>,
    caller: StepUp<Holding<permission::RolesAssign>>,
    client: ClientInfo,
    AppPath(user): AppPath<Uuid>,
    AppJson(body): AppJson<UserRoles>,
) -> Result<Json<UserRoles>, ApiError> {
    let mut wanted: Vec<String> = body.roles.into_iter().filter(|r| r != EVERYONE).collect();
    wanted.sort();
    wanted.dedup();
    if wanted.len() > 50 {
        return Err(ApiError::validation(vec![FieldError::new(
            "roles",
            "too_long",
            "At most 50 roles.",
        )]));
    }
    // Whether the user exists, read first and apart (the caller may not see a
    // private profile), so no request holds two connections at once.
    let mut service = state.db.begin(&Actor::Service).await?;
    if !store::user_exists(&mut service, user).await? {
        return Err(ApiError::not_found());
    }
    service.commit().await?;
    let mut tx = state.db.begin(&caller.actor()).await?;
    // What the user holds, read under a lock on their roles, so a grant made
    // meanwhile cannot be taken away unchecked.
    let current = store::lock_roles_of(&mut tx, user).await?;
    let unknown = store::unknown_roles(&mut tx, &wanted).await?;
    if !unknown.is_empty() {
        return Err(ApiError::validation(vec![FieldError::new(
            "roles",
            "invalid",
            format!("Unknown roles: {}.", unknown.join(", ")),
        )]));
    }
    // Every role that changes hands, granted or removed, must be within the
    // caller's own permissions.
    let changed: Vec<String> = wanted
        .iter()
        .filter(|r| !current.contains(r))
        .chain(
            current
                .iter()
                .filter(|r| *r != EVERYONE && !wanted.contains(r)),
        )
        .cloned()
        .collect();
    let involved = store::permissions_of_roles(&mut tx, &changed).await?;
    if let Some(lacking) = involved.iter().find(|p| !caller.holds(p)) {
        return Err(ApiError::new(ErrorCode::Forbidden)
            .with_detail(format!("You cannot grant or take away `{lacking}`.")));
    }
    store::set_user_roles(&mut tx, user, &wanted, Some(caller.id))
        .await
        .map_err(on_constraint)?;
    audit::record(
        &mut tx,
        Some(caller.id),
        Action::RolesChanged,
        Some(user),
        &client,
        json!({"from": current, "to": wanted}),
    )
    .await?;
    tx.commit().await?;
    sessions::publish_grants(&state, &[user]).await;
    let mut roles = vec![EVERYONE.to_owned()];
    roles.extend(wanted);
    Ok(Json(UserRoles { roles }))
}

/// Records a change of roles in the audit log, in the change's own
/// transaction: both commit or neither does.
async fn record(
    tx: &mut sqlx::PgConnection,
    caller: &AuthUser,
    client: &ClientInfo,
    what: &str,
    details: serde_json::Value,
) -> Result<(), ApiError> {
    let mut details = details;
    if let serde_json::Value::Object(map) = &mut details {
        map.insert("change".into(), what.into());
    }
    audit::record(
        tx,
        Some(caller.id),
        Action::RolesChanged,
        None,
        client,
        details,
    )
    .await?;
    Ok(())
}
