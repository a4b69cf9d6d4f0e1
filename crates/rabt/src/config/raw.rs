//! The raw layered settings and their validation into [`Settings`]: every
//! range, scheme and rule a setting must meet is checked here, once, at start.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use ipnet::IpNet;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub(super) use super::values::{check_scheme, given, parse_http_url, split_list};
use super::{
    AuthSettings, ConfigError, EncryptionKey, Environment, FILE_TYPES, FileSettings, JobSettings,
    LogFormat, OAuthClient, OAuthSettings, RateLimits, RealtimeSettings, Settings, TlsFiles,
    storage::{storage_location, upload_limits},
    values::random_bytes,
};

/// The raw layered settings, before validation. Field names are the environment
/// variable names without the `RABT_` prefix, lowercased.
#[derive(Debug, Deserialize, Serialize)]
pub(super) struct RawSettings {
    env: Environment,
    database_url: Option<String>,
    migration_database_url: Option<String>,
    database_max_connections: u32,
    redis_url: Option<String>,
    redis_key_prefix: String,
    redis_timeout_ms: u64,
    bind: String,
    public_url: String,
    frontend_url: String,
    cors_origins: Option<String>,
    trusted_proxies: Option<String>,
    jwt_secret: Option<String>,
    encryption_key: Option<String>,
    encryption_old_keys: Option<String>,
    body_limit_bytes: usize,
    request_timeout_secs: u64,
    shutdown_timeout_secs: u64,
    shutdown_drain_secs: u64,
    metrics_bind: Option<String>,
    log_format: LogFormat,
    job_workers: usize,
    job_lease_secs: u64,
    job_poll_interval_ms: u64,
    notification_retention_days: u32,
    audit_retention_days: u32,
    erasure_grace_days: u32,
    access_token_ttl_secs: u64,
    refresh_grace_secs: u64,
    session_ttl_days: u64,
    mfa_required_for_admins: bool,
    pub(super) smtp_url: Option<String>,
    pub(super) email_from: String,
    pub(super) mail_dir: String,
    pub(super) email_tracking: bool,
    pub(super) email_events_secret: Option<String>,
    pub(super) email_per_domain_per_minute: u32,
    pub(super) email_soft_bounce_days: u32,
    pub(super) dkim_selector: Option<String>,
    pub(super) dkim_private_key: Option<String>,
    pub(super) dkim_domain: Option<String>,
    oauth_google_client_id: Option<String>,
    oauth_google_client_secret: Option<String>,
    oauth_google_issuer: String,
    oauth_github_client_id: Option<String>,
    oauth_github_client_secret: Option<String>,
    oauth_github_authorize_url: String,
    oauth_github_token_url: String,
    oauth_github_api_url: String,
    oauth_redirect_allowlist: Option<String>,
    bootstrap_admin_email: Option<String>,
    pub(super) plan_free_open_projects: u32,
    pub(super) plan_pro_open_projects: u32,
    pub(super) plan_team_open_projects: Option<u32>,
    pub(super) stripe_secret_key: Option<String>,
    pub(super) stripe_webhook_secret: Option<String>,
    pub(super) stripe_price_pro: Option<String>,
    pub(super) stripe_price_team: Option<String>,
    pub(super) stripe_api_base: String,
    pub(super) stripe_timeout_ms: u64,
    pub(super) billing_past_due_grace_days: u32,
    pub(super) invoice_issuer: String,
    realtime_retention_hours: u32,
    realtime_queue: usize,
    realtime_frames_per_minute: u32,
    message_email_delay_secs: u64,
    search_cache_secs: u64,
    search_facets_exact_up_to: u32,
    rate_limit_auth_per_minute: u32,
    rate_limit_write_per_minute: u32,
    rate_limit_read_per_minute: u32,
    rate_limit_realtime_per_minute: u32,
    rate_limit_auth_address_per_minute: u32,
    rate_limit_account_per_minute: u32,
    rate_limit_email_per_hour: u32,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    max_connections: usize,
    header_read_timeout_secs: u64,
    idle_timeout_secs: u64,
    storage_url: Option<String>,
    s3_endpoint: Option<String>,
    s3_region: String,
    aws_access_key_id: Option<String>,
    aws_secret_access_key: Option<String>,
    files_quota_bytes: u64,
    files_avatar_max_bytes: u64,
    files_avatar_types: String,
    files_attachment_max_bytes: u64,
    files_attachment_types: String,
    files_upload_url_ttl_secs: u64,
    files_download_url_ttl_secs: u64,
    files_detached_grace_hours: u64,
}

impl Default for RawSettings {
    fn default() -> Self {
        Self {
            env: Environment::Development,
            database_url: None,
            migration_database_url: None,
            database_max_connections: 20,
            redis_url: None,
            redis_key_prefix: "rabt:".into(),
            redis_timeout_ms: 250,
            bind: "127.0.0.1:8080".into(),
            public_url: "http://127.0.0.1:8080".into(),
            frontend_url: "http://localhost:3000".into(),
            cors_origins: None,
            trusted_proxies: None,
            jwt_secret: None,
            encryption_key: None,
            encryption_old_keys: None,
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            shutdown_timeout_secs: 30,
            shutdown_drain_secs: 5,
            metrics_bind: None,
            log_format: LogFormat::Json,
            job_workers: 4,
            job_lease_secs: 60,
            job_poll_interval_ms: 1000,
            notification_retention_days: 90,
            audit_retention_days: 730,
            erasure_grace_days: 30,
            access_token_ttl_secs: 900,
            refresh_grace_secs: 10,
            session_ttl_days: 30,
            mfa_required_for_admins: false,
            smtp_url: None,
            email_from: "rabt <no-reply@localhost>".into(),
            mail_dir: ".data/mail".into(),
            email_tracking: true,
            email_events_secret: None,
            email_per_domain_per_minute: 600,
            email_soft_bounce_days: 7,
            dkim_selector: None,
            dkim_private_key: None,
            dkim_domain: None,
            oauth_google_client_id: None,
            oauth_google_client_secret: None,
            oauth_google_issuer: "https://accounts.google.com".into(),
            oauth_github_client_id: None,
            oauth_github_client_secret: None,
            oauth_github_authorize_url: "https://github.com/login/oauth/authorize".into(),
            oauth_github_token_url: "https://github.com/login/oauth/access_token".into(),
            oauth_github_api_url: "https://api.github.com".into(),
            oauth_redirect_allowlist: None,
            bootstrap_admin_email: None,
            plan_free_open_projects: 3,
            plan_pro_open_projects: 25,
            plan_team_open_projects: None,
            stripe_secret_key: None,
            stripe_webhook_secret: None,
            stripe_price_pro: None,
            stripe_price_team: None,
            stripe_api_base: "https://api.stripe.com".into(),
            stripe_timeout_ms: 10_000,
            billing_past_due_grace_days: 7,
            invoice_issuer: "rabt".into(),
            realtime_retention_hours: 24,
            realtime_queue: 256,
            realtime_frames_per_minute: 120,
            message_email_delay_secs: 120,
            search_cache_secs: 300,
            search_facets_exact_up_to: 10_000,
            rate_limit_auth_per_minute: RateLimits::default().auth,
            rate_limit_write_per_minute: RateLimits::default().write,
            rate_limit_read_per_minute: RateLimits::default().read,
            rate_limit_realtime_per_minute: RateLimits::default().realtime,
            rate_limit_auth_address_per_minute: RateLimits::default().auth_address,
            rate_limit_account_per_minute: RateLimits::default().account,
            rate_limit_email_per_hour: RateLimits::default().email_per_hour,
            tls_cert: None,
            tls_key: None,
            max_connections: 10_000,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            storage_url: None,
            s3_endpoint: None,
            s3_region: "us-east-1".into(),
            aws_access_key_id: None,
            aws_secret_access_key: None,
            files_quota_bytes: 1024 * 1024 * 1024,
            files_avatar_max_bytes: 5 * 1024 * 1024,
            files_avatar_types: "image/png,image/jpeg,image/webp".into(),
            files_attachment_max_bytes: 25 * 1024 * 1024,
            files_attachment_types: FILE_TYPES.join(","),
            files_upload_url_ttl_secs: 900,
            files_download_url_ttl_secs: 300,
            files_detached_grace_hours: 24,
        }
    }
}

impl RawSettings {
    pub(super) fn validate(self) -> Result<Settings, ConfigError> {
        let billing = self.billing()?;
        let email = self.email()?;
        let production = self.env == Environment::Production;
        let mut generated = Vec::new();

        let database_url = self
            .database_url
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| ConfigError::new("database_url", "is required"))?;
        check_scheme("database_url", &database_url, &["postgres", "postgresql"])?;
        let migration_database_url = match self.migration_database_url {
            Some(url) if !url.trim().is_empty() => {
                check_scheme("migration_database_url", &url, &["postgres", "postgresql"])?;
                url
            }
            _ => database_url.clone(),
        };
        let redis_url = match self.redis_url {
            Some(url) if !url.trim().is_empty() => {
                check_scheme("redis_url", &url, &["redis", "rediss"])?;
                Some(SecretString::from(url))
            }
            _ => None,
        };
        let bind: SocketAddr = self
            .bind
            .parse()
            .map_err(|_| ConfigError::new("bind", "must be an address like 127.0.0.1:8080"))?;
        let metrics_bind: Option<SocketAddr> = self
            .metrics_bind
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(|b| {
                b.parse().map_err(|_| {
                    ConfigError::new("metrics_bind", "must be an address like 127.0.0.1:9090")
                })
            })
            .transpose()?;
        let public_url = parse_http_url("public_url", &self.public_url)?;
        let frontend_url = parse_http_url("frontend_url", &self.frontend_url)?;
        let mut cors_origins = vec![frontend_url.origin().ascii_serialization()];
        for origin in split_list(self.cors_origins.as_deref()) {
            let url = parse_http_url("cors_origins", origin)?;
            cors_origins.push(url.origin().ascii_serialization());
        }
        let trusted_proxies = split_list(self.trusted_proxies.as_deref())
            .map(|cidr| {
                cidr.parse::<IpNet>()
                    .or_else(|_| cidr.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        ConfigError::new("trusted_proxies", format!("has `{cidr}`, not a CIDR"))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let jwt_secret = match self.jwt_secret {
            Some(secret) if secret.len() >= 32 => SecretString::from(secret),
            Some(_) => return Err(ConfigError::new("jwt_secret", "must be at least 32 bytes")),
            None if production => {
                return Err(ConfigError::new(
                    "jwt_secret",
                    "is required when RABT_ENV=production",
                ));
            }
            None => {
                generated.push("RABT_JWT_SECRET");
                SecretString::from(hex::encode(random_bytes()))
            }
        };
        let encryption_key = match self.encryption_key.as_deref() {
            Some(value) => EncryptionKey::parse("encryption_key", value)?,
            None if production => {
                return Err(ConfigError::new(
                    "encryption_key",
                    "is required when RABT_ENV=production",
                ));
            }
            None => {
                generated.push("RABT_ENCRYPTION_KEY");
                EncryptionKey::from_bytes(random_bytes())
            }
        };
        let encryption_old_keys = split_list(self.encryption_old_keys.as_deref())
            .map(|k| EncryptionKey::parse("encryption_old_keys", k))
            .collect::<Result<Vec<_>, _>>()?;

        if !(1..=1000).contains(&self.database_max_connections) {
            return Err(ConfigError::new(
                "database_max_connections",
                "must be 1..=1000",
            ));
        }
        if !(1024..=1024 * 1024 * 1024).contains(&self.body_limit_bytes) {
            return Err(ConfigError::new(
                "body_limit_bytes",
                "must be 1 KiB..=1 GiB",
            ));
        }
        for (setting, value) in [
            (
                "rate_limit_auth_per_minute",
                self.rate_limit_auth_per_minute,
            ),
            (
                "rate_limit_write_per_minute",
                self.rate_limit_write_per_minute,
            ),
            (
                "rate_limit_read_per_minute",
                self.rate_limit_read_per_minute,
            ),
            (
                "rate_limit_realtime_per_minute",
                self.rate_limit_realtime_per_minute,
            ),
            (
                "rate_limit_auth_address_per_minute",
                self.rate_limit_auth_address_per_minute,
            ),
            (
                "rate_limit_account_per_minute",
                self.rate_limit_account_per_minute,
            ),
            ("rate_limit_email_per_hour", self.rate_limit_email_per_hour),
        ] {
            if !(1..=1_000_000).contains(&value) {
                return Err(ConfigError::new(setting, "must be 1..=1000000"));
            }
        }
        let tls = match (
            self.tls_cert.filter(|c| !c.trim().is_empty()),
            self.tls_key.filter(|k| !k.trim().is_empty()),
        ) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: PathBuf::from(cert),
                key: PathBuf::from(key),
            }),
            (Some(_), None) => return Err(ConfigError::new("tls_key", "is needed with tls_cert")),
            (None, Some(_)) => return Err(ConfigError::new("tls_cert", "is needed with tls_key")),
        };
        if !(1..=1_000_000).contains(&self.max_connections) {
            return Err(ConfigError::new("max_connections", "must be 1..=1000000"));
        }
        if !(1..=300).contains(&self.header_read_timeout_secs) {
            return Err(ConfigError::new(
                "header_read_timeout_secs",
                "must be 1..=300",
            ));
        }
        if !(1..=3600).contains(&self.idle_timeout_secs) {
            return Err(ConfigError::new("idle_timeout_secs", "must be 1..=3600"));
        }
        if !(1..=36_500).contains(&self.notification_retention_days) {
            return Err(ConfigError::new(
                "notification_retention_days",
                "must be 1..=36500",
            ));
        }
        if self.shutdown_drain_secs > 300 {
            return Err(ConfigError::new("shutdown_drain_secs", "must be 0..=300"));
        }
        if !(1..=720).contains(&self.realtime_retention_hours) {
            return Err(ConfigError::new(
                "realtime_retention_hours",
                "must be 1..=720",
            ));
        }
        if !(16..=65_536).contains(&self.realtime_queue) {
            return Err(ConfigError::new("realtime_queue", "must be 16..=65536"));
        }
        if !(1..=100_000).contains(&self.realtime_frames_per_minute) {
            return Err(ConfigError::new(
                "realtime_frames_per_minute",
                "must be 1..=100000",
            ));
        }
        if self.message_email_delay_secs > 86_400 {
            return Err(ConfigError::new(
                "message_email_delay_secs",
                "must be 0..=86400",
            ));
        }
        if self.search_cache_secs > 3600 {
            return Err(ConfigError::new("search_cache_secs", "must be 0..=3600"));
        }
        // API.md §5 promises exact facets up to 10,000 matches; less is for tests.
        let least_exact = if production { 10_000 } else { 1 };
        if !(least_exact..=1_000_000).contains(&self.search_facets_exact_up_to) {
            return Err(ConfigError::new(
                "search_facets_exact_up_to",
                format!("must be {least_exact}..=1000000"),
            ));
        }
        if !(1..=3600).contains(&self.request_timeout_secs) {
            return Err(ConfigError::new("request_timeout_secs", "must be 1..=3600"));
        }
        if !(1..=3600).contains(&self.job_lease_secs) {
            return Err(ConfigError::new("job_lease_secs", "must be 1..=3600"));
        }
        if !(1..=256).contains(&self.job_workers) {
            return Err(ConfigError::new("job_workers", "must be 1..=256"));
        }
        if self.audit_retention_days > 36_500 {
            return Err(ConfigError::new(
                "audit_retention_days",
                "must be 0..=36500 (0 keeps every entry)",
            ));
        }
        if self.erasure_grace_days > 365 {
            return Err(ConfigError::new(
                "erasure_grace_days",
                "must be 0..=365 (0 erases at once)",
            ));
        }
        if !(10..=60_000).contains(&self.job_poll_interval_ms) {
            return Err(ConfigError::new(
                "job_poll_interval_ms",
                "must be 10..=60000",
            ));
        }
        if !(30..=86_400).contains(&self.access_token_ttl_secs) {
            return Err(ConfigError::new(
                "access_token_ttl_secs",
                "must be 30..=86400",
            ));
        }
        if self.refresh_grace_secs > 300 {
            return Err(ConfigError::new("refresh_grace_secs", "must be 0..=300"));
        }
        if !(1..=365).contains(&self.session_ttl_days) {
            return Err(ConfigError::new("session_ttl_days", "must be 1..=365"));
        }
        let client =
            |id: Option<String>, secret: Option<String>, id_key: &str, secret_key: &str| match (
                id.filter(|s| !s.is_empty()),
                secret.filter(|s| !s.is_empty()),
            ) {
                (Some(client_id), Some(secret)) => Ok(Some(OAuthClient {
                    client_id,
                    client_secret: SecretString::from(secret),
                })),
                (None, None) => Ok(None),
                (Some(_), None) => Err(ConfigError::new(
                    secret_key,
                    "is required with the client id",
                )),
                (None, Some(_)) => Err(ConfigError::new(
                    id_key,
                    "is required with the client secret",
                )),
            };
        let oauth = OAuthSettings {
            google: client(
                self.oauth_google_client_id,
                self.oauth_google_client_secret,
                "oauth_google_client_id",
                "oauth_google_client_secret",
            )?,
            google_issuer: parse_http_url("oauth_google_issuer", &self.oauth_google_issuer)?,
            github: client(
                self.oauth_github_client_id,
                self.oauth_github_client_secret,
                "oauth_github_client_id",
                "oauth_github_client_secret",
            )?,
            github_authorize_url: parse_http_url(
                "oauth_github_authorize_url",
                &self.oauth_github_authorize_url,
            )?,
            github_token_url: parse_http_url(
                "oauth_github_token_url",
                &self.oauth_github_token_url,
            )?,
            github_api_url: parse_http_url("oauth_github_api_url", &self.oauth_github_api_url)?,
            redirect_allowlist: split_list(self.oauth_redirect_allowlist.as_deref())
                .map(|u| parse_http_url("oauth_redirect_allowlist", u))
                .collect::<Result<_, _>>()?,
        };
        if !(10..=10_000).contains(&self.redis_timeout_ms) {
            return Err(ConfigError::new("redis_timeout_ms", "must be 10..=10000"));
        }
        if self.redis_key_prefix.len() > 64 {
            return Err(ConfigError::new(
                "redis_key_prefix",
                "must be at most 64 bytes",
            ));
        }

        let files = FileSettings {
            storage: storage_location(
                self.storage_url.as_deref(),
                self.s3_endpoint,
                self.s3_region,
                self.aws_access_key_id,
                self.aws_secret_access_key,
            )?,
            quota_bytes: self.files_quota_bytes,
            avatar: upload_limits(
                "files_avatar_max_bytes",
                self.files_avatar_max_bytes,
                "files_avatar_types",
                &self.files_avatar_types,
            )?,
            attachment: upload_limits(
                "files_attachment_max_bytes",
                self.files_attachment_max_bytes,
                "files_attachment_types",
                &self.files_attachment_types,
            )?,
            upload_url_ttl: Duration::from_secs(self.files_upload_url_ttl_secs),
            download_url_ttl: Duration::from_secs(self.files_download_url_ttl_secs),
            detached_grace: Duration::from_secs(self.files_detached_grace_hours * 3600),
        };
        for (key, secs) in [
            ("files_upload_url_ttl_secs", self.files_upload_url_ttl_secs),
            (
                "files_download_url_ttl_secs",
                self.files_download_url_ttl_secs,
            ),
        ] {
            // Presigned S3 URLs live at most 7 days.
            if !(1..=604_800).contains(&secs) {
                return Err(ConfigError::new(key, "must be 1..=604800"));
            }
        }
        if self.files_detached_grace_hours > 24 * 365 {
            return Err(ConfigError::new(
                "files_detached_grace_hours",
                "must be 0..=8760",
            ));
        }

        Ok(Settings {
            env: self.env,
            database_url: SecretString::from(database_url),
            migration_database_url: SecretString::from(migration_database_url),
            database_max_connections: self.database_max_connections,
            redis_url,
            redis_key_prefix: self.redis_key_prefix,
            redis_timeout: Duration::from_millis(self.redis_timeout_ms),
            bind,
            public_url,
            frontend_url,
            cors_origins,
            trusted_proxies,
            jwt_secret,
            encryption_key,
            encryption_old_keys,
            body_limit_bytes: self.body_limit_bytes,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout_secs),
            shutdown_drain: Duration::from_secs(self.shutdown_drain_secs),
            metrics_bind,
            log_format: self.log_format,
            jobs: JobSettings {
                workers: self.job_workers,
                lease: Duration::from_secs(self.job_lease_secs),
                poll_interval: Duration::from_millis(self.job_poll_interval_ms),
                notification_retention_days: self.notification_retention_days,
                audit_retention: (self.audit_retention_days > 0)
                    .then(|| Duration::from_secs(u64::from(self.audit_retention_days) * 86_400)),
                erasure_grace: Duration::from_secs(u64::from(self.erasure_grace_days) * 86_400),
            },
            auth: AuthSettings {
                access_token_ttl: Duration::from_secs(self.access_token_ttl_secs),
                refresh_grace: Duration::from_secs(self.refresh_grace_secs),
                session_ttl: Duration::from_secs(self.session_ttl_days * 86_400),
                mfa_required_for_admins: self.mfa_required_for_admins,
            },
            email,
            oauth,
            files,
            bootstrap_admin_email: self.bootstrap_admin_email.filter(|e| !e.trim().is_empty()),
            billing,
            realtime: RealtimeSettings {
                retention: Duration::from_secs(u64::from(self.realtime_retention_hours) * 3600),
                queue: self.realtime_queue,
                frames_per_minute: self.realtime_frames_per_minute,
                message_email_delay: Duration::from_secs(self.message_email_delay_secs),
            },
            search_cache: (self.search_cache_secs > 0)
                .then(|| Duration::from_secs(self.search_cache_secs)),
            search_facets_exact_up_to: self.search_facets_exact_up_to,
            tls,
            max_connections: self.max_connections,
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            rate_limits: RateLimits {
                auth: self.rate_limit_auth_per_minute,
                write: self.rate_limit_write_per_minute,
                read: self.rate_limit_read_per_minute,
                realtime: self.rate_limit_realtime_per_minute,
                auth_address: self.rate_limit_auth_address_per_minute,
                account: self.rate_limit_account_per_minute,
                email_per_hour: self.rate_limit_email_per_hour,
            },
            generated_secrets: generated,
            unknown_settings: Vec::new(),
        })
    }
}
