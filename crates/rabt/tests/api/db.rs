//! Database conventions: ids, timestamps, and constraints that speak the
//! contract's errors.

use rabt::{
    db::Actor,
    http::{ApiError, ErrorCode},
};
use uuid::Uuid;

use crate::helpers::spawn_app;

#[tokio::test]
async fn ids_made_by_the_database_are_uuid_v7_in_time_order() {
    let app = spawn_app().await;
    let first = app.insert_user("a@rabt.test", "A", "public").await;
    let second = app.insert_user("b@rabt.test", "B", "public").await;
    assert_eq!(first.get_version_num(), 7);
    assert!(second > first);
    let from_rust = Uuid::now_v7();
    assert!(from_rust > first, "the clocks agree on the order");
}

#[tokio::test]
async fn updated_at_moves_on_every_update() {
    let app = spawn_app().await;
    let id = app.insert_user("a@rabt.test", "A", "public").await;
    let (created, updated): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as(
            "update users set display_name = 'A2' where id = $1 returning created_at, updated_at",
        )
        .bind(id)
        .fetch_one(&app.db.admin)
        .await
        .unwrap();
    assert!(updated > created);
}

#[tokio::test]
async fn a_taken_email_in_any_case_is_a_409_conflict() {
    let app = spawn_app().await;
    app.insert_user("Ada@rabt.test", "Ada", "public").await;
    let mut tx = app.app_db().begin(&Actor::Service).await.unwrap();
    let err =
        sqlx::query("insert into users (email, display_name) values ('ada@RABT.test', 'Imposter')")
            .execute(&mut *tx)
            .await
            .unwrap_err();
    let api = ApiError::from(err);
    assert_eq!(api.code(), ErrorCode::Conflict);
}

#[tokio::test]
async fn a_broken_named_check_is_a_422_naming_the_field() {
    let app = spawn_app().await;
    let mut tx = app.app_db().begin(&Actor::Service).await.unwrap();
    let err = sqlx::query("insert into users (email, display_name) values ('a@rabt.test', '')")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    let api = ApiError::from(err);
    assert_eq!(api.code(), ErrorCode::ValidationFailed);
    assert_eq!(api.field_errors()[0].field, "display_name");
}
