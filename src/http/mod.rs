//! HTTP API (actix-web). Handlers are thin: parse, authorize, call the engine, map the result.
//! Each module registers its own routes with a `configure(cfg)`, so a route lives next to its
//! handler and [`configure`] below is the one list of what the server mounts.

pub mod admin;
pub mod assign;
pub mod auth;
mod body;
pub mod events;
pub mod experiments;
pub mod export;
pub mod health;
mod keys;
pub mod problem;
mod problem_bodies;
pub mod query;
mod state;

use actix_web::web;

pub use body::{BodyReadTimeout, DEFAULT_BODY_READ_TIMEOUT_SECS};
pub use keys::Keys;
pub use problem::{ApiError, Problem};
pub use problem_bodies::problem_bodies;
pub use state::AppState;

/// Mounts every route, the problem+json error handlers and the fallback for unknown routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(problem::query_error))
        .app_data(
            web::PathConfig::default().error_handler(|err, _req| {
                ApiError::BadRequest(format!("invalid path: {err}")).into()
            }),
        )
        .configure(admin::configure)
        .configure(assign::configure)
        .configure(events::configure)
        .configure(export::configure)
        .configure(experiments::configure)
        .configure(health::configure)
        .default_service(web::to(problem::no_route));
}
