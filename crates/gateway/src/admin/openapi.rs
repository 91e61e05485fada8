//! The OpenAPI 3.1 description of the admin API.

use crate::admin::principals::{self};
use crate::api_types::*;

/// The OpenAPI 3.1 description: the annotated routes, the bearer scheme, the roles each route
/// admits (from [`principals::ROUTES`]), the `{"error": ...}` answers they share, and the open
/// probes.
pub fn openapi(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    use utoipa::{OpenApi as _, PartialSchema, ToSchema};

    use super::health::__path_readyz;

    #[derive(utoipa::OpenApi)]
    #[openapi(
        info(
            title = "Portcullis admin API",
            description = "Tenants, accepted domains, connectors, mail-flow rules, quarantine, trace, reports, tokens and the audit log of a Portcullis gateway. Authenticate with `Authorization: Bearer <token>`; each operation names the roles it admits.",
            license(name = "Apache-2.0", identifier = "Apache-2.0")
        ),
        paths(readyz)
    )]
    struct Base;

    let mut base = Base::openapi();
    base.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.info = base.info.clone();
    let mut components = doc.components.take().unwrap_or_default();
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An API token (`portcullis token create`) or the bootstrap token in admin.token"))
                .build(),
        ),
    );
    components
        .schemas
        .insert(ApiError::name().into_owned(), ApiError::schema());
    doc.components = Some(components);
    let error = |what: &str| {
        ResponseBuilder::new()
            .description(what)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(ApiError::name())))
                    .build(),
            )
            .build()
    };
    let bearer = SecurityRequirement::new("bearer", Vec::<String>::new());
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in [
            ("GET", item.get.as_mut()),
            ("POST", item.post.as_mut()),
            ("PUT", item.put.as_mut()),
            ("PATCH", item.patch.as_mut()),
            ("DELETE", item.delete.as_mut()),
        ] {
            let Some(op) = op else { continue };
            let roles = match principals::need(&method.parse().expect("a method"), path) {
                Some(principals::Need::Operator) => "operator".to_string(),
                Some(principals::Need::Tenant(roles)) => {
                    let mut r: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                    r.push("operator");
                    r.join(", ")
                }
                // Not in the table: the router refuses it; the consistency test fails first.
                None => "none (refused)".to_string(),
            };
            let note = format!("Roles: {roles}.");
            op.description = Some(match op.description.take() {
                Some(d) if !d.is_empty() => format!("{d}\n\n{note}"),
                _ => note,
            });
            op.security = Some(vec![bearer.clone()]);
            let responses = &mut op.responses.responses;
            let has_input =
                op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            if has_input {
                responses
                    .entry("400".into())
                    .or_insert_with(|| error("Bad input, naming the value").into());
            }
            if op.request_body.is_some() {
                responses.entry("413".into()).or_insert_with(|| {
                    ResponseBuilder::new()
                        .description("The body exceeds 1 MiB")
                        .build()
                        .into()
                });
                responses
                    .entry("415".into())
                    .or_insert_with(|| error("The body is not application/json").into());
                responses.entry("422".into()).or_insert_with(|| {
                    error("A field is unknown, missing or of the wrong type").into()
                });
            }
            responses
                .entry("401".into())
                .or_insert_with(|| error("No token, or not a valid one").into());
            responses
                .entry("403".into())
                .or_insert_with(|| error("The token's role or tenant does not admit this").into());
            if path.contains('{') {
                responses
                    .entry("404".into())
                    .or_insert_with(|| error("No such object").into());
            }
            responses
                .entry("default".into())
                .or_insert_with(|| error("Server trouble (database, spool)").into());
        }
    }
    doc.merge(base);
    doc
}
