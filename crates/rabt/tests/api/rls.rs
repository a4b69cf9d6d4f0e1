//! Row-level security, proven with hand-written SQL through the app's own role:
//! whatever a handler gets wrong, the database still refuses. Each table that
//! holds user data gets a test here in this pattern.

use rabt::db::Actor;
use uuid::Uuid;

use crate::helpers::{TestApp, jobs::Record, spawn_app};

async fn visible_user_ids(app: &TestApp, actor: &Actor) -> Vec<Uuid> {
    let mut tx = app.app_db().begin(actor).await.unwrap();
    let ids = sqlx::query_scalar("select id from users order by id")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    ids
}

#[tokio::test]
async fn a_user_can_neither_read_nor_change_another_users_private_row() {
    let app = spawn_app().await;
    let alice = app.insert_user("alice@rabt.test", "Alice", "private").await;
    let bob = app.insert_user("bob@rabt.test", "Bob", "private").await;

    // Alice sees herself, not Bob.
    assert_eq!(
        visible_user_ids(&app, &TestApp::as_user(alice)).await,
        vec![alice]
    );

    // Alice tries to rename Bob, and to move Bob's row onto herself.
    let mut tx = app.app_db().begin(&TestApp::as_user(alice)).await.unwrap();
    let renamed = sqlx::query("update users set display_name = 'pwned' where id = $1")
        .bind(bob)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(renamed.rows_affected(), 0);
    let deleted = sqlx::query("delete from users where id = $1")
        .bind(bob)
        .execute(&mut *tx)
        .await;
    assert!(deleted.is_err(), "users may not delete rows at all");
    drop(tx);

    // Alice may rename herself, but not hand her row to Bob.
    let mut tx = app.app_db().begin(&TestApp::as_user(alice)).await.unwrap();
    let own = sqlx::query("update users set display_name = 'Alice A.' where id = $1")
        .bind(alice)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(own.rows_affected(), 1);
    tx.commit().await.unwrap();

    let name: String = sqlx::query_scalar("select display_name from users where id = $1")
        .bind(bob)
        .fetch_one(&app.db.admin)
        .await
        .unwrap();
    assert_eq!(name, "Bob");
}

#[tokio::test]
async fn public_profiles_are_visible_to_everyone_and_private_ones_to_their_owner() {
    let app = spawn_app().await;
    let open = app.insert_user("open@rabt.test", "Open", "public").await;
    let hidden = app
        .insert_user("hidden@rabt.test", "Hidden", "private")
        .await;

    assert_eq!(visible_user_ids(&app, &Actor::Anonymous).await, vec![open]);
    let mut both = vec![open, hidden];
    both.sort();
    assert_eq!(
        visible_user_ids(&app, &TestApp::as_user(hidden)).await,
        both
    );

    let moderator = Actor::User {
        id: Uuid::now_v7(),
        permissions: vec!["users.read_private".into()],
    };
    assert_eq!(visible_user_ids(&app, &moderator).await, both);

    // Over HTTP too.
    assert_eq!(app.get(&format!("/v1/users/{open}")).await.status(), 200);
    assert_eq!(app.get(&format!("/v1/users/{hidden}")).await.status(), 404);
}

#[tokio::test]
async fn anonymous_requests_can_never_read_email_addresses() {
    let app = spawn_app().await;
    app.insert_user("open@rabt.test", "Open", "public").await;
    let mut tx = app.app_db().begin(&Actor::Anonymous).await.unwrap();
    let result = sqlx::query("select email from users")
        .fetch_all(&mut *tx)
        .await;
    let err = result.unwrap_err().to_string();
    assert!(err.contains("permission denied"), "{err}");
}

#[tokio::test]
async fn the_app_role_has_no_table_rights_of_its_own() {
    let app = spawn_app().await;
    app.insert_user("open@rabt.test", "Open", "public").await;
    // Outside `Db::begin` the connection is plain `rabt_app`: it cannot even
    // see the schema's tables.
    let err = sqlx::query("select id from users")
        .fetch_all(app.app_db().pool())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("permission denied") || err.contains("does not exist"),
        "{err}"
    );
    let role: String = sqlx::query_scalar("select current_user::text")
        .fetch_one(app.app_db().pool())
        .await
        .unwrap();
    assert_eq!(role, "rabt_app");
}

#[tokio::test]
async fn claims_end_with_their_transaction() {
    let app = spawn_app().await;
    let alice = app.insert_user("alice@rabt.test", "Alice", "private").await;
    let mut tx = app.app_db().begin(&TestApp::as_user(alice)).await.unwrap();
    let uid: Option<Uuid> = sqlx::query_scalar("select auth.uid()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(uid, Some(alice));
    tx.commit().await.unwrap();

    // Every connection of the pool, after the transaction: no user, no role.
    for _ in 0..4 {
        let mut conn = app.app_db().pool().acquire().await.unwrap();
        let (uid, role): (Option<String>, String) = sqlx::query_as(
            "select nullif(current_setting('request.user_id', true), ''), current_user::text",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        assert_eq!(uid, None);
        assert_eq!(role, "rabt_app");
    }
}

#[tokio::test]
async fn reads_see_what_their_actor_may_and_never_write() {
    let app = spawn_app().await;
    let alice = app.insert_user("alice@rabt.test", "Alice", "private").await;
    app.insert_user("open@rabt.test", "Open", "public").await;
    // Anonymous reads use connections that run as `rabt_anonymous` for their
    // whole session, with no claims: the policies apply as to any stranger.
    for _ in 0..3 {
        let mut read = app.app_db().read(&Actor::Anonymous).await.unwrap();
        let (role, uid, names): (String, Option<Uuid>, Vec<String>) = sqlx::query_as(
            "select current_user::text, auth.uid(), \
                    array(select display_name from users order by display_name)",
        )
        .fetch_one(&mut *read)
        .await
        .unwrap();
        assert_eq!((role.as_str(), uid), ("rabt_anonymous", None));
        assert_eq!(
            names,
            ["Open"],
            "a private profile is not a stranger's to see"
        );
    }
    // A signed-in read is a read-only transaction with the caller's claims.
    let mut read = app.app_db().read(&TestApp::as_user(alice)).await.unwrap();
    let uid: Option<Uuid> = sqlx::query_scalar("select auth.uid()")
        .fetch_one(&mut *read)
        .await
        .unwrap();
    assert_eq!(uid, Some(alice));
    let err = sqlx::query("update users set headline = 'x' where id = $1")
        .bind(alice)
        .execute(&mut *read)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("read-only transaction"), "{err}");
    drop(read);
    // Ended by the drop: no claims are left on the pool's connections.
    for _ in 0..4 {
        let mut conn = app.app_db().pool().acquire().await.unwrap();
        let uid: Option<String> =
            sqlx::query_scalar("select nullif(current_setting('request.user_id', true), '')")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        assert_eq!(uid, None);
    }
}

#[tokio::test]
async fn requests_may_enqueue_jobs_but_never_read_or_change_them() {
    let app = spawn_app().await;
    let alice = app.insert_user("alice@rabt.test", "Alice", "private").await;
    let mut tx = app.app_db().begin(&Actor::Service).await.unwrap();
    rabt::jobs::enqueue(
        &mut tx,
        &Record {
            tag: "bob's".into(),
        },
        3,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut tx = app.app_db().begin(&TestApp::as_user(alice)).await.unwrap();
    rabt::jobs::enqueue(
        &mut tx,
        &Record {
            tag: "alice's".into(),
        },
        3,
    )
    .await
    .unwrap();
    let seen = sqlx::query("select payload from jobs")
        .fetch_all(&mut *tx)
        .await;
    assert!(seen.is_err(), "a request must not read the queue");
    drop(tx);

    let mut tx = app.app_db().begin(&TestApp::as_user(alice)).await.unwrap();
    let forged = sqlx::query(
        "insert into jobs (kind, payload, max_attempts, status, attempts, locked_by) \
         values ('record', '{}', 3, 'succeeded', 0, null)",
    )
    .execute(&mut *tx)
    .await;
    assert!(forged.is_err(), "a request may only enqueue fresh jobs");
}

#[tokio::test]
async fn a_user_sees_and_revokes_only_their_own_sessions() {
    let app = spawn_app().await;
    let alice = app.insert_user("alice@rabt.test", "Alice", "private").await;
    let bob = app.insert_user("bob@rabt.test", "Bob", "private").await;
    for user in [alice, bob] {
        sqlx::query(
            "insert into sessions (user_id, expires_at) values ($1, now() + interval '1 day')",
        )
        .bind(user)
        .execute(&app.db.admin)
        .await
        .unwrap();
    }
    let mut tx = app.app_db().begin(&TestApp::as_user(alice)).await.unwrap();
    let owners: Vec<Uuid> = sqlx::query_scalar("select user_id from sessions")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(owners, vec![alice]);
    let revoked = sqlx::query("update sessions set revoked_at = now() where user_id = $1")
        .bind(bob)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(revoked.rows_affected(), 0);
    let handover = sqlx::query("update sessions set user_id = $1")
        .bind(bob)
        .execute(&mut *tx)
        .await;
    assert!(
        handover.is_err(),
        "a session cannot be handed to someone else"
    );
}

#[tokio::test]
async fn token_tables_and_the_audit_log_are_closed_to_users() {
    let app = spawn_app().await;
    let alice = app.insert_user("alice@rabt.test", "Alice", "private").await;
    sqlx::query("insert into audit_log (actor_id, action) values ($1, 'login_succeeded')")
        .bind(alice)
        .execute(&app.db.admin)
        .await
        .unwrap();
    for table in ["refresh_tokens", "one_time_tokens"] {
        let mut tx = app.app_db().begin(&TestApp::as_user(alice)).await.unwrap();
        let sql = format!("select count(*) from {table}");
        let result = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *tx)
            .await;
        assert!(result.is_err(), "{table} must not be readable by users");
    }
    // Even her own audit entries are for moderators only, and nobody edits them.
    let mut tx = app.app_db().begin(&TestApp::as_user(alice)).await.unwrap();
    let seen: i64 = sqlx::query_scalar("select count(*) from audit_log")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, 0);
    drop(tx);
    let moderator = rabt::db::Actor::User {
        id: Uuid::now_v7(),
        permissions: vec!["users.read_private".into()],
    };
    let mut tx = app.app_db().begin(&moderator).await.unwrap();
    let seen: i64 = sqlx::query_scalar("select count(*) from audit_log")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, 1);
    drop(tx);
    let mut tx = app.app_db().begin(&Actor::Service).await.unwrap();
    let erased = sqlx::query("delete from audit_log").execute(&mut *tx).await;
    assert!(
        erased.is_err(),
        "the audit log is append-only, even for the service"
    );
}

#[tokio::test]
async fn a_user_sees_only_their_own_linked_identities() {
    let app = spawn_app().await;
    let alice = app.insert_user("alice@rabt.test", "Alice", "public").await;
    let bob = app.insert_user("bob@rabt.test", "Bob", "public").await;
    for (user, subject) in [(alice, "a-1"), (bob, "b-1")] {
        sqlx::query(
            "insert into oauth_identities (user_id, provider, subject) values ($1, 'github', $2)",
        )
        .bind(user)
        .bind(subject)
        .execute(&app.db.admin)
        .await
        .unwrap();
    }
    let mut tx = app.app_db().begin(&TestApp::as_user(alice)).await.unwrap();
    let subjects: Vec<String> = sqlx::query_scalar("select subject from oauth_identities")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(subjects, vec!["a-1"]);
    let stolen = sqlx::query("update oauth_identities set user_id = $1 where subject = 'b-1'")
        .bind(alice)
        .execute(&mut *tx)
        .await;
    assert!(stolen.is_err(), "users cannot write identities at all");
}

#[tokio::test]
async fn no_request_can_read_a_password_hash() {
    let app = spawn_app().await;
    let alice = app.insert_user("alice@rabt.test", "Alice", "public").await;
    for actor in [TestApp::as_user(alice), Actor::Anonymous] {
        let mut tx = app.app_db().begin(&actor).await.unwrap();
        let err = sqlx::query("select password_hash from users where id = $1")
            .bind(alice)
            .fetch_all(&mut *tx)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("permission denied"), "{err}");
    }
}

/// Runs `sql` (binding `args` as uuids) as `actor`, then rolls back: the
/// rows it returned (a select) or touched, or `None` when the database refused
/// it for lack of a privilege or by a row-level security check (SQLSTATE
/// 42501). Any other error fails the test, so a statement that is merely
/// broken (a typo, a missing column) cannot pass as refused; refusals by a
/// trigger or a constraint are checked with [`error_as`].
async fn rows_as(app: &TestApp, actor: &Actor, sql: &'static str, args: &[Uuid]) -> Option<u64> {
    match run_as(app, actor, sql, args).await {
        Ok(rows) => Some(rows),
        Err(code) if code == "42501" => None,
        Err(code) => panic!("{sql} failed with SQLSTATE {code}, not a refusal"),
    }
}

/// The SQLSTATE with which the database refuses `sql` as `actor`.
async fn error_as(app: &TestApp, actor: &Actor, sql: &'static str, args: &[Uuid]) -> String {
    match run_as(app, actor, sql, args).await {
        Ok(rows) => panic!("{sql} succeeded ({rows} rows)"),
        Err(code) => code,
    }
}

async fn run_as(
    app: &TestApp,
    actor: &Actor,
    sql: &'static str,
    args: &[Uuid],
) -> Result<u64, String> {
    let mut tx = app.app_db().begin(actor).await.unwrap();
    let mut query = sqlx::query(sql);
    for arg in args {
        query = query.bind(*arg);
    }
    let done = if sql.trim_start().starts_with("select") {
        query
            .fetch_all(&mut *tx)
            .await
            .map(|rows| rows.len() as u64)
    } else {
        query.execute(&mut *tx).await.map(|r| r.rows_affected())
    };
    done.map_err(|err| match err.as_database_error().and_then(|e| e.code()) {
        Some(code) => code.into_owned(),
        None => panic!("{sql}: {err}"),
    })
}

/// Two users, a draft and an open project of B, an application by C to B's
/// open project, with its notification to B.
struct Projects {
    a: Uuid,
    b: Uuid,
    c: Uuid,
    draft: Uuid,
    open: Uuid,
    application: Uuid,
}

async fn projects(app: &TestApp) -> Projects {
    let a = app.insert_user("a@rabt.test", "A", "public").await;
    let b = app.insert_user("b@rabt.test", "B", "public").await;
    let c = app.insert_user("c@rabt.test", "C", "public").await;
    let admin = &app.db.admin;
    let mut ids = Vec::new();
    for title in ["Draft", "Open"] {
        let id: Uuid = sqlx::query_scalar(
            "insert into projects (owner_id, title, summary, category) \
             values ($1, $2, 's', 'web') returning id",
        )
        .bind(b)
        .bind(title)
        .fetch_one(admin)
        .await
        .unwrap();
        ids.push(id);
    }
    sqlx::query("update projects set status = 'open' where id = $1")
        .bind(ids[1])
        .execute(admin)
        .await
        .unwrap();
    let application: Uuid = sqlx::query_scalar(
        "insert into applications (project_id, applicant_id, cover_letter) \
         values ($1, $2, 'hi') returning id",
    )
    .bind(ids[1])
    .bind(c)
    .fetch_one(admin)
    .await
    .unwrap();
    Projects {
        a,
        b,
        c,
        draft: ids[0],
        open: ids[1],
        application,
    }
}

#[tokio::test]
async fn a_user_cannot_read_or_change_another_users_projects() {
    let app = spawn_app().await;
    let p = projects(&app).await;
    let a = TestApp::as_user(p.a);
    let b = TestApp::as_user(p.b);
    let draft_sql = "select id from projects where id = $1";
    assert_eq!(rows_as(&app, &a, draft_sql, &[p.draft]).await, Some(0));
    assert_eq!(
        rows_as(&app, &Actor::Anonymous, draft_sql, &[p.draft]).await,
        Some(0)
    );
    assert_eq!(rows_as(&app, &b, draft_sql, &[p.draft]).await, Some(1));
    assert_eq!(rows_as(&app, &a, draft_sql, &[p.open]).await, Some(1));
    for change in [
        "update projects set title = 'pwned' where id = $1",
        "update projects set status = 'cancelled' where id = $1",
        "delete from projects where id = $1",
    ] {
        assert_eq!(
            rows_as(&app, &a, change, &[p.open]).await,
            Some(0),
            "{change}"
        );
    }
    // Owners delete drafts only.
    assert_eq!(
        rows_as(&app, &b, "delete from projects where id = $1", &[p.open]).await,
        Some(0)
    );
    // Nobody creates a project in someone else's name, or writes its counter.
    assert_eq!(
        rows_as(
            &app,
            &a,
            "insert into projects (owner_id, title) values ($1, 'x')",
            &[p.b]
        )
        .await,
        None
    );
    assert_eq!(
        rows_as(
            &app,
            &b,
            "update projects set application_count = 99 where id = $1",
            &[p.open]
        )
        .await,
        None
    );
    // The history is the owner's (and moderators'), and written only by the database.
    let history = "select id from project_status_history where project_id = $1";
    assert_eq!(rows_as(&app, &b, history, &[p.open]).await, Some(1));
    assert_eq!(rows_as(&app, &a, history, &[p.open]).await, Some(0));
    assert_eq!(
        rows_as(
            &app,
            &b,
            "insert into project_status_history (project_id, from_status, to_status) \
             values ($1, 'draft', 'open')",
            &[p.open]
        )
        .await,
        None
    );
}

#[tokio::test]
async fn search_words_hold_only_published_words_and_only_the_database_writes_them() {
    let app = spawn_app().await;
    let p = projects(&app).await;
    let b = TestApp::as_user(p.b);
    let published = "select word from project_search_words where word = 'open'";
    let unpublished = "select word from project_search_words where word = 'draft'";
    for actor in [&Actor::Anonymous, &b] {
        assert_eq!(rows_as(&app, actor, published, &[]).await, Some(1));
        // The owner's draft was never public: its words are not there.
        assert_eq!(rows_as(&app, actor, unpublished, &[]).await, Some(0));
    }
    for change in [
        "insert into project_search_words (word) values ('planted')",
        "update project_search_words set word = 'changed'",
        "delete from project_search_words",
    ] {
        assert_eq!(rows_as(&app, &b, change, &[]).await, None, "{change}");
        assert_eq!(
            rows_as(&app, &Actor::Anonymous, change, &[]).await,
            None,
            "{change}"
        );
    }
}

#[tokio::test]
async fn applications_are_seen_and_moved_only_by_their_two_sides() {
    let app = spawn_app().await;
    let p = projects(&app).await;
    let (a, b, c) = (
        TestApp::as_user(p.a),
        TestApp::as_user(p.b),
        TestApp::as_user(p.c),
    );
    let read = "select id from applications where id = $1";
    assert_eq!(rows_as(&app, &a, read, &[p.application]).await, Some(0));
    assert_eq!(rows_as(&app, &b, read, &[p.application]).await, Some(1));
    assert_eq!(rows_as(&app, &c, read, &[p.application]).await, Some(1));
    let shortlist = "update applications set status = 'shortlisted' where id = $1";
    assert_eq!(
        rows_as(&app, &a, shortlist, &[p.application]).await,
        Some(0)
    );
    // The applicant may touch the row, but the database refuses the owner's step.
    assert_eq!(
        error_as(&app, &c, shortlist, &[p.application]).await,
        "23514"
    );
    assert_eq!(
        rows_as(&app, &b, shortlist, &[p.application]).await,
        Some(1)
    );
    // Workers (the service role) may take a listed step for either side.
    assert_eq!(
        rows_as(&app, &Actor::Service, shortlist, &[p.application]).await,
        Some(1)
    );
    // Applying in someone else's name, or to a draft, is refused.
    assert_eq!(
        rows_as(
            &app,
            &a,
            "insert into applications (project_id, applicant_id, cover_letter) \
             values ($1, $2, 'x')",
            &[p.open, p.c]
        )
        .await,
        None
    );
    assert_eq!(
        error_as(
            &app,
            &a,
            "insert into applications (project_id, applicant_id, cover_letter) \
             values ($1, $2, 'x')",
            &[p.draft, p.a]
        )
        .await,
        "23514"
    );
    let history = "select id from application_status_history where application_id = $1";
    assert_eq!(rows_as(&app, &a, history, &[p.application]).await, Some(0));
    // Only the database writes the history, not even the two sides.
    for actor in [&a, &b, &c] {
        assert_eq!(
            rows_as(
                &app,
                actor,
                "insert into application_status_history \
                     (application_id, from_status, to_status) \
                 values ($1, 'pending', 'accepted')",
                &[p.application]
            )
            .await,
            None
        );
    }
}

#[tokio::test]
async fn notifications_preferences_and_idempotency_keys_are_private() {
    let app = spawn_app().await;
    let p = projects(&app).await;
    let (a, b) = (TestApp::as_user(p.a), TestApp::as_user(p.b));
    // The application notified B.
    let inbox = "select id from notifications where user_id = $1";
    assert_eq!(rows_as(&app, &b, inbox, &[p.b]).await, Some(1));
    assert_eq!(rows_as(&app, &a, inbox, &[p.b]).await, Some(0));
    assert_eq!(
        rows_as(
            &app,
            &a,
            "update notifications set read_at = now() where user_id = $1",
            &[p.b]
        )
        .await,
        Some(0)
    );
    assert_eq!(
        rows_as(
            &app,
            &a,
            "insert into notifications (user_id, kind) values ($1, 'spam')",
            &[p.b]
        )
        .await,
        None
    );
    sqlx::query("insert into notification_preferences (user_id) values ($1)")
        .bind(p.b)
        .execute(&app.db.admin)
        .await
        .unwrap();
    let prefs = "select user_id from notification_preferences where user_id = $1";
    assert_eq!(rows_as(&app, &a, prefs, &[p.b]).await, Some(0));
    assert_eq!(
        rows_as(
            &app,
            &a,
            "insert into notification_preferences (user_id, applications) values ($1, false)",
            &[p.c]
        )
        .await,
        None
    );
    assert_eq!(
        rows_as(
            &app,
            &a,
            "update notification_preferences set applications = false where user_id = $1",
            &[p.b]
        )
        .await,
        Some(0)
    );
    sqlx::query(
        "insert into idempotency_keys (user_id, key, request_hash, response_status, \
                                       response_body) values ($1, 'k', '\\x00', 201, '{}')",
    )
    .bind(p.b)
    .execute(&app.db.admin)
    .await
    .unwrap();
    let keys = "select key from idempotency_keys where user_id = $1";
    assert_eq!(rows_as(&app, &a, keys, &[p.b]).await, Some(0));
    assert_eq!(rows_as(&app, &b, keys, &[p.b]).await, Some(1));
    // Nobody rewrites a saved response; only the owner's own keys can be deleted.
    for actor in [&a, &b] {
        assert_eq!(
            rows_as(
                &app,
                actor,
                "update idempotency_keys set response_body = '{\"id\": 1}' where user_id = $1",
                &[p.b]
            )
            .await,
            None
        );
    }
    assert_eq!(
        rows_as(
            &app,
            &a,
            "delete from idempotency_keys where user_id = $1",
            &[p.b]
        )
        .await,
        Some(0)
    );
    assert_eq!(
        rows_as(
            &app,
            &a,
            "insert into idempotency_keys (user_id, key, request_hash, response_status, \
                                           response_body) values ($1, 'k2', '\\x00', 201, '{}')",
            &[p.b]
        )
        .await,
        None
    );
}

#[tokio::test]
async fn a_user_appends_audit_entries_only_in_their_own_name_and_never_edits_them() {
    let app = spawn_app().await;
    let a = app.insert_user("a@rabt.test", "A", "public").await;
    let b = app.insert_user("b@rabt.test", "B", "public").await;
    // An assigner of roles records role changes (what a member may append at
    // all is in roles.rs).
    let actor = rabt::db::Actor::User {
        id: a,
        permissions: vec!["roles.assign".into()],
    };
    let append = "insert into audit_log (actor_id, action) values ($1, 'roles_changed')";
    assert_eq!(rows_as(&app, &actor, append, &[a]).await, Some(1));
    assert_eq!(rows_as(&app, &actor, append, &[b]).await, None);
    sqlx::query("insert into audit_log (actor_id, action) values ($1, 'login_succeeded')")
        .bind(a)
        .execute(&app.db.admin)
        .await
        .unwrap();
    for change in [
        "update audit_log set action = 'x' where actor_id = $1",
        "delete from audit_log where actor_id = $1",
    ] {
        assert_eq!(rows_as(&app, &actor, change, &[a]).await, None, "{change}");
    }
}

#[tokio::test]
async fn a_user_can_neither_read_nor_change_another_users_roles() {
    let app = spawn_app().await;
    let a = app.insert_user("a@rabt.test", "A", "public").await;
    let b = app.insert_user("b@rabt.test", "B", "public").await;
    sqlx::query("insert into user_roles (user_id, role_name) values ($1, 'moderator')")
        .bind(b)
        .execute(&app.db.admin)
        .await
        .unwrap();
    let as_a = TestApp::as_user(a);
    let as_b = TestApp::as_user(b);
    let roles_of = "select role_name from user_roles where user_id = $1";
    assert_eq!(rows_as(&app, &as_a, roles_of, &[b]).await, Some(0));
    assert_eq!(rows_as(&app, &as_b, roles_of, &[b]).await, Some(1));
    for change in [
        "delete from user_roles where user_id = $1",
        "update user_roles set role_name = 'admin' where user_id = $1",
    ] {
        assert!(
            matches!(rows_as(&app, &as_a, change, &[b]).await, None | Some(0)),
            "{change}"
        );
    }
    let still: i64 = sqlx::query_scalar("select count(*) from user_roles where user_id = $1")
        .bind(b)
        .fetch_one(&app.db.admin)
        .await
        .unwrap();
    assert_eq!(still, 1);
    // Nor can B give themselves more, or read the grants version table.
    let more = "insert into user_roles (user_id, role_name) values ($1, 'admin')";
    assert_eq!(rows_as(&app, &as_b, more, &[b]).await, None);
    let versions = "select version from grant_versions where user_id = $1";
    assert_eq!(rows_as(&app, &as_b, versions, &[b]).await, None);
}

#[tokio::test]
async fn second_factors_are_the_owners_to_see_and_no_ones_to_read_or_write() {
    let app = spawn_app().await;
    let alice = app.insert_user("alice@rabt.test", "Alice", "public").await;
    let bob = app.insert_user("bob@rabt.test", "Bob", "public").await;
    for user in [alice, bob] {
        sqlx::query(
            "insert into totp_factors (user_id, secret_sealed, secret_key_id, verified_at) \
             values ($1, '\\x00', 'k', now())",
        )
        .bind(user)
        .execute(&app.db.admin)
        .await
        .unwrap();
        sqlx::query(
            "insert into recovery_codes (user_id, code_hash) values ($1, sha256($1::text::bytea))",
        )
        .bind(user)
        .execute(&app.db.admin)
        .await
        .unwrap();
        sqlx::query(
            "insert into mfa_challenges (user_id, via, token_hash, expires_at) \
             values ($1, 'password', sha256($1::text::bytea), now() + interval '5 minutes')",
        )
        .bind(user)
        .execute(&app.db.admin)
        .await
        .unwrap();
    }
    let as_alice = TestApp::as_user(alice);
    let query = async |actor: &Actor, sql: &'static str| {
        let mut tx = app.app_db().begin(actor).await.unwrap();
        let result: Result<Vec<Uuid>, sqlx::Error> =
            sqlx::query_scalar(sql).fetch_all(&mut *tx).await;
        drop(tx);
        result
    };

    // Her own rows only, and not their secrets.
    for sql in [
        "select user_id from totp_factors",
        "select user_id from recovery_codes",
    ] {
        assert_eq!(query(&as_alice, sql).await.unwrap(), vec![alice], "{sql}");
        assert!(query(&Actor::Anonymous, sql).await.is_err(), "{sql}");
    }
    for sql in [
        "select user_id from totp_factors where secret_sealed is not null",
        "select user_id from recovery_codes where code_hash is not null",
        "select user_id from mfa_challenges",
    ] {
        let err = query(&as_alice, sql).await.unwrap_err().to_string();
        assert!(err.contains("permission denied"), "{sql}: {err}");
    }
    // No writes: not to her own, not to Bob's.
    for sql in [
        "update totp_factors set last_used_step = 0 returning user_id",
        "delete from recovery_codes returning user_id",
        "insert into totp_factors (user_id, secret_sealed, secret_key_id) \
         values ((select auth.uid()), '\\x00', 'k') returning user_id",
        "update sessions set aal = 2, mfa_at = now() returning user_id",
    ] {
        let err = query(&as_alice, sql).await.unwrap_err().to_string();
        assert!(err.contains("permission denied"), "{sql}: {err}");
    }
}

/// A ready file of `owner`'s.
async fn file_of(app: &TestApp, owner: Uuid, purpose: &str) -> Uuid {
    sqlx::query_scalar(
        "insert into files (owner_id, purpose, filename, content_type, size_bytes, object_key, \
                            status, completed_at) \
         values ($1, $2, 'f.png', 'image/png', 10, 'files/' || gen_random_uuid(), 'ready', now()) \
         returning id",
    )
    .bind(owner)
    .bind(purpose)
    .fetch_one(&app.db.admin)
    .await
    .unwrap()
}

#[tokio::test]
async fn files_are_seen_by_their_uploader_and_through_what_they_are_attached_to() {
    let app = spawn_app().await;
    let p = projects(&app).await;
    let (a, b, c) = (
        TestApp::as_user(p.a),
        TestApp::as_user(p.b),
        TestApp::as_user(p.c),
    );
    let cv = file_of(&app, p.c, "application_attachment").await;
    let avatar = file_of(&app, p.a, "avatar").await;
    let read = "select id from files where id = $1";

    // Private to the uploader until attached.
    assert_eq!(rows_as(&app, &c, read, &[cv]).await, Some(1));
    for stranger in [&a, &b, &Actor::Anonymous] {
        assert_eq!(rows_as(&app, stranger, read, &[cv]).await, Some(0));
    }
    for stranger in [&b, &c, &Actor::Anonymous] {
        assert_eq!(rows_as(&app, stranger, read, &[avatar]).await, Some(0));
    }

    // An application's attachment: its two sides, nobody else.
    sqlx::query("update applications set attachment_file_ids = array[$2] where id = $1")
        .bind(p.application)
        .bind(cv)
        .execute(&app.db.admin)
        .await
        .unwrap();
    assert_eq!(rows_as(&app, &b, read, &[cv]).await, Some(1));
    assert_eq!(rows_as(&app, &a, read, &[cv]).await, Some(0));

    // An avatar: through a profile the reader can see.
    sqlx::query("update users set avatar_file_id = $2 where id = $1")
        .bind(p.a)
        .bind(avatar)
        .execute(&app.db.admin)
        .await
        .unwrap();
    assert_eq!(
        rows_as(&app, &Actor::Anonymous, read, &[avatar]).await,
        Some(1)
    );
    sqlx::query("update users set visibility = 'private' where id = $1")
        .bind(p.a)
        .execute(&app.db.admin)
        .await
        .unwrap();
    assert_eq!(
        rows_as(&app, &Actor::Anonymous, read, &[avatar]).await,
        Some(0)
    );
    assert_eq!(rows_as(&app, &b, read, &[avatar]).await, Some(0));
    assert_eq!(rows_as(&app, &a, read, &[avatar]).await, Some(1));

    // Seeing is not changing: only the uploader updates or deletes.
    let ready = "update files set status = 'pending', completed_at = null where id = $1";
    assert_eq!(rows_as(&app, &b, ready, &[cv]).await, Some(0));
    assert_eq!(
        rows_as(&app, &b, "delete from files where id = $1", &[cv]).await,
        Some(0)
    );
    assert_eq!(
        rows_as(
            &app,
            &b,
            "update files set owner_id = $2 where id = $1",
            &[cv, p.b]
        )
        .await,
        None
    );
    // Nobody uploads in someone else's name, or inserts a file already ready.
    assert_eq!(
        rows_as(
            &app,
            &a,
            "insert into files (owner_id, purpose, filename, content_type, size_bytes, object_key) \
             values ($1, 'avatar', 'x.png', 'image/png', 1, 'files/' || gen_random_uuid())",
            &[p.b]
        )
        .await,
        None
    );
    assert_eq!(
        rows_as(
            &app,
            &a,
            "insert into files (owner_id, purpose, filename, content_type, size_bytes, object_key, \
                                status, completed_at) \
             values ($1, 'avatar', 'x.png', 'image/png', 1, 'files/' || gen_random_uuid(), \
                     'ready', now())",
            &[p.a]
        )
        .await,
        None
    );
    assert_eq!(
        rows_as(&app, &c, "delete from files where id = $1", &[cv]).await,
        Some(1)
    );
}

/// Counts the rows of `table` that `actor` can read.
async fn visible_rows(app: &TestApp, actor: &Actor, table: &str) -> i64 {
    let mut tx = app.app_db().begin(actor).await.unwrap();
    let count = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select count(*) from {table}")))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    count
}

#[tokio::test]
async fn only_participants_read_a_conversation_and_only_authors_change_messages() {
    let app = spawn_app().await;
    let alice = app.insert_user("alice@rabt.test", "Alice", "private").await;
    let bob = app.insert_user("bob@rabt.test", "Bob", "private").await;
    let carol = app.insert_user("carol@rabt.test", "Carol", "public").await;
    let (as_alice, as_bob, as_carol) = (
        TestApp::as_user(alice),
        TestApp::as_user(bob),
        TestApp::as_user(carol),
    );

    let mut tx = app.app_db().begin(&as_alice).await.unwrap();
    let conversation: Uuid =
        sqlx::query_scalar("select conversation_id from start_conversation($1, null, null)")
            .bind(vec![bob])
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    let message: Uuid = sqlx::query_scalar(
        "insert into messages (conversation_id, author_id, body) values ($1, $2, 'hi') \
         returning id",
    )
    .bind(conversation)
    .bind(alice)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();

    for table in ["conversations", "conversation_participants", "messages"] {
        assert_eq!(
            visible_rows(&app, &as_bob, table).await,
            if table == "conversation_participants" {
                2
            } else {
                1
            },
            "{table}"
        );
        assert_eq!(visible_rows(&app, &as_carol, table).await, 0, "{table}");
    }
    // Each reads only their own events: one `message.created` each.
    assert_eq!(visible_rows(&app, &as_alice, "realtime_events").await, 1);
    assert_eq!(visible_rows(&app, &as_bob, "realtime_events").await, 1);
    assert_eq!(visible_rows(&app, &as_carol, "realtime_events").await, 0);
    assert_eq!(visible_rows(&app, &as_carol, "realtime_counters").await, 0);
    for table in ["message_email_pending", "message_digests"] {
        let mut tx = app.app_db().begin(&as_bob).await.unwrap();
        let read = sqlx::query(sqlx::AssertSqlSafe(format!("select * from {table}")))
            .execute(&mut *tx)
            .await;
        assert!(read.is_err(), "{table} is the service's alone");
    }

    // Carol cannot write into the conversation, nor join it, nor forge events.
    let mut tx = app.app_db().begin(&as_carol).await.unwrap();
    let intrusion = sqlx::query(
        "insert into messages (conversation_id, author_id, body) values ($1, $2, 'hello')",
    )
    .bind(conversation)
    .bind(carol)
    .execute(&mut *tx)
    .await;
    assert!(intrusion.is_err(), "an outsider cannot post");
    drop(tx);
    for attempt in [
        "insert into conversation_participants (conversation_id, user_id) values ($1, $2)",
        "insert into realtime_events (user_id, seq, frame) values ($2, 99, '{}')",
        "select public.realtime_emit(array[$2], '{}') where $1 is not null",
    ] {
        let mut tx = app.app_db().begin(&as_carol).await.unwrap();
        let refused = sqlx::query(attempt)
            .bind(conversation)
            .bind(carol)
            .execute(&mut *tx)
            .await;
        assert!(refused.is_err(), "{attempt}");
    }

    // Alice cannot attach a file that is not her own ready attachment.
    let mut tx = app.app_db().begin(&as_alice).await.unwrap();
    let foreign = sqlx::query(
        "insert into messages (conversation_id, author_id, body, attachment_file_ids) \
         values ($1, $2, 'see this', array[gen_random_uuid()])",
    )
    .bind(conversation)
    .bind(alice)
    .execute(&mut *tx)
    .await;
    assert!(
        foreign.is_err(),
        "attachments are checked by the database too"
    );
    drop(tx);

    // Bob takes part, but the message is Alice's: he cannot edit or delete it.
    let mut tx = app.app_db().begin(&as_bob).await.unwrap();
    let edited = sqlx::query("update messages set body = 'pwned' where id = $1")
        .bind(message)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(edited.rows_affected(), 0);
    let removed = sqlx::query("delete from messages where id = $1")
        .bind(message)
        .execute(&mut *tx)
        .await;
    assert!(
        removed.is_err(),
        "messages are never deleted, only tombstoned"
    );
    drop(tx);
    // Alice can, and an edit cannot move the message elsewhere.
    let mut tx = app.app_db().begin(&as_alice).await.unwrap();
    let moved =
        sqlx::query("update messages set conversation_id = gen_random_uuid() where id = $1")
            .bind(message)
            .execute(&mut *tx)
            .await;
    assert!(moved.is_err(), "only body, files and deletion are writable");
    drop(tx);
    let body: String = sqlx::query_scalar("select body from messages where id = $1")
        .bind(message)
        .fetch_one(&app.db.admin)
        .await
        .unwrap();
    assert_eq!(body, "hi");
}
