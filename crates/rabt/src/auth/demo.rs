//! The demo accounts of `scripts/dev` (`scripts/demo-data.sql`): every
//! account under `@demo.rabt.dev`, a domain sign-up refuses. In development
//! they get a known password and a verified address, so a newcomer can sign
//! in at once; a production start refuses to run while any of them exists.

use secrecy::SecretString;

use super::passwords;
use crate::{
    config::Environment,
    db::{Actor, Db},
};

/// The domain of every demo account.
pub const DOMAIN: &str = "demo.rabt.dev";

/// The password `rabt demo sign-in` gives them (README, "Quick start").
pub const PASSWORD: &str = "rabt-demo-2026";

/// Whether `email` is in the demo accounts' domain (reserved: no sign-up).
pub fn is_demo_address(email: &str) -> bool {
    email
        .rsplit_once('@')
        .is_some_and(|(_, domain)| domain.eq_ignore_ascii_case(DOMAIN))
}

/// Gives every demo account [`PASSWORD`] and a verified address; returns
/// their addresses. Refused in production.
pub async fn enable_sign_in(db: &Db, env: Environment) -> anyhow::Result<Vec<String>> {
    if env == Environment::Production {
        anyhow::bail!("demo accounts are for development; RABT_ENV is production");
    }
    let hash = passwords::hash(&SecretString::from(PASSWORD)).await?;
    let mut tx = db.begin(&Actor::Service).await?;
    let emails = sqlx::query_scalar!(
        "update users set password_hash = $1, email_verified_at = coalesce(email_verified_at, now()) \
         where email like '%@' || $2 returning email",
        hash,
        DOMAIN,
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(emails)
}

/// Whether any demo account exists.
pub async fn accounts_exist(db: &Db) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin(&Actor::Service).await?;
    let exists = sqlx::query_scalar!(
        r#"select exists (select 1 from users where email like '%@' || $1) as "exists!""#,
        DOMAIN
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(exists)
}
