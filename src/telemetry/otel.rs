//! Span export over OTLP/HTTP (protobuf), compiled only with the `otel` cargo feature. The
//! batch processor sends from its own thread with a blocking client, so the actix workers never
//! wait on the collector; a collector that is down costs dropped spans, never requests.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::registry::LookupSpan;

use super::TelemetryError;

/// The path of the traces signal under an OTLP/HTTP base URL (OTLP exporter specification,
/// "Endpoint URLs for OTLP/HTTP").
const TRACES_PATH: &str = "/v1/traces";

/// `--otlp-endpoint` is a base URL, like `OTEL_EXPORTER_OTLP_ENDPOINT`: the traces path is
/// appended unless it is already there.
fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim().trim_end_matches('/');
    if base.ends_with(TRACES_PATH) {
        base.to_owned()
    } else {
        format!("{base}{TRACES_PATH}")
    }
}

/// The tracer provider exporting to `endpoint`, as service `banditd`.
pub fn provider(endpoint: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(traces_url(endpoint))
        .build()
        .map_err(|error| TelemetryError::Otlp {
            endpoint: endpoint.to_owned(),
            reason: error.to_string(),
        })?;
    let resource = Resource::builder()
        .with_service_name(env!("CARGO_PKG_NAME"))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The `tracing` layer that turns spans into OpenTelemetry spans of `provider`.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer(env!("CARGO_PKG_NAME")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_a_base_url_that_gets_the_traces_path() {
        assert_eq!(
            traces_url("http://collector:4318"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/v1/traces"),
            "http://collector:4318/v1/traces"
        );
    }
}
