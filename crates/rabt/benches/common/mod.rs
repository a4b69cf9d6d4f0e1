//! What the benches that run the server share: a scratch database on the
//! Postgres of `BENCH_DATABASE_URL` (default the local one), dropped at the
//! end, and the settings every such bench starts from.

use rabt::config::Settings;
use sqlx::{AssertSqlSafe, Connection as _, Executor as _, PgConnection};
use uuid::Uuid;

/// A database made for one bench run.
pub struct ScratchDb {
    admin: PgConnection,
    name: String,
    pub url: url::Url,
}

impl ScratchDb {
    pub async fn create(purpose: &str) -> Self {
        let admin_url = std::env::var("BENCH_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("rabt_bench_{purpose}_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        admin
            .execute(AssertSqlSafe(format!("create database {name}")))
            .await
            .unwrap();
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&name);
        Self { admin, name, url }
    }

    /// The settings of a server on this database, loopback only, without
    /// Redis, with `extra` on top.
    pub fn settings(&self, extra: &[(&'static str, String)]) -> Settings {
        let mut overrides = vec![
            ("env", "test".into()),
            ("database_url", self.url.to_string()),
            ("bind", "127.0.0.1:0".into()),
            ("redis_url", String::new()),
            (
                "jwt_secret",
                "bench-secret-bench-secret-bench-secret".into(),
            ),
            ("database_max_connections", "16".into()),
            ("log_format", "pretty".into()),
        ];
        overrides.extend(extra.iter().cloned());
        Settings::load_with(&overrides).unwrap()
    }

    pub async fn drop(mut self) {
        self.admin
            .execute(AssertSqlSafe(format!(
                "drop database {} with (force)",
                self.name
            )))
            .await
            .unwrap();
    }
}
