//! Mail-flow rules.

use axum::Json;
use axum::extract::State as Extract;
use axum::http::StatusCode;
use portcullis_policy::rules::Rule;

use crate::api_types::*;

use super::audit::{Trail, trail};
use super::extract::*;
use super::state::*;

pub(super) fn rules_of(state: &State, t: &str) -> Res<Vec<Rule>> {
    tenant(state, t)?;
    let dir = state.live.get();
    Ok(dir
        .tenant(t)
        .map(|e| e.rules.iter().map(|c| c.rule.clone()).collect())
        .unwrap_or_default())
}

#[utoipa::path(get, path = "/api/v1/tenants/{t}/rules", params(("t" = String, Path, description = "Tenant name")), responses((status = 200, body = Vec<Rule>)))]
pub(super) async fn list_rules(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
) -> Res<Json<Vec<Rule>>> {
    Ok(Json(rules_of(&state, &t)?))
}

#[utoipa::path(get, path = "/api/v1/tenants/{t}/rules/{name}", params(("t" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Rule name")), responses((status = 200, body = Rule)))]
pub(super) async fn show_rule(
    Extract(state): Extract<State>,
    ApiPath((t, name)): ApiPath<(String, String)>,
) -> Res<Json<Rule>> {
    rules_of(&state, &t)?
        .into_iter()
        .find(|r| r.name == name)
        .map(Json)
        .ok_or_else(|| {
            ApiErr(
                StatusCode::NOT_FOUND,
                format!("rule {name:?} of tenant {t} not found"),
            )
        })
}

#[utoipa::path(post, path = "/api/v1/tenants/{t}/rules", params(("t" = String, Path, description = "Tenant name")), request_body = Rule, responses((status = 201, body = Rule), (status = 409, description = "A rule of that name exists", body = ApiError)))]
pub(super) async fn add_rule(
    Extract(state): Extract<State>,
    ApiPath(t): ApiPath<String>,
    ApiJson(mut rule): ApiJson<Rule>,
) -> Res<(StatusCode, Trail, Json<Rule>)> {
    // The tenant is checked in the write's transaction (a snapshot may lag another node).
    validate_rule(&mut rule, &t).map_err(bad)?;
    let change = state.store.put_rule(&rule, true).await?;
    changed(&state).await?;
    tracing::info!(tenant = %t, rule = %rule.name, "rule added");
    Ok((StatusCode::CREATED, trail(&change), Json(rule)))
}

#[utoipa::path(put, path = "/api/v1/tenants/{t}/rules/{name}", params(("t" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Rule name"), PutRuleParams), request_body = Rule, responses((status = 200, body = Rule), (status = 409, description = "The rule changed since the version given", body = ApiError)))]
pub(super) async fn put_rule(
    Extract(state): Extract<State>,
    ApiPath((t, name)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<PutRuleParams>,
    ApiJson(mut rule): ApiJson<Rule>,
) -> Res<(Trail, Json<Rule>)> {
    // The tenant is checked in the write's transaction (a snapshot may lag another node).
    if rule.name != name {
        return Err(bad(
            "renaming a rule is not supported; remove and add it".into()
        ));
    }
    validate_rule(&mut rule, &t).map_err(bad)?;
    // With `if_version`: compare and set, in the write's transaction.
    let change = state
        .store
        .modify_rule(&t, &name, |current| {
            if let Some(expected) = &p.if_version
                && rule_version(current) != *expected
            {
                let now = serde_json::to_string(&*current).unwrap_or_default();
                return Err(ApiErr(
                    StatusCode::CONFLICT,
                    format!(
                        "rule {name} was changed since it was read (by another administrator or node); read it again. It is now: {now}"
                    ),
                ));
            }
            *current = rule.clone();
            Ok(())
        })
        .await?;
    changed(&state).await?;
    tracing::info!(tenant = %t, rule = %rule.name, "rule changed");
    Ok((trail(&change), Json(change.value.clone())))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{t}/rules/{name}", params(("t" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Rule name")), responses((status = 204, description = "Removed")))]
pub(super) async fn remove_rule(
    Extract(state): Extract<State>,
    ApiPath((t, name)): ApiPath<(String, String)>,
) -> Res<(StatusCode, Trail)> {
    let change = state.store.remove_rule(&t, &name).await?;
    changed(&state).await?;
    Ok((StatusCode::NO_CONTENT, trail(&change)))
}
