//! The settings' loading and validation.

use figment::{Figment, providers::Serialized};

use super::{
    load::{extract, shown_value},
    raw::RawSettings,
    *,
};

fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let figment = pairs.iter().fold(Figment::new(), |f, (k, v)| {
        f.merge(Serialized::default(k, v))
    });
    extract(Figment::from(Serialized::defaults(RawSettings::default())).merge(figment))?.validate()
}

#[test]
fn the_effective_configuration_hides_secrets_and_url_passwords() {
    use serde_json::json;
    assert_eq!(
        shown_value("jwt_secret", &json!("s3cr3t-value")),
        "<redacted>"
    );
    assert_eq!(
        shown_value("stripe_secret_key", &json!("sk_live_x")),
        "<redacted>"
    );
    assert_eq!(
        shown_value("encryption_key", &json!("k1:abc")),
        "<redacted>"
    );
    assert_eq!(shown_value("sentry_dsn", &json!(null)), "<unset>");
    assert_eq!(
        shown_value(
            "database_url",
            &json!("postgres://rabt:hunter2@db:5432/rabt")
        ),
        "postgres://rabt:redacted@db:5432/rabt"
    );
    assert_eq!(
        shown_value(
            "database_url",
            &json!("postgres://db/rabt?password=hunter2&sslmode=require")
        ),
        "postgres://db/rabt?password=redacted&sslmode=require"
    );
    assert_eq!(shown_value("bind", &json!("0.0.0.0:8080")), "0.0.0.0:8080");
    assert_eq!(shown_value("job_workers", &json!(4)), "4");
}

#[test]
fn a_missing_database_url_names_the_variable() {
    let err = load(&[]).unwrap_err();
    assert_eq!(err.to_string(), "configuration: DATABASE_URL is required");
}

#[test]
fn production_refuses_throwaway_secrets() {
    let err = load(&[("env", "production"), ("database_url", "postgres://x@h/db")]).unwrap_err();
    assert_eq!(err.setting, "RABT_JWT_SECRET");
}

#[test]
fn development_generates_throwaway_secrets_and_says_so() {
    let settings = load(&[("database_url", "postgres://x@h/db")]).unwrap();
    assert_eq!(
        settings.generated_secrets,
        vec!["RABT_JWT_SECRET", "RABT_ENCRYPTION_KEY"]
    );
}

#[test]
fn a_short_jwt_secret_is_refused() {
    let err = load(&[
        ("database_url", "postgres://x@h/db"),
        ("jwt_secret", "short"),
    ])
    .unwrap_err();
    assert_eq!(err.setting, "RABT_JWT_SECRET");
}

#[test]
fn an_encryption_key_must_be_32_bytes_of_base64() {
    let err = load(&[
        ("database_url", "postgres://x@h/db"),
        ("encryption_key", "c2hvcnQ="),
    ])
    .unwrap_err();
    assert_eq!(err.setting, "RABT_ENCRYPTION_KEY");
}

#[test]
fn the_free_plan_limit_is_read_under_the_contracts_name() {
    // RABT_PLAN_FREE_OPEN_PROJECTS arrives as this key, parsed as a number.
    let figment = Figment::from(Serialized::defaults(RawSettings::default()))
        .merge(Serialized::default("database_url", "postgres://x@h/db"))
        .merge(Serialized::default("plan_free_open_projects", 7));
    let settings = extract(figment).unwrap().validate().unwrap();
    assert_eq!(settings.billing.free_open_projects, 7);
    let err = load(&[
        ("database_url", "postgres://x@h/db"),
        ("plan_free_open_projects", "many"),
    ])
    .unwrap_err();
    assert_eq!(err.setting, "RABT_PLAN_FREE_OPEN_PROJECTS");
}

#[test]
fn storage_is_a_local_folder_by_default_and_s3_by_url() {
    let settings = load(&[("database_url", "postgres://x@h/db")]).unwrap();
    assert!(matches!(
        &settings.files.storage,
        StorageLocation::Local { root } if root.ends_with(".data/files")
    ));
    assert_eq!(settings.files.avatar.max_bytes, 5 * 1024 * 1024);
    assert_eq!(settings.files.quota_bytes, 1024 * 1024 * 1024);
    let settings = load(&[
        ("database_url", "postgres://x@h/db"),
        ("storage_url", "s3://uploads"),
        ("s3_endpoint", "http://127.0.0.1:9000"),
        ("aws_access_key_id", "key"),
        ("aws_secret_access_key", "secret-never-printed"),
    ])
    .unwrap();
    assert!(matches!(
        &settings.files.storage,
        StorageLocation::S3 { bucket, region, .. } if bucket == "uploads" && region == "us-east-1"
    ));
    assert!(!format!("{settings:?}").contains("secret-never-printed"));
    let settings = load(&[
        ("database_url", "postgres://x@h/db"),
        ("storage_url", "file:///var/lib/rabt/files"),
    ])
    .unwrap();
    assert!(matches!(
        &settings.files.storage,
        StorageLocation::Local { root } if root == std::path::Path::new("/var/lib/rabt/files")
    ));
}

#[test]
fn storage_settings_that_cannot_work_name_their_variable() {
    for (key, value, named) in [
        ("storage_url", "ftp://x", "RABT_STORAGE_URL"),
        ("storage_url", "s3://", "RABT_STORAGE_URL"),
        ("s3_endpoint", "not a url", "RABT_S3_ENDPOINT"),
        (
            "files_avatar_types",
            "image/png,text/html",
            "RABT_FILES_AVATAR_TYPES",
        ),
        (
            "files_attachment_max_bytes",
            "0",
            "RABT_FILES_ATTACHMENT_MAX_BYTES",
        ),
    ] {
        let mut pairs = vec![("database_url", "postgres://x@h/db"), (key, value)];
        if key == "s3_endpoint" {
            pairs.push(("storage_url", "s3://b"));
        }
        let err = load(&pairs).unwrap_err();
        assert_eq!(err.setting, named, "{key}={value}");
    }
    let err = load(&[
        ("database_url", "postgres://x@h/db"),
        ("storage_url", "s3://b"),
        ("aws_access_key_id", "key"),
    ])
    .unwrap_err();
    assert_eq!(err.setting, "AWS_SECRET_ACCESS_KEY");
}

#[test]
fn a_malformed_bind_address_names_the_variable() {
    let err = load(&[("database_url", "postgres://x@h/db"), ("bind", "nowhere")]).unwrap_err();
    assert_eq!(err.setting, "RABT_BIND");
}

#[test]
fn cors_admits_the_frontend_and_extra_origins() {
    let settings = load(&[
        ("database_url", "postgres://x@h/db"),
        ("frontend_url", "https://app.example.com/path"),
        (
            "cors_origins",
            "https://admin.example.com, http://localhost:5173",
        ),
    ])
    .unwrap();
    assert_eq!(
        settings.cors_origins,
        vec![
            "https://app.example.com",
            "https://admin.example.com",
            "http://localhost:5173"
        ]
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let settings = load(&[
        ("database_url", "postgres://rabt:hunter2hunter2@h/db"),
        ("jwt_secret", "a-very-long-secret-that-must-never-be-logged"),
    ])
    .unwrap();
    let printed = format!("{settings:?}");
    assert!(!printed.contains("hunter2"));
    assert!(!printed.contains("never-be-logged"));
}
