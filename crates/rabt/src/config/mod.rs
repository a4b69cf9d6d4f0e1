//! Settings, layered: built-in defaults → an optional TOML file → the environment.
//!
//! Everything is parsed and checked once, at start. A setting that is missing or
//! malformed stops the start with one line that names it (as the environment
//! variable a deployer would set). Secrets are held in `secrecy` types so they
//! never reach a log line or a `Debug` print.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use base64::Engine as _;
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

mod billing;
mod email;
mod raw;
mod storage;

use raw::{RawSettings, extract, unknown_environment_settings};

/// Where the server runs. Production refuses throwaway secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Test,
    Production,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// The limits of each class, per minute (`RABT_RATE_LIMIT_*_PER_MINUTE`), and
/// those the auth handlers add (`RABT_RATE_LIMIT_AUTH_ADDRESS_PER_MINUTE`,
/// `RABT_RATE_LIMIT_ACCOUNT_PER_MINUTE`, `RABT_RATE_LIMIT_EMAIL_PER_HOUR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub auth: u32,
    pub write: u32,
    pub read: u32,
    pub realtime: u32,
    /// Each of sign-in, sign-up, resend, forgot-password and OAuth start, per
    /// client address and minute.
    pub auth_address: u32,
    /// Password checks per account and minute (sign-in, password change).
    pub account: u32,
    /// Each kind of mail request (sign-up, resend, forgot-password) per email
    /// address and hour.
    pub email_per_hour: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            auth: 30,
            write: 120,
            read: 600,
            realtime: 30,
            auth_address: 20,
            account: 10,
            email_per_hour: 5,
        }
    }
}

/// A problem with one setting, named as the deployer would set it.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {setting} {problem}")]
pub struct ConfigError {
    pub setting: String,
    pub problem: String,
}

impl ConfigError {
    fn new(key: &str, problem: impl Into<String>) -> Self {
        Self {
            setting: env_name(key),
            problem: problem.into(),
        }
    }
}

fn env_name(key: &str) -> String {
    match key {
        "database_url" | "redis_url" | "aws_access_key_id" | "aws_secret_access_key" => {
            key.to_uppercase()
        }
        other => format!("RABT_{}", other.to_uppercase()),
    }
}

/// A 256-bit key for field encryption, with the id stored beside each ciphertext.
pub struct EncryptionKey {
    pub id: String,
    pub key: SecretBox<[u8; 32]>,
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl EncryptionKey {
    fn parse(key: &str, value: &str) -> Result<Self, ConfigError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|_| ConfigError::new(key, "must be base64 of 32 random bytes"))?;
        let key_bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| ConfigError::new(key, "must decode to exactly 32 bytes"))?;
        Ok(Self::from_bytes(key_bytes))
    }

    fn from_bytes(bytes: [u8; 32]) -> Self {
        use sha2::Digest as _;
        let id = hex::encode(&sha2::Sha256::digest(bytes)[..4]);
        Self {
            id,
            key: SecretBox::new(Box::new(bytes)),
        }
    }
}

/// Validated settings. Build with [`Settings::load`].
#[derive(Debug)]
pub struct Settings {
    pub env: Environment,
    pub database_url: SecretString,
    /// The connection used for migrations; the schema owner in production.
    pub migration_database_url: SecretString,
    pub database_max_connections: u32,
    pub redis_url: Option<SecretString>,
    pub redis_key_prefix: String,
    /// The longest a Redis call may take before the caller goes on without it.
    pub redis_timeout: Duration,
    pub bind: SocketAddr,
    pub public_url: Url,
    pub frontend_url: Url,
    /// Origins admitted by CORS: the frontend's, then any extra ones.
    pub cors_origins: Vec<String>,
    pub trusted_proxies: Vec<IpNet>,
    pub jwt_secret: SecretString,
    pub encryption_key: EncryptionKey,
    pub encryption_old_keys: Vec<EncryptionKey>,
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
    pub shutdown_timeout: Duration,
    /// After SIGTERM: how long readiness fails while requests are still
    /// served, so that load balancers stop sending before the listener closes.
    pub shutdown_drain: Duration,
    /// Where `/metrics` is served instead of the API's address (which then
    /// answers it 404), so it is never public; `rabt worker` serves it there
    /// too.
    pub metrics_bind: Option<SocketAddr>,
    pub log_format: LogFormat,
    pub jobs: JobSettings,
    pub auth: AuthSettings,
    pub email: EmailSettings,
    pub oauth: OAuthSettings,
    pub files: FileSettings,
    /// Made `admin` at every start, once the account exists.
    pub bootstrap_admin_email: Option<String>,
    pub billing: BillingSettings,
    pub realtime: RealtimeSettings,
    /// How long an anonymous search's answer is kept (`None`: not cached).
    pub search_cache: Option<Duration>,
    /// Facets of a project search are counted exactly while at most this many
    /// projects match, and estimated from a sample above (API.md §5).
    pub search_facets_exact_up_to: u32,
    /// Requests per minute of each route class.
    pub rate_limits: RateLimits,
    /// PEM certificate chain and key: `rabt serve` terminates TLS itself.
    pub tls: Option<TlsFiles>,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// Secrets this start made up because none were given (development only).
    pub generated_secrets: Vec<&'static str>,
    /// `RABT_*` environment variables that name no setting.
    pub unknown_settings: Vec<String>,
}

/// Where the TLS certificate chain and private key are (PEM).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Token and session lifetimes.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub access_token_ttl: Duration,
    /// How long a spent refresh token is still answered (concurrent tabs).
    pub refresh_grace: Duration,
    pub session_ttl: Duration,
    /// Holders of `roles.assign` or `users.manage` must turn on two-factor
    /// sign-in before they may use the endpoints that need a permission
    /// (`RABT_MFA_REQUIRED_FOR_ADMINS`, off by default).
    pub mfa_required_for_admins: bool,
}

/// A configured OAuth client.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: SecretString,
}

/// Google (OpenID Connect, by discovery from `issuer`) and GitHub (OAuth 2).
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    pub google: Option<OAuthClient>,
    pub google_issuer: Url,
    pub github: Option<OAuthClient>,
    pub github_authorize_url: Url,
    pub github_token_url: Url,
    pub github_api_url: Url,
    /// Where a sign-in may send the browser back to, besides the frontend.
    pub redirect_allowlist: Vec<Url>,
}

/// Where mail goes (SMTP when configured, else files in `mail_dir`), how it
/// is signed and paced, and what is measured.
#[derive(Debug)]
pub struct EmailSettings {
    pub smtp_url: Option<SecretString>,
    pub from: String,
    pub mail_dir: PathBuf,
    /// Open pixels and click redirects in non-security mail.
    pub tracking: bool,
    /// The HMAC key of `POST /email/events`; without it the endpoint is 503.
    pub events_secret: Option<SecretString>,
    /// Messages per minute to one recipient domain, per instance; 0 = no pace.
    pub per_domain_per_minute: u32,
    /// How long a soft bounce keeps an address suppressed.
    pub soft_bounce_suppression: Duration,
    pub dkim: Option<DkimSettings>,
}

/// DKIM signing: `selector._domainkey.domain` publishes the public key.
pub struct DkimSettings {
    pub selector: String,
    pub domain: String,
    /// PKCS#1 PEM of the RSA key.
    pub private_key_pem: SecretString,
}

impl std::fmt::Debug for DkimSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimSettings")
            .field("selector", &self.selector)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

/// The content types uploads may declare: each has a content check in the
/// files capability (magic bytes, a Word document's zip entries, or UTF-8
/// text without NUL bytes). `RABT_FILES_*_TYPES` choose among these.
pub const FILE_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/webp",
    "application/pdf",
    "text/plain",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
];

/// Where file objects live (`RABT_STORAGE_URL`).
#[derive(Debug)]
pub enum StorageLocation {
    /// `file:///path`: a folder, with upload and download URLs that rabt
    /// signs and serves itself.
    Local { root: PathBuf },
    /// `s3://bucket`: any S3-compatible store, reached with presigned URLs.
    S3 {
        bucket: String,
        /// `RABT_S3_ENDPOINT`; AWS itself when absent.
        endpoint: Option<Url>,
        region: String,
        access_key_id: Option<String>,
        secret_access_key: Option<SecretString>,
    },
}

/// What one purpose of upload admits.
#[derive(Debug, Clone)]
pub struct UploadLimits {
    pub max_bytes: u64,
    /// Among [`FILE_TYPES`].
    pub types: Vec<String>,
}

/// Files: where they are kept, what may be uploaded, and for how long URLs
/// and leftovers live.
#[derive(Debug)]
pub struct FileSettings {
    pub storage: StorageLocation,
    /// Bytes of ready files each user may keep.
    pub quota_bytes: u64,
    pub avatar: UploadLimits,
    /// Project, application and message attachments.
    pub attachment: UploadLimits,
    pub upload_url_ttl: Duration,
    pub download_url_ttl: Duration,
    /// How long a file no longer attached to anything is kept before removal.
    pub detached_grace: Duration,
}

/// Plans, their limits, and Stripe.
#[derive(Debug, Clone)]
pub struct BillingSettings {
    /// Open projects each plan allows at once; `None`: no limit.
    pub free_open_projects: u32,
    pub pro_open_projects: u32,
    pub team_open_projects: Option<u32>,
    /// The Stripe price ids of the paid plans; a plan without one cannot be
    /// bought.
    pub price_pro: Option<String>,
    pub price_team: Option<String>,
    /// `None`: billing answers 503 but for the plans.
    pub stripe: Option<StripeSettings>,
    /// How long a `past_due` subscription keeps its plan.
    pub past_due_grace: Duration,
    /// The seller's lines on invoices (name, address, tax id).
    pub invoice_issuer: Vec<String>,
}

/// Stripe's API and its webhooks.
#[derive(Debug, Clone)]
pub struct StripeSettings {
    pub secret_key: SecretString,
    /// The endpoint secret (`whsec_…`) that signs webhook events.
    pub webhook_secret: SecretString,
    pub api_base: Url,
    pub timeout: Duration,
}

/// Realtime sockets and the email that follows an unread message.
#[derive(Debug, Clone)]
pub struct RealtimeSettings {
    /// How long the per-user event log is kept for replays (`?since=`).
    pub retention: Duration,
    /// Events queued for one socket before it counts as too slow and is closed.
    pub queue: usize,
    /// Frames a socket may send per minute (a burst of a tenth of it).
    pub frames_per_minute: u32,
    /// How long a message stays unread before its recipient is emailed.
    pub message_email_delay: Duration,
}

/// How the durable job runner behaves.
#[derive(Debug, Clone)]
pub struct JobSettings {
    pub workers: usize,
    pub lease: Duration,
    pub poll_interval: Duration,
    /// Housekeeping deletes notifications read longer ago than this many days.
    pub notification_retention_days: u32,
    /// How long audit entries are kept; `None` keeps them all.
    pub audit_retention: Option<Duration>,
    /// How long an erased account waits, deactivated, before its data is
    /// removed (zero: at once); signing in meanwhile cancels a user's own.
    pub erasure_grace: Duration,
}

impl Settings {
    /// Loads settings from the process environment (and the file it names).
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_with(&[])
    }

    /// Loads settings with extra values layered on top of the environment; tests
    /// use this to point an instance at its own database.
    pub fn load_with(overrides: &[(&str, String)]) -> Result<Self, ConfigError> {
        let mut settings = extract(sources(overrides)?)?.validate()?;
        settings.unknown_settings = unknown_environment_settings();
        Ok(settings)
    }

    /// What `rabt config check` shows: the settings as [`Settings::load`]
    /// takes them (refused exactly as `serve` would refuse them), and every
    /// setting's effective value by its variable's name, secrets redacted.
    pub fn effective() -> Result<(Self, Vec<(String, String)>), ConfigError> {
        let raw = extract(sources(&[])?)?;
        let values = match serde_json::to_value(&raw) {
            Ok(serde_json::Value::Object(fields)) => fields
                .into_iter()
                .map(|(key, value)| {
                    let shown = shown_value(&key, &value);
                    (env_name(&key), shown)
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut settings = raw.validate()?;
        settings.unknown_settings = unknown_environment_settings();
        Ok((settings, values))
    }
}

/// Whether a setting holds a secret, by its name.
fn is_secret(key: &str) -> bool {
    [
        "secret",
        "password",
        "private_key",
        "encryption_key",
        "encryption_old_keys",
        "dsn",
    ]
    .iter()
    .any(|part| key.contains(part))
}

/// A setting's value as `rabt config check` prints it: secrets as
/// `<redacted>` (or `<unset>`), URLs without their password.
fn shown_value(key: &str, value: &serde_json::Value) -> String {
    let text = match value {
        serde_json::Value::Null => return "<unset>".to_owned(),
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    if is_secret(key) {
        return if text.is_empty() {
            "<unset>"
        } else {
            "<redacted>"
        }
        .to_owned();
    }
    let Ok(mut url) = url::Url::parse(&text) else {
        return text;
    };
    let before = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("redacted"));
    }
    // Drivers also take a password as a parameter (`?password=`).
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                let hidden = ["password", "secret", "token", "key"]
                    .iter()
                    .any(|word| name.to_ascii_lowercase().contains(word));
                let value = if hidden {
                    "redacted".to_owned()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        if pairs.iter().any(|(_, value)| value == "redacted") {
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
    }
    // Unchanged, it is shown as written.
    if url == before { text } else { url.to_string() }
}

/// Defaults, then the file of `RABT_CONFIG_FILE`, the environment, and
/// `overrides`, each over the one before.
fn sources(overrides: &[(&str, String)]) -> Result<Figment, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(RawSettings::default()));
    if let Some(path) = std::env::var("RABT_CONFIG_FILE")
        .ok()
        .filter(|p| !p.is_empty())
    {
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(ConfigError::new(
                "config_file",
                format!("names {} which is not a readable file", path.display()),
            ));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment
        .merge(Env::raw().only(&[
            "DATABASE_URL",
            "REDIS_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ]))
        .merge(Env::prefixed("RABT_").ignore(&["CONFIG_FILE", "DATABASE_URL", "REDIS_URL"]));
    for (key, value) in overrides {
        // Parsed as an environment value would be, so "8" can be a number.
        let value: figment::value::Value = value.parse().unwrap_or_else(|never| match never {});
        figment = figment.merge(Serialized::default(key, value));
    }
    Ok(figment)
}

impl Settings {
    /// The database URL with its password, for the connection pool only.
    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let figment = pairs.iter().fold(Figment::new(), |f, (k, v)| {
            f.merge(Serialized::default(k, v))
        });
        extract(Figment::from(Serialized::defaults(RawSettings::default())).merge(figment))?
            .validate()
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
        let err =
            load(&[("env", "production"), ("database_url", "postgres://x@h/db")]).unwrap_err();
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
}
