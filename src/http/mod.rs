//! HTTP API (actix-web). Handlers are thin: parse, authorize, call the engine, map the result.
//! Each module exposes `routes(api)`, its part of the one route list that both the router and
//! the OpenAPI document are built from (`openapi`); a test can mount exactly one with
//! `openapi::Mount::on(cfg, module::routes)`.

pub mod access_log;
pub mod admin;
pub mod assign;
mod assign_json;
pub mod auth;
pub(crate) mod body;
pub mod events;
mod events_direct;
mod events_json;
mod events_line;
pub mod experiments;
pub mod export;
pub mod exposures;
pub mod health;
mod keys;
pub mod layers;
pub mod metrics;
pub mod openapi;
pub mod problem;
mod problem_bodies;
pub mod query;
pub mod request_id;
pub mod request_span;
pub mod route_table;
pub mod sdk;
mod state;

use actix_web::web;

pub use body::{BodyReadTimeout, DEFAULT_BODY_READ_TIMEOUT_SECS};
pub use keys::Keys;
pub use layers::RequestLayers;
pub use problem::{ApiError, Problem};
pub use problem_bodies::problem_bodies;
pub use request_id::RequestId;
pub use request_span::RequestSpan;
pub use state::AppState;

/// Every route of the API, in the order they are mounted: the app mounts this list and
/// `GET /openapi.json` describes this list.
///
/// The hot routes first: actix's router tries the resources in mount order, a match of the
/// path against each (~240 instructions per resource tried), and one event per POST passed the
/// four admin routes and both assign routes before its own. The hot routes share no path with
/// any other route (`route_table`'s tests check it), so their place changes no match.
pub fn routes(api: &mut impl openapi::Routes) {
    assign::routes(api);
    events::routes(api);
    admin::routes(api);
    export::routes(api);
    exposures::routes(api);
    experiments::routes(api);
    health::routes(api);
    metrics::routes(api);
    sdk::routes(api);
    api.route::<openapi::__path_openapi_json, _, _>(openapi::openapi_json);
    // The dashboard's pages (src/ui/) are routes of this one list too.
    crate::ui::routes(api);
}

/// Mounts every route, the problem+json error handlers and the fallback for unknown routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(problem::query_error))
        .app_data(
            web::PathConfig::default().error_handler(|err, _req| {
                ApiError::BadRequest(format!("invalid path: {err}")).into()
            }),
        )
        .configure(|cfg| {
            openapi::Mount::on(cfg, routes);
        })
        .default_service(web::to(problem::no_route));
}
