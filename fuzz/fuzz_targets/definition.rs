//! Any text as a workflow file: parsing and validation answer problems, never panic, and a
//! workflow they accept can be laid out (the run page and the builder draw it).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match engine::model::Workflow::parse(text) {
        Ok(workflow) => {
            let steps = workflow.steps();
            let index = |id: &str| steps.iter().position(|s| s.id == id);
            let deps: Vec<Vec<usize>> = steps
                .iter()
                .map(|s| s.needs.iter().filter_map(|n| index(n)).collect())
                .collect();
            let _ = engine::layout::layout(&deps);
        }
        Err(problems) => assert!(!problems.is_empty(), "a refusal names at least one problem"),
    }
});
