//! The observability stack as shipped in `observability/`: Docker cannot run here, so its files
//! are read and held to what the stack needs: every image pinned, a health check or a stated
//! reason, named volumes for every store, receivers bound to 0.0.0.0, traces to Tempo and logs
//! to Loki, datasources with the uids the dashboards and Flowscope's trace links use, and four
//! dashboards that parse. (`alert_pipeline.rs` runs the dashboards' queries on a real
//! Prometheus; the test command runs promtool and amtool on the Prometheus and Alertmanager
//! files.)

use std::collections::{BTreeMap, BTreeSet};

use common::{dashboards, panels, read_yaml, stack_file};
use flowscope::config::Config;
use serde_json::Value;
use serde_norway::Value as Yaml;

use crate::common;

fn str_of<'a>(v: &'a Yaml, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, found {v:?}"))
}

/// Services whose images hold a single static binary: no shell, no HTTP client, no probe
/// subcommand, so Docker cannot check them from inside (Prometheus scrapes them instead).
const NO_PROBE_POSSIBLE: &[&str] = &["otel-collector", "tempo"];

#[test]
fn compose_pins_images_checks_health_and_keeps_state_in_named_volumes() {
    let compose = read_yaml("docker-compose.yml");
    let services = compose["services"]
        .as_mapping()
        .expect("services in docker-compose.yml");
    let names: BTreeSet<&str> = services.keys().filter_map(|k| k.as_str()).collect();
    for needed in [
        "flowscope",
        "otel-collector",
        "tempo",
        "prometheus",
        "loki",
        "grafana",
        "alertmanager",
    ] {
        assert!(names.contains(needed), "service {needed} in {names:?}");
    }
    let declared: BTreeSet<&str> = compose["volumes"]
        .as_mapping()
        .expect("top-level volumes")
        .keys()
        .filter_map(|k| k.as_str())
        .collect();
    for (name, service) in services {
        let name = name.as_str().expect("service name");
        let image = str_of(&service["image"], &format!("{name}.image"));
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
        if service.get("build").is_none() {
            assert!(
                tag.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit() || c == 'v')
                    && tag.contains('.'),
                "{name}: image {image} is not pinned to a version"
            );
        }
        if NO_PROBE_POSSIBLE.contains(&name) {
            assert!(
                service.get("healthcheck").is_none(),
                "{name}: now probed, update the list"
            );
        } else {
            let test = &service["healthcheck"]["test"];
            assert!(
                test.as_sequence().is_some_and(|t| t.len() >= 2),
                "{name}: a healthcheck test command"
            );
        }
        let mut named = 0;
        for mount in service["volumes"].as_sequence().into_iter().flatten() {
            let mount = str_of(mount, &format!("{name}.volumes"));
            let source = mount.split(':').next().unwrap_or_default();
            if source.starts_with("./") {
                let file = stack_file(source.trim_start_matches("./"));
                assert!(
                    file.exists(),
                    "{name} mounts {source}, which is not shipped"
                );
            } else {
                assert!(
                    declared.contains(source),
                    "{name}: volume {source} is not a declared named volume"
                );
                named += 1;
            }
        }
        // Everything but the collector keeps state.
        if name != "otel-collector" {
            assert_eq!(named, 1, "{name}: its store on a named volume");
        }
        for (other, condition) in service["depends_on"].as_mapping().into_iter().flatten() {
            let other = other.as_str().unwrap_or_default();
            let condition = str_of(&condition["condition"], &format!("{name} → {other}"));
            if NO_PROBE_POSSIBLE.contains(&other) {
                assert_eq!(condition, "service_started", "{name} waits on {other}");
            } else {
                assert_eq!(condition, "service_healthy", "{name} waits on {other}");
            }
        }
    }
    // Alertmanager's token file is the secret made from Flowscope's token.
    let alertmanager = read_yaml("alertmanager/alertmanager.yml");
    let file = str_of(
        &alertmanager["receivers"][0]["webhook_configs"][0]["http_config"]["authorization"]
            ["credentials_file"],
        "credentials_file",
    );
    let secret = file.trim_start_matches("/run/secrets/");
    assert!(
        compose["secrets"][secret]["environment"].as_str() == Some("FLOWSCOPE_ALERT_TOKEN"),
        "the {secret} secret holds FLOWSCOPE_ALERT_TOKEN"
    );
}

/// Flowscope's own outage is announced without Flowscope: Alertmanager routes it (as `amtool`
/// reads the shipped file) to Slack directly, with the webhook URL Flowscope posts to, mounted
/// as a secret. Every port is published on loopback only (Flowscope puts itself behind a
/// proxy when it is meant to be reached from elsewhere), and Grafana's
/// anonymous visitors are Viewers.
#[test]
fn flowscope_down_bypasses_flowscope_and_only_flowscope_is_reachable_from_outside() {
    let config = stack_file("alertmanager/alertmanager.yml");
    let route = |labels: &[&str]| {
        let out = std::process::Command::new("amtool")
            .args(["config", "routes", "test", "--config.file"])
            .arg(&config)
            .args(labels)
            .output()
            .expect("Debian's amtool on PATH (scripts/setup.sh --test installs it)");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // Failing notifications are usually Flowscope's own webhook: they go around it too.
    for alert in [
        "FlowscopeDown",
        "FlowscopeMetricsAbsent",
        "AlertmanagerNotificationsFailing",
    ] {
        assert_eq!(
            route(&[&format!("alertname={alert}"), "severity=page"]),
            "slack-direct"
        );
    }
    // The dead man's switch goes to the outside heartbeat only, never to Flowscope or Slack.
    assert_eq!(route(&["alertname=Watchdog", "severity=none"]), "heartbeat");
    for alert in [
        "FlowscopeRunSuccessBudgetBurnFast",
        "FlowscopeRunsNotCompleting",
    ] {
        assert_eq!(
            route(&[&format!("alertname={alert}"), "severity=page"]),
            "flowscope"
        );
    }
    let alertmanager = read_yaml("alertmanager/alertmanager.yml");
    let receivers = alertmanager["receivers"].as_sequence().expect("receivers");
    let direct = receivers
        .iter()
        .find(|r| r["name"].as_str() == Some("slack-direct"))
        .expect("a slack-direct receiver");
    let file = str_of(&direct["slack_configs"][0]["api_url_file"], "api_url_file");
    let secret = file.trim_start_matches("/run/secrets/");
    let compose = read_yaml("docker-compose.yml");
    assert_eq!(
        compose["secrets"][secret]["environment"].as_str(),
        Some("FLOWSCOPE_SECRET_SLACK_WEBHOOK"),
        "the {secret} secret is the webhook notify-on-alert posts to"
    );
    let mounted: Vec<&str> = compose["services"]["alertmanager"]["secrets"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|s| s["source"].as_str())
        .collect();
    assert!(mounted.contains(&secret), "{mounted:?}");

    for (name, service) in compose["services"].as_mapping().expect("services") {
        let name = name.as_str().unwrap_or_default();
        for port in service["ports"].as_sequence().into_iter().flatten() {
            let port = str_of(port, name);
            assert!(
                port.starts_with("127.0.0.1:"),
                "{name} publishes {port} beyond this machine"
            );
        }
    }
    let grafana = &compose["services"]["grafana"]["environment"];
    assert_eq!(
        grafana["GF_AUTH_ANONYMOUS_ORG_ROLE"].as_str(),
        Some("Viewer")
    );
}

#[test]
fn the_compose_settings_start_flowscope() {
    let compose = read_yaml("docker-compose.yml");
    let env: std::collections::HashMap<String, String> = compose["services"]["flowscope"]
        ["environment"]
        .as_mapping()
        .expect("flowscope's environment as a mapping")
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
        .collect();
    let config = Config::from_sources(|k| env.get(k).cloned())
        .unwrap_or_else(|e| panic!("the compose file's settings do not start Flowscope: {e}"));
    assert!(
        !config.listen.ip().is_loopback(),
        "reachable by the other services"
    );
}

#[test]
fn receivers_listen_on_every_interface_and_signals_reach_their_stores() {
    let collector = read_yaml("otel-collector.yml");
    let otlp = &collector["receivers"]["otlp"]["protocols"];
    for (protocol, port) in [("grpc", 4317), ("http", 4318)] {
        assert_eq!(
            otlp[protocol]["endpoint"].as_str(),
            Some(format!("0.0.0.0:{port}").as_str()),
            "collector OTLP {protocol}"
        );
    }
    let pipelines = &collector["service"]["pipelines"];
    let exporter_endpoint = |pipeline: &str| -> Vec<String> {
        pipelines[pipeline]["exporters"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(|e| {
                let e = str_of(e, pipeline);
                str_of(&collector["exporters"][e]["endpoint"], e).to_string()
            })
            .collect()
    };
    assert_eq!(exporter_endpoint("traces"), vec!["tempo:4317"]);
    assert_eq!(exporter_endpoint("logs"), vec!["http://loki:3100/otlp"]);

    let tempo = read_yaml("tempo.yml");
    for protocol in ["grpc", "http"] {
        let endpoint = str_of(
            &tempo["distributor"]["receivers"]["otlp"]["protocols"][protocol]["endpoint"],
            "tempo receiver",
        );
        assert!(
            endpoint.starts_with("0.0.0.0:"),
            "tempo {protocol}: {endpoint}"
        );
    }
    assert_eq!(
        tempo["server"]["http_listen_address"].as_str(),
        Some("0.0.0.0")
    );
    let generator = &tempo["metrics_generator"];
    let remote = &generator["storage"]["remote_write"][0];
    assert_eq!(
        remote["url"].as_str(),
        Some("http://prometheus:9090/api/v1/write")
    );
    assert_eq!(remote["send_exemplars"].as_bool(), Some(true));
    let processors = format!("{:?}", tempo["overrides"]);
    for p in ["service-graphs", "span-metrics"] {
        assert!(processors.contains(p), "tempo generates {p}: {processors}");
    }

    let loki = read_yaml("loki.yml");
    assert_eq!(
        loki["server"]["http_listen_address"].as_str(),
        Some("0.0.0.0")
    );
    assert_eq!(
        loki["limits_config"]["allow_structured_metadata"].as_bool(),
        Some(true),
        "OTLP logs keep trace_id as structured metadata"
    );
}

#[test]
fn datasources_have_the_uids_that_dashboards_and_trace_links_use() {
    let provisioned = read_yaml("grafana/provisioning/datasources/datasources.yml");
    let by_uid: BTreeMap<String, Yaml> = provisioned["datasources"]
        .as_sequence()
        .expect("datasources")
        .iter()
        .map(|d| (str_of(&d["uid"], "uid").to_string(), d.clone()))
        .collect();
    // Flowscope's trace links name the Tempo datasource by this uid unless configured.
    let tempo_uid = Config::default().grafana_tempo_uid;
    assert!(
        by_uid.contains_key(&tempo_uid),
        "a Tempo datasource with uid {tempo_uid}"
    );
    let prometheus = &by_uid["prometheus"]["jsonData"]["exemplarTraceIdDestinations"][0];
    // Flowscope's exemplars carry the trace id under this label.
    assert_eq!(prometheus["name"].as_str(), Some("trace_id"));
    assert_eq!(
        prometheus["datasourceUid"].as_str(),
        Some(tempo_uid.as_str())
    );
    let tempo = &by_uid[&tempo_uid]["jsonData"];
    assert_eq!(
        tempo["tracesToLogsV2"]["datasourceUid"].as_str(),
        Some("loki")
    );
    assert_eq!(
        tempo["tracesToMetrics"]["datasourceUid"].as_str(),
        Some("prometheus")
    );
    assert_eq!(
        tempo["serviceMap"]["datasourceUid"].as_str(),
        Some("prometheus")
    );
    let derived = &by_uid["loki"]["jsonData"]["derivedFields"][0];
    assert_eq!(derived["datasourceUid"].as_str(), Some(tempo_uid.as_str()));

    // The provider reads the folder the compose file mounts the dashboards into.
    let provider = read_yaml("grafana/provisioning/dashboards/dashboards.yml");
    let path = str_of(
        &provider["providers"][0]["options"]["path"],
        "provider path",
    );
    let compose = read_yaml("docker-compose.yml");
    let mounts = format!("{:?}", compose["services"]["grafana"]["volumes"]);
    assert!(
        mounts.contains(&format!("./grafana/dashboards:{path}")),
        "grafana mounts the dashboards at {path}: {mounts}"
    );

    // Grafana-managed alerts reach Flowscope's intake with the token.
    let contact = read_yaml("grafana/provisioning/alerting/contact-points.yml");
    let settings = &contact["contactPoints"][0]["receivers"][0]["settings"];
    assert!(str_of(&settings["url"], "contact url").ends_with("/api/v1/alerts/alertmanager"));
    assert_eq!(settings["authorization_scheme"].as_str(), Some("Bearer"));
    assert_eq!(
        settings["authorization_credentials"].as_str(),
        Some("${FLOWSCOPE_ALERT_TOKEN}")
    );

    for (file, dashboard) in dashboards() {
        let mut uids = BTreeSet::new();
        collect_datasource_uids(&dashboard, &mut uids);
        for uid in uids {
            assert!(
                by_uid.contains_key(&uid) || uid.starts_with("-- "),
                "{file}: datasource uid {uid} is not provisioned"
            );
        }
    }
}

#[test]
fn four_dashboards_parse_with_unique_panels_variables_and_links_to_flowscope() {
    let all = dashboards();
    let titles: BTreeSet<String> = all
        .iter()
        .map(|(_, d)| d["title"].as_str().unwrap_or_default().to_string())
        .collect();
    for needed in [
        "Workflow overview",
        "Agent performance",
        "System health",
        "Cost tracking",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(needed)),
            "a dashboard titled {needed}: {titles:?}"
        );
    }
    let uids: BTreeSet<&str> = all.iter().filter_map(|(_, d)| d["uid"].as_str()).collect();
    assert_eq!(
        uids.len(),
        all.len(),
        "dashboard uids are fixed and distinct"
    );
    for (file, dashboard) in &all {
        let mut ids = BTreeSet::new();
        let panels = panels(dashboard);
        assert!(panels.len() >= 6, "{file}: {} panels", panels.len());
        for panel in &panels {
            let id = panel["id"]
                .as_i64()
                .unwrap_or_else(|| panic!("{file}: a panel without id"));
            assert!(ids.insert(id), "{file}: panel id {id} twice");
            assert!(
                panel["title"].as_str().is_some_and(|t| !t.is_empty()),
                "{file}: panel {id} has a title"
            );
        }
        let variables: BTreeSet<&str> = dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["name"].as_str())
            .collect();
        assert!(variables.contains("flowscope_url"), "{file}: {variables:?}");
        assert!(
            dashboard.to_string().contains("${flowscope_url}/runs"),
            "{file} links to Flowscope's runs"
        );
    }
    let by_title = |t: &str| {
        all.iter()
            .find(|(_, d)| d["title"].as_str().is_some_and(|x| x.contains(t)))
            .map(|(_, d)| d)
            .expect("dashboard")
    };
    let overview = by_title("Workflow overview");
    assert!(
        overview.to_string().contains("\"exemplar\":true"),
        "the overview's duration panels show exemplars"
    );
    for (title, variable) in [
        ("Workflow overview", "workflow"),
        ("Agent performance", "agent"),
        ("Cost tracking", "budget"),
    ] {
        let names: Vec<&str> = by_title(title)["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["name"].as_str())
            .collect();
        assert!(
            names.contains(&variable),
            "{title} has ${variable}: {names:?}"
        );
    }
}

/// Every `datasource: {uid}` in the JSON, except template references (`${…}`).
fn collect_datasource_uids(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            if let Some(uid) = map.get("datasource").and_then(|d| d["uid"].as_str()) {
                if !uid.starts_with('$') {
                    out.insert(uid.to_string());
                }
            }
            map.values().for_each(|x| collect_datasource_uids(x, out));
        }
        Value::Array(items) => items.iter().for_each(|x| collect_datasource_uids(x, out)),
        _ => {}
    }
}

/// Long-window SLO recordings (6 h and more) are evaluated once a minute, in a group of their
/// own; the short windows the fast-burn pages read stay at the global interval. promtool
/// evaluates every group at every step, so this is checked on the file.
#[test]
fn long_window_recordings_are_evaluated_less_often() {
    let slo = read_yaml("prometheus/rules/slo.yml");
    let groups = slo["groups"].as_sequence().expect("groups");
    let mut long = 0;
    for g in groups {
        for r in g["rules"].as_sequence().into_iter().flatten() {
            let name = r["record"].as_str().unwrap_or_default();
            let is_long = ["rate6h", "rate1d", "rate3d", "increase6h", "increase3d"]
                .iter()
                .any(|w| name.ends_with(w));
            let in_long = g["name"].as_str() == Some("flowscope-slo-recording-long");
            assert_eq!(is_long, in_long, "{name} in {:?}", g["name"]);
            long += usize::from(is_long);
        }
    }
    assert!(long >= 6, "{long} long-window recordings");
    let group = groups
        .iter()
        .find(|g| g["name"].as_str() == Some("flowscope-slo-recording-long"))
        .expect("the long-window group");
    assert_eq!(group["interval"].as_str(), Some("1m"));
}

/// Seconds of a Prometheus duration as the shipped files write them (`15s`, `1m`).
fn seconds(text: &str) -> u64 {
    let (n, unit) = text.split_at(text.len() - 1);
    let n: u64 = n.parse().unwrap_or_else(|_| panic!("a duration: {text}"));
    match unit {
        "s" => n,
        "m" => n * 60,
        _ => panic!("a duration in s or m: {text}"),
    }
}

/// Failure to notification in under a minute, by construction: a page without `for` fires at
/// the first evaluation after the scrape that holds the failure (it reads only recordings made
/// before it in its own group, see tests/latency_test.yml), then waits Alertmanager's
/// group_wait. Delivery through Flowscope gets what is left of the minute.
#[test]
fn the_worst_case_from_a_failure_to_a_page_is_under_a_minute() {
    let prometheus = read_yaml("prometheus/prometheus.yml");
    let scrape = seconds(str_of(&prometheus["global"]["scrape_interval"], "scrape"));
    let evaluation = seconds(str_of(
        &prometheus["global"]["evaluation_interval"],
        "evaluation",
    ));
    let alertmanager = read_yaml("alertmanager/alertmanager.yml");
    let route = &alertmanager["route"];
    // Pages take the default route (tickets and the watchdog have their own).
    let group_wait = seconds(str_of(&route["group_wait"], "group_wait"));
    let worst = scrape + evaluation + group_wait;
    assert!(
        worst <= 45,
        "scrape {scrape} + evaluation {evaluation} + group_wait {group_wait} s"
    );

    let slo = read_yaml("prometheus/rules/slo.yml");
    let mut pages = 0;
    for group in slo["groups"].as_sequence().expect("groups") {
        let rules = group["rules"].as_sequence().expect("rules");
        for (i, rule) in rules.iter().enumerate() {
            let immediate = rule["alert"].is_string() && rule["for"].is_null();
            if !immediate || rule["labels"]["severity"].as_str() != Some("page") {
                continue;
            }
            pages += 1;
            assert!(
                group["interval"].is_null(),
                "{:?} is evaluated at an interval of its own",
                rule["alert"]
            );
            let expr = str_of(&rule["expr"], "expr");
            for name in expr
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .filter(|w| w.starts_with("flowscope:"))
            {
                assert!(
                    rules[..i]
                        .iter()
                        .any(|r| r["record"].as_str() == Some(name)),
                    "{:?} reads {name}, which is not recorded before it in its group",
                    rule["alert"]
                );
            }
        }
    }
    assert_eq!(pages, 2, "the fast-burn pages of both SLOs");
}

/// The first `x.y.z` in a program's `--version` output.
fn version_of(program: &str) -> String {
    let out = std::process::Command::new(program)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{program} on PATH (scripts/setup.sh --test installs it): {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|w| w.matches('.').count() == 2)
        .unwrap_or_else(|| panic!("no version in {text}"))
        .to_string()
}

/// The stack runs what the tests run where it can: Alertmanager is the version the alert tests
/// drive (Debian's). Prometheus cannot be: the stack's metrics pipeline needs the OTLP receiver
/// (`--web.enable-otlp-receiver`, Prometheus 3), which Debian's 2.42 does not have; the rules
/// and the config are checked with its promtool, which reads them as 3 does.
#[test]
fn the_stack_pins_the_versions_the_tests_run_where_it_can() {
    let compose = read_yaml("docker-compose.yml");
    let image = |service: &str| {
        str_of(
            &compose["services"][service]["image"],
            &format!("{service}.image"),
        )
        .to_string()
    };
    let tested = version_of("prometheus-alertmanager");
    assert_eq!(
        image("alertmanager"),
        format!("prom/alertmanager:v{tested}")
    );
    let prometheus = image("prometheus");
    assert!(
        prometheus.starts_with("prom/prometheus:v3."),
        "{prometheus}"
    );
    let command: Vec<&str> = compose["services"]["prometheus"]["command"]
        .as_sequence()
        .expect("prometheus command")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert!(
        command.contains(&"--web.enable-otlp-receiver"),
        "{command:?}"
    );
}
