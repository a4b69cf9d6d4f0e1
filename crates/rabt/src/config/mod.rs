//! Settings, layered: built-in defaults → an optional TOML file → the environment.
//!
//! Everything is parsed and checked once, at start. A setting that is missing or
//! malformed stops the start with one line that names it (as the environment
//! variable a deployer would set). Secrets are held in `secrecy` types so they
//! never reach a log line or a `Debug` print.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use base64::Engine as _;
use ipnet::IpNet;
use secrecy::{SecretBox, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

mod billing;
mod email;
mod load;
mod raw;
mod storage;
mod values;

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

#[cfg(test)]
mod tests;
