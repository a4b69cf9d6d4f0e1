//! SQL of the second factor. Every function runs in a transaction of the
//! service role (the secrets and hashes are not readable by users); the
//! caller passes it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    auth::tokens::{hash_token, random_token},
    crypto::Sealed,
};

/// A TOTP factor as stored: its secret still sealed.
#[derive(Debug, Clone)]
pub struct FactorRow {
    pub id: Uuid,
    pub sealed: Sealed,
}

/// Takes the transaction's lock on changing `user`'s second factor:
/// enrolments, verifications and removals of one user run one at a time.
pub async fn lock_user(conn: &mut PgConnection, user: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "select from pg_advisory_xact_lock(hashtextextended('rabt.mfa:' || $1::uuid::text, 0))",
        user,
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Whether `user` has two-factor sign-in on (a verified factor).
pub async fn is_enabled(conn: &mut PgConnection, user: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select exists(select 1 from totp_factors where user_id = $1 and verified)
           as "enabled!""#,
        user,
    )
    .fetch_one(conn)
    .await
}

/// Starts an enrolment: the pending factor `id` with its sealed secret takes
/// the place of any earlier pending one. The verified factor, if any, stays.
pub async fn insert_pending(
    conn: &mut PgConnection,
    user: Uuid,
    id: Uuid,
    sealed: &Sealed,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "delete from totp_factors where user_id = $1 and not verified",
        user
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "insert into totp_factors (id, user_id, secret_sealed, secret_key_id) \
         values ($1, $2, $3, $4)",
        id,
        user,
        sealed.bytes,
        sealed.key_id,
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// The user's pending (`verified = false`) or verified factor.
pub async fn factor(
    conn: &mut PgConnection,
    user: Uuid,
    verified: bool,
) -> Result<Option<FactorRow>, sqlx::Error> {
    let row = sqlx::query!(
        "select id, secret_sealed, secret_key_id from totp_factors \
         where user_id = $1 and verified = $2",
        user,
        verified,
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| FactorRow {
        id: r.id,
        sealed: Sealed {
            bytes: r.secret_sealed,
            key_id: r.secret_key_id,
        },
    }))
}

/// Accepts a code of `step` for `factor` once: `false` when a code of this
/// step or a later one was accepted already (a replay).
pub async fn spend_step(
    conn: &mut PgConnection,
    factor: Uuid,
    step: i64,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query!(
        "update totp_factors set last_used_step = $2 where id = $1 and last_used_step < $2",
        factor,
        step,
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Turns the pending factor on, in place of the verified one if there was
/// one; `step` is that of the code that verified it.
pub async fn activate(
    conn: &mut PgConnection,
    user: Uuid,
    factor: Uuid,
    step: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "delete from totp_factors where user_id = $1 and verified",
        user
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "update totp_factors set verified_at = now(), last_used_step = $3 \
         where id = $2 and user_id = $1",
        user,
        factor,
        step,
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Turns two-factor sign-in off: factors and recovery codes go.
pub async fn disable(conn: &mut PgConnection, user: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("delete from totp_factors where user_id = $1", user)
        .execute(&mut *conn)
        .await?;
    sqlx::query!("delete from recovery_codes where user_id = $1", user)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Voids the user's recovery codes and stores the hashes of a new set.
pub async fn replace_recovery_codes(
    conn: &mut PgConnection,
    user: Uuid,
    hashes: &[Vec<u8>],
) -> Result<(), sqlx::Error> {
    sqlx::query!("delete from recovery_codes where user_id = $1", user)
        .execute(&mut *conn)
        .await?;
    sqlx::query!(
        "insert into recovery_codes (user_id, code_hash) select $1, unnest($2::bytea[])",
        user,
        hashes,
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Spends the unused recovery code with `hash`; `false` when there is none.
pub async fn spend_recovery_code(
    conn: &mut PgConnection,
    user: Uuid,
    hash: &[u8],
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query!(
        "update recovery_codes set used_at = now() \
         where user_id = $1 and code_hash = $2 and used_at is null",
        user,
        hash,
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// How many unused recovery codes `user` has.
pub async fn recovery_codes_left(conn: &mut PgConnection, user: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select count(*) as "left!" from recovery_codes where user_id = $1 and used_at is null"#,
        user,
    )
    .fetch_one(conn)
    .await
}

/// Issues a challenge for `user` (of `session`, for a step-up), returning
/// the only plain copy of its token.
pub async fn create_challenge(
    conn: &mut PgConnection,
    user: Uuid,
    session: Option<Uuid>,
    via: &str,
    ttl: Duration,
) -> Result<String, sqlx::Error> {
    let token = random_token();
    sqlx::query!(
        "insert into mfa_challenges (user_id, session_id, via, token_hash, expires_at) \
         values ($1, $2, $3, $4, now() + make_interval(secs => $5))",
        user,
        session,
        via,
        hash_token(&token),
        ttl.as_secs_f64(),
    )
    .execute(conn)
    .await?;
    Ok(token)
}

/// A live (unused, unexpired) challenge.
#[derive(Debug, Clone)]
pub struct Challenge {
    pub id: Uuid,
    pub user_id: Uuid,
    pub session_id: Option<Uuid>,
    pub via: String,
}

pub async fn find_challenge(
    conn: &mut PgConnection,
    token: &str,
) -> Result<Option<Challenge>, sqlx::Error> {
    sqlx::query_as!(
        Challenge,
        "select id, user_id, session_id, via from mfa_challenges \
         where token_hash = $1 and used_at is null and expires_at > now()",
        hash_token(token),
    )
    .fetch_optional(conn)
    .await
}

/// Spends a challenge; `false` when a concurrent request spent it first.
pub async fn consume_challenge(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let result = sqlx::query!(
        "update mfa_challenges set used_at = now() \
         where id = $1 and used_at is null and expires_at > now()",
        id,
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// What a step-up needs to know of a session.
#[derive(Debug, Clone)]
pub struct Assurance {
    /// The user has two-factor sign-in on.
    pub mfa_enabled: bool,
    pub aal: i16,
    /// When the second factor was last proven in the session.
    pub mfa_at: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

pub async fn assurance(
    conn: &mut PgConnection,
    user: Uuid,
    session: Uuid,
) -> Result<Assurance, sqlx::Error> {
    sqlx::query_as!(
        Assurance,
        r#"select exists(select 1 from totp_factors f where f.user_id = $1 and f.verified)
                    as "mfa_enabled!",
                  coalesce((select s.aal from sessions s where s.id = $2 and s.user_id = $1), 1::smallint)
                    as "aal!",
                  (select s.mfa_at from sessions s where s.id = $2 and s.user_id = $1) as mfa_at,
                  now() as "now!""#,
        user,
        session,
    )
    .fetch_one(conn)
    .await
}

/// Raises a live session to aal 2, the second factor proven now; `false`
/// when the session has ended.
pub async fn raise_session(
    conn: &mut PgConnection,
    user: Uuid,
    session: Uuid,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query!(
        "update sessions set aal = 2, mfa_at = now() \
         where id = $1 and user_id = $2 and revoked_at is null and expires_at > now()",
        session,
        user,
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Spends every unspent refresh token of a session (a step-up hands out the
/// session's next one); the newest of them, to be the next one's parent.
pub async fn spend_refresh_tokens(
    conn: &mut PgConnection,
    session: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    let spent = sqlx::query_scalar!(
        "update refresh_tokens set used_at = now() \
         where session_id = $1 and used_at is null returning id",
        session,
    )
    .fetch_all(conn)
    .await?;
    // uuid v7: the largest is the newest.
    Ok(spent.into_iter().max())
}

/// Forgets challenges that ended more than a day ago.
pub async fn delete_stale_challenges(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    let result =
        sqlx::query!("delete from mfa_challenges where expires_at < now() - interval '1 day'")
            .execute(conn)
            .await?;
    Ok(result.rows_affected())
}
