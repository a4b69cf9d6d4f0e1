//! The realtime WebSocket against the real server (API.md §6): delivery to
//! participants only, replays with `since`, fan-out across instances, a lost
//! listener that loses nothing, revocation, floods, and order under
//! concurrency.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    PATIENCE,
    auth::{AuthApp, spawn},
    messaging::{Received, Socket, User, connect, conversation, say, try_connect, user},
    projects,
    redis::OwnRedis,
};

/// The next frame, which must be of `kind`.
async fn expect(socket: &mut Socket, kind: &str) -> Value {
    let frame = socket.frame().await;
    assert_eq!(frame["type"], kind, "{frame}");
    frame
}

async fn two_people(env: &AuthApp) -> (User, User, String) {
    let alice = user(env, "alice@rabt.test").await;
    let bob = user(env, "bob@rabt.test").await;
    let id = conversation(env, &alice, &[&bob]).await;
    (alice, bob, id)
}

#[tokio::test]
async fn participants_receive_what_was_stored_and_outsiders_nothing() {
    let env = spawn(vec![]).await;
    let (alice, bob, id) = two_people(&env).await;
    let carol = user(&env, "carol@rabt.test").await;
    let (mut a, protocol) = try_connect(env.app.address, &alice.token, "")
        .await
        .unwrap();
    assert_eq!(
        protocol.as_deref(),
        Some("bearer"),
        "browsers need the subprotocol answered"
    );
    let mut b = connect(env.app.address, &bob.token, "").await;
    let mut c = connect(env.app.address, &carol.token, "").await;
    // Registered: a ping answers once the socket serves.
    for socket in [&mut a, &mut b, &mut c] {
        socket.pong().await;
    }

    let stored = say(&env, &alice, &id, "hello bob").await;
    for socket in [&mut a, &mut b] {
        let frame = expect(socket, "message.created").await;
        assert_eq!(frame["conversation_id"], id.as_str());
        assert_eq!(
            frame["message"], stored,
            "the event shows the message as REST does"
        );
        assert!(frame["seq"].as_i64().unwrap() >= 1);
    }

    // Typing reaches the others, with the latest seq, and is not logged.
    a.send(json!({"type": "typing", "conversation_id": id}))
        .await;
    let typing = expect(&mut b, "typing").await;
    assert_eq!(typing["user_id"], alice.id.as_str());

    // A read marker is a receipt for everyone in the conversation.
    let read = env
        .app
        .post_json_as(
            &bob.token,
            &format!("/v1/conversations/{id}/read"),
            &json!({"message_id": stored["id"]}),
        )
        .await;
    assert_eq!(read.status(), 204);
    for socket in [&mut a, &mut b] {
        let frame = expect(socket, "conversation.read").await;
        assert_eq!(frame["user_id"], bob.id.as_str());
        assert_eq!(frame["message_id"], stored["id"]);
    }

    // Edits and deletions arrive as such; the tombstone has no body.
    let path = format!("/v1/messages/{}", stored["id"].as_str().unwrap());
    env.app
        .patch_json_as(&alice.token, &path, &json!({"body": "hello, bob"}))
        .await;
    assert_eq!(
        expect(&mut b, "message.updated").await["message"]["body"],
        "hello, bob"
    );
    env.app.delete_as(&alice.token, &path).await;
    let deleted = expect(&mut b, "message.deleted").await;
    assert_eq!(deleted["message"]["deleted"], true);
    assert!(deleted["message"]["body"].is_null());

    assert!(
        c.quiet_for(Duration::from_millis(300)).await,
        "an outsider hears nothing"
    );
}

#[tokio::test]
async fn a_reconnect_with_since_receives_exactly_what_was_missed_then_live_events() {
    let env = spawn(vec![]).await;
    let (alice, bob, id) = two_people(&env).await;
    let mut b = connect(env.app.address, &bob.token, "").await;
    b.pong().await;
    say(&env, &alice, &id, "first").await;
    let seen = expect(&mut b, "message.created").await["seq"]
        .as_i64()
        .unwrap();
    drop(b);

    for text in ["second", "third", "fourth"] {
        say(&env, &alice, &id, text).await;
    }
    let mut b = connect(env.app.address, &bob.token, &format!("since={seen}")).await;
    let mut seqs = Vec::new();
    for text in ["second", "third", "fourth"] {
        let frame = expect(&mut b, "message.created").await;
        assert_eq!(frame["message"]["body"], text);
        seqs.push(frame["seq"].as_i64().unwrap());
    }
    assert_eq!(
        seqs,
        vec![seen + 1, seen + 2, seen + 3],
        "in order, without gaps"
    );
    say(&env, &alice, &id, "live").await;
    let live = expect(&mut b, "message.created").await;
    assert_eq!(live["message"]["body"], "live");
    assert_eq!(
        live["seq"],
        seen + 4,
        "no duplicate between the replay and live events"
    );
    assert_eq!(b.pong().await["seq"], seen + 4);
}

#[tokio::test]
async fn a_since_older_than_the_log_asks_for_a_resync() {
    let env = spawn(vec![]).await;
    let (alice, bob, id) = two_people(&env).await;
    say(&env, &alice, &id, "old").await;
    say(&env, &alice, &id, "newer").await;
    sqlx::query("delete from realtime_events where seq = 1")
        .execute(&env.app.db.admin)
        .await
        .unwrap();

    let mut b = connect(env.app.address, &bob.token, "since=0").await;
    let frame = expect(&mut b, "error").await;
    assert_eq!(frame["code"], "resync_required");
    assert_eq!(b.close_code().await, Some(4009));

    // From seq 1 on, what is kept is enough.
    let mut b = connect(env.app.address, &bob.token, "since=1").await;
    assert_eq!(
        expect(&mut b, "message.created").await["message"]["body"],
        "newer"
    );

    // A hole inside the log (pruning by time) is no replay either.
    say(&env, &alice, &id, "third").await;
    say(&env, &alice, &id, "fourth").await;
    sqlx::query("delete from realtime_events where seq = 3")
        .execute(&env.app.db.admin)
        .await
        .unwrap();
    let mut b = connect(env.app.address, &bob.token, "since=2").await;
    assert_eq!(expect(&mut b, "error").await["code"], "resync_required");
    assert_eq!(b.close_code().await, Some(4009));
}

#[tokio::test]
async fn a_message_stored_on_one_instance_reaches_a_socket_on_another() {
    let env = spawn(vec![]).await;
    let (alice, bob, id) = two_people(&env).await;
    let (second, stop) = env.app.second_instance().await;
    let mut b = connect(second, &bob.token, "").await;
    b.pong().await;
    let stored = say(&env, &alice, &id, "across instances").await;
    assert_eq!(
        expect(&mut b, "message.created").await["message"]["id"],
        stored["id"]
    );

    // And a send over a socket on the second reaches the first.
    let mut a = connect(env.app.address, &alice.token, "").await;
    a.pong().await;
    b.send(
        json!({"type": "message.send", "conversation_id": id, "body": "back",
                  "client_message_id": "ws-1"}),
    )
    .await;
    let mine = expect(&mut b, "message.created").await;
    assert_eq!(mine["message"]["client_message_id"], "ws-1");
    assert_eq!(
        expect(&mut a, "message.created").await["message"]["body"],
        "back"
    );
    stop.cancel();
}

#[tokio::test]
async fn a_lost_listener_connection_delays_events_but_loses_none() {
    let env = spawn(vec![]).await;
    let (alice, bob, id) = two_people(&env).await;
    let mut b = connect(env.app.address, &bob.token, "").await;
    b.pong().await;

    // Cut every listening connection of the server, then send while it is away.
    let cut: i64 = sqlx::query_scalar(
        "select count(pg_terminate_backend(pid)) from pg_stat_activity \
         where datname = current_database() and query ilike 'listen%'",
    )
    .fetch_one(&env.app.db.admin)
    .await
    .unwrap();
    assert!(cut >= 1, "the listeners were found");
    for text in ["while away 1", "while away 2"] {
        say(&env, &alice, &id, text).await;
    }
    for text in ["while away 1", "while away 2"] {
        let frame = match b.next_within(PATIENCE).await {
            Some(Received::Frame(frame)) => frame,
            other => panic!("expected {text}, got {other:?}"),
        };
        assert_eq!(frame["message"]["body"], text);
    }
}

#[tokio::test]
async fn a_revoked_session_closes_its_socket() {
    let env = spawn(vec![]).await;
    let (_alice, bob, _id) = two_people(&env).await;
    let mut b = connect(env.app.address, &bob.token, "").await;
    b.pong().await;
    let logout = env
        .app
        .post_json_as(&bob.token, "/v1/auth/logout", &json!({}))
        .await;
    assert!(logout.status().is_success(), "{}", logout.status());
    assert_eq!(b.close_code().await, Some(4001));
}

#[tokio::test]
async fn a_bad_token_is_refused_before_the_upgrade() {
    let env = spawn(vec![]).await;
    match try_connect(env.app.address, "not-a-token", "").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
        }
        Err(other) => panic!("refused otherwise: {other}"),
        Ok(_) => panic!("a bad token opened a socket"),
    }
    let plain = env.app.get("/v1/realtime").await;
    assert_eq!(plain.status(), 401);
}

#[tokio::test]
async fn bad_frames_get_errors_and_a_flood_is_closed() {
    let env = spawn(vec![("realtime_frames_per_minute", "60".into())]).await;
    let (alice, _bob, id) = two_people(&env).await;
    let carol = user(&env, "carol@rabt.test").await;
    let mut c = connect(env.app.address, &carol.token, "").await;

    c.send_text("{not json").await;
    assert_eq!(expect(&mut c, "error").await["code"], "invalid_frame");
    c.send(
        json!({"type": "message.send", "conversation_id": id, "body": "let me in",
                  "client_message_id": "x-1"}),
    )
    .await;
    let refused = expect(&mut c, "error").await;
    assert_eq!(refused["code"], "not_found", "not a participant: {refused}");
    assert_eq!(refused["client_message_id"], "x-1");
    let mut a = connect(env.app.address, &alice.token, "").await;
    a.send(json!({"type": "message.send", "conversation_id": id, "body": ""}))
        .await;
    assert_eq!(expect(&mut a, "error").await["code"], "validation_failed");

    // Frames far beyond the rate: errors, then a close.
    for _ in 0..60 {
        c.send(json!({"type": "ping"})).await;
    }
    let mut limited = false;
    let code = loop {
        match c.next_within(PATIENCE).await {
            Some(Received::Frame(frame)) => limited |= frame["code"] == "rate_limited",
            Some(Received::Closed(code)) => break code,
            None => panic!("the flood went on"),
        }
    };
    assert!(limited, "the client was told before being closed");
    assert_eq!(code, Some(1008));

    // An oversized frame closes with 1009.
    let mut a = connect(env.app.address, &alice.token, "").await;
    a.send_text(&"x".repeat(40 * 1024)).await;
    assert_eq!(a.close_code().await, Some(1009));
}

#[tokio::test]
async fn parallel_sends_are_seen_by_everyone_in_one_order_with_increasing_seq() {
    let env = spawn(vec![]).await;
    let alice = user(&env, "alice@rabt.test").await;
    let bob = user(&env, "bob@rabt.test").await;
    let carol = user(&env, "carol@rabt.test").await;
    let id = conversation(&env, &alice, &[&bob, &carol]).await;
    let people = [&alice, &bob, &carol];
    let mut sockets = Vec::new();
    for person in people {
        let mut socket = connect(env.app.address, &person.token, "").await;
        socket.pong().await;
        sockets.push(socket);
    }

    let sends = (0..20).map(|i| {
        let (from, env, id) = (people[i % 3], &env, &id);
        async move { say(env, from, id, &format!("message {i}")).await }
    });
    futures::future::join_all(sends).await;

    let mut orders = Vec::new();
    for socket in &mut sockets {
        let mut order = Vec::new();
        let mut last = 0;
        while order.len() < 20 {
            let frame = socket.frame().await;
            if frame["type"] != "message.created" {
                continue;
            }
            let seq = frame["seq"].as_i64().unwrap();
            assert!(seq > last, "seq increases: {seq} after {last}");
            last = seq;
            order.push(frame["message"]["id"].as_str().unwrap().to_owned());
        }
        orders.push(order);
    }
    assert_eq!(orders[0], orders[1]);
    assert_eq!(orders[1], orders[2]);
    let history: Value = env
        .app
        .get_as(
            &alice.token,
            &format!("/v1/conversations/{id}/messages?limit=20"),
        )
        .await
        .json()
        .await
        .unwrap();
    let mut stored: Vec<String> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    stored.reverse();
    assert_eq!(stored, orders[0], "history and realtime agree on the order");
}

#[tokio::test]
async fn notifications_are_pushed_as_they_are_created() {
    let env = spawn(vec![]).await;
    let owner = user(&env, "owner@rabt.test").await;
    let applicant = user(&env, "applicant@rabt.test").await;
    let project = projects::published(&env, &owner.token, "A project").await;
    let mut o = connect(env.app.address, &owner.token, "").await;
    o.pong().await;
    let applied = projects::apply(&env, &applicant.token, &project, "I can help.").await;
    assert_eq!(applied.status(), 201);
    let frame = expect(&mut o, "notification.created").await;
    assert_eq!(frame["notification"]["kind"], "application.submitted");
    let inbox: Value = env
        .app
        .get_as(&owner.token, "/v1/notifications")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(frame["notification"], inbox["items"][0]);
}

#[tokio::test]
async fn a_shutdown_closes_sockets_with_going_away() {
    let env = spawn(vec![]).await;
    let (_alice, bob, _id) = two_people(&env).await;
    let mut b = connect(env.app.address, &bob.token, "").await;
    b.pong().await;
    env.app.stop().await;
    assert_eq!(b.close_code().await, Some(1001));
}

#[tokio::test]
async fn killing_redis_mid_conversation_loses_nothing() {
    let mut redis = OwnRedis::start().await;
    let env = spawn(vec![("redis_url", redis.url())]).await;
    let (alice, bob, id) = two_people(&env).await;
    let mut b = connect(env.app.address, &bob.token, "").await;
    b.pong().await;
    say(&env, &alice, &id, "before").await;
    assert_eq!(
        expect(&mut b, "message.created").await["message"]["body"],
        "before"
    );

    redis.kill();
    let during = say(&env, &alice, &id, "while Redis is down").await;
    assert_eq!(
        expect(&mut b, "message.created").await["message"]["id"],
        during["id"]
    );

    redis.resume().await;
    say(&env, &alice, &id, "after").await;
    assert_eq!(
        expect(&mut b, "message.created").await["message"]["body"],
        "after"
    );
}

#[tokio::test]
async fn housekeeping_prunes_events_older_than_the_retention() {
    let env = spawn(vec![("realtime_retention_hours", "24".into())]).await;
    let (alice, bob, id) = two_people(&env).await;
    say(&env, &alice, &id, "old").await;
    say(&env, &alice, &id, "new").await;
    // Alice's and Bob's events of the first message are a day and more old.
    sqlx::query(
        "update realtime_events set created_at = now() - interval '25 hours' where seq = 1",
    )
    .execute(&env.app.db.admin)
    .await
    .unwrap();
    assert_eq!(env.app.housekeep().await.removed("realtime events"), 2);
    let left: i64 = sqlx::query_scalar("select count(*) from realtime_events")
        .fetch_one(&env.app.db.admin)
        .await
        .unwrap();
    assert_eq!(left, 2);

    let mut b = connect(env.app.address, &bob.token, "").await;
    b.pong().await;
    let metrics = env.app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("rabt_realtime_sockets"), "{metrics}");
}
