//! A minimal OTLP receiver: gRPC (tonic) and HTTP/protobuf (axum) on the `opentelemetry-proto`
//! types. `bench --telemetry` exports to it to measure the cost of export, and the telemetry
//! tests read what arrived. It runs on a thread and runtime of its own, so it keeps answering
//! while the caller blocks (flushing telemetry at shutdown does).

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

/// What arrived. Requests are kept only when asked for (tests); counts always.
#[derive(Default)]
pub struct Received {
    keep: bool,
    pub spans: usize,
    /// OTLP/HTTP trace bytes received without decoding (counting mode).
    pub bytes: usize,
    pub logs: usize,
    pub traces: Vec<ExportTraceServiceRequest>,
    pub log_requests: Vec<ExportLogsServiceRequest>,
}

impl Received {
    fn add_traces(&mut self, r: ExportTraceServiceRequest) {
        self.spans += r
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum::<usize>();
        if self.keep {
            self.traces.push(r);
        }
    }

    fn add_logs(&mut self, r: ExportLogsServiceRequest) {
        self.logs += r
            .resource_logs
            .iter()
            .flat_map(|rl| &rl.scope_logs)
            .map(|sl| sl.log_records.len())
            .sum::<usize>();
        if self.keep {
            self.log_requests.push(r);
        }
    }
}

type Shared = Arc<Mutex<Received>>;

fn lock(r: &Shared) -> MutexGuard<'_, Received> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running receiver.
pub struct Sink {
    /// OTLP/HTTP: `POST /v1/traces`, `POST /v1/logs`.
    pub http: SocketAddr,
    /// OTLP/gRPC.
    pub grpc: SocketAddr,
    received: Shared,
}

impl Sink {
    /// Spans (decoded: gRPC only when counting), log records, and OTLP/HTTP trace bytes
    /// received so far.
    pub fn counts(&self) -> (usize, usize, usize) {
        let r = lock(&self.received);
        (r.spans, r.logs, r.bytes)
    }

    /// Everything received (kept requests only with [`start_keeping`]).
    pub fn received(&self) -> MutexGuard<'_, Received> {
        lock(&self.received)
    }
}

#[derive(Clone)]
struct Grpc(Shared);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        lock(&self.0).add_traces(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        lock(&self.0).add_logs(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

async fn http_traces(
    State(r): State<Shared>,
    body: Bytes,
) -> Result<Vec<u8>, (axum::http::StatusCode, String)> {
    // Counting only (the benchmark): skip decoding, so the receiver's own CPU use stays out
    // of what is measured on the same machine.
    if !lock(&r).keep {
        lock(&r).bytes += body.len();
        return Ok(Vec::new());
    }
    let request = ExportTraceServiceRequest::decode(body).map_err(|e| {
        (
            axum::http::StatusCode::BAD_REQUEST,
            format!("not OTLP traces: {e}"),
        )
    })?;
    lock(&r).add_traces(request);
    Ok(ExportTraceServiceResponse::default().encode_to_vec())
}

async fn http_logs(
    State(r): State<Shared>,
    body: Bytes,
) -> Result<Vec<u8>, (axum::http::StatusCode, String)> {
    let request = ExportLogsServiceRequest::decode(body).map_err(|e| {
        (
            axum::http::StatusCode::BAD_REQUEST,
            format!("not OTLP logs: {e}"),
        )
    })?;
    lock(&r).add_logs(request);
    Ok(ExportLogsServiceResponse::default().encode_to_vec())
}

/// Starts a receiver that counts what arrives.
pub fn start() -> anyhow::Result<Sink> {
    start_with(false)
}

/// Starts a receiver that also keeps every request.
pub fn start_keeping() -> anyhow::Result<Sink> {
    start_with(true)
}

fn start_with(keep: bool) -> anyhow::Result<Sink> {
    let received: Shared = Arc::new(Mutex::new(Received {
        keep,
        ..Received::default()
    }));
    let shared = received.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("otlp-sink".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(anyhow::anyhow!("OTLP sink runtime: {e}")));
                    return;
                }
            };
            runtime.block_on(async move {
                let bound = async {
                    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                    Ok::<_, std::io::Error>((http, grpc))
                }
                .await;
                let (http, grpc) = match bound {
                    Ok(pair) => pair,
                    Err(e) => {
                        let _ = tx.send(Err(anyhow::anyhow!("OTLP sink bind: {e}")));
                        return;
                    }
                };
                let addrs = (http.local_addr(), grpc.local_addr());
                let _ = tx.send(match addrs {
                    (Ok(h), Ok(g)) => Ok((h, g)),
                    _ => Err(anyhow::anyhow!("OTLP sink has no local address")),
                });
                let service = Grpc(shared.clone());
                let grpc_server = tonic::transport::Server::builder()
                    .add_service(TraceServiceServer::new(service.clone()))
                    .add_service(LogsServiceServer::new(service))
                    .serve_with_incoming(tonic::transport::server::TcpIncoming::from(grpc));
                let app = Router::new()
                    .route("/v1/traces", post(http_traces))
                    .route("/v1/logs", post(http_logs))
                    .with_state(shared);
                let http_server = axum::serve(http, app);
                let _ = tokio::join!(grpc_server, http_server.into_future());
            });
        })?;
    let (http, grpc) = rx.recv()??;
    Ok(Sink {
        http,
        grpc,
        received,
    })
}
