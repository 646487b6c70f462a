//! `POST /api/v1/alerts/alertmanager`: Alertmanager's webhook. An authenticated notification
//! starts the configured notification workflow (by default the seeded `notify-on-alert`,
//! whose `notify` step posts to a Slack-compatible webhook).
//!
//! Alertmanager sends a group again on every `repeat_interval` and whenever an alert joins it.
//! Each alert is announced once per transition: firing, resolved, and firing again each go out
//! once; a repeat of the same state does not, nor a resolution whose firing was never
//! announced. The last state announced is stored ([`engine::store::Store::announce_alert`]),
//! so it holds across restarts and replicas.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use engine::executor::{Engine, EngineError, TriggerRequest};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::ApiState;
use crate::error::ApiError;

/// What a notification started: the run of the notification workflow, and how many alerts
/// it announces.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Announced {
    run: Option<engine::records::RunSummary>,
    announced: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// Where alerts go, from the config.
#[derive(Clone, Debug, Default)]
pub struct AlertIntake {
    /// The bearer token Alertmanager sends; none: the endpoint refuses everything.
    pub token: Option<String>,
    /// The workflow each notification starts.
    pub workflow: String,
    /// `FLOWSCOPE_PUBLIC_URL`: a workflow's failing runs are linked under it (Flowscope knows
    /// its own address better than a rule file does).
    pub public_url: String,
    /// Where the failing runs' traces are searched, when Grafana is configured.
    pub links: engine::links::TraceLinks,
}

impl AlertIntake {
    pub fn new(
        token: Option<String>,
        workflow: String,
        public_url: String,
        links: engine::links::TraceLinks,
    ) -> AlertIntake {
        AlertIntake {
            token,
            workflow,
            public_url,
            links,
        }
    }
}

/// The parts of Alertmanager's webhook payload (version 4) that are used. Grafana's webhook
/// contact point sends the same fields (and more) as version 1.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    version: String,
    group_key: String,
    status: String,
    #[serde(default)]
    common_annotations: HashMap<String, String>,
    #[serde(default, rename = "externalURL")]
    external_url: String,
    alerts: Vec<Alert>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Alert {
    status: String,
    #[serde(default)]
    labels: HashMap<String, String>,
    #[serde(default)]
    annotations: HashMap<String, String>,
    #[serde(default)]
    fingerprint: String,
}

pub fn router() -> Router<ApiState> {
    Router::new().route("/alerts/alertmanager", post(alertmanager))
}

#[utoipa::path(post, path = "/api/v1/alerts/alertmanager", tag = "alerts", request_body(content((Object = "application/json")), description = "Alertmanager's webhook payload (version 4), or Grafana's (version 1)"), responses((status = 202, body = Announced), (status = 200, description = "Every alert in it was announced already", body = Announced), (status = "default", description = "An error", body = crate::error::ErrorBody)), security(("bearer" = [])))]
async fn alertmanager(
    State(intake): State<AlertIntake>,
    State(engine): State<Engine>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let refused = |e: ApiError| {
        // Logged once here; Alertmanager retries, and the log says why it keeps failing.
        tracing::warn!(error = %e, "alert notification refused");
        e
    };
    let Some(expected) = intake.token.as_deref() else {
        return Err(refused(ApiError::Forbidden(
            "alert intake is off: set FLOWSCOPE_ALERT_TOKEN and send it as a bearer token".into(),
        )));
    };
    let sent = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !sent.is_some_and(|t| engine::webhook::constant_time_eq(t.as_bytes(), expected.as_bytes())) {
        return Err(refused(ApiError::Unauthorized(
            "missing or wrong bearer token (FLOWSCOPE_ALERT_TOKEN)".into(),
        )));
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(&body);
    let n: Notification = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        refused(ApiError::BadRequest(format!(
            "not an Alertmanager webhook payload: at {}: {}",
            e.path(),
            e.inner()
        )))
    })?;
    if !matches!(n.version.as_str(), "4" | "1") {
        return Err(refused(ApiError::BadRequest(format!(
            "webhook payload version \"{}\" is not supported (Alertmanager's 4 and Grafana's 1 are)",
            n.version
        ))));
    }
    let store = engine.store();
    let now = engine::store::now_ms();
    let mut fresh: Vec<&Alert> = Vec::new();
    for a in &n.alerts {
        if store
            .announce_alert(&n.group_key, &a.fingerprint, &a.status, now)
            .await?
        {
            fresh.push(a);
        }
    }
    if fresh.is_empty() {
        return Ok((
            StatusCode::OK,
            Json(Announced {
                run: None,
                announced: 0,
                reason: Some("every alert in it was announced already in this state".into()),
            }),
        ));
    }
    let status = if fresh.iter().any(|a| a.status == "firing") {
        "firing"
    } else {
        "resolved"
    };
    let mut inputs = Map::new();
    inputs.insert("status".into(), Value::String(status.into()));
    inputs.insert(
        "summary".into(),
        Value::String(summary(&n, &fresh, &intake, now)),
    );
    let triggered = engine
        .trigger(TriggerRequest {
            workflow_id: intake.workflow.clone(),
            inputs,
            trigger: "alert".into(),
            ..Default::default()
        })
        .await;
    if triggered.is_err() {
        // Take the announcement back: Alertmanager will retry, and this time it may go out.
        for a in &fresh {
            if let Err(e) = store
                .unannounce_alert(&n.group_key, &a.fingerprint, &a.status)
                .await
            {
                tracing::warn!(error = %e, "cannot take back an alert announcement");
            }
        }
    }
    let run = triggered.map_err(|e| {
        refused(match e {
            EngineError::Store(engine::store::StoreError::NotFound(_))
            | EngineError::Store(engine::store::StoreError::VersionNotFound { .. }) => {
                ApiError::Unprocessable(format!(
                    "the notification workflow \"{}\" does not exist (FLOWSCOPE_ALERT_WORKFLOW)",
                    intake.workflow
                ))
            }
            other => other.into(),
        })
    })?;
    tracing::info!(workflow.run.id = %run.id, alerts = fresh.len(), status = n.status, "alert notification started a run");
    Ok((
        StatusCode::ACCEPTED,
        Json(Announced {
            run: Some(run),
            announced: fresh.len(),
            reason: None,
        }),
    ))
}

/// One line for the message: the alerts' summaries (or names), how many, then where to look:
/// the workflow's failing runs (under this server's public URL), their traces in Grafana, the
/// dashboard, the runbook, and the alert itself.
fn summary(n: &Notification, alerts: &[&Alert], intake: &AlertIntake, now: i64) -> String {
    let mut names: Vec<String> = alerts
        .iter()
        .map(|a| {
            let name = a.labels.get("alertname").map_or("alert", String::as_str);
            match a
                .annotations
                .get("summary")
                .or_else(|| n.common_annotations.get("summary"))
            {
                Some(s) => format!("{name}: {s}"),
                None => name.to_string(),
            }
        })
        .collect();
    names.dedup();
    let mut text = names.iter().take(3).cloned().collect::<Vec<_>>().join("; ");
    if names.len() > 3 {
        text.push_str(&format!(" (and {} more)", names.len() - 3));
    }
    let link = |key: &str| {
        alerts
            .iter()
            .find_map(|a| a.annotations.get(key))
            .or_else(|| n.common_annotations.get(key))
            .filter(|u| !u.is_empty())
    };
    let workflow = alerts
        .iter()
        .find_map(|a| a.labels.get("workflow"))
        .filter(|w| !w.is_empty() && !w.contains(['"', '\\']));
    match workflow {
        Some(w) => text.push_str(&format!(
            " — failing runs: {}/runs?workflow={}&status=failed",
            intake.public_url.trim_end_matches('/'),
            engine::links::encode_component(w)
        )),
        None => {
            if let Some(runs) = link("runs_url") {
                text.push_str(&format!(" — failing runs: {runs}"));
            }
        }
    }
    if let (Some(w), Some(grafana)) = (workflow, &intake.links.grafana_url) {
        let query = format!(
            "{{ name = \"workflow.execute\" && span.workflow.id = \"{w}\" && span.workflow.run.status = \"failed\" }}"
        );
        text.push_str(&format!(
            " — traces: {}",
            engine::links::grafana_traceql_url(
                grafana,
                &intake.links.tempo_uid,
                &query,
                now - 3_600_000,
                now
            )
        ));
    }
    if let Some(dashboard) = link("dashboard_url") {
        text.push_str(&format!(" — dashboard: {dashboard}"));
    }
    if let Some(runbook) = link("runbook") {
        text.push_str(&format!(" — runbook: {runbook}"));
    }
    if !n.external_url.is_empty() {
        text.push_str(&format!(" — {}", n.external_url));
    }
    text
}
