//! A copy of everything rabt keeps about a user (API.md §11): `POST
//! /me/export` records a pending export and queues `privacy.export`, which
//! reads every record about the user, writes them as JSON
//! files into a ZIP (deflate) with the bytes of their files, stores it under
//! `exports/{id}`, and emails the user a signed link. The ZIP is kept
//! [`KEPT`]; the sweep then deletes the row, and the row's trigger queues
//! the object's deletion (migrations/0065).
//!
//! What is left out, on purpose: secrets (the password hash, refresh-token
//! hashes, sealed OAuth tokens, TOTP secrets, recovery-code hashes) and the
//! hash chain's own columns. Others' messages in the user's conversations
//! are theirs, not the user's: the export holds the user's own messages and
//! the conversations they are in.

use std::{io::Write as _, time::Duration};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;
use zip::{CompressionMethod, ZipWriter, write::SimpleFileOptions};

use crate::{
    db::{Actor, Db},
    email::{self, Template},
    files::storage::{self, Storage},
    jobs::{JobArgs, JobContext, JobError, JobRegistry},
};

/// How long a ready export is kept (and its emailed link works).
pub const KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Attempts before an export counts as failed (the user may ask again).
pub const MAX_ATTEMPTS: i32 = 5;

/// Builds the export `export_id`, if it is still pending.
#[derive(Debug, Serialize, Deserialize)]
pub struct BuildExport {
    pub export_id: Uuid,
}

impl JobArgs for BuildExport {
    const KIND: &'static str = "privacy.export";
}

/// What the ZIP is called when downloaded.
pub fn disposition(created_at: DateTime<Utc>) -> String {
    format!(
        "attachment; filename=\"rabt-export-{}.zip\"",
        created_at.format("%Y-%m-%d")
    )
}

/// Registers the job and the sweep of expired (and stuck) exports.
pub fn register(registry: &mut JobRegistry, storage: Storage, host: String) {
    registry.sweep("data exports", |conn| Box::pin(sweep(conn)));
    registry.register::<BuildExport, _, _>(move |ctx: JobContext, args: BuildExport| {
        let storage = storage.clone();
        let host = host.clone();
        async move { run(&ctx, &storage, &host, args.export_id).await }
    });
}

async fn run(
    ctx: &JobContext,
    storage: &Storage,
    host: &str,
    export: Uuid,
) -> Result<(), JobError> {
    let mut tx = ctx.db.begin(&Actor::Service).await?;
    let pending = sqlx::query!(
        "select user_id, created_at from data_exports where id = $1 and status = 'pending'",
        export,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(pending) = pending else {
        if ctx.complete_in(&mut tx).await? {
            tx.commit().await?;
        }
        return Ok(());
    };
    tx.commit().await?;

    let started = std::time::Instant::now();
    let key = storage::export_key(export);
    let size = match build(&ctx.db, storage, pending.user_id, &key).await {
        Ok(size) => size,
        Err(err) => {
            if ctx.attempt >= MAX_ATTEMPTS {
                let mut tx = ctx.db.begin(&Actor::Service).await?;
                sqlx::query!(
                    "update data_exports set status = 'failed' where id = $1 and status = 'pending'",
                    export,
                )
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                count("failed");
            }
            return Err(err.into());
        }
    };

    let mut tx = ctx.db.begin(&Actor::Service).await?;
    let ready = sqlx::query!(
        r#"update data_exports d
              set status = 'ready', object_key = $2, size_bytes = $3, ready_at = now(),
                  expires_at = now() + make_interval(secs => $4::int8::float8)
             from users u
            where d.id = $1 and d.status = 'pending' and u.id = d.user_id
        returning u.id as "user_id!", u.email as "email!", u.display_name as "display_name!",
                  d.expires_at as "expires_at!""#,
        export,
        key,
        i64::try_from(size).unwrap_or(i64::MAX),
        i64::try_from(KEPT.as_secs()).unwrap_or(i64::MAX),
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(ready) = ready else {
        // The export (or its user) went while it was built, and its row's
        // removal queued the object's; or another run of this job made it
        // ready, with the same key.
        if ctx.complete_in(&mut tx).await? {
            tx.commit().await?;
        }
        return Ok(());
    };
    let ttl = (ready.expires_at - Utc::now()).to_std().unwrap_or_default();
    let (link, _) = storage
        .download_url(
            &key,
            "application/zip",
            &disposition(pending.created_at),
            ttl,
        )
        .await?;
    email::enqueue_from(
        &mut tx,
        host,
        ready.user_id,
        &ready.email,
        Template::ExportReady,
        json!({
            "display_name": ready.display_name,
            "link": link.as_str(),
            "expires": ready.expires_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        }),
    )
    .await?;
    if ctx.complete_in(&mut tx).await? {
        tx.commit().await?;
        count("ready");
        metrics::histogram!("rabt_export_duration_seconds").record(started.elapsed());
        tracing::info!(%export, bytes = size, "data export ready");
    }
    Ok(())
}

/// One document of the export: `{name}.json`.
struct Document {
    name: &'static str,
    rows: Value,
}

/// A file of the user's to copy into the ZIP.
struct OwnFile {
    id: Uuid,
    filename: String,
    object_key: String,
}

/// Writes the ZIP to a temporary file and stores it under `key`; its size.
async fn build(db: &Db, storage: &Storage, user: Uuid, key: &str) -> anyhow::Result<u64> {
    // One read-only transaction as the service: every row about the user,
    // whoever's policies would hide it from them.
    let mut tx = db.read_transaction(&Actor::Service).await?;
    let documents = collect(&mut tx, user).await?;
    let files = sqlx::query_as!(
        OwnFile,
        "select id, filename, object_key from files \
         where owner_id = $1 and status = 'ready' order by created_at",
        user,
    )
    .fetch_all(&mut *tx)
    .await?;
    drop(tx);

    let mut archive = Archive::new()?;
    archive
        .add("README.txt".to_owned(), README.as_bytes().to_vec())
        .await?;
    for document in documents {
        let bytes = serde_json::to_vec_pretty(&document.rows)?;
        archive
            .add(format!("{}.json", document.name), bytes)
            .await?;
    }
    for file in files {
        let bytes: Vec<u8> = match storage.read(&file.object_key).await {
            Ok(stream) => stream
                .try_fold(Vec::new(), |mut all, chunk| async move {
                    all.extend_from_slice(&chunk);
                    Ok(all)
                })
                .await
                .with_context(|| format!("reading file {}", file.id))?,
            Err(err) => return Err(err.context(format!("reading file {}", file.id))),
        };
        let name = format!("files/{}-{}", file.id, safe_name(&file.filename));
        archive.add(name, bytes).await?;
    }
    let zip = archive.finish().await?;
    storage.write_file(key, zip).await
}

/// A ZIP being written to an unnamed temporary file, each step on the
/// blocking pool.
struct Archive {
    writer: Option<ZipWriter<std::fs::File>>,
}

impl Archive {
    fn new() -> anyhow::Result<Self> {
        let file = tempfile::tempfile().context("creating the export's temporary file")?;
        Ok(Self {
            writer: Some(ZipWriter::new(file)),
        })
    }

    async fn add(&mut self, name: String, bytes: Vec<u8>) -> anyhow::Result<()> {
        let mut writer = self.writer.take().context("the archive is finished")?;
        let writer = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let options = SimpleFileOptions::default()
                .compression_method(CompressionMethod::Deflated)
                .large_file(bytes.len() as u64 >= u64::from(u32::MAX));
            writer.start_file(name, options)?;
            writer.write_all(&bytes)?;
            Ok(writer)
        })
        .await??;
        self.writer = Some(writer);
        Ok(())
    }

    async fn finish(mut self) -> anyhow::Result<std::fs::File> {
        let writer = self.writer.take().context("the archive is finished")?;
        Ok(tokio::task::spawn_blocking(move || writer.finish()).await??)
    }
}

/// A file name safe inside the ZIP: no directories, no control characters.
fn safe_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '/' | '\\' | ':') {
                '_'
            } else {
                c
            }
        })
        .take(120)
        .collect();
    match cleaned.trim_start_matches('.') {
        "" => "file".to_owned(),
        rest => rest.to_owned(),
    }
}

const README: &str = "\
This is a copy of everything rabt keeps about your account.

Each .json file holds one kind of record, as rows of the database: your
profile, sessions, sign-in identities, second factors, roles, consents to the
privacy policy, notification preferences, projects, applications,
conversations you are in, messages you wrote, notifications, files, billing
(customer, subscriptions, invoices), emails sent to you, and the audit log
entries about you. files/ holds the files you uploaded.

Left out on purpose: secrets (password hash, token hashes, sealed provider
tokens, two-factor secrets), and messages other people wrote.
";

/// Every record about `user`, one document per kind.
async fn collect(conn: &mut PgConnection, user: Uuid) -> Result<Vec<Document>, sqlx::Error> {
    macro_rules! rows {
        ($name:literal, $sql:literal) => {
            Document {
                name: $name,
                rows: sqlx::query_scalar!($sql, user)
                    .fetch_one(&mut *conn)
                    .await?,
            }
        };
    }
    Ok(vec![
        rows!(
            "profile",
            r#"select coalesce((select to_jsonb(u) - 'password_hash' - 'search'
                                       || jsonb_build_object('has_password', u.password_hash is not null)
                                from users u where u.id = $1), 'null') as "rows!""#
        ),
        rows!(
            "sessions",
            r#"select coalesce(jsonb_agg(to_jsonb(t) order by t.created_at), '[]') as "rows!"
               from sessions t where t.user_id = $1"#
        ),
        rows!(
            "identities",
            r#"select coalesce(jsonb_agg(to_jsonb(t) - 'access_token' - 'token_key_id'
                                         order by t.created_at), '[]') as "rows!"
               from oauth_identities t where t.user_id = $1"#
        ),
        rows!(
            "second_factors",
            r#"select jsonb_build_object(
                   'totp', coalesce((select jsonb_agg(jsonb_build_object(
                               'id', t.id, 'created_at', t.created_at,
                               'verified', t.verified, 'verified_at', t.verified_at)
                               order by t.created_at)
                           from totp_factors t where t.user_id = $1), '[]'),
                   'recovery_codes', coalesce((select jsonb_agg(jsonb_build_object(
                               'id', r.id, 'created_at', r.created_at, 'used_at', r.used_at)
                               order by r.created_at)
                           from recovery_codes r where r.user_id = $1), '[]')) as "rows!""#
        ),
        rows!(
            "roles",
            r#"select coalesce(jsonb_agg(to_jsonb(t) order by t.granted_at), '[]') as "rows!"
               from user_roles t where t.user_id = $1"#
        ),
        rows!(
            "consents",
            r#"select coalesce(jsonb_agg(to_jsonb(t) order by t.accepted_at), '[]') as "rows!"
               from consents t where t.user_id = $1"#
        ),
        rows!(
            "notification_preferences",
            r#"select coalesce((select to_jsonb(t) from notification_preferences t
                                where t.user_id = $1), 'null') as "rows!""#
        ),
        rows!(
            "projects",
            r#"select coalesce(jsonb_agg(to_jsonb(t) - 'search' order by t.created_at), '[]') as "rows!"
               from projects t where t.owner_id = $1"#
        ),
        rows!(
            "applications",
            r#"select coalesce(jsonb_agg(to_jsonb(t) || jsonb_build_object('history',
                       coalesce((select jsonb_agg(to_jsonb(h) order by h.at)
                                 from application_status_history h
                                 where h.application_id = t.id), '[]'))
                       order by t.created_at), '[]') as "rows!"
               from applications t where t.applicant_id = $1"#
        ),
        rows!(
            "conversations",
            r#"select coalesce(jsonb_agg(to_jsonb(c) || jsonb_build_object('membership', to_jsonb(p))
                                         order by c.created_at), '[]') as "rows!"
               from conversation_participants p
               join conversations c on c.id = p.conversation_id
               where p.user_id = $1"#
        ),
        rows!(
            "messages",
            r#"select coalesce(jsonb_agg(to_jsonb(t) order by t.created_at), '[]') as "rows!"
               from messages t where t.author_id = $1"#
        ),
        rows!(
            "notifications",
            r#"select coalesce(jsonb_agg(to_jsonb(t) order by t.created_at), '[]') as "rows!"
               from notifications t where t.user_id = $1"#
        ),
        rows!(
            "files",
            r#"select coalesce(jsonb_agg(to_jsonb(t) - 'object_key' order by t.created_at), '[]') as "rows!"
               from files t where t.owner_id = $1"#
        ),
        rows!(
            "billing",
            r#"select jsonb_build_object(
                   'customer', (select to_jsonb(c) from billing_customers c where c.user_id = $1),
                   'subscriptions', coalesce((select jsonb_agg(to_jsonb(s) order by s.created_at)
                                              from subscriptions s where s.user_id = $1), '[]'),
                   'invoices', coalesce((select jsonb_agg(to_jsonb(i) order by i.issued_at)
                                         from invoices i where i.user_id = $1), '[]')) as "rows!""#
        ),
        rows!(
            "emails",
            r#"select coalesce(jsonb_agg(to_jsonb(t) order by t.created_at), '[]') as "rows!"
               from email_messages t where t.user_id = $1"#
        ),
        rows!(
            "audit_log",
            r#"select coalesce(jsonb_agg(
                       case when t.actor_id = $1
                            then to_jsonb(t) - 'actor_digest' - 'prev_hash' - 'hash'
                            -- Someone else acted (an admin): not their address.
                            else to_jsonb(t) - 'actor_digest' - 'prev_hash' - 'hash'
                                 - 'actor_id' - 'ip' - 'user_agent' end
                       order by t.seq), '[]') as "rows!"
               from audit_log t where t.actor_id = $1 or t.subject_id = $1"#
        ),
    ])
}

/// Deletes exports past their time (their objects follow, by the trigger)
/// and pending ones stuck for a day (a job that died without settling).
async fn sweep(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    let removed = sqlx::query!(
        "delete from data_exports \
         where expires_at < now() \
            or (status = 'failed' and created_at < now() - interval '7 days') \
            or (status = 'pending' and created_at < now() - interval '1 day')"
    )
    .execute(conn)
    .await?;
    Ok(removed.rows_affected())
}

/// Counts an export by outcome: `requested`, `ready`, `failed`.
pub fn count(outcome: &'static str) {
    metrics::counter!("rabt_exports_total", "outcome" => outcome).increment(1);
}

#[cfg(test)]
mod tests {
    use super::safe_name;

    #[test]
    fn file_names_cannot_leave_their_folder() {
        assert_eq!(safe_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(safe_name("report.pdf"), "report.pdf");
        assert_eq!(safe_name("..."), "file");
        assert_eq!(safe_name("a\nb"), "a_b");
    }
}
