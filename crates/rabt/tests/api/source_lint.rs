//! SQL text is never built at run time in the server: sqlx 0.9 compiles only
//! `&'static str` SQL unless it is wrapped in `AssertSqlSafe`, so the server's
//! sources must not contain that escape hatch (nor `raw_sql`), and no `format!`
//! may produce SQL. Tests and the test harness may (they create databases).
//!
//! The server's SQL is also checked at compile time (`query!`, `query_as!`,
//! `query_scalar!` against `.sqlx/`), but for the searches, whose text is
//! picked per order from consts (the store modules say why).

use std::path::{Path, PathBuf};

/// Every way a line could build SQL from run-time text.
fn builds_sql(line: &str) -> Option<&'static str> {
    let code = line.split("//").next().unwrap_or_default();
    if code.contains("AssertSqlSafe") {
        return Some("AssertSqlSafe");
    }
    if code.contains("raw_sql(") {
        return Some("raw_sql");
    }
    let lower = code.to_ascii_lowercase();
    if lower.contains("format!(")
        && [
            "select ",
            "insert into",
            "update ",
            "delete from",
            " where ",
        ]
        .iter()
        .any(|k| lower.contains(k))
    {
        return Some("format! of SQL");
    }
    None
}

/// The one place that writes SQL from run-time values: the statement that
/// opens a request's transaction with its claims, in one round trip. Every
/// value in it is checked character by character before it is written
/// (`db::opening`, unit-tested with hostile values), and it is nothing but
/// `BEGIN` and `set_config` calls.
const ALLOWED: &[(&str, &str)] = &[("src/db/mod.rs", "AssertSqlSafe(opening.clone())")];

fn is_allowed(file: &Path, line: &str) -> bool {
    ALLOWED
        .iter()
        .any(|(path, code)| file.ends_with(path) && line.contains(code))
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn the_server_never_builds_sql_text_at_run_time() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "the sources were not found");
    let mut offenders = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if let Some(rule) = builds_sql(line)
                && !is_allowed(&file, line)
            {
                offenders.push(format!(
                    "{}:{}: {rule}: {}",
                    file.display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}

#[test]
fn the_lint_recognises_each_way_of_building_sql() {
    assert_eq!(
        builds_sql(r#"sqlx::query(AssertSqlSafe(x))"#),
        Some("AssertSqlSafe")
    );
    assert_eq!(builds_sql("sqlx::raw_sql(text)"), Some("raw_sql"));
    assert_eq!(
        builds_sql(r#"let q = format!("select * from users where id = {id}");"#),
        Some("format! of SQL")
    );
    assert_eq!(builds_sql(r#"format!("At most {max} characters.")"#), None);
    assert_eq!(builds_sql("// AssertSqlSafe is forbidden"), None);
}

/// The stores whose searches stay checked at run time.
const RUN_TIME_CHECKED: [&str; 2] = ["projects/search/store.rs", "users/store.rs"];

/// A call of one of sqlx's run-time checked query functions (not the macros,
/// nor a method of the same name).
fn runs_unchecked_sql(line: &str) -> Option<&'static str> {
    let code = line.split("//").next().unwrap_or_default();
    let functions = [
        "query(",
        "query_as(",
        "query_scalar(",
        "query_with(",
        "query_as_with(",
        "query_scalar_with(",
    ];
    functions.into_iter().find(|f| {
        code.match_indices(f).any(|(at, _)| {
            !code[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
        })
    })
}

#[test]
fn the_servers_sql_is_checked_at_compile_time_but_for_the_searches() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "the sources were not found");
    let mut offenders = Vec::new();
    for file in files {
        let relative = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if RUN_TIME_CHECKED.contains(&relative.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if let Some(function) = runs_unchecked_sql(line) {
                offenders.push(format!("{relative}:{}: {function}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "use query!/query_as!/query_scalar!: {offenders:#?}"
    );
}

#[test]
fn the_lint_tells_run_time_checked_queries_from_the_macros() {
    assert_eq!(
        runs_unchecked_sql(r#"sqlx::query("select 1")"#),
        Some("query(")
    );
    assert_eq!(
        runs_unchecked_sql("let rows = query_as(SQL)"),
        Some("query_as(")
    );
    assert_eq!(
        runs_unchecked_sql("    sqlx::query_scalar(sql).bind(id)"),
        Some("query_scalar(")
    );
    assert_eq!(
        runs_unchecked_sql(r#"sqlx::query!("select 1 as one")"#),
        None
    );
    assert_eq!(runs_unchecked_sql("sqlx::query_as!(Row, \"select\")"), None);
    assert_eq!(runs_unchecked_sql("let q = search_query(f)"), None);
    assert_eq!(
        runs_unchecked_sql("let q = uri.query().unwrap_or_default();"),
        None
    );
    assert_eq!(
        runs_unchecked_sql("// sqlx::query(...) is run-time checked"),
        None
    );
}
