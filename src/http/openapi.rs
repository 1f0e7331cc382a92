//! The API contract: `GET /openapi.json`, an OpenAPI 3.1 document built from the handlers'
//! own `#[utoipa::path]` annotations and the `ToSchema` types they serialize.
//!
//! Drift is ruled out by construction rather than caught by review: a route reaches the router
//! only through [`Routes::route`], which takes the handler's `#[utoipa::path]` type and mounts
//! the handler at exactly the path and methods that annotation declares; the document is made by
//! running the very same route list (`http::routes`) into a [`Document`] instead of a [`Mount`].
//! A route without an annotation does not compile; a path or method changed in the annotation
//! moves the route with it.

use std::sync::OnceLock;

use actix_web::http::Method;
use actix_web::{FromRequest, Handler, HttpRequest, HttpResponse, Resource, Responder, web};
use utoipa::openapi::path::{HttpMethod, Paths};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, OpenApi as OpenApiDocument, RefOr};
use utoipa::{Modify, OpenApi};

use super::problem::{Problem, wrong_method};

/// The schemas a `#[utoipa::path]` operation refers to (request and response bodies and
/// everything they contain). utoipa implements this (hidden) trait on every path type; its own
/// router companion (`utoipa-axum`) collects schemas through it the same way.
use utoipa::__dev::SchemaReferences;

/// Security scheme names, as `#[utoipa::path(security(...))]` refers to them.
pub const ADMIN_KEY: &str = "admin_key";
pub const EVENTS_KEY: &str = "events_key";
pub const ASSIGN_KEY: &str = "assign_key";
pub const METRICS_KEY: &str = "metrics_key";

/// The one way to add a route: `handler` is mounted at the path and methods of its
/// `#[utoipa::path]` type `P` (`__path_<handler>`).
pub trait Routes {
    fn route<P, F, Args>(&mut self, handler: F) -> &mut Self
    where
        P: utoipa::Path + SchemaReferences,
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static;
}

/// Mounts routes on an actix `ServiceConfig`. Routes that share a path share one resource, so
/// a method none of them serves is a 405 problem (with `Allow`), not a fall-through to another
/// resource.
pub struct Mount {
    /// Per path: its resource and the methods it serves.
    resources: Vec<(String, Resource, Vec<Method>)>,
    /// `(path, method)` of every route mounted, in order: what the route tests compare with
    /// the document.
    mounted: Vec<(String, Method)>,
}

impl Mount {
    /// Runs `routes` and registers what they mounted on `cfg`.
    pub fn on(
        cfg: &mut web::ServiceConfig,
        routes: impl FnOnce(&mut Self),
    ) -> Vec<(String, Method)> {
        let mut mount = Self {
            resources: Vec::new(),
            mounted: Vec::new(),
        };
        routes(&mut mount);
        for (_, resource, methods) in mount.resources {
            let allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
            let allow = allow.join(", ");
            cfg.service(resource.default_service(web::to(move |req: HttpRequest| {
                let response = wrong_method(&req, &allow);
                async move { response }
            })));
        }
        mount.mounted
    }
}

impl Routes for Mount {
    fn route<P, F, Args>(&mut self, handler: F) -> &mut Self
    where
        P: utoipa::Path + SchemaReferences,
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let path = P::path();
        let index = match self.resources.iter().position(|(p, ..)| *p == path) {
            Some(index) => index,
            None => {
                let resource = web::resource(path.as_str());
                self.resources.push((path.clone(), resource, Vec::new()));
                self.resources.len() - 1
            }
        };
        let (path, mut resource, mut methods) = self.resources.remove(index);
        for method in P::methods() {
            let method = actix_method(&method);
            self.mounted.push((path.clone(), method.clone()));
            methods.push(method.clone());
            resource = resource.route(web::route().guard(MethodIs(method)).to(handler.clone()));
        }
        self.resources.insert(index, (path, resource, methods));
        self
    }
}

/// The route's method guard. actix's own (`web::method`) also records every method it was
/// checked against in the request's extensions (a map entry and a vector per request, two
/// allocations), for its default 405 answer's `Allow`; [`Mount`] answers 405 itself, with
/// the methods it mounted, so that record was never read.
struct MethodIs(Method);

impl actix_web::guard::Guard for MethodIs {
    fn check(&self, ctx: &actix_web::guard::GuardContext<'_>) -> bool {
        ctx.head().method == self.0
    }
}

fn actix_method(method: &HttpMethod) -> Method {
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

/// Collects the operations and schemas of the routes instead of mounting them.
#[derive(Default)]
pub struct Document {
    paths: Paths,
    schemas: Vec<(String, RefOr<Schema>)>,
}

impl Routes for Document {
    fn route<P, F, Args>(&mut self, _handler: F) -> &mut Self
    where
        P: utoipa::Path + SchemaReferences,
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.paths
            .add_path_operation(P::path(), P::methods(), P::operation());
        P::schemas(&mut self.schemas);
        self
    }
}

/// The parts of the document no handler owns: title, version, tags, security schemes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "banditd",
        description = "Multi-armed-bandit experimentation server: Thompson sampling over \
                       YAML-defined experiments. Every error is `application/problem+json` \
                       (RFC 7807). A route guarded by a key is open while that key is unset; \
                       the admin key opens every guarded route.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "assign", description = "Which variant a unit sees"),
        (name = "events", description = "Reward events from pipelines"),
        (name = "experiments", description = "Reports, history and exports for analysts"),
        (name = "admin", description = "Operator routes: reload, configuration, store"),
        (name = "health", description = "Liveness and readiness probes"),
        (name = "meta", description = "This document, the metrics scrape and the browser client"),
    ),
    components(schemas(Problem)),
    modifiers(&KeySchemes),
)]
struct ApiInfo;

/// The three bearer keys, as `BANDITD_*_KEY` configures them (`auth.rs`).
struct KeySchemes;

impl Modify for KeySchemes {
    fn modify(&self, openapi: &mut OpenApiDocument) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, variable, guards) in [
            (
                ADMIN_KEY,
                "BANDITD_ADMIN_KEY",
                "the admin routes; it also opens every other guarded route. While it is unset \
                 the admin routes are open",
            ),
            (
                EVENTS_KEY,
                "BANDITD_EVENTS_KEY",
                "`POST /v1/events` and the exports; while it is unset they are open",
            ),
            (
                ASSIGN_KEY,
                "BANDITD_ASSIGN_KEY",
                "the assign routes; while it is unset (the default: browsers call them) they \
                 are open",
            ),
            (
                METRICS_KEY,
                "BANDITD_METRICS_KEY",
                "`GET /metrics`; while it is unset the admin key guards it, and with neither \
                 set it is open",
            ),
        ] {
            let mut scheme = Http::new(HttpAuthScheme::Bearer);
            scheme.description = Some(format!(
                "`Authorization: Bearer <key>` with the key set in {variable}; guards {guards}."
            ));
            components.add_security_scheme(name, SecurityScheme::Http(scheme));
        }
    }
}

/// Builds the document of the routes `routes` adds.
pub fn document(routes: impl FnOnce(&mut Document)) -> OpenApiDocument {
    let mut collected = Document::default();
    routes(&mut collected);
    let mut api = ApiInfo::openapi();
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    api.paths = collected.paths;
    let mut components = api.components.take().unwrap_or_default();
    let extra = ComponentsBuilder::new()
        .schemas_from_iter(collected.schemas)
        .build();
    components.schemas.extend(extra.schemas);
    api.components = Some(components);
    api
}

/// The served document, built once from the app's own route list.
fn served_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        document(super::routes).to_json().unwrap_or_else(|error| {
            // Serializing plain structs of strings and maps cannot fail; were it to, the
            // route still answers (an empty document) and the log says why.
            tracing::error!(%error, "cannot serialize the OpenAPI document");
            String::from("{}")
        })
    })
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this server",
         content_type = "application/json", body = Object),
    ),
)]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(served_json())
}

#[cfg(test)]
#[path = "openapi_tests.rs"]
mod tests;
