//! Project search (API.md §5): words with prefixes and typos, every filter, the
//! five sorts, facets over the whole filtered set, and signed keyset cursors.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{AppOptions, TestApp, problem, spawn_app, spawn_app_with};

struct Seed {
    title: &'static str,
    summary: &'static str,
    category: &'static str,
    skills: &'static [&'static str],
    budget: Option<(i64, i64, &'static str)>,
    remote: bool,
    location: Option<&'static str>,
    status: &'static str,
}

/// Inserts projects directly, one second apart in `created_at`, walking each
/// along the machine to its status. Returns the owner of them all.
async fn seed(app: &TestApp) -> Uuid {
    let owner = app.insert_user("owner@rabt.test", "Owner", "public").await;
    let projects = [
        Seed {
            title: "Rust web service",
            summary: "An API in axum",
            category: "web",
            skills: &["rust", "sql"],
            budget: Some((1000, 5000, "usd")),
            remote: true,
            location: None,
            status: "open",
        },
        Seed {
            title: "Mobile banking app",
            summary: "iOS and Android",
            category: "mobile",
            skills: &["swift", "kotlin"],
            budget: Some((20000, 40000, "usd")),
            remote: false,
            location: Some("Berlin"),
            status: "open",
        },
        Seed {
            title: "Data pipeline in Rust",
            summary: "Streaming ingestion",
            category: "data",
            skills: &["rust", "kafka"],
            budget: Some((8000, 9000, "eur")),
            remote: true,
            location: None,
            status: "in_progress",
        },
        Seed {
            title: "Marketing website",
            summary: "Static site",
            category: "web",
            skills: &["html", "css"],
            budget: None,
            remote: true,
            location: Some("berlin"),
            status: "completed",
        },
        Seed {
            title: "Secret rust draft",
            summary: "Not published",
            category: "web",
            skills: &["rust"],
            budget: Some((1, 2, "usd")),
            remote: true,
            location: None,
            status: "draft",
        },
        Seed {
            title: "Cancelled rust idea",
            summary: "Gone",
            category: "web",
            skills: &["rust"],
            budget: None,
            remote: true,
            location: None,
            status: "cancelled",
        },
    ];
    let path = |status: &str| -> &'static [&'static str] {
        match status {
            "open" => &["open"],
            "in_progress" => &["open", "in_progress"],
            "completed" => &["open", "in_progress", "completed"],
            "cancelled" => &["open", "cancelled"],
            _ => &[],
        }
    };
    for (n, p) in projects.iter().enumerate() {
        let id: Uuid = sqlx::query_scalar(
            "insert into projects (owner_id, title, summary, category, skills, budget_min, \
                                   budget_max, currency, remote, location, created_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
                     now() - make_interval(secs => $11)) \
             returning id",
        )
        .bind(owner)
        .bind(p.title)
        .bind(p.summary)
        .bind(p.category)
        .bind(p.skills.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .bind(p.budget.map(|b| b.0))
        .bind(p.budget.map(|b| b.1))
        .bind(p.budget.map(|b| b.2))
        .bind(p.remote)
        .bind(p.location)
        .bind(100.0 - n as f64)
        .fetch_one(&app.db.admin)
        .await
        .unwrap();
        for status in path(p.status) {
            sqlx::query("update projects set status = $2 where id = $1")
                .bind(id)
                .bind(status)
                .execute(&app.db.admin)
                .await
                .unwrap();
        }
    }
    owner
}

async fn search(app: &TestApp, query: &str) -> Value {
    let response = app.get(&format!("/v1/projects?{query}")).await;
    assert_eq!(response.status(), 200, "{query}");
    response.json().await.unwrap()
}

async fn titles(app: &TestApp, query: &str) -> Vec<String> {
    search(app, query).await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn words_match_by_prefix_every_word_counts_and_typos_widen() {
    let app = spawn_app().await;
    seed(&app).await;
    // Newest first by default; drafts and cancelled projects stay hidden.
    assert_eq!(
        titles(&app, "sort=newest&q=rust").await,
        ["Data pipeline in Rust", "Rust web service"]
    );
    assert_eq!(titles(&app, "q=ru+serv").await, ["Rust web service"]);
    assert_eq!(titles(&app, "q=rust+banking").await, Vec::<String>::new());
    // Skills and summaries are searched too.
    assert_eq!(titles(&app, "q=kafka").await, ["Data pipeline in Rust"]);
    assert_eq!(titles(&app, "q=ingestion").await, ["Data pipeline in Rust"]);
    // A misspelt word still finds the title; it widens the word, never drops it.
    assert_eq!(titles(&app, "q=bankng").await, ["Mobile banking app"]);
    assert_eq!(titles(&app, "q=bankng+rust").await, Vec::<String>::new());
    // Query syntax is just text.
    assert_eq!(titles(&app, "q=rust%20%26%20!%7C").await.len(), 2);
}

#[tokio::test]
async fn every_filter_narrows_the_listing() {
    let app = spawn_app().await;
    let owner = seed(&app).await;
    assert_eq!(titles(&app, "").await.len(), 4);
    assert_eq!(
        titles(&app, "status=open").await,
        ["Mobile banking app", "Rust web service"]
    );
    assert_eq!(
        titles(&app, "category=web").await,
        ["Marketing website", "Rust web service"]
    );
    assert_eq!(
        titles(&app, "skills=kafka,swift").await,
        ["Data pipeline in Rust", "Mobile banking app"]
    );
    assert_eq!(
        titles(&app, "skills_all=rust,sql").await,
        ["Rust web service"]
    );
    // Overlapping ranges: max ≥ 6000, min ≤ 10000.
    assert_eq!(
        titles(&app, "budget_min=6000&budget_max=10000").await,
        ["Data pipeline in Rust"]
    );
    // JSON Schema's `integer` admits 6000.0, and so does the server.
    assert_eq!(
        titles(&app, "budget_min=6000.0&budget_max=10000.00").await,
        ["Data pipeline in Rust"]
    );
    assert_eq!(
        titles(&app, "currency=USD").await,
        ["Mobile banking app", "Rust web service"]
    );
    assert_eq!(titles(&app, "remote=false").await, ["Mobile banking app"]);
    assert_eq!(
        titles(&app, "location=BERLIN").await,
        ["Marketing website", "Mobile banking app"]
    );
    assert_eq!(titles(&app, &format!("owner_id={owner}")).await.len(), 4);
    assert_eq!(
        titles(&app, &format!("owner_id={}", Uuid::now_v7()))
            .await
            .len(),
        0
    );
    let cutoff = (chrono::Utc::now() - chrono::Duration::milliseconds(97_500)).to_rfc3339();
    let cutoff = cutoff.replace('+', "%2B");
    assert_eq!(
        titles(&app, &format!("created_after={cutoff}")).await,
        ["Marketing website"]
    );
    assert_eq!(
        titles(&app, &format!("created_before={cutoff}")).await,
        [
            "Data pipeline in Rust",
            "Mobile banking app",
            "Rust web service"
        ]
    );

    for bad in [
        "status=deleted",
        "sort=random",
        "sort=relevance",
        "facets=owner",
        "budget_min=4405.5",
        "budget_min=4405.",
        "budget_min=-1",
        "currency=dollars",
        "remote=maybe",
        "owner_id=nope",
        "created_after=yesterday",
        "limit=0",
        "colour=red",
    ] {
        let response = app.get(&format!("/v1/projects?{bad}")).await;
        assert_eq!(response.status(), 422, "{bad}");
        assert_eq!(problem(response).await["code"], "validation_failed");
    }
}

#[tokio::test]
async fn sorts_order_and_cursors_page_without_gaps() {
    let app = spawn_app().await;
    seed(&app).await;
    assert_eq!(
        titles(&app, "sort=budget_high").await,
        [
            "Mobile banking app",
            "Data pipeline in Rust",
            "Rust web service",
            "Marketing website"
        ]
    );
    assert_eq!(
        titles(&app, "sort=budget_low").await,
        [
            "Rust web service",
            "Data pipeline in Rust",
            "Mobile banking app",
            "Marketing website"
        ]
    );
    assert_eq!(
        titles(&app, "sort=oldest").await,
        [
            "Rust web service",
            "Mobile banking app",
            "Data pipeline in Rust",
            "Marketing website"
        ]
    );
    for sort in [
        "sort=newest",
        "sort=oldest",
        "sort=budget_high",
        "sort=budget_low",
        "q=r&sort=relevance",
    ] {
        let all = titles(&app, sort).await;
        assert!(all.len() >= 2, "{sort}");
        let mut paged = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let query = match &cursor {
                Some(c) => format!("{sort}&limit=1&cursor={c}"),
                None => format!("{sort}&limit=1"),
            };
            let page = search(&app, &query).await;
            for item in page["items"].as_array().unwrap() {
                paged.push(item["title"].as_str().unwrap().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(paged, all, "{sort}");
    }

    let page = search(&app, "sort=newest&limit=1").await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let tampered = format!("{}A{}", &cursor[..4], &cursor[5..]);
    let response = app
        .get(&format!("/v1/projects?sort=newest&cursor={tampered}"))
        .await;
    assert_eq!(response.status(), 422);
    let other_sort = app
        .get(&format!("/v1/projects?sort=oldest&cursor={cursor}"))
        .await;
    assert_eq!(other_sort.status(), 422);
}

#[tokio::test]
async fn facets_count_the_whole_filtered_set() {
    let app = spawn_app().await;
    seed(&app).await;
    let page = search(&app, "limit=1&facets=category,skills,status").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["facets_exact"], true);
    let facets = &page["facets"];
    assert_eq!(
        facets["category"],
        json!([{"value": "web", "count": 2}, {"value": "data", "count": 1},
               {"value": "mobile", "count": 1}])
    );
    assert_eq!(facets["skills"][0], json!({"value": "rust", "count": 2}));
    assert_eq!(
        facets["status"],
        json!([{"value": "open", "count": 2}, {"value": "completed", "count": 1},
               {"value": "in_progress", "count": 1}])
    );
    let filtered = search(&app, "q=rust&facets=status").await;
    assert_eq!(
        filtered["facets"],
        json!({"status": [{"value": "in_progress", "count": 1}, {"value": "open", "count": 1}]})
    );
    // Sorted by relevance, the page and the facets come from one query: each
    // page of it still counts the whole set, typo-tolerant mode too.
    let expected = json!({"status": [{"value": "in_progress", "count": 1},
                                     {"value": "open", "count": 1}]});
    let first = search(&app, "q=rust&limit=1&facets=status").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 1);
    assert_eq!(first["facets"], expected);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = search(
        &app,
        &format!("q=rust&limit=1&facets=status&cursor={cursor}"),
    )
    .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_ne!(second["items"][0]["id"], first["items"][0]["id"]);
    assert_eq!(second["facets"], expected);
    assert_eq!(
        search(&app, "q=bankng&facets=category").await["facets"],
        json!({"category": [{"value": "mobile", "count": 1}]})
    );
    assert_eq!(
        search(&app, "q=nothingmatches&facets=category").await["facets"],
        json!({"category": []})
    );
    let plain = search(&app, "").await;
    assert!(plain.get("facets").is_none());
    assert!(plain.get("facets_exact").is_none());
}

/// Publishes five projects titled `Kiln 1`…`Kiln 5` with skill `glaze`: two
/// in category `pottery`, whose ids end in `0001` (below the bound that
/// samples two of five matches), and three in `craft`, whose ids end in
/// `ffff`, so which of them a sample holds is known.
async fn seed_kilns(app: &TestApp, owner: Uuid) {
    for i in 0..5u128 {
        let (category, low) = if i < 2 {
            ("pottery", 0x0001)
        } else {
            ("craft", 0xffff)
        };
        let id = Uuid::from_u128(((i + 1) << 64) | low);
        sqlx::query(
            "insert into projects (id, owner_id, title, category, skills) \
             values ($1, $2, $3, $4, '{glaze}')",
        )
        .bind(id)
        .bind(owner)
        .bind(format!("Kiln {}", i + 1))
        .bind(category)
        .execute(&app.db.admin)
        .await
        .unwrap();
        sqlx::query("update projects set status = 'open' where id = $1")
            .bind(id)
            .execute(&app.db.admin)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn facets_above_the_exact_limit_are_estimates_and_say_so() {
    let app = spawn_app_with(AppOptions {
        overrides: vec![("search_facets_exact_up_to", "2".into())],
        ..AppOptions::default()
    })
    .await;
    let owner = app
        .insert_user("potter@rabt.test", "Potter", "public")
        .await;
    seed_kilns(&app, owner).await;

    // Two matches: exact.
    let few = search(&app, "q=kiln&category=pottery&facets=category,status").await;
    assert_eq!(few["facets_exact"], true);
    assert_eq!(
        few["facets"]["category"],
        json!([{"value": "pottery", "count": 2}])
    );

    // Five matches, above the limit of two: every match is still ranked, and
    // every page is complete and in order, while the facets are counted over
    // the two sampled (both in pottery) and scaled to five.
    let many = search(&app, "q=kiln&limit=10&facets=category,status").await;
    assert_eq!(many["facets_exact"], false);
    assert_eq!(many["items"].as_array().unwrap().len(), 5);
    assert_eq!(
        many["facets"],
        json!({"category": [{"value": "pottery", "count": 5}],
               "status": [{"value": "open", "count": 5}]})
    );
    let first = search(&app, "q=kiln&limit=3&facets=status").await;
    assert_eq!(first["facets_exact"], false);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = search(
        &app,
        &format!("q=kiln&limit=3&facets=status&cursor={cursor}"),
    )
    .await;
    assert_eq!(rest["facets"], first["facets"]);
    let mut paged: Vec<Value> = first["items"].as_array().unwrap().clone();
    paged.extend(rest["items"].as_array().unwrap().iter().cloned());
    assert_eq!(&paged, many["items"].as_array().unwrap());

    // Three matches, none of them sampled: too few to estimate from, so exact.
    let unsampled = search(&app, "q=kiln&category=craft&facets=category").await;
    assert_eq!(unsampled["facets_exact"], true);
    assert_eq!(
        unsampled["facets"]["category"],
        json!([{"value": "craft", "count": 3}])
    );

    // Other sorts estimate from a sample of the table's pages; a table no
    // larger than that sample is counted whole, so exactly.
    let newest = search(&app, "sort=newest&facets=category").await;
    assert_eq!(newest["facets_exact"], true);
    assert_eq!(
        newest["facets"]["category"],
        json!([{"value": "craft", "count": 3}, {"value": "pottery", "count": 2}])
    );
}

#[tokio::test]
async fn a_prefix_is_asked_for_as_the_published_words_it_stands_for() {
    let app = spawn_app().await;
    seed(&app).await;
    let expand = |words: &'static [&'static str]| {
        let app = &app;
        async move {
            let mut tx = app
                .app_db()
                .begin(&rabt::db::Actor::Anonymous)
                .await
                .unwrap();
            let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
            let query = rabt::projects::search::store::expand_words(&mut tx, &words)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            query
        }
    };
    // Public words only: the draft's `secret` and the cancelled `idea` are not
    // there, so their prefixes stay prefixes.
    assert_eq!(
        expand(&["ru", "serv"]).await.as_deref(),
        Some("('rust') & ('service')")
    );
    assert_eq!(
        expand(&["s"]).await.as_deref(),
        Some("('service' | 'site' | 'sql' | 'static' | 'streaming' | 'swift')")
    );
    assert_eq!(expand(&["secr"]).await, None);
    assert_eq!(
        expand(&["in", "secr"]).await.as_deref(),
        Some("('in' | 'ingestion') & ('secr':*)")
    );
    // A word the parser also splits keeps its prefix.
    assert_eq!(
        expand(&["full-stack", "web"]).await.as_deref(),
        Some("('full-stack':* <-> 'full':* <-> 'stack':*) & ('web' | 'website')")
    );
}
