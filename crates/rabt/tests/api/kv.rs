//! Shared short-lived state through Redis: what one instance writes, another
//! reads; rate limits are counted once across instances.

use std::time::Duration;

use rabt::kv::{Kv, Rate};

use crate::helpers::{TestDb, test_settings};

async fn two_instances() -> (Kv, Kv, TestDb) {
    let db = TestDb::new().await;
    let settings = test_settings(
        &db,
        true,
        &[(
            "redis_key_prefix",
            format!("test:{}:", uuid::Uuid::new_v4().simple()),
        )],
    );
    let first = Kv::connect(&settings).await.unwrap();
    let second = Kv::connect(&settings).await.unwrap();
    (first, second, db)
}

#[tokio::test]
async fn a_value_set_on_one_instance_is_read_and_deleted_on_another() {
    let (one, two, _db) = two_instances().await;
    assert_eq!(one.backend_name(), "redis");
    one.set("session:abc", b"alive", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        two.get("session:abc").await.unwrap(),
        Some(b"alive".to_vec())
    );
    two.delete("session:abc").await.unwrap();
    assert_eq!(one.get("session:abc").await.unwrap(), None);
}

#[tokio::test]
async fn values_expire_in_redis() {
    let (one, _, _db) = two_instances().await;
    one.set("short", b"1", Duration::from_millis(50))
        .await
        .unwrap();
    // Expiry is what is tested, so time must pass: past the 50 ms, with margin.
    // Polling until it is gone would accept an expiry much later than asked.
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(one.get("short").await.unwrap(), None);
}

#[tokio::test]
async fn a_rate_limit_is_shared_by_every_instance() {
    let (one, two, _db) = two_instances().await;
    let rate = Rate::per_minute(3);
    assert!(one.rate_limit("login:ip", rate).await.unwrap().allowed);
    assert!(two.rate_limit("login:ip", rate).await.unwrap().allowed);
    let third = one.rate_limit("login:ip", rate).await.unwrap();
    assert!(third.allowed);
    assert_eq!(third.remaining, 0);
    let refused = two.rate_limit("login:ip", rate).await.unwrap();
    assert!(!refused.allowed);
    assert!(refused.retry_after > Duration::from_secs(15));
    assert!(refused.retry_after <= Duration::from_secs(20));
    // Other keys are counted apart.
    assert!(two.rate_limit("login:other", rate).await.unwrap().allowed);
}

#[tokio::test]
async fn batches_taken_by_two_instances_never_exceed_the_limit() {
    let (one, two, _db) = two_instances().await;
    let rate = Rate::per_minute(25);
    let mut granted = 0;
    for kv in [&one, &two].into_iter().cycle().take(8) {
        let decision = kv.rate_limit_batch("read:user", rate, 10).await.unwrap();
        assert_eq!(decision.allowed, decision.granted > 0);
        granted += decision.granted;
    }
    assert_eq!(granted, 25, "the burst, shared, and nothing past it");
    let refused = one.rate_limit_batch("read:user", rate, 10).await.unwrap();
    assert!(!refused.allowed && refused.retry_after > Duration::ZERO);
}

#[tokio::test]
async fn instances_with_different_prefixes_do_not_see_each_other() {
    let (one, _, db) = two_instances().await;
    let other = Kv::connect(&test_settings(&db, true, &[])).await.unwrap();
    one.set("k", b"v", Duration::from_secs(30)).await.unwrap();
    assert_eq!(other.get("k").await.unwrap(), None);
}

#[tokio::test]
async fn the_in_process_store_limits_the_same_way() {
    let kv = Kv::memory("t:".into());
    let rate = Rate::per_minute(2);
    assert!(kv.rate_limit("k", rate).await.unwrap().allowed);
    assert!(kv.rate_limit("k", rate).await.unwrap().allowed);
    assert!(!kv.rate_limit("k", rate).await.unwrap().allowed);
}
