//! Trace links (SPEC §6): a run or step opens its trace in Grafana Explore when Grafana is
//! configured, else the run's own timeline. Pure string building, so the UI computes the same
//! links on the server and in the browser.

use serde::{Deserialize, Serialize};
use serde_json::json;

/// Where trace links point; `None` in [`TraceLinks::grafana_url`] means "no Grafana".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceLinks {
    /// `FLOWSCOPE_GRAFANA_URL`: no trace links without it.
    pub grafana_url: Option<String>,
    /// The uid of Grafana's Tempo data source.
    pub tempo_uid: String,
}

/// Slack around a run's time range, so the trace's first and last spans are inside it.
const RANGE_PAD_MS: i64 = 60_000;

impl TraceLinks {
    /// The link for a run (`span_id` None) or one step attempt of it.
    ///
    /// `from_ms`/`to_ms` bound the run; an unfinished run's range ends an hour after its start.
    pub fn link(
        &self,
        run_id: &str,
        trace_id: Option<&str>,
        span_id: Option<&str>,
        from_ms: i64,
        to_ms: Option<i64>,
    ) -> String {
        match (&self.grafana_url, trace_id) {
            (Some(base), Some(trace)) if !trace.is_empty() => grafana_explore_url(
                base,
                &self.tempo_uid,
                trace,
                span_id,
                from_ms - RANGE_PAD_MS,
                to_ms.unwrap_or(from_ms + 3_600_000) + RANGE_PAD_MS,
            ),
            // The run page's own timeline, where every attempt is a row.
            _ => format!("/runs/{}#timeline", encode_component(run_id)),
        }
    }

    /// Whether links leave Flowscope for Grafana.
    pub fn to_grafana(&self) -> bool {
        self.grafana_url.is_some()
    }
}

/// Grafana Explore on one trace: the schema-v1 `panes` URL with a TraceQL query for the trace
/// id, the span selected in the trace view, and a time range in epoch milliseconds.
pub fn grafana_explore_url(
    base: &str,
    tempo_uid: &str,
    trace_id: &str,
    span_id: Option<&str>,
    from_ms: i64,
    to_ms: i64,
) -> String {
    explore(base, tempo_uid, trace_id, span_id, from_ms, to_ms)
}

/// Grafana Explore on a TraceQL search (`{ span.workflow.id = "x" && … }`) over a time range:
/// where an alert's message sends a person to see the failing runs' traces.
pub fn grafana_traceql_url(
    base: &str,
    tempo_uid: &str,
    query: &str,
    from_ms: i64,
    to_ms: i64,
) -> String {
    explore(base, tempo_uid, query, None, from_ms, to_ms)
}

fn explore(
    base: &str,
    tempo_uid: &str,
    query: &str,
    span_id: Option<&str>,
    from_ms: i64,
    to_ms: i64,
) -> String {
    let mut pane = json!({
        "datasource": tempo_uid,
        "queries": [{
            "refId": "A",
            "datasource": { "type": "tempo", "uid": tempo_uid },
            "queryType": "traceql",
            "query": query,
        }],
        "range": { "from": from_ms.to_string(), "to": to_ms.to_string() },
    });
    if let Some(span) = span_id {
        pane["panelsState"] = json!({ "trace": { "spanId": span } });
    }
    let panes = json!({ "flowscope": pane }).to_string();
    format!(
        "{}/explore?schemaVersion=1&panes={}&orgId=1",
        base.trim_end_matches('/'),
        encode_component(&panes)
    )
}

/// `encodeURIComponent`: everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )` percent-encoded.
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reverses [`encode_component`] (and any other percent-encoding); `None` on a bad escape or
/// bytes that are not UTF-8.
pub fn decode_component(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    /// Splits the URL the way Grafana's router does and parses `panes` as Explore does.
    fn panes_of(url: &str) -> (String, Vec<(String, String)>, Value) {
        let (path, query) = url.split_once('?').expect("a query string");
        let params: Vec<(String, String)> = query
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("key=value");
                (k.to_string(), decode_component(v).expect("valid escapes"))
            })
            .collect();
        let panes = params
            .iter()
            .find(|(k, _)| k == "panes")
            .map(|(_, v)| serde_json::from_str(v).expect("panes is JSON"))
            .expect("a panes parameter");
        (path.to_string(), params, panes)
    }

    #[test]
    fn explore_url_has_the_schema_v1_panes_grafana_parses() {
        let links = TraceLinks {
            grafana_url: Some("http://grafana.local:3000/".into()),
            tempo_uid: "tempo".into(),
        };
        let url = links.link(
            "r1",
            Some(TRACE),
            Some(SPAN),
            1_700_000_000_000,
            Some(1_700_000_005_000),
        );
        let (path, params, panes) = panes_of(&url);
        assert_eq!(path, "http://grafana.local:3000/explore");
        assert!(params.contains(&("schemaVersion".into(), "1".into())));
        assert!(params.contains(&("orgId".into(), "1".into())));
        // Only unreserved characters are left unescaped: the JSON survives any URL parser.
        let raw = url.split("panes=").nth(1).unwrap_or_default();
        assert!(!raw.contains(['{', '"', ':', ',', ' ', '}']), "{raw}");
        let panes = panes.as_object().expect("object");
        assert_eq!(panes.len(), 1);
        let pane = panes.values().next().expect("one pane");
        assert_eq!(pane["datasource"], "tempo");
        let query = &pane["queries"][0];
        assert_eq!(query["refId"], "A");
        assert_eq!(query["queryType"], "traceql");
        assert_eq!(query["query"], TRACE);
        assert_eq!(query["datasource"]["type"], "tempo");
        assert_eq!(query["datasource"]["uid"], "tempo");
        assert_eq!(pane["panelsState"]["trace"]["spanId"], SPAN);
        // The range covers the run with a minute either side, as epoch-millisecond strings.
        assert_eq!(pane["range"]["from"], "1699999940000");
        assert_eq!(pane["range"]["to"], "1700000065000");
    }

    #[test]
    fn run_link_selects_no_span_and_uses_the_configured_datasource() {
        let links = TraceLinks {
            grafana_url: Some("https://g.example/grafana".into()),
            tempo_uid: "tempo-prod".into(),
        };
        let url = links.link("r1", Some(TRACE), None, 1_000_000, None);
        let (path, _, panes) = panes_of(&url);
        assert_eq!(path, "https://g.example/grafana/explore");
        let pane = &panes["flowscope"];
        assert!(pane.get("panelsState").is_none());
        assert_eq!(pane["queries"][0]["datasource"]["uid"], "tempo-prod");
        assert_eq!(
            pane["range"]["to"],
            (1_000_000 + 3_600_000 + 60_000).to_string()
        );
    }

    #[test]
    fn without_grafana_or_a_trace_links_open_the_run_timeline() {
        let none = TraceLinks::default();
        assert_eq!(
            none.link("r 1", Some(TRACE), Some(SPAN), 0, None),
            "/runs/r%201#timeline"
        );
        let grafana = TraceLinks {
            grafana_url: Some("http://g".into()),
            tempo_uid: "tempo".into(),
        };
        assert_eq!(grafana.link("r1", None, None, 0, None), "/runs/r1#timeline");
    }
}
