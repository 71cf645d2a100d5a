//! The HTTP endpoint every service exposes: `/metrics` in the Prometheus/OpenMetrics text
//! format (via `prometheus-client`) and `/healthz` for load balancers and checkers.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::health::Health;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone)]
struct Shared {
    registry: Arc<Registry>,
    health: Arc<Health>,
}

/// Serves `/metrics` and `/healthz` on `listener` until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    health: Arc<Health>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(Shared { registry, health });
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

async fn metrics(State(s): State<Shared>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &s.registry) {
        Ok(()) => (StatusCode::OK, [(header::CONTENT_TYPE, OPENMETRICS)], body),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot encode metrics: {e}\n"),
        ),
    }
}

async fn healthz(State(s): State<Shared>) -> impl IntoResponse {
    let phase = s.health.phase();
    let status = if phase.is_serving() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, format!("{}\n", phase.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Phase;
    use prometheus_client::metrics::counter::Counter;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).await.unwrap();
        let status = resp[9..12].parse().unwrap();
        let body = resp.split_once("\r\n\r\n").unwrap().1.to_owned();
        (status, body)
    }

    #[tokio::test]
    async fn serves_metrics_and_health_by_phase() {
        let mut registry = Registry::with_prefix("svc");
        let health = Health::new(&mut registry);
        let hits = Counter::<u64>::default();
        registry.register("hits", "Hits seen", hits.clone());
        hits.inc_by(3);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            Arc::new(registry),
            health.clone(),
            stop.clone(),
        ));

        assert_eq!(get(addr, "/healthz").await, (503, "starting\n".into()));
        health.set(Phase::Ready);
        assert_eq!(get(addr, "/healthz").await, (200, "ready\n".into()));
        let (code, body) = get(addr, "/metrics").await;
        assert_eq!(code, 200);
        assert!(body.contains("svc_hits_total 3\n"), "{body}");
        assert!(body.contains("svc_ready 1\n"), "{body}");
        assert!(body.ends_with("# EOF\n"), "{body}");
        health.set(Phase::Draining);
        assert_eq!(get(addr, "/healthz").await, (503, "draining\n".into()));
        assert_eq!(get(addr, "/nope").await.0, 404);

        stop.cancel();
        server.await.unwrap().unwrap();
    }
}
