//! Any acyclic graph (as validation accepts) is laid out without a panic, every box inside the
//! drawing, every edge between the steps it names.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, edges)) = data.split_first() else {
        return;
    };
    let n = usize::from(n) + 1;
    // Each byte pair is an edge from the lower index to the higher: acyclic by construction.
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); n];
    for pair in edges.chunks_exact(2) {
        let (a, b) = (usize::from(pair[0]) % n, usize::from(pair[1]) % n);
        if a != b && !deps[a.max(b)].contains(&a.min(b)) {
            deps[a.max(b)].push(a.min(b));
        }
    }
    let l = engine::layout::layout(&deps);
    assert_eq!(l.nodes.len(), n);
    for &(x, y) in &l.nodes {
        assert!(x.is_finite() && y.is_finite() && x >= 0.0 && y >= 0.0);
        assert!(x + engine::layout::NODE_W <= l.width + 1e-6, "{x} in {}", l.width);
        assert!(y + engine::layout::NODE_H <= l.height + 1e-6, "{y} in {}", l.height);
    }
    let wanted: usize = deps.iter().map(Vec::len).sum();
    assert_eq!(l.edges.len(), wanted);
    for e in &l.edges {
        assert!(deps[e.to].contains(&e.from));
    }
});
