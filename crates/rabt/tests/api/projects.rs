//! Projects end to end (API.md §5): drafts, visibility, the status machine (in
//! the API and in the database), the plan limit, rich text, Idempotency-Key.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    auth::{AuthApp, access, signed_in, spawn},
    problem,
    projects::{create, draft, published, titles_of, transition},
};

async fn patch(env: &AuthApp, token: &str, id: &str, body: Value) -> reqwest::Response {
    env.app
        .patch_json_as(token, &format!("/v1/projects/{id}"), &body)
        .await
}

async fn delete(env: &AuthApp, token: &str, id: &str) -> reqwest::Response {
    env.app
        .delete_as(token, &format!("/v1/projects/{id}"))
        .await
}

#[tokio::test]
async fn a_draft_is_private_until_published_and_then_public() {
    let env = spawn(vec![]).await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let eve = signed_in(&env, "eve@rabt.test").await;

    let created = create(
        &env,
        access(&ada),
        json!({"title": "  Analytical engine  ", "skills": ["Rust", "rust", "SQL"]}),
    )
    .await;
    assert_eq!(created.status(), 201);
    let project: Value = created.json().await.unwrap();
    let id = project["id"].as_str().unwrap().to_owned();
    assert_eq!(project["status"], "draft");
    assert_eq!(project["title"], "Analytical engine");
    assert_eq!(project["skills"], json!(["rust", "sql"]));
    assert_eq!(project["owner"]["display_name"], "Ada");
    assert_eq!(project["published_at"], Value::Null);
    assert_eq!(project["application_count"], 0);

    let path = format!("/v1/projects/{id}");
    assert_eq!(env.app.get(&path).await.status(), 404);
    assert_eq!(env.app.get_as(access(&eve), &path).await.status(), 404);
    assert_eq!(env.app.get_as(access(&ada), &path).await.status(), 200);

    // Publishing needs a summary and a category.
    let early = transition(&env, access(&ada), &id, "open", None).await;
    assert_eq!(early.status(), 422);
    let fields: Vec<Value> = problem(early).await["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].clone())
        .collect();
    assert_eq!(fields, vec![json!("summary"), json!("category")]);

    let edited = patch(
        &env,
        access(&ada),
        &id,
        json!({"summary": "Build it", "category": "hardware",
               "budget": {"min": 100, "max": 900, "currency": "EUR"}}),
    )
    .await;
    assert_eq!(edited.status(), 200);
    assert_eq!(
        edited.json::<Value>().await.unwrap()["budget"],
        json!({"min": 100, "max": 900, "currency": "eur"})
    );
    // Eve can see nothing to edit.
    let hers = patch(&env, access(&eve), &id, json!({"title": "Mine"})).await;
    assert_eq!(hers.status(), 404);

    let opened = transition(&env, access(&ada), &id, "open", Some("Ready")).await;
    assert_eq!(opened.status(), 200);
    let opened: Value = opened.json().await.unwrap();
    assert_eq!(opened["status"], "open");
    assert!(opened["published_at"].is_string());

    let seen: Value = env.app.get(&path).await.json().await.unwrap();
    assert_eq!(seen["title"], "Analytical engine");
    // Visible, but still not Eve's to change.
    let hers = patch(&env, access(&eve), &id, json!({"title": "Mine"})).await;
    assert_eq!(problem(hers).await["code"], "forbidden");

    let history: Value = env
        .app
        .get_as(access(&ada), &format!("/v1/projects/{id}/history"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(history.as_array().unwrap().len(), 1);
    assert_eq!(history[0]["from"], "draft");
    assert_eq!(history[0]["to"], "open");
    assert_eq!(history[0]["reason"], "Ready");
    assert_eq!(history[0]["actor_id"], ada["user"]["id"]);
    let not_hers = env
        .app
        .get_as(access(&eve), &format!("/v1/projects/{id}/history"))
        .await;
    assert_eq!(not_hers.status(), 403);
}

#[tokio::test]
async fn the_api_refuses_every_step_the_machine_does_not_list() {
    let env = spawn(vec![]).await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let token = access(&ada);
    let id = published(&env, token, "Machine").await;

    let skip = transition(&env, token, &id, "completed", None).await;
    assert_eq!(skip.status(), 409);
    assert_eq!(problem(skip).await["code"], "invalid_transition");
    let unknown = transition(&env, token, &id, "deleted", None).await;
    assert_eq!(unknown.status(), 422);

    assert_eq!(
        transition(&env, token, &id, "in_progress", None)
            .await
            .status(),
        200
    );
    assert_eq!(
        transition(&env, token, &id, "draft", None).await.status(),
        409
    );
    // Not a draft: the owner cannot delete it.
    let removed = delete(&env, token, &id).await;
    assert_eq!(removed.status(), 409);
    assert_eq!(
        transition(&env, token, &id, "completed", None)
            .await
            .status(),
        200
    );
    // Completed projects are no longer edited.
    let late = patch(&env, token, &id, json!({"title": "Renamed"})).await;
    assert_eq!(problem(late).await["code"], "invalid_transition");
    assert_eq!(
        transition(&env, token, &id, "archived", None)
            .await
            .status(),
        200
    );
    // Archived is private again: gone for strangers.
    assert_eq!(
        env.app.get(&format!("/v1/projects/{id}")).await.status(),
        404
    );

    // Drafts are deleted by their owner; anything by a moderator.
    let other = draft(&env, token, "Scrap").await;
    assert_eq!(delete(&env, token, &other).await.status(), 204);
    let mo = signed_in(&env, "mo@rabt.test").await;
    rabt::roles::grant_by_email(env.app.app_db(), "mo@rabt.test", "moderator")
        .await
        .unwrap();
    assert_eq!(delete(&env, access(&mo), &id).await.status(), 204);
    assert_eq!(
        env.app
            .get_as(token, &format!("/v1/projects/{id}"))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn a_direct_sql_update_cannot_skip_a_state_and_every_step_is_recorded() {
    let env = spawn(vec![]).await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let id: Uuid = draft(&env, access(&ada), "Direct").await.parse().unwrap();
    let admin = &env.app.db.admin;

    for skip in ["in_progress", "completed", "cancelled", "archived"] {
        let refused = sqlx::query("update projects set status = $2 where id = $1")
            .bind(id)
            .bind(skip)
            .execute(admin)
            .await;
        assert!(refused.is_err(), "draft → {skip} must be refused");
    }
    // A new project cannot start past draft either.
    let born_open = sqlx::query(
        "insert into projects (owner_id, title, status) \
         select owner_id, 'x', 'open' from projects where id = $1",
    )
    .bind(id)
    .execute(admin)
    .await;
    assert!(born_open.is_err());

    sqlx::query("update projects set status = 'open' where id = $1")
        .bind(id)
        .execute(admin)
        .await
        .unwrap();
    let (steps, published): (i64, bool) = sqlx::query_as(
        "select (select count(*) from project_status_history where project_id = $1), \
                (select published_at is not null from projects where id = $1)",
    )
    .bind(id)
    .fetch_one(admin)
    .await
    .unwrap();
    assert_eq!((steps, published), (1, true));
}

#[tokio::test]
async fn publishing_past_the_plan_limit_is_402_even_when_racing() {
    let env = spawn(vec![("plan_free_open_projects", "2".into())]).await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let token = access(&ada);
    let mut drafts = Vec::new();
    for n in 0..4 {
        drafts.push(draft(&env, token, &format!("Project {n}")).await);
    }
    let results = futures::future::join_all(
        drafts
            .iter()
            .map(|id| transition(&env, token, id, "open", None)),
    )
    .await;
    let mut statuses: Vec<u16> = results.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 200, 402, 402]);
    let refused = results.into_iter().find(|r| r.status() == 402).unwrap();
    assert_eq!(problem(refused).await["code"], "plan_limit_reached");

    // Closing one makes room again; drafts were never limited.
    let open: Vec<String> = {
        let page: Value = env
            .app
            .get_as(token, "/v1/projects?status=open")
            .await
            .json()
            .await
            .unwrap();
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(open.len(), 2);
    assert_eq!(
        transition(&env, token, &open[0], "cancelled", None)
            .await
            .status(),
        200
    );
    let waiting = drafts.iter().find(|d| !open.contains(d)).unwrap();
    assert_eq!(
        transition(&env, token, waiting, "open", None)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_plan_billing_does_not_define_has_the_free_plans_limit() {
    let env = spawn(vec![("plan_free_open_projects", "1".into())]).await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let token = access(&ada);
    sqlx::query("update users set plan = 'enterprise' where id = $1")
        .bind(ada["user"]["id"].as_str().unwrap().parse::<Uuid>().unwrap())
        .execute(&env.app.db.admin)
        .await
        .unwrap();
    published(&env, token, "First").await;
    let second = draft(&env, token, "Second").await;
    let refused = transition(&env, token, &second, "open", None).await;
    assert_eq!(refused.status(), 402);
    assert_eq!(problem(refused).await["code"], "plan_limit_reached");
}

/// A page of search results, as `token`'s holder or as anyone.
async fn found(env: &AuthApp, token: Option<&str>, query: &str) -> Value {
    let path = format!("/v1/projects?{query}");
    let response = match token {
        Some(token) => env.app.get_as(token, &path).await,
        None => env.app.get(&path).await,
    };
    assert_eq!(response.status(), 200, "{query}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn word_prefixes_find_what_each_searcher_may_see() {
    let env = spawn(vec![]).await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let eve = signed_in(&env, "eve@rabt.test").await;
    let mo = signed_in(&env, "mo@rabt.test").await;
    rabt::roles::grant_by_email(env.app.app_db(), "mo@rabt.test", "moderator")
        .await
        .unwrap();
    let (ada, eve, mo) = (access(&ada), access(&eve), access(&mo));
    published(&env, ada, "Dashboard kit").await;
    // Renamed while public: the new words are found by their prefixes too.
    let renamed = published(&env, ada, "Old name").await;
    let response = patch(&env, ada, &renamed, json!({"title": "Dashboarding guide"})).await;
    assert_eq!(response.status(), 200);
    // A draft's words were never public, yet its owner finds it by prefix.
    draft(&env, ada, "Dashboards secret").await;

    let sorted = |page: &Value| {
        let mut titles: Vec<String> = titles_of(page).into_iter().map(str::to_owned).collect();
        titles.sort();
        titles
    };
    let public = ["Dashboard kit", "Dashboarding guide"];
    let all = ["Dashboard kit", "Dashboarding guide", "Dashboards secret"];
    for query in ["q=dash", "q=dash&facets=status", "q=dash&sort=newest"] {
        assert_eq!(sorted(&found(&env, None, query).await), public, "{query}");
        assert_eq!(
            sorted(&found(&env, Some(eve), query).await),
            public,
            "{query}"
        );
        assert_eq!(sorted(&found(&env, Some(ada), query).await), all, "{query}");
        assert_eq!(sorted(&found(&env, Some(mo), query).await), all, "{query}");
    }
    // (Nothing public has the word: typo tolerance finds the close titles.)
    assert_eq!(sorted(&found(&env, None, "q=dashboards").await), public);
    assert_eq!(
        titles_of(&found(&env, Some(ada), "q=dashboards").await),
        vec!["Dashboards secret"]
    );
    assert_eq!(
        titles_of(&found(&env, Some(ada), "q=dashboardi+gui").await),
        vec!["Dashboarding guide"]
    );
}

#[tokio::test]
async fn hidden_statuses_are_found_only_by_their_owner_and_moderators() {
    let env = spawn(vec![]).await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let eve = signed_in(&env, "eve@rabt.test").await;
    let mo = signed_in(&env, "mo@rabt.test").await;
    rabt::roles::grant_by_email(env.app.app_db(), "mo@rabt.test", "moderator")
        .await
        .unwrap();
    let eve_id = eve["user"]["id"].as_str().unwrap().to_owned();
    let (ada, eve, mo) = (access(&ada), access(&eve), access(&mo));
    draft(&env, ada, "Ada draft").await;
    published(&env, ada, "Ada open").await;
    draft(&env, eve, "Eve draft").await;

    // Anyone: a draft can only be someone's own, so there is nothing to find.
    let nothing = found(&env, None, "status=draft&facets=status").await;
    assert_eq!(
        nothing,
        json!({"items": [], "next_cursor": null, "facets": {"status": []},
               "facets_exact": true})
    );
    assert_eq!(
        titles_of(&found(&env, None, "status=draft,cancelled,open").await),
        vec!["Ada open"]
    );

    // The owner finds their own drafts, and only theirs.
    let hers = found(&env, Some(ada), "status=draft&facets=status").await;
    assert_eq!(titles_of(&hers), vec!["Ada draft"]);
    assert_eq!(
        hers["facets"]["status"],
        json!([{"value": "draft", "count": 1}])
    );
    assert_eq!(
        titles_of(&found(&env, Some(eve), "status=draft").await),
        vec!["Eve draft"]
    );
    let someone_elses = found(&env, Some(ada), &format!("status=draft&owner_id={eve_id}")).await;
    assert_eq!(titles_of(&someone_elses), Vec::<&str>::new());
    assert_eq!(
        titles_of(&found(&env, Some(ada), "").await),
        vec!["Ada open", "Ada draft"]
    );

    // Moderators find every hidden project.
    assert_eq!(
        titles_of(&found(&env, Some(mo), "status=draft").await),
        vec!["Eve draft", "Ada draft"]
    );
    assert_eq!(
        titles_of(&found(&env, Some(mo), &format!("status=draft&owner_id={eve_id}")).await),
        vec!["Eve draft"]
    );
    assert_eq!(
        titles_of(&found(&env, Some(mo), "").await),
        vec!["Eve draft", "Ada open", "Ada draft"]
    );
}

#[tokio::test]
async fn a_null_in_an_edit_clears_optional_fields_and_is_refused_for_the_rest() {
    let env = spawn(vec![]).await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let token = access(&ada);
    let created = create(
        &env,
        token,
        json!({"title": "Nullable", "summary": "Short", "category": "web", "location": "Berlin",
               "budget": {"min": 1, "max": 2, "currency": "usd"}}),
    )
    .await;
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let cleared = patch(
        &env,
        token,
        &id,
        json!({"summary": null, "category": null, "location": null, "budget": null}),
    )
    .await;
    assert_eq!(cleared.status(), 200);
    let project: Value = cleared.json().await.unwrap();
    for field in ["summary", "category", "location", "budget"] {
        assert_eq!(project[field], Value::Null, "{field}");
    }

    for field in ["title", "description", "skills", "remote"] {
        let refused = patch(&env, token, &id, json!({ field: null })).await;
        assert_eq!(refused.status(), 422, "{field}");
        assert_eq!(problem(refused).await["errors"][0]["field"], field);
    }
    let kept: Value = env
        .app
        .get_as(token, &format!("/v1/projects/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(kept["title"], "Nullable");

    // A published project keeps what publishing needs.
    let open = published(&env, token, "Open").await;
    let refused = patch(&env, token, &open, json!({"summary": null})).await;
    assert_eq!(refused.status(), 422);
    assert_eq!(problem(refused).await["errors"][0]["field"], "summary");
}

#[tokio::test]
async fn descriptions_are_sanitised_on_write_and_rendered() {
    let env = spawn(vec![]).await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let created = create(
        &env,
        access(&ada),
        json!({"title": "Rich", "description":
            "## Plan\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) <img src=x onerror=alert(1)> **go**"}),
    )
    .await;
    let project: Value = created.json().await.unwrap();
    let source = project["description"].as_str().unwrap();
    let html = project["description_html"].as_str().unwrap();
    for text in [source, html] {
        assert!(!text.contains("<script"), "{text}");
        assert!(!text.contains("onerror"), "{text}");
        assert!(!text.contains("javascript:"), "{text}");
    }
    assert!(source.starts_with("## Plan"), "{source}");
    assert!(html.contains("<h2>Plan</h2>"), "{html}");
    assert!(html.contains("<strong>go</strong>"), "{html}");
}

#[tokio::test]
async fn bad_fields_are_named_and_nothing_is_stored() {
    let env = spawn(vec![]).await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let bad = create(
        &env,
        access(&ada),
        json!({"title": "", "category": "Web Dev!", "budget": {"min": 10, "max": 5, "currency": "dollars"},
               "description": "x".repeat(20_001)}),
    )
    .await;
    assert_eq!(bad.status(), 422);
    let fields: Vec<String> = problem(bad).await["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        fields,
        vec![
            "title",
            "description",
            "category",
            "budget.currency",
            "budget.max"
        ]
    );
    let unknown = create(&env, access(&ada), json!({"title": "x", "status": "open"})).await;
    assert_eq!(unknown.status(), 422);
    let count: i64 = sqlx::query_scalar("select count(*) from projects")
        .fetch_one(&env.app.db.admin)
        .await
        .unwrap();
    assert_eq!(count, 0);
    let anonymous = env
        .app
        .post_json("/v1/projects", &json!({"title": "x"}))
        .await;
    assert_eq!(anonymous.status(), 401);
}

async fn create_with_key(env: &AuthApp, token: &str, key: &str, body: &Value) -> reqwest::Response {
    env.app
        .client
        .post(env.app.url("/v1/projects"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_response_and_creates_once() {
    let env = spawn(vec![]).await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let eve = signed_in(&env, "eve@rabt.test").await;
    let body = json!({"title": "Once"});

    let first = create_with_key(&env, access(&ada), "key-1", &body).await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = create_with_key(&env, access(&ada), "key-1", &body).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);

    let other = create_with_key(&env, access(&ada), "key-1", &json!({"title": "Twice"})).await;
    assert_eq!(other.status(), 422);
    assert_eq!(problem(other).await["code"], "idempotency_key_reused");
    // Keys belong to their user.
    let hers = create_with_key(&env, access(&eve), "key-1", &body).await;
    assert_eq!(hers.status(), 201);
    assert_ne!(hers.json::<Value>().await.unwrap()["id"], first["id"]);
    let garbage = create_with_key(&env, access(&ada), &"k".repeat(256), &body).await;
    assert_eq!(garbage.status(), 422);

    // Eight at once under one key: one project, the same answer for all.
    let racing = json!({"title": "Racing"});
    let answers = futures::future::join_all(
        (0..8).map(|_| create_with_key(&env, access(&ada), "key-race", &racing)),
    )
    .await;
    let mut ids = Vec::new();
    for answer in answers {
        assert_eq!(answer.status(), 201);
        ids.push(answer.json::<Value>().await.unwrap()["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let count: i64 = sqlx::query_scalar("select count(*) from projects where title = 'Racing'")
        .fetch_one(&env.app.db.admin)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

/// The database and the Rust machine agree on every (from, to) pair of both
/// machines, and for applications on which side may take each step.
#[tokio::test]
async fn the_database_and_the_code_agree_on_every_step_of_both_machines() {
    use rabt::{
        applications::model::{ApplicationStatus, Side},
        db::Actor,
        projects::model::ProjectStatus,
    };

    let app = crate::helpers::spawn_app().await;
    let admin = &app.db.admin;
    let owner = app.insert_user("o@rabt.test", "O", "public").await;
    let walk = |to: ProjectStatus| -> &'static [&'static str] {
        match to {
            ProjectStatus::Draft => &[],
            ProjectStatus::Open => &["open"],
            ProjectStatus::InProgress => &["open", "in_progress"],
            ProjectStatus::Completed => &["open", "in_progress", "completed"],
            ProjectStatus::Cancelled => &["open", "cancelled"],
            ProjectStatus::Archived => &["open", "cancelled", "archived"],
        }
    };
    for from in ProjectStatus::ALL {
        let id: Uuid = sqlx::query_scalar(
            "insert into projects (owner_id, title, summary, category) \
             values ($1, 't', 's', 'c') returning id",
        )
        .bind(owner)
        .fetch_one(admin)
        .await
        .unwrap();
        for step in walk(from) {
            sqlx::query("update projects set status = $2 where id = $1")
                .bind(id)
                .bind(step)
                .execute(admin)
                .await
                .unwrap();
        }
        for to in ProjectStatus::ALL.into_iter().filter(|to| *to != from) {
            let mut tx = admin.begin().await.unwrap();
            let done = sqlx::query("update projects set status = $2 where id = $1")
                .bind(id)
                .bind(to.as_str())
                .execute(&mut *tx)
                .await
                .is_ok();
            tx.rollback().await.unwrap();
            assert_eq!(
                done,
                from.transition(to, false).is_some(),
                "project {from:?} → {to:?}"
            );
        }
    }

    // One application in each status, each by its own applicant.
    let project: Uuid = sqlx::query_scalar(
        "insert into projects (owner_id, title, summary, category) \
         values ($1, 'p', 's', 'c') returning id",
    )
    .bind(owner)
    .fetch_one(admin)
    .await
    .unwrap();
    sqlx::query("update projects set status = 'open' where id = $1")
        .bind(project)
        .execute(admin)
        .await
        .unwrap();
    let as_user = |id: Uuid| Actor::User {
        id,
        permissions: Vec::new(),
    };
    let mut applications = Vec::new();
    for (n, status) in ApplicationStatus::ALL.into_iter().enumerate() {
        let applicant = app
            .insert_user(&format!("a{n}@rabt.test"), "A", "public")
            .await;
        let id: Uuid = sqlx::query_scalar(
            "insert into applications (project_id, applicant_id, cover_letter) \
             values ($1, $2, 'hi') returning id",
        )
        .bind(project)
        .bind(applicant)
        .fetch_one(admin)
        .await
        .unwrap();
        let (path, by): (&[&str], Uuid) = match status {
            ApplicationStatus::Pending => (&[], owner),
            ApplicationStatus::Shortlisted => (&["shortlisted"], owner),
            ApplicationStatus::Accepted => (&["accepted"], owner),
            ApplicationStatus::Rejected => (&["rejected"], owner),
            ApplicationStatus::Withdrawn => (&["withdrawn"], applicant),
        };
        for step in path {
            let mut tx = app.app_db().begin(&as_user(by)).await.unwrap();
            sqlx::query("update applications set status = $2 where id = $1")
                .bind(id)
                .bind(step)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        applications.push((status, id, applicant));
    }
    for (from, id, applicant) in &applications {
        for to in ApplicationStatus::ALL.into_iter().filter(|to| to != from) {
            for (side, actor) in [(Side::Owner, owner), (Side::Applicant, *applicant)] {
                let mut tx = app.app_db().begin(&as_user(actor)).await.unwrap();
                let done = sqlx::query("update applications set status = $2 where id = $1")
                    .bind(id)
                    .bind(to.as_str())
                    .execute(&mut *tx)
                    .await
                    .is_ok_and(|r| r.rows_affected() == 1);
                tx.rollback().await.unwrap();
                assert_eq!(
                    done,
                    from.transition(to, side).is_some(),
                    "application {from:?} → {to:?} by {side:?}"
                );
            }
        }
    }
}
