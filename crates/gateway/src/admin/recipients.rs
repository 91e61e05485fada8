//! The recipient list of recipient validation (`list`): paged listing, and one all-or-nothing
//! change (add, remove, replace) that every node applies with its next directory refresh.

use axum::Json;
use axum::extract::State as Extract;

use crate::api_types::*;

use super::audit::{AuditTrail, Trail};
use super::extract::*;
use super::state::*;

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecipientQuery {
    /// Only addresses after this one (the `next` of the previous page).
    after: Option<String>,
    /// At most this many (1 to 100000; default 1000).
    #[param(minimum = 1, maximum = 100000)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/tenants/{t}/recipients", params(("t" = String, Path, description = "Tenant name"), RecipientQuery), responses((status = 200, body = RecipientPage)))]
pub(super) async fn list_recipients(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiQuery(q): ApiQuery<RecipientQuery>,
) -> Res<Json<RecipientPage>> {
    tenant(&state, &t)?;
    let limit = limit(q.limit, 1000).map_err(bad)?;
    // One more than asked: whether there is a next page.
    let mut recipients = state
        .store
        .list_recipients(&t, q.after.as_deref(), limit + 1)
        .await?;
    let next = if recipients.len() > limit as usize {
        recipients.truncate(limit as usize);
        recipients.last().cloned()
    } else {
        None
    };
    Ok(Json(RecipientPage { recipients, next }))
}

#[utoipa::path(post, path = "/api/v1/tenants/{t}/recipients", params(("t" = String, Path, description = "Tenant name")), request_body = RecipientsChange, responses((status = 200, body = RecipientsChanged)))]
pub(super) async fn change_recipients(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiJson(change): ApiJson<RecipientsChange>,
) -> Res<(Trail, Json<RecipientsChanged>)> {
    tenant(&state, &t)?;
    let dir = state.live.get();
    // Every entry valid and of this tenant's domains, or nothing changes.
    let check = |list: &[String], what: &str| -> Res<Vec<String>> {
        list.iter()
            .enumerate()
            .map(|(i, entry)| {
                let (normal, domain) = parse_recipient_entry(entry)
                    .map_err(|e| bad(format!("{what} entry {}: {e}", i + 1)))?;
                match dir.resolve(&domain) {
                    Some((owner, _)) if owner.tenant.name == t => Ok(normal),
                    _ => Err(bad(format!(
                        "{what} entry {}: {domain} is not an accepted domain of tenant {t}",
                        i + 1
                    ))),
                }
            })
            .collect()
    };
    let add = check(&change.add, "add")?;
    // Removing an address of a domain since removed must stay possible: syntax only.
    let remove = change
        .remove
        .iter()
        .enumerate()
        .map(|(i, e)| {
            parse_recipient_entry(e)
                .map(|(a, _)| a)
                .map_err(|e| bad(format!("remove entry {}: {e}", i + 1)))
        })
        .collect::<Res<Vec<String>>>()?;
    if change.replace && !remove.is_empty() {
        return Err(bad(
            "replace takes no remove list: the add list becomes the whole list".into(),
        ));
    }
    let removing: std::collections::HashSet<&String> = remove.iter().collect();
    if let Some(both) = add.iter().find(|a| removing.contains(a)) {
        return Err(bad(format!("{both} is both added and removed")));
    }
    let done = state
        .store
        .change_recipients(&t, &add, &remove, change.replace)
        .await?;
    changed(&state).await?;
    tracing::info!(tenant = %t, added = done.added, removed = done.removed, total = done.total, replace = change.replace, "recipient list changed");
    // The audit log names what changed (the first addresses of a large import, and counts).
    const SHOWN: usize = 100;
    let named = |list: &[String]| -> serde_json::Value {
        serde_json::json!(list.iter().take(SHOWN).collect::<Vec<_>>())
    };
    let trail = axum::Extension(AuditTrail {
        before: Some(serde_json::json!({
            "recipients": { "total": done.total + done.removed - done.added }
        })),
        after: Some(serde_json::json!({
            "recipients": {
                "total": done.total,
                "added": done.added,
                "removed": done.removed,
                "replace": change.replace,
                "add": named(&add),
                "remove": named(&remove),
            }
        })),
        tenant: None,
    });
    Ok((
        trail,
        Json(RecipientsChanged {
            added: done.added,
            removed: done.removed,
            total: done.total,
        }),
    ))
}
