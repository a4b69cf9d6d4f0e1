//! The admin routes, mounted under `/v1/admin`.

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    super::analytics::router()
        .merge(super::email::router())
        .merge(super::jobs::router())
        .merge(super::audit::router())
}
