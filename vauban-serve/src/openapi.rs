//! `GET /openapi.json`: the API described (OpenAPI 3.1, from the handlers'
//! annotations), so clients can be generated and the API fuzzed.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The API's description.
#[derive(OpenApi)]
#[openapi(
    info(title = "vauban serve", description = "Builds on request and on schedule, their history and live logs; deployments and the hosts' boots. (The routes firmware and hosts call, /boot/ipxe, /boot/blobs/DIGEST and POST /hosts/NAME/drift, are told in the README.)"),
    paths(
        crate::api::submit,
        crate::api::list,
        crate::api::get,
        crate::api::log,
        crate::api::events,
        crate::api::cancel,
        crate::api::retry,
        crate::api::masters,
        crate::boot::routes::deploy,
        crate::boot::routes::rollback,
        crate::boot::routes::deployments,
        crate::boot::routes::hosts,
        crate::boot::routes::host,
        crate::boot::drift::list,
        crate::boot::drift::diff,
        crate::diffs::api,
        crate::metrics::metrics,
    ),
    modifiers(&Bearer),
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
