//! Product news (`rabt email news`): marketing mail to the users who opted in
//! through `product_news`, queued by a job that walks them in batches, each
//! batch in one transaction with the job's next step, so a crash neither
//! skips nor repeats anyone.

use serde::{Deserialize, Serialize};
use serde_json::json;
use url::Url;
use uuid::Uuid;

use super::{Template, enqueue_from};
use crate::{
    db::{Actor, Db},
    jobs::{self, JobArgs, JobContext, JobError, JobRegistry},
};

/// Users queued per step.
const BATCH: i64 = 500;

/// One step of the fan-out: the users after `after`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct News {
    pub headline: String,
    pub paragraphs: Vec<String>,
    /// A path on the web app, e.g. `/changelog/2026-12`.
    pub path: String,
    pub after: Option<Uuid>,
}

impl JobArgs for News {
    const KIND: &'static str = "email.news";
}

/// Checks an announcement before anything is queued.
pub fn validate(news: &News) -> anyhow::Result<()> {
    let headline = news.headline.trim();
    anyhow::ensure!(
        !headline.is_empty() && headline.chars().count() <= 120 && !headline.contains(['\r', '\n']),
        "the headline must be one line of 1 to 120 characters"
    );
    anyhow::ensure!(
        news.paragraphs.len() <= 20 && news.paragraphs.iter().all(|p| p.chars().count() <= 2000),
        "at most 20 paragraphs of at most 2000 characters"
    );
    anyhow::ensure!(
        news.path.starts_with('/') && !news.path.starts_with("//") && news.path.len() <= 512,
        "the link must be a path on the web app, like /changelog"
    );
    Ok(())
}

/// Queues the first step; returns the job's id.
pub async fn queue(db: &Db, news: &News) -> anyhow::Result<Uuid> {
    validate(news)?;
    let mut tx = db.begin(&Actor::Service).await?;
    let id = jobs::enqueue(&mut tx, news, 5).await?;
    tx.commit().await?;
    Ok(id)
}

/// Registers the fan-out step.
pub fn register(registry: &mut JobRegistry, frontend: Url, host: String) {
    registry.register::<News, _, _>(move |ctx: JobContext, news: News| {
        let (frontend, host) = (frontend.clone(), host.clone());
        async move {
            validate(&news).map_err(JobError::permanent)?;
            let mut tx = ctx.db.begin(&Actor::Service).await?;
            let recipients = sqlx::query!(
                r#"select u.id, u.email, u.display_name
                     from users u
                     join notification_preferences p on p.user_id = u.id
                    where p.product_news
                      and u.email_verified_at is not null
                      and u.deactivated_at is null and u.suspended_at is null
                      and ($1::uuid is null or u.id > $1)
                    order by u.id
                    limit $2"#,
                news.after,
                BATCH
            )
            .fetch_all(&mut *tx)
            .await?;
            let mut link = frontend.clone();
            link.set_path(&news.path);
            for user in &recipients {
                enqueue_from(
                    &mut tx,
                    &host,
                    user.id,
                    &user.email,
                    Template::ProductNews,
                    json!({
                        "display_name": user.display_name,
                        "headline": news.headline.trim(),
                        "paragraphs": news.paragraphs,
                        "link": link.to_string(),
                    }),
                )
                .await?;
            }
            if i64::try_from(recipients.len()).unwrap_or(i64::MAX) == BATCH
                && let Some(last) = recipients.last()
            {
                let next = News {
                    after: Some(last.id),
                    ..news
                };
                jobs::enqueue(&mut tx, &next, 5).await?;
            }
            if ctx.complete_in(&mut tx).await? {
                tx.commit().await?;
            }
            Ok::<(), JobError>(())
        }
    });
}
