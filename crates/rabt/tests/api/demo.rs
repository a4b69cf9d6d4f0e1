//! The demo accounts of `scripts/dev`: a known password in development, and
//! a production start that refuses to run while they exist.

use rabt::{
    app::{Application, ServeOptions},
    auth::demo,
    config::Environment,
};

use crate::helpers::{
    TestDb,
    auth::{self, login},
    test_settings,
};

async fn add_demo_account(pool: &sqlx::PgPool) {
    sqlx::query(
        "insert into users (email, display_name, visibility) \
         values ('ada@demo.rabt.dev', 'Ada Lovelace', 'public')",
    )
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn demo_accounts_sign_in_with_the_demo_password_outside_production() {
    let env = auth::spawn(vec![]).await;
    add_demo_account(&env.app.db.admin).await;
    // Before: no password, so no sign-in.
    assert_eq!(
        login(&env, "ada@demo.rabt.dev", demo::PASSWORD)
            .await
            .status(),
        401
    );
    let refused = demo::enable_sign_in(env.app.app_db(), Environment::Production).await;
    assert!(refused.is_err());
    let enabled = demo::enable_sign_in(env.app.app_db(), Environment::Development)
        .await
        .unwrap();
    assert_eq!(enabled, ["ada@demo.rabt.dev"]);
    let response = login(&env, "ada@demo.rabt.dev", demo::PASSWORD).await;
    assert_eq!(response.status(), 200);
    let me: serde_json::Value = env
        .app
        .get_as(
            response.json::<serde_json::Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap(),
            "/v1/me",
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email_verified"], true);
    // Nobody signs up in the demo domain (it would stop a production start).
    let taken = env
        .app
        .post_json(
            "/v1/auth/signup",
            &serde_json::json!({"email": "mallory@Demo.Rabt.Dev",
                                "password": auth::PASSWORD, "display_name": "M"}),
        )
        .await;
    assert_eq!(taken.status(), 422);
    let body = crate::helpers::problem(taken).await;
    assert_eq!(body["errors"][0]["code"], "reserved");
}

async fn start_in_production(db: &TestDb) -> anyhow::Result<Application> {
    let settings = test_settings(
        db,
        false,
        &[
            ("env", "production".into()),
            (
                "encryption_key",
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into(),
            ),
        ],
    );
    let jobs = rabt::app::job_registry(&settings)?;
    Application::build_with(
        settings,
        ServeOptions {
            workers: false,
            migrate: false,
        },
        jobs,
    )
    .await
}

#[tokio::test]
async fn a_production_start_refuses_to_run_while_demo_accounts_exist() {
    let db = TestDb::new().await;
    let app = start_in_production(&db)
        .await
        .expect("no demo accounts: starts");
    drop(app);
    add_demo_account(&db.admin).await;
    let err = start_in_production(&db)
        .await
        .err()
        .expect("refused with a demo account");
    assert!(err.to_string().contains("demo accounts"), "{err}");
}
