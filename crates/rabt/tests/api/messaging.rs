//! Conversations and messages over REST (API.md §6): one direct conversation
//! per pair, history with keyset pages, idempotent sends, edits, tombstones,
//! read markers and exact unread counts, and the email of an unread message.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    PATIENCE,
    auth::{AuthApp, spawn},
    messaging::{conversation, say, send, user},
    problem,
};

async fn unread(env: &AuthApp, token: &str, conversation: &str) -> i64 {
    let list: Value = env
        .app
        .get_as(token, "/v1/conversations")
        .await
        .json()
        .await
        .unwrap();
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a list of conversations: {list}"))
        .iter()
        .find(|c| c["id"] == conversation)
        .map(|c| c["unread_count"].as_i64().unwrap_or_else(|| panic!("{c}")))
        .unwrap_or_else(|| panic!("the conversation is listed: {list}"))
}

fn bodies(page: &Value) -> Vec<Value> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].clone())
        .collect()
}

#[tokio::test]
async fn a_direct_conversation_is_one_per_pair_even_when_asked_in_parallel() {
    let env = spawn(vec![]).await;
    let alice = user(&env, "alice@rabt.test").await;
    let bob = user(&env, "bob@rabt.test").await;

    let asks = (0..6).map(|i| {
        let (from, to) = if i % 2 == 0 {
            (&alice, &bob)
        } else {
            (&bob, &alice)
        };
        let body = json!({"participant_ids": [to.id]});
        let app = &env.app;
        async move {
            app.post_json_as(&from.token, "/v1/conversations", &body)
                .await
        }
    });
    let answers = futures::future::join_all(asks).await;
    let mut ids = Vec::new();
    let mut created = 0;
    for answer in answers {
        match answer.status().as_u16() {
            201 => created += 1,
            200 => {}
            other => panic!("unexpected status {other}"),
        }
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["kind"], "direct");
        assert_eq!(body["participants"].as_array().unwrap().len(), 2);
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(created, 1, "exactly one request created the conversation");
    ids.dedup();
    assert_eq!(ids.len(), 1, "every request answered the same conversation");
}

#[tokio::test]
async fn messages_keep_order_edits_tombstones_and_exact_unread_counts() {
    let env = spawn(vec![]).await;
    let alice = user(&env, "alice@rabt.test").await;
    let bob = user(&env, "bob@rabt.test").await;
    let carol = user(&env, "carol@rabt.test").await;
    let id = conversation(&env, &alice, &[&bob]).await;

    let first = say(&env, &alice, &id, "one").await;
    let second = say(&env, &alice, &id, "two").await;
    let third = say(&env, &alice, &id, "three").await;
    assert_eq!(first["author_id"], alice.id);
    assert_eq!(first["deleted"], false);
    assert_eq!(unread(&env, &bob.token, &id).await, 3);
    assert_eq!(
        unread(&env, &alice.token, &id).await,
        0,
        "own messages are read"
    );

    // Newest first, in pages that follow each other.
    let path = format!("/v1/conversations/{id}/messages");
    let page: Value = env
        .app
        .get_as(&bob.token, &format!("{path}?limit=2"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bodies(&page), vec![json!("three"), json!("two")]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest: Value = env
        .app
        .get_as(&bob.token, &format!("{path}?limit=2&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bodies(&rest), vec![json!("one")]);
    assert!(rest["next_cursor"].is_null());
    let before: Value = env
        .app
        .get_as(
            &bob.token,
            &format!("{path}?before={}", third["id"].as_str().unwrap()),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bodies(&before), vec![json!("two"), json!("one")]);

    // The same client id sends once.
    let again = json!({"body": "hello?", "client_message_id": "c-1"});
    let sent: Value = send(&env, &bob, &id, again.clone())
        .await
        .json()
        .await
        .unwrap();
    let resent = send(&env, &bob, &id, again).await;
    assert_eq!(resent.status(), 201);
    assert_eq!(resent.json::<Value>().await.unwrap()["id"], sent["id"]);
    assert_eq!(unread(&env, &alice.token, &id).await, 1);

    // The read marker moves forward only, and the count follows it.
    let read = |token: String, message: Value| {
        let app = &env.app;
        let path = format!("/v1/conversations/{id}/read");
        async move {
            app.post_json_as(&token, &path, &json!({"message_id": message}))
                .await
                .status()
        }
    };
    assert_eq!(read(bob.token.clone(), second["id"].clone()).await, 204);
    assert_eq!(unread(&env, &bob.token, &id).await, 1);
    assert_eq!(read(bob.token.clone(), first["id"].clone()).await, 204);
    assert_eq!(
        unread(&env, &bob.token, &id).await,
        1,
        "a marker never moves back"
    );
    let listed: Value = env
        .app
        .get_as(&alice.token, &format!("/v1/conversations/{id}"))
        .await
        .json()
        .await
        .unwrap();
    let bobs = listed["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["user_id"] == bob.id)
        .unwrap()
        .clone();
    assert_eq!(
        bobs["last_read_message_id"], second["id"],
        "read receipts show"
    );

    // Only the author edits; an edit keeps `edited_at`.
    let third_path = format!("/v1/messages/{}", third["id"].as_str().unwrap());
    let refused = env
        .app
        .patch_json_as(&bob.token, &third_path, &json!({"body": "mine now"}))
        .await;
    assert_eq!(problem(refused).await["code"], "forbidden");
    let edited: Value = env
        .app
        .patch_json_as(&alice.token, &third_path, &json!({"body": "three, edited"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(edited["body"], "three, edited");
    assert!(edited["edited_at"].is_string());

    // A deleted message is a tombstone, no longer unread, and stays so.
    assert_eq!(
        env.app.delete_as(&alice.token, &third_path).await.status(),
        204
    );
    assert_eq!(unread(&env, &bob.token, &id).await, 0);
    let page: Value = env
        .app
        .get_as(&bob.token, &path)
        .await
        .json()
        .await
        .unwrap();
    let tombstone = &page["items"][1];
    assert_eq!(tombstone["id"], third["id"]);
    assert_eq!(tombstone["deleted"], true);
    assert!(tombstone["body"].is_null());
    let late = env
        .app
        .patch_json_as(&alice.token, &third_path, &json!({"body": "back"}))
        .await;
    assert_eq!(problem(late).await["code"], "conflict");
    assert_eq!(
        env.app.delete_as(&alice.token, &third_path).await.status(),
        204
    );

    // The list shows the newest message.
    let list: Value = env
        .app
        .get_as(&alice.token, "/v1/conversations")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["last_message"]["id"], sent["id"]);

    // An outsider learns nothing.
    assert_eq!(env.app.get_as(&carol.token, &path).await.status(), 404);
    let intrusion = send(&env, &carol, &id, json!({"body": "hi"})).await;
    assert_eq!(problem(intrusion).await["code"], "not_found");
    let edit = env
        .app
        .patch_json_as(&carol.token, &third_path, &json!({"body": "x"}))
        .await;
    assert_eq!(problem(edit).await["code"], "not_found");
    let listed: Value = env
        .app
        .get_as(&carol.token, "/v1/conversations")
        .await
        .json()
        .await
        .unwrap();
    assert!(listed["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn bad_conversations_and_messages_are_named_errors() {
    let env = spawn(vec![]).await;
    let alice = user(&env, "alice@rabt.test").await;
    let bob = user(&env, "bob@rabt.test").await;

    let crowd: Vec<String> = (0..50).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let too_many = env
        .app
        .post_json_as(
            &alice.token,
            "/v1/conversations",
            &json!({"participant_ids": crowd}),
        )
        .await;
    let body = problem(too_many).await;
    assert_eq!(body["errors"][0]["field"], "participant_ids");
    assert_eq!(body["errors"][0]["code"], "too_long");

    let stranger = uuid::Uuid::now_v7().to_string();
    let unknown = env
        .app
        .post_json_as(
            &alice.token,
            "/v1/conversations",
            &json!({"participant_ids": [bob.id, stranger]}),
        )
        .await;
    assert_eq!(problem(unknown).await["errors"][0]["code"], "not_found");

    let alone = env
        .app
        .post_json_as(
            &alice.token,
            "/v1/conversations",
            &json!({"participant_ids": [alice.id]}),
        )
        .await;
    assert_eq!(problem(alone).await["code"], "validation_failed");

    let id = conversation(&env, &alice, &[&bob]).await;
    for body in [
        json!({"body": ""}),
        json!({"body": "x".repeat(5001)}),
        json!({"body": "hi", "extra": 1}),
        json!({"body": "hi", "attachment_file_ids": [uuid::Uuid::now_v7()]}),
    ] {
        let refused = send(&env, &alice, &id, body).await;
        assert_eq!(refused.status(), 422);
    }
    let page: Value = env
        .app
        .get_as(&alice.token, &format!("/v1/conversations/{id}/messages"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        page["items"].as_array().unwrap().is_empty(),
        "nothing half-written"
    );
    let marker = env
        .app
        .post_json_as(
            &alice.token,
            &format!("/v1/conversations/{id}/read"),
            &json!({"message_id": uuid::Uuid::now_v7()}),
        )
        .await;
    assert_eq!(problem(marker).await["errors"][0]["field"], "message_id");
}

#[tokio::test]
async fn an_unread_message_is_emailed_once_after_the_delay_unless_read_or_opted_out() {
    let env = spawn(vec![("message_email_delay_secs", "1".into())]).await;
    let alice = user(&env, "alice@rabt.test").await;
    let bob = user(&env, "bob@rabt.test").await;
    let carol = user(&env, "carol@rabt.test").await;
    let dave = user(&env, "dave@rabt.test").await;
    let mails_before = env.smtp.messages().len();

    // Bob: two messages in the window make one email.
    let with_bob = conversation(&env, &alice, &[&bob]).await;
    say(&env, &alice, &with_bob, "one").await;
    say(&env, &alice, &with_bob, "two").await;
    // Carol reads before the delay is over: no email.
    let with_carol = conversation(&env, &alice, &[&carol]).await;
    let read_soon = say(&env, &alice, &with_carol, "read me").await;
    let marked = env
        .app
        .post_json_as(
            &carol.token,
            &format!("/v1/conversations/{with_carol}/read"),
            &json!({"message_id": read_soon["id"]}),
        )
        .await;
    assert_eq!(marked.status(), 204);
    // Dave never wants message email.
    let prefs = json!({"messages": "never", "applications": true, "billing": true,
                       "product_news": false});
    let saved = env
        .app
        .put_json_as(&dave.token, "/v1/me/notification-preferences", &prefs)
        .await;
    assert_eq!(saved.status(), 200);
    let with_dave = conversation(&env, &alice, &[&dave]).await;
    say(&env, &alice, &with_dave, "hello dave").await;

    tokio::time::sleep(Duration::from_millis(1200)).await;
    env.app.drain_jobs().await;
    env.smtp.wait_for(mails_before + 1, PATIENCE).await;
    // Whatever else was (wrongly) queued has had time to arrive too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.app.drain_jobs().await;
    let mails = env.smtp.messages();
    let new: Vec<_> = mails[mails_before..].iter().collect();
    assert_eq!(new.len(), 1, "one email in all: {new:?}");
    assert_eq!(new[0].to, vec!["bob@rabt.test".to_owned()]);
    let text = crate::helpers::auth::unfold(&new[0].data);
    assert!(text.contains("2 messages"), "{text}");
    assert_eq!(
        crate::helpers::auth::tracked_targets(&env.app, &text).await,
        [format!("https://app.rabt.test/messages/{with_bob}")],
        "{text}"
    );

    // A later message makes a later email.
    say(&env, &alice, &with_bob, "three").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    env.app.drain_jobs().await;
    env.smtp.wait_for(mails_before + 2, PATIENCE).await;
}

#[tokio::test]
async fn a_digest_gathers_unread_conversations_once_a_day() {
    let env = spawn(vec![]).await;
    let alice = user(&env, "alice@rabt.test").await;
    let bob = user(&env, "bob@rabt.test").await;
    let carol = user(&env, "carol@rabt.test").await;
    let prefs = json!({"messages": "digest", "applications": true, "billing": true,
                       "product_news": false});
    let saved = env
        .app
        .put_json_as(&bob.token, "/v1/me/notification-preferences", &prefs)
        .await;
    assert_eq!(saved.status(), 200);
    let with_alice = conversation(&env, &alice, &[&bob]).await;
    let with_carol = conversation(&env, &carol, &[&bob]).await;
    say(&env, &alice, &with_alice, "one").await;
    say(&env, &alice, &with_alice, "two").await;
    say(&env, &carol, &with_carol, "three").await;
    env.app.drain_jobs().await;
    let mails_before = env.smtp.messages().len();

    assert_eq!(env.app.housekeep().await.removed("message digests"), 1);
    assert_eq!(
        env.app.housekeep().await.removed("message digests"),
        0,
        "one digest a day"
    );
    env.app.drain_jobs().await;
    let mails = env.smtp.wait_for(mails_before + 1, PATIENCE).await;
    let digest = &mails[mails_before];
    assert_eq!(digest.to, vec!["bob@rabt.test".to_owned()]);
    let text = crate::helpers::auth::unfold(&digest.data);
    assert!(text.contains("3 unread messages"), "{text}");
    let targets = crate::helpers::auth::tracked_targets(&env.app, &text).await;
    assert!(
        targets.contains(&format!("https://app.rabt.test/messages/{with_alice}")),
        "{targets:?}"
    );
    assert!(
        targets.contains(&format!("https://app.rabt.test/messages/{with_carol}")),
        "{targets:?}"
    );
}

#[tokio::test]
async fn an_erased_account_leaves_the_conversation_to_the_others() {
    let env = spawn(vec![]).await;
    let alice = user(&env, "alice@rabt.test").await;
    let bob = user(&env, "bob@rabt.test").await;
    let id = conversation(&env, &alice, &[&bob]).await;
    say(&env, &alice, &id, "hello").await;
    say(&env, &bob, &id, "hi alice").await;
    let regret = say(&env, &bob, &id, "oops").await;
    let path = format!("/v1/messages/{}", regret["id"].as_str().unwrap());
    assert_eq!(env.app.delete_as(&bob.token, &path).await.status(), 204);

    sqlx::query("delete from users where id = $1::uuid")
        .bind(&bob.id)
        .execute(&env.app.db.admin)
        .await
        .unwrap();
    let page: Value = env
        .app
        .get_as(&alice.token, &format!("/v1/conversations/{id}/messages"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        bodies(&page),
        vec![Value::Null, json!("hi alice"), json!("hello")]
    );
    assert_eq!(page["items"][0]["deleted"], true, "a tombstone stays one");
    assert!(
        page["items"][0]["author_id"].is_null(),
        "the erased author is gone"
    );
    let listed: Value = env
        .app
        .get_as(&alice.token, &format!("/v1/conversations/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["participants"].as_array().unwrap().len(), 1);
}
