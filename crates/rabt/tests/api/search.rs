//! Profile search (API.md §4): words with prefixes and typos, filters, sorts,
//! and signed keyset cursors.

use serde_json::Value;

use crate::helpers::{TestApp, auth, problem, spawn_app};

async fn people(app: &TestApp) {
    for (name, headline, skills, location, visibility) in [
        (
            "Ada Lovelace",
            "Analytical engines",
            vec!["math", "rust"],
            "London",
            "public",
        ),
        (
            "Alan Turing",
            "Codebreaker",
            vec!["math", "crypto"],
            "Manchester",
            "public",
        ),
        (
            "Grace Hopper",
            "Compilers",
            vec!["cobol"],
            "New York",
            "public",
        ),
        (
            "Adele Goldberg",
            "Smalltalk",
            vec!["rust", "ui"],
            "London",
            "public",
        ),
        (
            "Hidden Ada",
            "Private person",
            vec!["rust"],
            "London",
            "private",
        ),
    ] {
        sqlx::query(
            "insert into users (email, display_name, headline, skills, location, visibility) \
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(format!(
            "{}@rabt.test",
            name.replace(' ', ".").to_lowercase()
        ))
        .bind(name)
        .bind(headline)
        .bind(skills.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .bind(location)
        .bind(visibility)
        .execute(&app.db.admin)
        .await
        .unwrap();
    }
}

async fn names(app: &TestApp, query: &str) -> Vec<String> {
    let response = app.get(&format!("/v1/users?{query}")).await;
    assert_eq!(response.status(), 200, "{query}");
    let page: Value = response.json().await.unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["display_name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn words_match_with_prefixes_typos_and_all_words_required() {
    let app = spawn_app().await;
    people(&app).await;
    assert_eq!(names(&app, "q=lovelace").await, vec!["Ada Lovelace"]);
    assert_eq!(names(&app, "q=lovel").await, vec!["Ada Lovelace"], "prefix");
    assert_eq!(
        names(&app, "q=Lovelase").await,
        vec!["Ada Lovelace"],
        "typo"
    );
    assert_eq!(names(&app, "q=ada+engines").await, vec!["Ada Lovelace"]);
    assert!(
        names(&app, "q=ada+cobol").await.is_empty(),
        "every word must match"
    );
    assert_eq!(
        names(&app, "q=compil").await,
        vec!["Grace Hopper"],
        "headline counts"
    );
    assert!(
        !names(&app, "q=hidden")
            .await
            .contains(&"Hidden Ada".to_owned())
    );
    // Query syntax is words, never tsquery operators.
    assert!(names(&app, "q=%27%29%7C%21%3A*").await.len() <= 4);
}

#[tokio::test]
async fn filters_and_sorts_list_public_profiles_only() {
    let app = spawn_app().await;
    people(&app).await;
    assert_eq!(
        names(&app, "sort=name").await,
        vec![
            "Ada Lovelace",
            "Adele Goldberg",
            "Alan Turing",
            "Grace Hopper"
        ]
    );
    assert_eq!(
        names(&app, "skills=rust,crypto&sort=name").await,
        vec!["Ada Lovelace", "Adele Goldberg", "Alan Turing"]
    );
    assert_eq!(
        names(&app, "location=london&sort=name").await,
        vec!["Ada Lovelace", "Adele Goldberg"]
    );
    assert_eq!(names(&app, "sort=newest").await[0], "Adele Goldberg");
    let anonymous_role = app.get("/v1/users?role=admin").await;
    assert_eq!(anonymous_role.status(), 401);
}

#[tokio::test]
async fn cursors_page_through_without_gaps_and_refuse_tampering() {
    let app = spawn_app().await;
    people(&app).await;
    for sort in ["newest", "name"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/users?sort={sort}&limit=1");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page: Value = app.get(&path).await.json().await.unwrap();
            for item in page["items"].as_array().unwrap() {
                seen.push(item["id"].as_str().unwrap().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen.len(), 4, "{sort}");
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 4, "{sort}: no repeats");
    }

    let page: Value = app
        .get("/v1/users?sort=name&limit=2")
        .await
        .json()
        .await
        .unwrap();
    let cursor = page["next_cursor"].as_str().unwrap();
    let tampered = format!("x{cursor}");
    let response = app
        .get(&format!("/v1/users?sort=name&cursor={tampered}"))
        .await;
    assert_eq!(response.status(), 422);
    assert_eq!(problem(response).await["errors"][0]["field"], "cursor");
    let other_sort = app
        .get(&format!("/v1/users?sort=newest&cursor={cursor}"))
        .await;
    assert_eq!(other_sort.status(), 422);
    for bad in ["limit=0", "limit=101", "sort=random", "sort=relevance"] {
        assert_eq!(
            app.get(&format!("/v1/users?{bad}")).await.status(),
            422,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn relevance_ranks_name_matches_first() {
    let app = spawn_app().await;
    people(&app).await;
    let found = names(&app, "q=ada").await;
    assert_eq!(found[0], "Ada Lovelace");
}

#[tokio::test]
async fn a_typo_widens_to_close_names_only_when_the_words_find_nobody() {
    let app = spawn_app().await;
    people(&app).await;
    // "alan" finds Alan by its words; a close name (no words) is not mixed in.
    assert_eq!(names(&app, "q=alan").await, vec!["Alan Turing"]);
    // "Hoper" finds nobody by words, so names close to it are tried.
    assert_eq!(names(&app, "q=Hoper").await, vec!["Grace Hopper"]);
}

/// Every display name of `query`, page by page (`limit=1`), following cursors.
async fn all_pages(app: &TestApp, token: Option<&str>, query: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let path = match &cursor {
            None => format!("/v1/users?{query}&limit=1"),
            Some(c) => format!("/v1/users?{query}&limit=1&cursor={c}"),
        };
        let response = match token {
            Some(token) => app.get_as(token, &path).await,
            None => app.get(&path).await,
        };
        assert_eq!(response.status(), 200, "{path}");
        let page: Value = response.json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["display_name"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return seen,
        }
    }
    panic!("more pages than profiles: {seen:?}");
}

#[tokio::test]
async fn suspended_and_deactivated_profiles_are_never_listed() {
    let app = spawn_app().await;
    people(&app).await;
    sqlx::query("update users set suspended_at = now() where display_name = 'Alan Turing'")
        .execute(&app.db.admin)
        .await
        .unwrap();
    sqlx::query("update users set deactivated_at = now() where display_name = 'Grace Hopper'")
        .execute(&app.db.admin)
        .await
        .unwrap();
    assert_eq!(
        names(&app, "sort=name").await,
        vec!["Ada Lovelace", "Adele Goldberg"]
    );
    assert!(names(&app, "q=turing").await.is_empty());
    assert!(names(&app, "q=hoper").await.is_empty(), "nor by a typo");
}

#[tokio::test]
async fn relevance_and_name_pages_follow_each_other_without_gaps() {
    let app = spawn_app().await;
    people(&app).await;
    // Names whose lower-case forms Postgres and Rust may not agree on.
    for name in ["Ärger Ada", "Émile Ada", "ada Zed"] {
        sqlx::query("insert into users (email, display_name, skills) values ($1, $2, '{rust}')")
            .bind(format!("{}@rabt.test", uuid::Uuid::new_v4().simple()))
            .bind(name)
            .execute(&app.db.admin)
            .await
            .unwrap();
    }
    let mut by_name = all_pages(&app, None, "sort=name").await;
    assert_eq!(by_name.len(), 7, "{by_name:?}");
    let once = by_name.len();
    by_name.dedup();
    assert_eq!(by_name.len(), once, "no profile twice");
    let by_relevance = all_pages(&app, None, "q=ada").await;
    let mut sorted = by_relevance.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        by_relevance.len(),
        "no profile twice: {by_relevance:?}"
    );
    // (Adele does not start with "ada".)
    let mut expected = vec!["Ada Lovelace", "ada Zed", "Ärger Ada", "Émile Ada"];
    expected.sort();
    assert_eq!(sorted, expected);
}

#[tokio::test]
async fn signed_in_callers_filter_by_the_roles_they_may_see() {
    let env = auth::spawn(vec![]).await;
    let app = &env.app;
    people(app).await;
    sqlx::query(
        "insert into user_roles (user_id, role_name) \
         select id, 'moderator' from users where display_name = 'Grace Hopper'",
    )
    .execute(&app.db.admin)
    .await
    .unwrap();
    let viewer = auth::signed_in(&env, "viewer@rabt.test").await;
    let token = auth::access(&viewer);
    // A member reads only their own memberships, so finds nobody else's role.
    assert!(
        all_pages(app, Some(token), "role=moderator")
            .await
            .is_empty()
    );
    assert!(
        rabt::roles::grant_by_email(app.app_db(), "viewer@rabt.test", "moderator")
            .await
            .unwrap()
    );
    // A moderator may read memberships (users.read_private) and finds both
    // once the grant reaches the server: a grant made outside the API (here
    // as `rabt admin` makes it) arrives by NOTIFY rabt_grants, within
    // milliseconds (auth/sessions.rs).
    // (The signed-in helper names its users "Ada".)
    crate::helpers::eventually(
        std::time::Duration::from_secs(5),
        "the new role to count",
        async || {
            let mut found = all_pages(app, Some(token), "role=moderator").await;
            found.sort();
            if found == ["Ada", "Grace Hopper"] {
                Ok(())
            } else {
                Err(format!("{found:?}"))
            }
        },
    )
    .await;
    assert_eq!(
        all_pages(app, Some(token), "role=member&sort=name")
            .await
            .len(),
        5
    );
}

#[tokio::test]
async fn hyphenated_and_dotted_words_find_what_they_name() {
    let app = spawn_app().await;
    people(&app).await;
    sqlx::query(
        "insert into users (email, display_name, headline) \
         values ('fs@rabt.test', 'Fay Stack', 'Full-stack node.js engineer')",
    )
    .execute(&app.db.admin)
    .await
    .unwrap();
    assert_eq!(names(&app, "q=full-stack").await, vec!["Fay Stack"]);
    assert_eq!(names(&app, "q=node.js").await, vec!["Fay Stack"]);
    assert_eq!(names(&app, "q=full-st").await, vec!["Fay Stack"], "prefix");
    // Punctuation alone is no word: the query lists everyone.
    assert_eq!(names(&app, "q=--").await.len(), 5);
}
