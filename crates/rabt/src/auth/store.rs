//! SQL for authentication. Sign-in flows run as the service role (nobody is
//! identified yet); the caller passes the transaction.

use std::{net::IpAddr, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::tokens::{hash_token, random_token};

/// A user as sign-in sees it.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub password_hash: Option<String>,
    pub email_verified: bool,
    pub suspended: bool,
    /// Deactivated, other than by their own pending erasure (which signing
    /// in cancels: [`cancel_own_erasure`]).
    pub deactivated: bool,
}

pub async fn credentials_by_email(
    conn: &mut PgConnection,
    email: &str,
) -> Result<Option<Credentials>, sqlx::Error> {
    sqlx::query_as!(
        Credentials,
        r#"select id, email, display_name, password_hash,
                  email_verified_at is not null as "email_verified!",
                  suspended_at is not null as "suspended!",
                  deactivated_at is not null
                      and not exists (select from account_erasures e
                                      where e.user_id = users.id and e.by_self) as "deactivated!"
           from users where lower(email) = lower($1)"#,
        email
    )
    .fetch_optional(conn)
    .await
}

pub async fn credentials_by_id(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Credentials>, sqlx::Error> {
    sqlx::query_as!(
        Credentials,
        r#"select id, email, display_name, password_hash,
                  email_verified_at is not null as "email_verified!",
                  suspended_at is not null as "suspended!",
                  deactivated_at is not null
                      and not exists (select from account_erasures e
                                      where e.user_id = users.id and e.by_self) as "deactivated!"
           from users where id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Creates an unverified user; `None` when the email is taken (in any case),
/// including by a concurrent sign-up.
pub async fn insert_user(
    conn: &mut PgConnection,
    email: &str,
    display_name: &str,
    password_hash: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "insert into users (email, display_name, password_hash) values ($1, $2, $3) \
         on conflict (lower(email)) do nothing returning id",
        email,
        display_name,
        password_hash,
    )
    .fetch_optional(conn)
    .await
}

pub async fn set_password(
    conn: &mut PgConnection,
    user: Uuid,
    password_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update users set password_hash = $2 where id = $1",
        user,
        password_hash,
    )
    .execute(conn)
    .await
    .map(|_| ())
}

pub async fn mark_email_verified(conn: &mut PgConnection, user: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update users set email_verified_at = coalesce(email_verified_at, now()) where id = $1",
        user,
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// What a one-time token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
    OauthCode,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::OauthCode => "oauth_code",
        }
    }
}

/// Issues a one-time token, returning its only plain copy.
pub async fn create_one_time_token(
    conn: &mut PgConnection,
    user: Uuid,
    purpose: Purpose,
    ttl: Duration,
) -> Result<String, sqlx::Error> {
    let token = random_token();
    sqlx::query!(
        "insert into one_time_tokens (user_id, purpose, token_hash, expires_at) \
         values ($1, $2, $3, now() + make_interval(secs => $4))",
        user,
        purpose.as_str(),
        hash_token(&token),
        ttl.as_secs_f64(),
    )
    .execute(conn)
    .await?;
    Ok(token)
}

/// Spends a one-time token: the user it was for, if it was valid, unused and
/// unexpired. Single use is enforced by the row update itself.
pub async fn consume_one_time_token(
    conn: &mut PgConnection,
    token: &str,
    purpose: Purpose,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "update one_time_tokens set used_at = now() \
         where token_hash = $1 and purpose = $2 and used_at is null and expires_at > now() \
         returning user_id",
        hash_token(token),
        purpose.as_str(),
    )
    .fetch_optional(conn)
    .await
}

/// Whether a sign-in of `user` with `user_agent` comes from a device or
/// browser their sessions have not seen, for an account that has signed in
/// before (the first session after sign-up is not news).
pub async fn is_new_device(
    conn: &mut PgConnection,
    user: Uuid,
    user_agent: Option<&str>,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select exists (select from sessions where user_id = $1)
              and not exists (select from sessions
                              where user_id = $1 and user_agent is not distinct from $2)
              as "new!""#,
        user,
        user_agent
    )
    .fetch_one(conn)
    .await
}

/// Creates a session and its first refresh token; `second_factor` when the
/// sign-in proved one (the session starts at aal 2).
pub async fn create_session(
    conn: &mut PgConnection,
    user: Uuid,
    ttl: Duration,
    ip: Option<IpAddr>,
    user_agent: Option<&str>,
    second_factor: bool,
) -> Result<(Uuid, String), sqlx::Error> {
    let session = sqlx::query_scalar!(
        "insert into sessions (user_id, expires_at, ip, user_agent, aal, mfa_at) \
         values ($1, now() + make_interval(secs => $2), $3::text::inet, $4, \
                 case when $5 then 2 else 1 end, case when $5 then now() end) \
         returning id",
        user,
        ttl.as_secs_f64(),
        ip.map(|ip| ip.to_string()),
        user_agent,
        second_factor,
    )
    .fetch_one(&mut *conn)
    .await?;
    let refresh = issue_refresh_token(conn, session, None).await?;
    Ok((session, refresh))
}

pub async fn issue_refresh_token(
    conn: &mut PgConnection,
    session: Uuid,
    parent: Option<Uuid>,
) -> Result<String, sqlx::Error> {
    let token = random_token();
    sqlx::query!(
        "insert into refresh_tokens (session_id, parent_id, token_hash) values ($1, $2, $3)",
        session,
        parent,
        hash_token(&token),
    )
    .execute(conn)
    .await?;
    Ok(token)
}

/// A presented refresh token, with its session locked for the rest of the
/// transaction so that concurrent refreshes of one session run one at a time.
#[derive(Debug, Clone)]
pub struct PresentedRefresh {
    pub token_id: Uuid,
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub used_at: Option<DateTime<Utc>>,
    pub session_alive: bool,
    pub now: DateTime<Utc>,
}

pub async fn lock_refresh_token(
    conn: &mut PgConnection,
    token: &str,
) -> Result<Option<PresentedRefresh>, sqlx::Error> {
    let hash = hash_token(token);
    let session = sqlx::query_scalar!(
        "select s.id from sessions s \
         where s.id = (select session_id from refresh_tokens where token_hash = $1) \
         for update",
        hash,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if session.is_none() {
        return Ok(None);
    }
    // Read after the lock: a concurrent refresh may just have spent it.
    sqlx::query_as!(
        PresentedRefresh,
        r#"select t.id as token_id, s.id as session_id, s.user_id, t.used_at,
                  (s.revoked_at is null and s.expires_at > now()) as "session_alive!",
                  now() as "now!"
           from refresh_tokens t join sessions s on s.id = t.session_id
           where t.token_hash = $1"#,
        hash,
    )
    .fetch_optional(conn)
    .await
}

pub async fn spend_refresh_token(conn: &mut PgConnection, token: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update refresh_tokens set used_at = coalesce(used_at, now()) where id = $1",
        token,
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    Logout,
    LogoutAll,
    Revoked,
    RefreshTokenReused,
    PasswordReset,
    PasswordChanged,
    Suspended,
    Deactivated,
}

impl RevokeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::LogoutAll => "logout_all",
            Self::Revoked => "revoked",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::PasswordReset => "password_reset",
            Self::PasswordChanged => "password_changed",
            Self::Suspended => "suspended",
            Self::Deactivated => "deactivated",
        }
    }
}

/// Revokes one session of `user`; `false` when there is no such live session.
pub async fn revoke_session(
    conn: &mut PgConnection,
    user: Uuid,
    session: Uuid,
    reason: RevokeReason,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query!(
        "update sessions set revoked_at = now(), revoked_reason = $3 \
         where id = $2 and user_id = $1 and revoked_at is null",
        user,
        session,
        reason.as_str(),
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Revokes every live session of `user` except `keep`; returns those revoked.
pub async fn revoke_sessions(
    conn: &mut PgConnection,
    user: Uuid,
    keep: Option<Uuid>,
    reason: RevokeReason,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "update sessions set revoked_at = now(), revoked_reason = $3 \
         where user_id = $1 and revoked_at is null and ($2::uuid is null or id <> $2) \
         returning id",
        user,
        keep,
        reason.as_str(),
    )
    .fetch_all(conn)
    .await
}

/// Whether a session is live, touching its `last_seen_at`.
pub async fn touch_session(
    conn: &mut PgConnection,
    session: Uuid,
    user: Uuid,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query!(
        "update sessions set last_seen_at = now() \
         where id = $1 and user_id = $2 and revoked_at is null and expires_at > now() \
           and exists (select 1 from users u where u.id = $2 \
                       and u.suspended_at is null and u.deactivated_at is null)",
        session,
        user,
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub aal: i16,
}

/// The assurance level of a session (1 when it is unknown).
pub async fn session_aal(conn: &mut PgConnection, session: Uuid) -> Result<i16, sqlx::Error> {
    let aal = sqlx::query_scalar!("select aal from sessions where id = $1", session)
        .fetch_optional(conn)
        .await?;
    Ok(aal.unwrap_or(1))
}

/// The caller's live sessions (RLS limits them to the caller's own).
pub async fn list_sessions(conn: &mut PgConnection) -> Result<Vec<SessionRow>, sqlx::Error> {
    sqlx::query_as!(
        SessionRow,
        "select id, created_at, last_seen_at, host(ip) as ip, user_agent, aal from sessions \
         where revoked_at is null and expires_at > now() \
         order by created_at desc limit 100",
    )
    .fetch_all(conn)
    .await
}

/// The account linked to a provider identity, if any.
pub async fn user_by_identity(
    conn: &mut PgConnection,
    provider: &str,
    subject: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "select user_id from oauth_identities where provider = $1 and subject = $2",
        provider,
        subject,
    )
    .fetch_optional(conn)
    .await
}

pub async fn link_identity(
    conn: &mut PgConnection,
    user: Uuid,
    provider: &str,
    subject: &str,
    email: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into oauth_identities (user_id, provider, subject, email) values ($1, $2, $3, $4) \
         on conflict (provider, subject) do nothing",
        user,
        provider,
        subject,
        email,
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Stores the provider's latest access token of an identity, sealed.
pub async fn store_provider_token(
    conn: &mut PgConnection,
    provider: &str,
    subject: &str,
    sealed: &crate::crypto::Sealed,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update oauth_identities set access_token = $3, token_key_id = $4 \
         where provider = $1 and subject = $2",
        provider,
        subject,
        sealed.bytes,
        sealed.key_id,
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Records that a new account accepted the privacy policy in force when it
/// signed up (API.md §11), if one is published.
pub async fn record_signup_consent(
    conn: &mut PgConnection,
    user: Uuid,
    client: &crate::http::ClientInfo,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into consents (user_id, policy_version, ip, user_agent)          select $1, version, $2::text::inet, $3 from privacy_policies          order by published_at desc limit 1",
        user,
        client.ip.map(|ip| ip.to_string()),
        client.user_agent.as_deref(),
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// An account made by a provider sign-in: verified by the provider, no password.
pub async fn insert_oauth_user(
    conn: &mut PgConnection,
    email: &str,
    display_name: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "insert into users (email, display_name, email_verified_at) values ($1, $2, now()) \
         on conflict (lower(email)) do nothing returning id",
        email,
        display_name,
    )
    .fetch_optional(conn)
    .await
}

/// Takes over an account whose address was never verified: whoever set its
/// password never proved the address, so that password goes.
pub async fn claim_unverified_account(
    conn: &mut PgConnection,
    user: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update users set password_hash = null, email_verified_at = now() \
         where id = $1 and email_verified_at is null",
        user,
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Live sessions of any of `users`.
pub async fn live_sessions_of(
    conn: &mut PgConnection,
    users: &[Uuid],
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "select id from sessions \
         where user_id = any($1) and revoked_at is null and expires_at > now()",
        users,
    )
    .fetch_all(conn)
    .await
}

/// Cancels `user`'s own pending erasure and reactivates the account, in the
/// transaction of the session that signing in starts; `true` when there was
/// one. An admin's erasure is not cancelled this way.
pub async fn cancel_own_erasure(conn: &mut PgConnection, user: Uuid) -> Result<bool, sqlx::Error> {
    let cancelled = sqlx::query_scalar!(
        "delete from account_erasures where user_id = $1 and by_self returning user_id",
        user,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if cancelled.is_none() {
        return Ok(false);
    }
    sqlx::query!("update users set deactivated_at = null where id = $1", user)
        .execute(conn)
        .await?;
    Ok(true)
}
