//! SQL text is never built at run time in the server: sqlx 0.9 compiles only
//! `&'static str` SQL unless it is wrapped in `AssertSqlSafe`, so the server's
//! sources must not contain that escape hatch (nor `raw_sql`), and no `format!`
//! may produce SQL. Tests and the test harness may (they create databases).

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
            if let Some(rule) = builds_sql(line) {
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
