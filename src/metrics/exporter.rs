//! The scrape: every instrument and the scrape-time collector, in the Prometheus text format
//! (version 0.0.4) as `prometheus-client` encodes it.

use std::sync::Arc;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::registry::Registry;

use super::Metrics;
use super::collector::EngineCollector;
use crate::engine::Engine;

/// What `GET /metrics` renders: one per running application.
#[derive(Debug)]
pub struct Exporter {
    registry: Registry,
}

impl Exporter {
    /// The `Content-Type` of [`Exporter::render`]'s text.
    pub const CONTENT_TYPE: &'static str = prometheus_text::CONTENT_TYPE;

    pub fn new(metrics: &Metrics, engine: Arc<Engine>) -> Self {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        registry.register_collector(Box::new(EngineCollector { engine }));
        Self { registry }
    }

    /// The current values, as text.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(16 * 1024);
        prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}
