//! SQL of conversations and messages, under the caller's row-level security.
//! Ordering, unread counts and realtime events are the database's
//! (migrations/0035): a handler stores, and the triggers do the rest in the
//! same transaction.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::model::{ConversationKind, Message, NewMessage, Participant};

/// Starts a conversation of the caller with `others` (or finds their direct
/// one); the id, and whether it is new.
pub async fn start(
    conn: &mut PgConnection,
    others: &[Uuid],
    project: Option<Uuid>,
    title: Option<&str>,
) -> Result<(Uuid, bool), sqlx::Error> {
    let row = sqlx::query!(
        r#"select conversation_id as "id!", created as "created!"
           from public.start_conversation($1, $2, $3)"#,
        others,
        project,
        title,
    )
    .fetch_one(conn)
    .await?;
    Ok((row.id, row.created))
}

/// One conversation of the caller's list, before its participants are added.
#[derive(Debug)]
pub struct ConversationRow {
    pub id: Uuid,
    pub kind: ConversationKind,
    pub title: Option<String>,
    pub project_id: Option<Uuid>,
    pub last_message: Option<serde_json::Value>,
    pub unread_count: i64,
    pub last_activity_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// The caller's conversations, most recent activity first, after the
/// position (`last_activity_at`, id); `fetch` at most.
pub async fn page(
    conn: &mut PgConnection,
    caller: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    fetch: i64,
) -> Result<Vec<ConversationRow>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        ConversationRow,
        r#"select c.id, c.kind as "kind: ConversationKind", c.title, c.project_id,
                  (select public.message_json(m) from public.messages m
                   where m.id = c.last_message_id) as last_message,
                  p.unread_count::bigint as "unread_count!", c.last_activity_at, c.created_at
           from public.conversation_participants p
           join public.conversations c on c.id = p.conversation_id
           where p.user_id = $1
             and ($2::timestamptz is null or (c.last_activity_at, c.id) < ($2, $3))
           order by c.last_activity_at desc, c.id desc
           limit $4"#,
        caller,
        after_at,
        after_id,
        fetch,
    )
    .fetch_all(conn)
    .await
}

/// One conversation of the caller's, if they take part in it.
pub async fn conversation(
    conn: &mut PgConnection,
    caller: Uuid,
    id: Uuid,
) -> Result<Option<ConversationRow>, sqlx::Error> {
    sqlx::query_as!(
        ConversationRow,
        r#"select c.id, c.kind as "kind: ConversationKind", c.title, c.project_id,
                  (select public.message_json(m) from public.messages m
                   where m.id = c.last_message_id) as last_message,
                  p.unread_count::bigint as "unread_count!", c.last_activity_at, c.created_at
           from public.conversation_participants p
           join public.conversations c on c.id = p.conversation_id
           where p.user_id = $1 and c.id = $2"#,
        caller,
        id,
    )
    .fetch_optional(conn)
    .await
}

/// The participants of `conversations` (those the caller takes part in), by
/// conversation.
pub async fn members(
    conn: &mut PgConnection,
    conversations: &[Uuid],
) -> Result<Vec<(Uuid, Participant)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select conversation_id as "conversation_id!", user_id as "user_id!",
                  display_name as "display_name!", last_read_message_id
           from public.conversation_members($1)"#,
        conversations,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.conversation_id,
                Participant {
                    user_id: r.user_id,
                    display_name: r.display_name,
                    last_read_message_id: r.last_read_message_id,
                },
            )
        })
        .collect())
}

/// Whether the caller takes part in `conversation` (the policy decides).
pub async fn is_participant(
    conn: &mut PgConnection,
    conversation: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select exists (select 1 from public.conversations where id = $1) as "found!""#,
        conversation,
    )
    .fetch_one(conn)
    .await
}

/// Stores a message of `author`; when the author already sent one with the
/// same `client_message_id` in this conversation, that one instead. Whether
/// it is new comes with it.
pub async fn send(
    conn: &mut PgConnection,
    conversation: Uuid,
    author: Uuid,
    message: &NewMessage,
) -> Result<(Message, bool), sqlx::Error> {
    // A repeated send finds its first message before inserting, so it moves
    // nothing (the insert trigger would count it and touch the conversation
    // even when the insert then does nothing). Two repeats at once fall to
    // the unique index below.
    if let Some(client_id) = &message.client_message_id
        && let Some(first) = sent_before(&mut *conn, conversation, author, client_id).await?
    {
        return Ok((first, false));
    }
    let stored = sqlx::query_as!(
        Message,
        r#"insert into public.messages (conversation_id, author_id, body, client_message_id,
                                        attachment_file_ids)
           values ($1, $2, $3, $4, $5)
           on conflict (conversation_id, author_id, client_message_id) do nothing
           returning id, conversation_id, author_id, body, client_message_id,
                     attachment_file_ids, created_at, edited_at,
                     deleted_at is not null as "deleted!""#,
        conversation,
        author,
        message.body,
        message.client_message_id,
        &message.attachment_file_ids,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(stored) = stored {
        return Ok((stored, true));
    }
    let client_id = message.client_message_id.as_deref().unwrap_or_default();
    let first = sent_before(conn, conversation, author, client_id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    Ok((first, false))
}

/// The message `author` sent in `conversation` with `client_id`, if any.
async fn sent_before(
    conn: &mut PgConnection,
    conversation: Uuid,
    author: Uuid,
    client_id: &str,
) -> Result<Option<Message>, sqlx::Error> {
    sqlx::query_as!(
        Message,
        r#"select id, conversation_id, author_id, body, client_message_id, attachment_file_ids,
                  created_at, edited_at, deleted_at is not null as "deleted!"
           from public.messages
           where conversation_id = $1 and author_id = $2 and client_message_id = $3"#,
        conversation,
        author,
        client_id,
    )
    .fetch_optional(conn)
    .await
}

/// The position of `message` in `conversation`, if it is one of its messages.
pub async fn position_of(
    conn: &mut PgConnection,
    conversation: Uuid,
    message: Uuid,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!(
        "select position from public.messages where id = $1 and conversation_id = $2",
        message,
        conversation,
    )
    .fetch_optional(conn)
    .await
}

/// A message and its position, newest first from before `before` (a
/// position); `fetch` at most.
pub async fn history(
    conn: &mut PgConnection,
    conversation: Uuid,
    before: Option<i64>,
    fetch: i64,
) -> Result<Vec<(Message, i64)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select id, conversation_id, author_id, body, client_message_id, attachment_file_ids,
                  created_at, edited_at, deleted_at is not null as "deleted!", position
           from public.messages
           where conversation_id = $1 and ($2::bigint is null or position < $2)
           order by position desc
           limit $3"#,
        conversation,
        before,
        fetch,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                Message {
                    id: r.id,
                    conversation_id: r.conversation_id,
                    author_id: r.author_id,
                    body: r.body,
                    client_message_id: r.client_message_id,
                    attachment_file_ids: r.attachment_file_ids,
                    created_at: r.created_at,
                    edited_at: r.edited_at,
                    deleted: r.deleted,
                },
                r.position,
            )
        })
        .collect())
}

/// A message the caller can see.
pub async fn message(conn: &mut PgConnection, id: Uuid) -> Result<Option<Message>, sqlx::Error> {
    sqlx::query_as!(
        Message,
        r#"select id, conversation_id, author_id, body, client_message_id, attachment_file_ids,
                  created_at, edited_at, deleted_at is not null as "deleted!"
           from public.messages where id = $1"#,
        id,
    )
    .fetch_optional(conn)
    .await
}

/// Edits a live message of `author`; `None` when there is none.
pub async fn edit(
    conn: &mut PgConnection,
    id: Uuid,
    author: Uuid,
    body: Option<&str>,
    attachments: Option<&[Uuid]>,
) -> Result<Option<Message>, sqlx::Error> {
    sqlx::query_as!(
        Message,
        r#"update public.messages
           set body = coalesce($3, body), attachment_file_ids = coalesce($4, attachment_file_ids)
           where id = $1 and author_id = $2 and deleted_at is null
           returning id, conversation_id, author_id, body, client_message_id,
                     attachment_file_ids, created_at, edited_at,
                     deleted_at is not null as "deleted!""#,
        id,
        author,
        body,
        attachments,
    )
    .fetch_optional(conn)
    .await
}

/// Turns a message of `author` into a tombstone; false when it was one
/// already (or is not theirs).
pub async fn delete(conn: &mut PgConnection, id: Uuid, author: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "update public.messages set deleted_at = now() \
         where id = $1 and author_id = $2 and deleted_at is null",
        id,
        author,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Moves the caller's read marker forward to `message`; false when the
/// message is not one of the conversation's.
pub async fn read(
    conn: &mut PgConnection,
    conversation: Uuid,
    message: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select public.read_conversation($1, $2) as "read!""#,
        conversation,
        message,
    )
    .fetch_one(conn)
    .await
}

/// The other participants of `conversation` who asked for an email soon
/// after an unread message (`immediately`, the default) and have none on its
/// way yet: each is marked as having one on its way, and returned.
pub async fn claim_message_emails(
    conn: &mut PgConnection,
    conversation: Uuid,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select public.claim_message_emails($1) as "user_id!""#,
        conversation,
    )
    .fetch_all(conn)
    .await
}

/// What the email about unread messages of a conversation needs.
#[derive(Debug)]
pub struct UnreadFacts {
    pub email: String,
    pub display_name: String,
    pub unread: i64,
    pub senders: Vec<String>,
}

/// Takes the pending email of `user` about `conversation`, and says what is
/// unread there if it is still worth an email (the user is active, still takes
/// part, and has unread messages).
pub async fn take_message_email(
    conn: &mut PgConnection,
    user: Uuid,
    conversation: Uuid,
) -> Result<Option<UnreadFacts>, sqlx::Error> {
    sqlx::query!(
        "delete from public.message_email_pending where user_id = $1 and conversation_id = $2",
        user,
        conversation,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query_as!(
        UnreadFacts,
        r#"select u.email, u.display_name, p.unread_count::bigint as "unread!",
                  array(select distinct a.display_name
                        from public.messages m join public.users a on a.id = m.author_id
                        where m.conversation_id = p.conversation_id
                          and m.position > p.last_read_position
                          and m.author_id <> p.user_id and m.deleted_at is null
                        order by a.display_name limit 5) as "senders!"
           from public.conversation_participants p
           join public.users u on u.id = p.user_id
           where p.user_id = $1 and p.conversation_id = $2 and p.unread_count > 0
             and u.deactivated_at is null and u.suspended_at is null"#,
        user,
        conversation,
    )
    .fetch_optional(conn)
    .await
}

/// Queues a `messages.digest` job for every user who asked for a daily digest,
/// has unread messages, and got no digest in the last 23 hours; returns how
/// many. (The hourly sweep.)
pub async fn queue_digests(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        r#"with due as (
               select u.id from public.users u
               join public.notification_preferences np on np.user_id = u.id
               where np.messages = 'digest'
                 and u.deactivated_at is null and u.suspended_at is null
                 and exists (select 1 from public.conversation_participants p
                             where p.user_id = u.id and p.unread_count > 0)
                 and not exists (select 1 from public.message_digests d
                                 where d.user_id = u.id
                                   and d.sent_at > now() - interval '23 hours')
           ), marked as (
               insert into public.message_digests (user_id, sent_at)
               select id, now() from due
               -- Two sweeps at once: the second finds the first's row fresh.
               on conflict (user_id) do update set sent_at = excluded.sent_at
                   where public.message_digests.sent_at <= now() - interval '23 hours'
               returning user_id
           )
           insert into public.jobs (kind, payload, max_attempts)
           select 'messages.digest', jsonb_build_object('user_id', user_id), 5 from marked"#,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// One conversation with unread messages, as a digest lists it.
#[derive(Debug, serde::Serialize)]
pub struct UnreadConversation {
    pub id: Uuid,
    /// Its title, or the names of the others in it.
    pub name: String,
    pub unread: i64,
}

/// What a digest of `user` lists: their address and name, and their
/// conversations with unread messages (most recent first, 20 at most);
/// `None` when they cannot be reached.
pub async fn digest(
    conn: &mut PgConnection,
    user: Uuid,
) -> Result<Option<(String, String, Vec<UnreadConversation>)>, sqlx::Error> {
    let Some(who) = sqlx::query!(
        "select email, display_name from public.users \
         where id = $1 and deactivated_at is null and suspended_at is null",
        user,
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let unread = sqlx::query_as!(
        UnreadConversation,
        r#"select c.id,
                  coalesce(c.title, (select string_agg(u.display_name, ', ' order by u.display_name)
                                     from public.conversation_participants o
                                     join public.users u on u.id = o.user_id
                                     where o.conversation_id = c.id and o.user_id <> $1))
                      as "name!",
                  p.unread_count::bigint as "unread!"
           from public.conversation_participants p
           join public.conversations c on c.id = p.conversation_id
           where p.user_id = $1 and p.unread_count > 0
           order by c.last_activity_at desc
           limit 20"#,
        user,
    )
    .fetch_all(conn)
    .await?;
    Ok(Some((who.email, who.display_name, unread)))
}
