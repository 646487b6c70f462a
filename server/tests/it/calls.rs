//! Sub-workflows over HTTP: the run JSON carries a run's outputs, its children and its
//! caller; a call cycle is refused on save with the path of the step that closes it.

use crate::common::hub::Hub;

use reqwest::StatusCode;
use serde_json::json;

const CHILD: &str = "id: sum-child
inputs:
  items: { type: array }
outputs:
  total: '{{ steps.sum.output }}'
steps:
  - { id: sum, agent: transform, with: { jq: '.inputs.items | add' } }
";

const PARENT: &str = "id: sum-parent
steps:
  - id: add
    agent: workflow
    with: { workflow: sum-child, inputs: { items: [1, 2, 3] } }
  - { id: report, agent: transform, needs: [add], with: { jq: '.steps.add.output.total' } }
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_json_links_caller_and_children_and_carries_outputs() {
    let hub = Hub::start().await;
    let client = hub.client();
    client.create(CHILD).await;
    client.create(PARENT).await;
    let parent = client.run("sum-parent", json!({})).await;
    assert_eq!(parent["status"], "succeeded", "{parent}");
    assert_eq!(
        parent["outputs"],
        json!({"report": 6}),
        "its last step's output"
    );
    let children = parent["children"].as_array().expect("children");
    assert_eq!(children.len(), 1, "{parent}");
    assert_eq!(children[0]["step_id"], "add");
    assert_eq!(children[0]["workflow_id"], "sum-child");
    assert_eq!(children[0]["status"], "succeeded");
    let child = client
        .get_run(children[0]["id"].as_str().expect("id"))
        .await;
    assert_eq!(
        child["caller"],
        json!({"run_id": parent["id"], "step_id": "add"})
    );
    assert_eq!(child["outputs"], json!({"total": 6}));
    assert_eq!(child["trigger"], "workflow");

    // sum-child calling sum-parent would close a cycle.
    let cyclic = format!("{CHILD}  - {{ id: back, agent: workflow, needs: [sum], with: {{ workflow: sum-parent }} }}\n");
    let (status, body) = client
        .put_yaml("/api/v1/workflows/sum-child", &cyclic)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["error"]["problems"][0]["path"], "steps[1].with.workflow",
        "{body}"
    );
    assert!(
        body["error"]["problems"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("sum-child → sum-parent → sum-child"),
        "{body}"
    );
    let (_, versions) = client.get("/api/v1/workflows/sum-child/versions").await;
    assert_eq!(
        versions.as_array().map(Vec::len),
        Some(1),
        "nothing stored: {versions}"
    );
}
