//! HTTP API (actix-web).
