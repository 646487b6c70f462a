//! The example workflows (SPEC §2), kept as YAML files in `workflows/examples/` and compiled
//! in, so a fresh database shows both a success (`hello`) and a failure (`always-fails`).

/// `(file name, YAML text)` of every example, in the order they are seeded.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "hello.yaml",
        include_str!("../../workflows/examples/hello.yaml"),
    ),
    (
        "always-fails.yaml",
        include_str!("../../workflows/examples/always-fails.yaml"),
    ),
    (
        "fan-out.yaml",
        include_str!("../../workflows/examples/fan-out.yaml"),
    ),
    (
        "branches.yaml",
        include_str!("../../workflows/examples/branches.yaml"),
    ),
    (
        "http-status.yaml",
        include_str!("../../workflows/examples/http-status.yaml"),
    ),
    (
        "notify-on-alert.yaml",
        include_str!("../../workflows/examples/notify-on-alert.yaml"),
    ),
    (
        "notify-failure.yaml",
        include_str!("../../workflows/examples/notify-failure.yaml"),
    ),
    (
        "gated-deploy.yaml",
        include_str!("../../workflows/examples/gated-deploy.yaml"),
    ),
    (
        "greet-team.yaml",
        include_str!("../../workflows/examples/greet-team.yaml"),
    ),
];
