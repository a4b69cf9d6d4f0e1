//! Files (API.md §8), against a real S3-compatible server that checks SigV4
//! signatures and expiry, and against the local folder store whose URLs rabt
//! signs and serves itself: the same tests for both.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    auth::{access, signed_in},
    problem,
    projects::published,
    storage::{Backend, FilesApp, spawn_files},
};

/// Runs a scenario once per backend, as `<scenario>::s3` and `<scenario>::local`.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn s3() {
                super::$scenario(super::Backend::S3).await;
            }
            #[tokio::test]
            async fn local() {
                super::$scenario(super::Backend::Local).await;
            }
        }
    )*};
}

on_both_backends!(
    an_upload_completes_and_downloads_with_safe_headers,
    tampered_and_retyped_requests_are_refused,
    expired_urls_are_refused,
    a_text_file_declared_as_png_is_rejected_and_removed,
    another_user_gets_404,
    an_avatar_is_visible_through_a_public_profile_only,
    deleting_removes_the_row_at_once_and_the_object_by_a_job,
);

/// A PNG's signature and header chunk: enough for the content check.
const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

async fn create(app: &FilesApp, token: &str, body: Value) -> reqwest::Response {
    app.env.app.post_json_as(token, "/v1/files", &body).await
}

/// Starts an upload of `bytes` and returns the answer (201 asserted).
async fn start(
    app: &FilesApp,
    token: &str,
    purpose: &str,
    filename: &str,
    content_type: &str,
    bytes: &[u8],
) -> Value {
    let response = create(
        app,
        token,
        json!({"filename": filename, "content_type": content_type,
               "size_bytes": bytes.len(), "purpose": purpose}),
    )
    .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["upload"]["method"], "PUT");
    assert_eq!(created["status"], "pending");
    created
}

/// Sends `bytes` as the upload instructions say, with `headers` changed.
async fn put_with(
    app: &FilesApp,
    created: &Value,
    bytes: &[u8],
    change: &[(&str, &str)],
    url: Option<String>,
) -> reqwest::Response {
    let url = url.unwrap_or_else(|| created["upload"]["url"].as_str().unwrap().to_owned());
    let mut request = app.env.app.client.put(app.reach(&url)).body(bytes.to_vec());
    for (name, value) in created["upload"]["headers"].as_object().unwrap() {
        let value = change
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or(value.as_str().unwrap(), |(_, v)| *v);
        request = request.header(name.as_str(), value);
    }
    request.send().await.unwrap()
}

async fn put(app: &FilesApp, created: &Value, bytes: &[u8]) -> reqwest::Response {
    put_with(app, created, bytes, &[], None).await
}

async fn complete(app: &FilesApp, token: &str, id: &str) -> reqwest::Response {
    app.env
        .app
        .post_json_as(token, &format!("/v1/files/{id}/complete"), &json!({}))
        .await
}

/// Uploads and completes a file; returns its id.
pub(crate) async fn ready_file(
    app: &FilesApp,
    token: &str,
    purpose: &str,
    filename: &str,
    content_type: &str,
    bytes: &[u8],
) -> String {
    let created = start(app, token, purpose, filename, content_type, bytes).await;
    let stored = put(app, &created, bytes).await;
    assert!(stored.status().is_success(), "{}", stored.status());
    let id = created["id"].as_str().unwrap().to_owned();
    let done = complete(app, token, &id).await;
    assert_eq!(done.status(), 200);
    assert_eq!(done.json::<Value>().await.unwrap()["status"], "ready");
    id
}

async fn file_as(app: &FilesApp, token: &str, id: &str) -> reqwest::Response {
    app.env.app.get_as(token, &format!("/v1/files/{id}")).await
}

/// Whether the store holds `key`: `uploads/{id}` (what the client sent) or
/// `files/{id}` (the checked copy).
async fn stored(app: &FilesApp, key: String) -> bool {
    app.env
        .app
        .state
        .storage
        .size(&key)
        .await
        .unwrap()
        .is_some()
}

/// `url` with one character of its signature changed.
fn tampered(url: &str) -> String {
    let mut url = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "X-Amz-Signature" || k == "signature" {
                let flipped = if v.starts_with('0') { "1" } else { "0" };
                format!("{flipped}{}", &v[1..])
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.to_string()
}

async fn an_upload_completes_and_downloads_with_safe_headers(backend: Backend) {
    let app = spawn_files(backend, vec![]).await;
    let ada = signed_in(&app.env, "ada@rabt.test").await;
    let text = "Dear team,\nGrüße — a cover note.\n".as_bytes();
    let id = ready_file(
        &app,
        access(&ada),
        "application_attachment",
        "note.txt",
        "text/plain",
        text,
    )
    .await;

    let response = file_as(&app, access(&ada), &id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "private, no-store");
    let file: Value = response.json().await.unwrap();
    assert_eq!(file["filename"], "note.txt");
    assert_eq!(file["size_bytes"], text.len());
    assert_eq!(file["purpose"], "application_attachment");
    assert!(file["download_expires_at"].is_string());
    let download = app
        .env
        .app
        .client
        .get(app.reach(file["download_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(
        download.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    let disposition = download.headers()["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    if backend == Backend::Local {
        assert_eq!(download.headers()["x-content-type-options"], "nosniff");
        assert!(
            download.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("sandbox")
        );
    }
    assert_eq!(download.bytes().await.unwrap().as_ref(), text);

    // Checked bytes stay as checked: the upload URL, still valid, no longer
    // reaches them.
    let created_again = start(
        &app,
        access(&ada),
        "application_attachment",
        "swap.txt",
        "text/plain",
        text,
    )
    .await;
    let swap_id = created_again["id"].as_str().unwrap();
    assert!(put(&app, &created_again, text).await.status().is_success());
    assert_eq!(complete(&app, access(&ada), swap_id).await.status(), 200);
    let evil = "<script>alert(1)</script>".as_bytes();
    let _ = put(&app, &created_again, &evil[..evil.len().min(text.len())]).await;
    let file: Value = file_as(&app, access(&ada), swap_id)
        .await
        .json()
        .await
        .unwrap();
    let served = app
        .env
        .app
        .client
        .get(app.reach(file["download_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(served.bytes().await.unwrap().as_ref(), text);

    // Images alone are shown inline.
    let image = ready_file(&app, access(&ada), "avatar", "me.png", "image/png", PNG).await;
    let file: Value = file_as(&app, access(&ada), &image)
        .await
        .json()
        .await
        .unwrap();
    let download = app
        .env
        .app
        .client
        .get(app.reach(file["download_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(download.headers()["content-type"], "image/png");
    assert!(
        download.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline;")
    );
    // Completing again answers the ready file.
    assert_eq!(complete(&app, access(&ada), &image).await.status(), 200);
}

async fn tampered_and_retyped_requests_are_refused(backend: Backend) {
    let app = spawn_files(backend, vec![]).await;
    let ada = signed_in(&app.env, "ada@rabt.test").await;
    let created = start(&app, access(&ada), "avatar", "me.png", "image/png", PNG).await;
    let url = created["upload"]["url"].as_str().unwrap();

    let forged = put_with(&app, &created, PNG, &[], Some(tampered(url))).await;
    assert_eq!(forged.status(), 403);
    let retyped = put_with(&app, &created, PNG, &[("Content-Type", "text/html")], None).await;
    assert_eq!(retyped.status(), 403);
    let id = created["id"].as_str().unwrap();
    assert!(!stored(&app, format!("uploads/{id}")).await);

    assert!(put(&app, &created, PNG).await.status().is_success());
    assert_eq!(complete(&app, access(&ada), id).await.status(), 200);
    let file: Value = file_as(&app, access(&ada), id).await.json().await.unwrap();
    let download = file["download_url"].as_str().unwrap();
    let forged = app
        .env
        .app
        .client
        .get(app.reach(&tampered(download)))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
}

async fn expired_urls_are_refused(backend: Backend) {
    let app = spawn_files(
        backend,
        vec![
            // Signatures carry whole seconds: 2 s leaves the in-time
            // requests at least one, however loaded the machine.
            ("files_upload_url_ttl_secs", "2".into()),
            ("files_download_url_ttl_secs", "2".into()),
        ],
    )
    .await;
    let ada = signed_in(&app.env, "ada@rabt.test").await;
    let late = start(&app, access(&ada), "avatar", "me.png", "image/png", PNG).await;
    let in_time = start(&app, access(&ada), "avatar", "me.png", "image/png", PNG).await;
    assert!(put(&app, &in_time, PNG).await.status().is_success());
    let id = in_time["id"].as_str().unwrap();
    assert_eq!(complete(&app, access(&ada), id).await.status(), 200);
    let file: Value = file_as(&app, access(&ada), id).await.json().await.unwrap();

    // Expiry is a matter of the clock: wait past it.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(put(&app, &late, PNG).await.status(), 403);
    let download = app
        .env
        .app
        .client
        .get(app.reach(file["download_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 403);
}

async fn a_text_file_declared_as_png_is_rejected_and_removed(backend: Backend) {
    let app = spawn_files(backend, vec![]).await;
    let ada = signed_in(&app.env, "ada@rabt.test").await;
    let text = b"definitely not an image";
    let created = start(&app, access(&ada), "avatar", "me.png", "image/png", text).await;
    let id = created["id"].as_str().unwrap();

    let missing = complete(&app, access(&ada), id).await;
    assert_eq!(problem(missing).await["code"], "upload_missing");

    assert!(put(&app, &created, text).await.status().is_success());
    assert!(stored(&app, format!("uploads/{id}")).await);
    let refused = complete(&app, access(&ada), id).await;
    assert_eq!(refused.status(), 422);
    assert_eq!(problem(refused).await["code"], "file_content_mismatch");
    assert!(!stored(&app, format!("uploads/{id}")).await);
    assert!(!stored(&app, format!("files/{id}")).await);
    let file: Value = file_as(&app, access(&ada), id).await.json().await.unwrap();
    assert_eq!(file["status"], "pending");
    assert_eq!(file["download_url"], Value::Null);

    // A size other than the declared one is refused the same way.
    let short = start(&app, access(&ada), "avatar", "me.png", "image/png", PNG).await;
    let short_id = short["id"].as_str().unwrap();
    if backend == Backend::Local {
        // rabt's own store refuses more bytes than signed at the door.
        let long = [PNG, b"extra"].concat();
        assert_eq!(put(&app, &short, &long).await.status(), 413);
    }
    assert!(put(&app, &short, &PNG[..20]).await.status().is_success());
    let refused = complete(&app, access(&ada), short_id).await;
    assert_eq!(problem(refused).await["code"], "file_content_mismatch");
    assert!(!stored(&app, format!("uploads/{short_id}")).await);
}

async fn another_user_gets_404(backend: Backend) {
    let app = spawn_files(backend, vec![]).await;
    let ada = signed_in(&app.env, "ada@rabt.test").await;
    let bob = signed_in(&app.env, "bob@rabt.test").await;
    let id = ready_file(
        &app,
        access(&ada),
        "application_attachment",
        "cv.pdf",
        "application/pdf",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
    )
    .await;

    assert_eq!(file_as(&app, access(&bob), &id).await.status(), 404);
    assert_eq!(complete(&app, access(&bob), &id).await.status(), 404);
    let deleted = app
        .env
        .app
        .delete_as(access(&bob), &format!("/v1/files/{id}"))
        .await;
    assert_eq!(deleted.status(), 404);
    assert_eq!(file_as(&app, access(&ada), &id).await.status(), 200);
    // Nor can Bob make it his avatar.
    let taken = app
        .env
        .app
        .patch_json_as(access(&bob), "/v1/me", &json!({"avatar_file_id": id}))
        .await;
    assert_eq!(taken.status(), 422);
}

async fn an_avatar_is_visible_through_a_public_profile_only(backend: Backend) {
    let app = spawn_files(backend, vec![]).await;
    let ada = signed_in(&app.env, "ada@rabt.test").await;
    let bob = signed_in(&app.env, "bob@rabt.test").await;
    let ada_id = ada["user"]["id"].as_str().unwrap().to_owned();
    let avatar = ready_file(&app, access(&ada), "avatar", "me.png", "image/png", PNG).await;
    // Not yet anyone's avatar: private to Ada.
    assert_eq!(file_as(&app, access(&bob), &avatar).await.status(), 404);

    // An attachment cannot be an avatar.
    let attachment = ready_file(
        &app,
        access(&ada),
        "application_attachment",
        "a.png",
        "image/png",
        PNG,
    )
    .await;
    let wrong = app
        .env
        .app
        .patch_json_as(
            access(&ada),
            "/v1/me",
            &json!({"avatar_file_id": attachment}),
        )
        .await;
    assert_eq!(wrong.status(), 422);

    let me = app
        .env
        .app
        .patch_json_as(access(&ada), "/v1/me", &json!({"avatar_file_id": avatar}))
        .await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["avatar_file_id"], avatar.as_str());
    let avatar_url = me["avatar_url"].as_str().unwrap().to_owned();
    assert!(avatar_url.ends_with(&format!("/v1/users/{ada_id}/avatar?v={avatar}")));

    // A stranger reads it through the public profile.
    let profile: Value = app
        .env
        .app
        .get(&format!("/v1/users/{ada_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(profile["avatar_url"], avatar_url.as_str());
    let path = &avatar_url[avatar_url.find("/v1/").unwrap()..];
    let redirect = app.env.app.get(path).await;
    assert_eq!(redirect.status(), 302);
    assert!(
        redirect.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("private")
    );
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    let image = app
        .env
        .app
        .client
        .get(app.reach(&location))
        .send()
        .await
        .unwrap();
    assert_eq!(image.status(), 200);
    assert_eq!(image.bytes().await.unwrap().as_ref(), PNG);
    assert_eq!(file_as(&app, access(&bob), &avatar).await.status(), 200);

    // A private profile's avatar is gone for others, not for Ada.
    let hidden = app
        .env
        .app
        .patch_json_as(access(&ada), "/v1/me", &json!({"visibility": "private"}))
        .await;
    assert_eq!(hidden.status(), 200);
    assert_eq!(app.env.app.get(path).await.status(), 404);
    let as_bob = app
        .env
        .app
        .client
        .get(app.env.app.url(path))
        .bearer_auth(access(&bob))
        .send()
        .await
        .unwrap();
    assert_eq!(as_bob.status(), 404);
    assert_eq!(file_as(&app, access(&bob), &avatar).await.status(), 404);
    let own = app
        .env
        .app
        .client
        .get(app.env.app.url(path))
        .bearer_auth(access(&ada))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 302);
}

async fn deleting_removes_the_row_at_once_and_the_object_by_a_job(backend: Backend) {
    let app = spawn_files(backend, vec![]).await;
    let ada = signed_in(&app.env, "ada@rabt.test").await;
    let avatar = ready_file(&app, access(&ada), "avatar", "me.png", "image/png", PNG).await;
    let set = app
        .env
        .app
        .patch_json_as(access(&ada), "/v1/me", &json!({"avatar_file_id": avatar}))
        .await;
    assert_eq!(set.status(), 200);

    let deleted = app
        .env
        .app
        .delete_as(access(&ada), &format!("/v1/files/{avatar}"))
        .await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(file_as(&app, access(&ada), &avatar).await.status(), 404);
    let me: Value = app
        .env
        .app
        .get_as(access(&ada), "/v1/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["avatar_file_id"], Value::Null);
    assert_eq!(me["avatar_url"], Value::Null);
    assert!(stored(&app, format!("files/{avatar}")).await);
    app.env.app.drain_jobs().await;
    assert!(!stored(&app, format!("files/{avatar}")).await);
}

#[tokio::test]
async fn uploads_are_held_to_the_purposes_types_sizes_and_the_quota() {
    let app = spawn_files(Backend::Local, vec![("files_quota_bytes", "100".into())]).await;
    let ada = signed_in(&app.env, "ada@rabt.test").await;
    let pdf_avatar = create(
        &app,
        access(&ada),
        json!({"filename": "a.pdf", "content_type": "application/pdf", "size_bytes": 10,
               "purpose": "avatar"}),
    )
    .await;
    assert_eq!(problem(pdf_avatar).await["code"], "unsupported_media_type");
    let html = create(
        &app,
        access(&ada),
        json!({"filename": "x.html", "content_type": "text/html", "size_bytes": 10,
               "purpose": "message_attachment"}),
    )
    .await;
    assert_eq!(html.status(), 415);
    let huge = create(
        &app,
        access(&ada),
        json!({"filename": "a.png", "content_type": "image/png",
               "size_bytes": 5 * 1024 * 1024 + 1, "purpose": "avatar"}),
    )
    .await;
    assert_eq!(problem(huge).await["code"], "payload_too_large");
    let bad = create(
        &app,
        access(&ada),
        json!({"filename": "../a.png", "content_type": "image/png", "size_bytes": 10,
               "purpose": "avatar"}),
    )
    .await;
    assert_eq!(problem(bad).await["errors"][0]["field"], "filename");

    // The quota counts ready files: 60 bytes fit once, not twice.
    let text = [b'a'; 60];
    ready_file(
        &app,
        access(&ada),
        "message_attachment",
        "a.txt",
        "text/plain",
        &text,
    )
    .await;
    let over = create(
        &app,
        access(&ada),
        json!({"filename": "b.txt", "content_type": "text/plain", "size_bytes": 60,
               "purpose": "message_attachment"}),
    )
    .await;
    assert_eq!(over.status(), 413);
    assert!(
        problem(over).await["detail"]
            .as_str()
            .unwrap()
            .contains("storage")
    );
}

/// A Word document's first entries, stored uncompressed.
fn docx(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in entries {
        out.extend_from_slice(b"PK\x03\x04\x14\0\0\0\0\0\0\0\0\0\0\0\0\0");
        let size = u32::try_from(data.len()).unwrap().to_le_bytes();
        out.extend_from_slice(&size);
        out.extend_from_slice(&size);
        out.extend_from_slice(&u16::try_from(name.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
    }
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
    out
}

#[tokio::test]
async fn a_docx_must_be_a_word_document_not_just_any_zip() {
    let app = spawn_files(Backend::Local, vec![]).await;
    let ada = signed_in(&app.env, "ada@rabt.test").await;
    const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
    let word = docx(&[
        ("[Content_Types].xml", b"<Types/>"),
        ("_rels/.rels", b"<Relationships/>"),
        ("word/document.xml", b"<w:document/>"),
    ]);
    ready_file(
        &app,
        access(&ada),
        "message_attachment",
        "cv.docx",
        DOCX,
        &word,
    )
    .await;

    let zip = docx(&[("notes.txt", b"hello"), ("more.txt", b"world")]);
    let created = start(
        &app,
        access(&ada),
        "message_attachment",
        "cv.docx",
        DOCX,
        &zip,
    )
    .await;
    assert!(put(&app, &created, &zip).await.status().is_success());
    let refused = complete(&app, access(&ada), created["id"].as_str().unwrap()).await;
    assert_eq!(problem(refused).await["code"], "file_content_mismatch");
}

#[tokio::test]
async fn application_attachments_are_the_applicants_ready_files_and_the_owner_sees_them() {
    let app = spawn_files(Backend::Local, vec![]).await;
    let owner = signed_in(&app.env, "owner@rabt.test").await;
    let ada = signed_in(&app.env, "ada@rabt.test").await;
    let bob = signed_in(&app.env, "bob@rabt.test").await;
    let project = published(&app.env, access(&owner), "Needs a hand").await;
    let pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n";
    let cv = ready_file(
        &app,
        access(&ada),
        "application_attachment",
        "cv.pdf",
        "application/pdf",
        pdf,
    )
    .await;
    let bobs = ready_file(
        &app,
        access(&bob),
        "application_attachment",
        "b.pdf",
        "application/pdf",
        pdf,
    )
    .await;
    let pending = start(
        &app,
        access(&ada),
        "application_attachment",
        "p.pdf",
        "application/pdf",
        pdf,
    )
    .await;
    let apply = |files: Vec<&str>| {
        let body = json!({"cover_letter": "Hello", "attachment_file_ids": files});
        let path = format!("/v1/projects/{project}/applications");
        let token = access(&ada).to_owned();
        let app = &app;
        async move { app.env.app.post_json_as(&token, &path, &body).await }
    };

    for refused in [
        vec![bobs.as_str()],
        vec![pending["id"].as_str().unwrap()],
        vec![cv.as_str(), "0190f0f0-0000-7000-8000-000000000000"],
    ] {
        let response = apply(refused).await;
        assert_eq!(response.status(), 422);
        assert_eq!(
            problem(response).await["errors"][0]["field"],
            "attachment_file_ids"
        );
    }
    assert_eq!(file_as(&app, access(&owner), &cv).await.status(), 404);

    let applied = apply(vec![cv.as_str()]).await;
    assert_eq!(applied.status(), 201);
    assert_eq!(file_as(&app, access(&owner), &cv).await.status(), 200);
    assert_eq!(file_as(&app, access(&bob), &cv).await.status(), 404);
}

#[tokio::test]
async fn stale_pending_uploads_and_detached_files_are_swept_with_their_objects() {
    let app = spawn_files(
        Backend::Local,
        vec![("files_detached_grace_hours", "0".into())],
    )
    .await;
    let ada = signed_in(&app.env, "ada@rabt.test").await;
    let stale = start(&app, access(&ada), "avatar", "old.png", "image/png", PNG).await;
    let stale_id = stale["id"].as_str().unwrap().to_owned();
    assert!(put(&app, &stale, PNG).await.status().is_success());
    let fresh = start(&app, access(&ada), "avatar", "new.png", "image/png", PNG).await;
    let fresh_id = fresh["id"].as_str().unwrap().to_owned();
    sqlx::query("update files set created_at = now() - interval '25 hours' where id = $1::uuid")
        .bind(&stale_id)
        .execute(&app.env.app.db.admin)
        .await
        .unwrap();
    let first = ready_file(&app, access(&ada), "avatar", "a.png", "image/png", PNG).await;
    let second = ready_file(&app, access(&ada), "avatar", "b.png", "image/png", PNG).await;
    let loose = ready_file(&app, access(&ada), "avatar", "c.png", "image/png", PNG).await;
    for avatar in [&first, &second] {
        let set = app
            .env
            .app
            .patch_json_as(access(&ada), "/v1/me", &json!({"avatar_file_id": avatar}))
            .await;
        assert_eq!(set.status(), 200);
    }

    let worker = rabt::jobs::Worker::new(
        app.env.app.state.db.clone(),
        rabt::app::job_registry(&app.env.app.state.settings).unwrap(),
        app.env.app.state.settings.jobs.clone(),
    );
    let swept = worker.housekeep().await.unwrap();
    assert_eq!(swept.removed("files_pending"), 1);
    // The replaced avatar is noted as detached, then removed past the grace.
    let swept = worker.housekeep().await.unwrap();
    assert_eq!(swept.removed("files_detached"), 1);
    app.env.app.drain_jobs().await;

    assert_eq!(file_as(&app, access(&ada), &stale_id).await.status(), 404);
    assert!(!stored(&app, format!("uploads/{stale_id}")).await);
    assert_eq!(file_as(&app, access(&ada), &first).await.status(), 404);
    assert!(!stored(&app, format!("files/{first}")).await);
    // The current avatar, a pending upload of today, and a file never
    // attached to anything all stay.
    for kept in [&second, &fresh_id, &loose] {
        assert_eq!(file_as(&app, access(&ada), kept).await.status(), 200);
    }
    assert!(stored(&app, format!("files/{second}")).await);
}

#[tokio::test]
async fn message_attachments_are_the_senders_ready_files_and_participants_see_them() {
    let app = spawn_files(Backend::Local, vec![]).await;
    let alice = crate::helpers::messaging::user(&app.env, "alice@rabt.test").await;
    let bob = crate::helpers::messaging::user(&app.env, "bob@rabt.test").await;
    let carol = crate::helpers::messaging::user(&app.env, "carol@rabt.test").await;
    let conversation = crate::helpers::messaging::conversation(&app.env, &alice, &[&bob]).await;
    let pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n";
    let file = ready_file(
        &app,
        &alice.token,
        "message_attachment",
        "plan.pdf",
        "application/pdf",
        pdf,
    )
    .await;
    let bobs = ready_file(
        &app,
        &bob.token,
        "message_attachment",
        "b.pdf",
        "application/pdf",
        pdf,
    )
    .await;
    assert_eq!(file_as(&app, &bob.token, &file).await.status(), 404);

    let send = |body: Value| {
        let (app, token, path) = (
            &app,
            alice.token.clone(),
            format!("/v1/conversations/{conversation}/messages"),
        );
        async move { app.env.app.post_json_as(&token, &path, &body).await }
    };
    let refused = send(json!({"body": "not mine", "attachment_file_ids": [bobs]})).await;
    assert_eq!(
        problem(refused).await["errors"][0]["field"],
        "attachment_file_ids"
    );
    let sent = send(json!({"body": "the plan", "attachment_file_ids": [file]})).await;
    assert_eq!(sent.status(), 201);
    assert_eq!(
        sent.json::<Value>().await.unwrap()["attachment_file_ids"],
        json!([file])
    );

    assert_eq!(
        file_as(&app, &bob.token, &file).await.status(),
        200,
        "a participant sees it"
    );
    assert_eq!(
        file_as(&app, &carol.token, &file).await.status(),
        404,
        "an outsider does not"
    );
}
