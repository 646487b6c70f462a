//! Logging, tracing and OTLP export (SPEC §6), configured from the standard `OTEL_*` variables.
//!
//! Spans are `tracing` spans turned into OpenTelemetry spans by `tracing-opentelemetry`, so
//! every span has a trace id whether or not anything is exported: runs store it, histograms
//! carry it as an exemplar and the console log prints it. With no OTLP endpoint the sampler
//! drops every span (ids, no recording) and nothing is exported.
//!
//! Spans leave through [`otlp::wire`], which writes OTLP straight from the SDK's span
//! data (the SDK's own exporter costs twice as much per span); logs through the SDK's exporter.
//!
//! The SDK's batch processors export from plain threads, but the gRPC and HTTP exporters need a
//! Tokio reactor: [`OnRuntime`] polls every export inside a small runtime of its own, which also
//! keeps export work off the engine's runtime.

use anyhow::Context as _;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::logs::{LogBatch, LogExporter, SdkLoggerProvider};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use tokio_util::context::TokioContext;
use tracing_subscriber::filter::FilterExt as _;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Where telemetry goes, read from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSettings {
    /// `OTEL_SDK_DISABLED=true`: no OpenTelemetry at all (no span ids, nothing exported).
    pub disabled: bool,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; none: no export.
    pub endpoint: Option<String>,
    /// `grpc` or `http/protobuf` (the default).
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

impl OtlpSettings {
    /// Reads `OTEL_EXPORTER_OTLP_*`; an unsupported protocol is an error naming the variable.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<OtlpSettings> {
        let endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .filter(|e| !e.trim().is_empty());
        let mut protocol = Protocol::HttpProtobuf;
        for name in [
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        ] {
            if let Some(value) = var(name) {
                protocol = match value.trim() {
                    "grpc" => Protocol::Grpc,
                    "http/protobuf" => Protocol::HttpProtobuf,
                    other => anyhow::bail!(
                        "{name}: \"{other}\" is not supported; use \"grpc\" or \"http/protobuf\""
                    ),
                };
            }
        }
        let disabled =
            var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        Ok(OtlpSettings {
            disabled,
            endpoint,
            protocol,
        })
    }
}

/// The installed providers; [`Telemetry::shutdown`] flushes them.
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    logger: Option<SdkLoggerProvider>,
    /// Drives exports; dropped (without blocking) after the providers are shut down.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Telemetry {
    /// Installs the global subscriber: console log (with trace ids), spans, and — when an
    /// endpoint is configured — OTLP export of spans and logs.
    pub fn init() -> anyhow::Result<Telemetry> {
        let settings = OtlpSettings::from_env(|k| std::env::var(k).ok())?;
        let telemetry = Telemetry::build(&settings)?;
        let directives = std::env::var("RUST_LOG")
            .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn,opentelemetry=warn".into());
        telemetry
            .subscriber(&directives)
            .try_init()
            .context("cannot install the log subscriber")?;
        Ok(telemetry)
    }

    /// Console log (with trace ids) and OTLP logs filtered by `directives` (`RUST_LOG`
    /// syntax); spans at INFO and above whatever the log level, since runs store their ids.
    pub fn subscriber(&self, directives: &str) -> impl tracing::Subscriber + Send + Sync {
        let filter = || {
            EnvFilter::try_new(directives).unwrap_or_else(|e| {
                eprintln!("RUST_LOG: {e}; logging at info");
                EnvFilter::new("info")
            })
        };
        let spans = self.tracer.as_ref().map(|provider| {
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("flowscope"))
                // Per-span extras that cost time on every poll or span: busy/idle timing
                // (two clock reads per poll), source locations, thread and target names.
                .with_tracked_inactivity(false)
                .with_location(false)
                .with_threads(false)
                .with_target(false)
                .with_filter(
                    tracing_subscriber::filter::LevelFilter::INFO.and(
                        // A store operation is traced as part of what asked for it (a request, a
                        // run): alone (a heartbeat, a scheduler tick) it would be a trace of one
                        // span every few seconds. (No level of its own: the hint says so.)
                        tracing_subscriber::filter::DynFilterFn::new(|meta, cx| {
                            !(meta.is_span()
                                && meta.name() == "db.query"
                                && cx.lookup_current().is_none())
                        })
                        .with_max_level_hint(tracing_subscriber::filter::LevelFilter::TRACE),
                    ),
                )
        });
        // Logs go to stderr: stdout is for what a command prints (`bench` children's JSON).
        let console = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .event_format(WithTraceIds(
                tracing_subscriber::fmt::format().with_target(false),
            ))
            .with_filter(filter());
        // The OTLP log bridge must not see the exporters' own logs (a feedback loop). The
        // target filter states that it does not filter by level, and is joined to the level
        // filter so the layer's hint is the lower of the two. Without that, the whole
        // subscriber's maximum level is unknown, so it counts as TRACE, and every `debug!` of
        // every library (sqlx formats a line per query) is built and then dropped.
        let logs = self.logger.as_ref().map(|provider| {
            let targets = tracing_subscriber::filter::FilterFn::new(|meta| {
                let target = meta.target();
                !["opentelemetry", "hyper", "h2", "tonic", "tower", "reqwest"]
                    .iter()
                    .any(|t| target.starts_with(t))
            })
            .with_max_level_hint(tracing_subscriber::filter::LevelFilter::TRACE);
            opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(provider)
                .with_filter(filter().and(targets))
        });
        tracing_subscriber::registry()
            .with(spans)
            .with(console)
            .with(logs)
    }

    /// The providers for `settings`; the tracer provider becomes the global one (the engine's
    /// attempt and commit spans use it), the subscriber is left to the caller.
    pub fn build(settings: &OtlpSettings) -> anyhow::Result<Telemetry> {
        if settings.disabled {
            return Ok(Telemetry {
                tracer: None,
                logger: None,
                runtime: None,
            });
        }
        let resource = resource();
        let Some(endpoint) = settings.endpoint.clone() else {
            // Ids for every span, nothing recorded or exported.
            let tracer = SdkTracerProvider::builder()
                .with_resource(resource)
                .with_sampler(Sampler::AlwaysOff)
                .build();
            opentelemetry::global::set_tracer_provider(tracer.clone());
            return Ok(Telemetry {
                tracer: Some(tracer),
                logger: None,
                runtime: None,
            });
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-export")
            .enable_all()
            .build()
            .context("cannot start the OTLP export runtime")?;
        let handle = runtime.handle().clone();
        // tonic's channel is created inside a runtime context.
        let _entered = handle.enter();
        let (spans, logs) = build_exporters(settings.protocol, &endpoint)?;
        let tracer = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_batch_exporter(OnRuntime {
                inner: spans,
                handle: handle.clone(),
            })
            .build();
        // The engine makes its attempt and commit spans with the global tracer.
        opentelemetry::global::set_tracer_provider(tracer.clone());
        let logger = SdkLoggerProvider::builder()
            .with_resource(resource)
            .with_batch_exporter(OnRuntime {
                inner: logs,
                handle: handle.clone(),
            })
            .build();
        Ok(Telemetry {
            tracer: Some(tracer),
            logger: Some(logger),
            runtime: Some(runtime),
        })
    }

    /// Exports what is buffered and stops the providers. Blocking: call it outside async code
    /// or from `spawn_blocking`.
    pub fn shutdown(mut self) {
        if let Some(tracer) = self.tracer.take() {
            if let Err(e) = tracer.shutdown() {
                eprintln!("telemetry: flushing spans failed: {e}");
            }
        }
        if let Some(logger) = self.logger.take() {
            if let Err(e) = logger.shutdown() {
                eprintln!("telemetry: flushing logs failed: {e}");
            }
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// `service.name` is `flowscope` unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` say
/// otherwise; `service.version` is this build's.
fn resource() -> Resource {
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    let mut builder = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
        "service.version",
        env!("CARGO_PKG_VERSION"),
    ));
    if !named {
        builder = builder.with_service_name("flowscope");
    }
    builder.build()
}

fn build_exporters(
    protocol: Protocol,
    endpoint: &str,
) -> anyhow::Result<(
    otlp::wire::OtlpSpanExporter,
    opentelemetry_otlp::LogExporter,
)> {
    use opentelemetry_otlp::WithExportConfig;
    use otlp::wire::OtlpSpanExporter;
    let what = || format!("cannot set up OTLP export to {endpoint} (OTEL_EXPORTER_OTLP_ENDPOINT)");
    let base = endpoint.trim_end_matches('/');
    let var = |k: &str| std::env::var(k).ok();
    Ok(match protocol {
        Protocol::Grpc => (
            OtlpSpanExporter::grpc(base, var).with_context(what)?,
            opentelemetry_otlp::LogExporter::builder()
                .with_tonic()
                .with_endpoint(base)
                .build()
                .with_context(what)?,
        ),
        Protocol::HttpProtobuf => (
            OtlpSpanExporter::http(
                &signal_url(base, "traces", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
                var,
            )
            .with_context(what)?,
            opentelemetry_otlp::LogExporter::builder()
                .with_http()
                .with_endpoint(signal_url(base, "logs", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"))
                .build()
                .with_context(what)?,
        ),
    })
}

/// For HTTP the base endpoint gets `/v1/<signal>`; a signal-specific variable is used as is.
fn signal_url(base: &str, signal: &str, specific: &str) -> String {
    match std::env::var(specific) {
        Ok(url) if !url.is_empty() => url,
        _ => format!("{base}/v1/{signal}"),
    }
}

/// An exporter whose futures are polled inside `handle`'s runtime (see the module docs).
#[derive(Debug)]
struct OnRuntime<E> {
    inner: E,
    handle: tokio::runtime::Handle,
}

impl<E: SpanExporter> SpanExporter for OnRuntime<E> {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        TokioContext::new(self.inner.export(batch), self.handle.clone())
    }

    fn shutdown_with_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        let _entered = self.handle.enter();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: LogExporter> LogExporter for OnRuntime<E> {
    fn export(
        &self,
        batch: LogBatch<'_>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        TokioContext::new(self.inner.export(batch), self.handle.clone())
    }

    fn shutdown_with_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        let _entered = self.handle.enter();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The console format, with the current span's `trace_id` and `span_id` in front.
struct WithTraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let cx = opentelemetry::Context::current();
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            write!(
                writer,
                "trace_id={} span_id={} ",
                sc.trace_id(),
                sc.span_id()
            )?;
        }
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    /// With logs exported, the subscriber must still report DEBUG events disabled, or
    /// libraries build every such line only for it to be dropped (sqlx formats a line per
    /// query once it sees its level enabled).
    #[test]
    fn exporting_logs_leaves_filtered_levels_disabled() {
        let telemetry = Telemetry::build(&OtlpSettings {
            disabled: false,
            // Nothing listens there; nothing is sent before shutdown, which gives up quickly.
            endpoint: Some("http://127.0.0.1:9".into()),
            protocol: Protocol::HttpProtobuf,
        })
        .expect("providers");
        assert!(telemetry.logger.is_some(), "the log bridge is installed");
        let subscriber = telemetry.subscriber("info,sqlx=warn");
        // What `log` records are checked against (tracing-log sets `log`'s maximum from it).
        assert_eq!(
            tracing::Subscriber::max_level_hint(&subscriber),
            Some(tracing_subscriber::filter::LevelFilter::INFO)
        );
        tracing::subscriber::with_default(subscriber, || {
            assert!(!tracing::enabled!(target: "sqlx::query", tracing::Level::DEBUG));
            assert!(tracing::enabled!(target: "sqlx::query", tracing::Level::WARN));
            assert!(!tracing::enabled!(target: "flowscope", tracing::Level::DEBUG));
            assert!(tracing::enabled!(target: "flowscope", tracing::Level::INFO));
        });
        telemetry.shutdown();
    }

    #[test]
    fn otlp_settings_follow_the_standard_variables() {
        let none = OtlpSettings::from_env(env(&[])).expect("ok");
        assert_eq!(none.endpoint, None);
        assert!(!none.disabled);
        assert!(
            OtlpSettings::from_env(env(&[("OTEL_SDK_DISABLED", "TRUE")]))
                .expect("ok")
                .disabled
        );
        assert_eq!(none.protocol, Protocol::HttpProtobuf);
        let grpc = OtlpSettings::from_env(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]))
        .expect("ok");
        assert_eq!(grpc.endpoint.as_deref(), Some("http://collector:4317"));
        assert_eq!(grpc.protocol, Protocol::Grpc);
        let specific = OtlpSettings::from_env(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:4318"),
        ]))
        .expect("ok");
        assert_eq!(specific.endpoint.as_deref(), Some("http://b:4318"));
        let err = OtlpSettings::from_env(env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]))
            .expect_err("unsupported");
        assert!(
            err.to_string().contains("OTEL_EXPORTER_OTLP_PROTOCOL"),
            "{err}"
        );
    }
}
