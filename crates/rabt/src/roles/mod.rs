//! Roles and permissions: the catalogue, built-in and custom roles, grants, and
//! the operator commands that make the first admin.

pub mod model;
pub mod routes;
pub mod store;

use crate::db::{Actor, Db};

/// Grants `role` to the user with `email` (the operator's `rabt admin grant`
/// and `RABT_BOOTSTRAP_ADMIN_EMAIL`). `Ok(false)` when it was already held.
pub async fn grant_by_email(db: &Db, email: &str, role: &str) -> anyhow::Result<bool> {
    change_by_email(db, email, role, true).await
}

/// `RABT_BOOTSTRAP_ADMIN_EMAIL`: makes the account with `email` an admin once
/// its owner has verified the address, so that whoever signs up first with an
/// address they do not control gains nothing. `Ok(false)` when there is no
/// such verified account yet, or it is already an admin.
pub async fn bootstrap_admin(db: &Db, email: &str) -> anyhow::Result<bool> {
    let mut tx = db.begin(&Actor::Service).await?;
    let verified = matches!(store::user_by_email(&mut tx, email).await?, Some((_, true)));
    tx.commit().await?;
    if !verified {
        return Ok(false);
    }
    change_by_email(db, email, "admin", true).await
}

/// Takes `role` away from the user with `email`.
pub async fn revoke_by_email(db: &Db, email: &str, role: &str) -> anyhow::Result<bool> {
    change_by_email(db, email, role, false).await
}

async fn change_by_email(db: &Db, email: &str, role: &str, grant: bool) -> anyhow::Result<bool> {
    let mut tx = db.begin(&Actor::Service).await?;
    let (user, _) = store::user_by_email(&mut tx, email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user has the email {email}"))?;
    if !store::unknown_roles(&mut tx, &[role.to_owned()])
        .await?
        .is_empty()
    {
        anyhow::bail!("there is no role named {role}");
    }
    let changed = if grant {
        store::grant(&mut tx, user, role).await?
    } else {
        store::revoke(&mut tx, user, role).await.map_err(|err| {
            match crate::http::error::violated_constraint(&err) {
                Some(crate::auth::grants::LAST_ACTIVE_ADMIN) => anyhow::anyhow!(
                    "{email} is the last active admin: make someone else an admin first"
                ),
                _ => err.into(),
            }
        })?
    };
    if changed {
        crate::audit::record(
            &mut tx,
            None,
            crate::audit::Action::RolesChanged,
            Some(user),
            &crate::http::ClientInfo {
                ip: None,
                user_agent: Some("rabt admin".into()),
            },
            serde_json::json!({"change": if grant { "granted" } else { "revoked" }, "role": role}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(changed)
}
