//! The tenant's org settings: reject direct send (off / audit / on, each with its consequence),
//! its scope and exemptions, the spoof action, recipient validation — saved in one change.

use axum::Form;
use axum::extract::{Path, Query, State as Extract};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use portcullis_policy::OrgSettings;

use crate::api_types::{OrgPatch, encode};

use super::api::Failure;
use super::forms::{self, Done, checkbox, error_for, form_refusal, lines, radios, select};
use super::layout::{Ctx, csrf, notice, page, word};
use super::session::Session;
use super::state::Console;

/// `GET /t/{t}/settings`.
pub(super) async fn show(
    session: Session,
    Path(t): Path<String>,
    Query(d): Query<Done>,
) -> Response {
    let message = (d.done.as_deref() == Some("saved")).then(|| {
        (
            true,
            "Saved: the change applies to the next message.".to_string(),
        )
    });
    render(&session, &t, None, message, StatusCode::OK).await
}

async fn render(
    session: &Session,
    t: &str,
    typed: Option<&SettingsForm>,
    message: Option<(bool, String)>,
    status: StatusCode,
) -> Response {
    let org = match session
        .api
        .get::<OrgSettings>(&format!("/api/v1/tenants/{}/org", encode(t)))
        .await
    {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let ctx = Ctx::tenant(session, t, "settings").await;
    let may = ctx.may("PATCH", "/api/v1/tenants/{t}/org");
    let error = message
        .as_ref()
        .filter(|(ok, _)| !ok)
        .map(|(_, m)| m.as_str());
    // What the administrator typed when the API refused it; the stored settings otherwise.
    let mode = typed.map_or_else(
        || word(&org.reject_direct_send),
        |f| f.reject_direct_send.clone(),
    );
    let scope = typed.map_or_else(
        || word(&org.direct_send_scope),
        |f| f.direct_send_scope.clone(),
    );
    let spoof = typed.map_or_else(|| word(&org.spoof_action), |f| f.spoof_action.clone());
    let validation = typed.map_or_else(
        || word(&org.recipient_validation),
        |f| f.recipient_validation.clone(),
    );
    let sealers = typed.map_or_else(
        || org.arc_trusted_sealers.clone(),
        |f| forms::items(&f.arc_trusted_sealers),
    );
    let body = html! {
        @if let Some((ok, text)) = &message { (notice(*ok, text)) }
        @if !may {
            p class="help" { "Your role may read these settings, not change them." }
        }
        form method="post" class="stack" action=(format!("/t/{}/settings", encode(t))) {
            (csrf(session))
            fieldset disabled[!may] class="plain" {
                (radios("reject_direct_send", "Reject direct send", &[
                    ("off", "Off", "anonymous mail using the tenant's own domains is accepted (and reported)."),
                    ("audit", "Audit", "accepted, but marked in the trace and the report: what on would refuse, without refusing it."),
                    ("on", "On", "refused with 550 5.7.68 unless a connector, a trusted ARC sealer or an allowed aligned DKIM signature vouches for it."),
                ], &mode, error_for(error, "reject_direct_send")))
                (select("direct_send_scope", "Which sender is checked", &[
                    ("envelope", "the envelope sender (MAIL FROM)"),
                    ("envelope-and-header", "the envelope sender and the From header"),
                ], &scope, Some("Direct send means the checked sender uses one of the tenant's domains.")))
                (lines("arc_trusted_sealers", "Trusted ARC sealers", &sealers,
                    Some("Domains, one per line: forwarded mail with a passing ARC chain sealed by one of them is exempt."),
                    error_for(error, "arc_trusted_sealers")))
                (checkbox("direct_send_allow_dkim_aligned", "Exempt mail with a passing DKIM signature aligned with the sender's domain",
                    typed.map_or(org.direct_send_allow_dkim_aligned, |f| forms::checked(&f.direct_send_allow_dkim_aligned)), None))
                (checkbox("honor_dmarc", "Apply the sender domain's DMARC policy (reject / quarantine)",
                    typed.map_or(org.honor_dmarc, |f| forms::checked(&f.honor_dmarc)), None))
                (select("spoof_action", "Failed composite authentication (spoofing of other domains)", &[
                    ("junk", "mark as junk (X-Spam-Flag: YES)"),
                    ("quarantine", "quarantine"),
                    ("none", "do nothing"),
                ], &spoof, None))
                (checkbox("admin_only_release_direct_send", "Only an org admin may release quarantined direct-send spoofs",
                    typed.map_or(org.admin_only_release_direct_send, |f| forms::checked(&f.admin_only_release_direct_send)), None))
                (select("recipient_validation", "Recipient validation of authoritative domains", &[
                    ("off", "off: accept every recipient"),
                    ("list", "list: only the imported recipients"),
                    ("verify", "verify: ask the mailbox server"),
                ], &validation, None))
                @if may { div class="actions" { button type="submit" { "Save settings" } } }
            }
        }
    };
    (status, page(&ctx, "Settings", body)).into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct SettingsForm {
    reject_direct_send: String,
    direct_send_scope: String,
    #[serde(default)]
    arc_trusted_sealers: String,
    #[serde(default)]
    direct_send_allow_dkim_aligned: Option<String>,
    #[serde(default)]
    honor_dmarc: Option<String>,
    spoof_action: String,
    #[serde(default)]
    admin_only_release_direct_send: Option<String>,
    recipient_validation: String,
}

/// `POST /t/{t}/settings`: one `PATCH /org` with every field of the form.
pub(super) async fn save(
    Extract(console): Extract<Console>,
    session: Session,
    Path(t): Path<String>,
    Form(f): Form<SettingsForm>,
) -> Response {
    let patch = OrgPatch {
        reject_direct_send: Some(f.reject_direct_send.clone()),
        direct_send_scope: Some(f.direct_send_scope.clone()),
        honor_dmarc: Some(forms::checked(&f.honor_dmarc)),
        arc_trusted_sealers: Some(forms::items(&f.arc_trusted_sealers)),
        direct_send_allow_dkim_aligned: Some(forms::checked(&f.direct_send_allow_dkim_aligned)),
        spoof_action: Some(f.spoof_action.clone()),
        admin_only_release_direct_send: Some(forms::checked(&f.admin_only_release_direct_send)),
        recipient_validation: Some(f.recipient_validation.clone()),
        ..Default::default()
    };
    let path = format!("/api/v1/tenants/{}/org", encode(&t));
    match session
        .api
        .send(Method::PATCH, &path, serde_json::to_value(&patch).ok())
        .await
    {
        Ok(_) => {
            console.reports.forget(&t);
            Redirect::to(&format!("/t/{}/settings?done=saved", encode(&t))).into_response()
        }
        Err(Failure { status, message }) if form_refusal(status) => {
            render(&session, &t, Some(&f), Some((false, message)), status).await
        }
        Err(e) => e.into_response(),
    }
}
