//! A layered (Sugiyama-style) drawing of a workflow's DAG, left to right: used by the run
//! page and the builder, on the server and in the browser alike.
//!
//! 1. Layers: a step sits one layer right of its furthest dependency (longest path).
//! 2. An edge spanning several layers gets a dummy slot in each layer it crosses, so it is
//!    routed through its own gap and never through a node.
//! 3. Order within a layer: barycenter sweeps (down, then up), which removes most crossings.
//! 4. Coordinates: fixed-size boxes on a grid, each layer centred vertically.
//!
//! Every valid workflow lays out in bounded time and size: past [`MAX_DUMMIES`] dummy slots
//! (a long chain with edges skipping over most of it), long edges are drawn as one curve
//! instead of being routed through slots of their own.
//!
//! Input that is not a DAG (the builder draws while a person edits) still lays out: an edge
//! that closes a cycle is kept but ignored for layering.

/// Dummy slots a layout may add for long edges; beyond, they are drawn straight.
pub const MAX_DUMMIES: usize = 20_000;

/// Box size and gaps, in SVG user units.
pub const NODE_W: f64 = 168.0;
/// A node's height.
pub const NODE_H: f64 = 44.0;
const GAP_X: f64 = 56.0;
const GAP_Y: f64 = 18.0;
const MARGIN: f64 = 12.0;

/// A laid-out DAG: node boxes, routed edges and the drawing's size.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Top-left corner of each step's box, by step index.
    pub nodes: Vec<(f64, f64)>,
    /// The edges, routed.
    pub edges: Vec<Edge>,
    /// The drawing's width.
    pub width: f64,
    /// The drawing's height.
    pub height: f64,
}

/// A dependency `from → to`, drawn through `points` (from the right of `from` to the left of `to`).
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    /// The needed step's index.
    pub from: usize,
    /// The needing step's index.
    pub to: usize,
    /// The polyline it is drawn along.
    pub points: Vec<(f64, f64)>,
}

impl Edge {
    /// An SVG path: straight runs through dummy slots, smooth curves between layers.
    pub fn svg_path(&self) -> String {
        let mut d = String::new();
        for (i, &(x, y)) in self.points.iter().enumerate() {
            if i == 0 {
                d.push_str(&format!("M{x:.1},{y:.1}"));
            } else {
                let (px, py) = self.points[i - 1];
                let mx = (px + x) / 2.0;
                d.push_str(&format!(" C{mx:.1},{py:.1} {mx:.1},{y:.1} {x:.1},{y:.1}"));
            }
        }
        d
    }
}

/// Lays out `deps.len()` steps where `deps[i]` lists the steps step `i` needs.
pub fn layout(deps: &[Vec<usize>]) -> Layout {
    let n = deps.len();
    let layer = layers(deps);
    let depth = layer.iter().copied().max().map_or(0, |m| m + 1);

    // Slots: real steps, then dummies for long edges. `up[s]` are the slots feeding slot `s`.
    let mut slot_layer: Vec<usize> = layer.clone();
    let mut up: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut chains: Vec<(usize, usize, Vec<usize>)> = Vec::new();
    let needed: usize = deps
        .iter()
        .enumerate()
        .flat_map(|(to, needs)| {
            let layer = &layer;
            needs
                .iter()
                .filter(move |&&f| f < n)
                .map(move |&f| layer[to].saturating_sub(layer[f]).saturating_sub(1))
        })
        .sum();
    let route = needed <= MAX_DUMMIES;
    for (to, needs) in deps.iter().enumerate() {
        for &from in needs.iter().filter(|&&f| f < n) {
            let mut chain = vec![from];
            if !route && layer[from] < layer[to] {
                up[to].push(from);
            } else if layer[from] < layer[to] {
                let mut prev = from;
                for l in layer[from] + 1..layer[to] {
                    let dummy = slot_layer.len();
                    slot_layer.push(l);
                    up.push(vec![prev]);
                    chain.push(dummy);
                    prev = dummy;
                }
                up[to].push(prev);
            }
            chain.push(to);
            chains.push((from, to, chain));
        }
    }
    let mut down: Vec<Vec<usize>> = vec![Vec::new(); slot_layer.len()];
    for (s, ups) in up.iter().enumerate() {
        for &u in ups {
            down[u].push(s);
        }
    }

    // Initial order: by slot index (declaration order for real steps), then barycenter sweeps.
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for (s, &l) in slot_layer.iter().enumerate() {
        rows[l].push(s);
    }
    let mut pos = vec![0.0f64; slot_layer.len()];
    let place = |rows: &Vec<Vec<usize>>, pos: &mut Vec<f64>| {
        for row in rows {
            for (i, &s) in row.iter().enumerate() {
                pos[s] = i as f64;
            }
        }
    };
    place(&rows, &mut pos);
    for _ in 0..4 {
        for l in 1..depth {
            sort_by_barycenter(&mut rows[l], &up, &pos);
            place(&rows, &mut pos);
        }
        for l in (0..depth.saturating_sub(1)).rev() {
            sort_by_barycenter(&mut rows[l], &down, &pos);
            place(&rows, &mut pos);
        }
    }

    let tallest = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut xy = vec![(0.0, 0.0); slot_layer.len()];
    for (l, row) in rows.iter().enumerate() {
        let offset = (tallest - row.len()) as f64 * (NODE_H + GAP_Y) / 2.0;
        for (i, &s) in row.iter().enumerate() {
            xy[s] = (
                MARGIN + l as f64 * (NODE_W + GAP_X),
                MARGIN + offset + i as f64 * (NODE_H + GAP_Y),
            );
        }
    }

    let edges = chains
        .into_iter()
        .map(|(from, to, chain)| {
            let last = chain.len() - 1;
            let points = chain
                .iter()
                .enumerate()
                .flat_map(|(i, &s)| {
                    let (x, y) = xy[s];
                    let mid = y + NODE_H / 2.0;
                    if i == 0 {
                        vec![(x + NODE_W, mid)]
                    } else if i == last {
                        vec![(x, mid)]
                    } else {
                        // A dummy: pass straight through the slot a box would occupy.
                        vec![(x, mid), (x + NODE_W, mid)]
                    }
                })
                .collect();
            Edge { from, to, points }
        })
        .collect();

    let width = if depth == 0 {
        0.0
    } else {
        2.0 * MARGIN + depth as f64 * NODE_W + (depth - 1) as f64 * GAP_X
    };
    let height = if tallest == 0 {
        0.0
    } else {
        2.0 * MARGIN + tallest as f64 * NODE_H + (tallest - 1) as f64 * GAP_Y
    };
    Layout {
        nodes: xy.into_iter().take(n).collect(),
        edges,
        width,
        height,
    }
}

/// Longest-path layers; edges that close a cycle are ignored.
fn layers(deps: &[Vec<usize>]) -> Vec<usize> {
    const UNSEEN: u8 = 0;
    const OPEN: u8 = 1;
    const DONE: u8 = 2;
    let n = deps.len();
    let mut layer = vec![0usize; n];
    let mut state = vec![UNSEEN; n];
    for root in 0..n {
        if state[root] != UNSEEN {
            continue;
        }
        // Iterative DFS over `needs`: a step is finished once all its needs are.
        let mut stack = vec![(root, 0usize)];
        state[root] = OPEN;
        while let Some(&mut (s, ref mut next)) = stack.last_mut() {
            if let Some(&d) = deps[s].get(*next) {
                *next += 1;
                if d < n && state[d] == UNSEEN {
                    state[d] = OPEN;
                    stack.push((d, 0));
                }
            } else {
                layer[s] = deps[s]
                    .iter()
                    .filter(|&&d| d < n && state[d] == DONE)
                    .map(|&d| layer[d] + 1)
                    .max()
                    .unwrap_or(0);
                state[s] = DONE;
                stack.pop();
            }
        }
    }
    layer
}

fn sort_by_barycenter(row: &mut [usize], neighbours: &[Vec<usize>], pos: &[f64]) {
    let key = |s: usize| {
        let ns = &neighbours[s];
        if ns.is_empty() {
            pos[s]
        } else {
            ns.iter().map(|&u| pos[u]).sum::<f64>() / ns.len() as f64
        }
    };
    // Stable: ties keep their current order, so the drawing does not jitter between sweeps.
    let mut keyed: Vec<(f64, usize)> = row.iter().map(|&s| (key(s), s)).collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (slot, (_, s)) in row.iter_mut().zip(keyed) {
        *slot = s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlaps(a: (f64, f64), b: (f64, f64)) -> bool {
        (a.0 - b.0).abs() < NODE_W && (a.1 - b.1).abs() < NODE_H
    }

    fn assert_no_overlap(l: &Layout) {
        for i in 0..l.nodes.len() {
            for j in i + 1..l.nodes.len() {
                assert!(
                    !overlaps(l.nodes[i], l.nodes[j]),
                    "steps {i} and {j} overlap: {l:?}"
                );
            }
        }
    }

    /// No edge segment may pass through a box it does not start or end at.
    fn assert_edges_avoid_nodes(l: &Layout) {
        for e in &l.edges {
            for w in e.points.windows(2) {
                let ((x0, y0), (x1, y1)) = (w[0], w[1]);
                for (k, &(nx, ny)) in l.nodes.iter().enumerate() {
                    if k == e.from || k == e.to {
                        continue;
                    }
                    // Segments run between layers or straight through a dummy slot; sample them.
                    for t in 0..=20 {
                        let t = t as f64 / 20.0;
                        let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
                        let inside = x > nx + 0.5
                            && x < nx + NODE_W - 0.5
                            && y > ny + 0.5
                            && y < ny + NODE_H - 0.5;
                        assert!(!inside, "edge {}→{} crosses step {k}", e.from, e.to);
                    }
                }
            }
        }
    }

    #[test]
    fn a_chain_is_one_row_left_to_right() {
        let l = layout(&[vec![], vec![0], vec![1]]);
        assert_eq!(l.nodes[0].1, l.nodes[1].1);
        assert!(l.nodes[0].0 < l.nodes[1].0 && l.nodes[1].0 < l.nodes[2].0);
        assert_eq!(l.edges.len(), 2);
    }

    #[test]
    fn a_long_edge_is_routed_around_the_steps_between() {
        // a → b → c → d, and a → d directly: the direct edge must not cut through b or c.
        let l = layout(&[vec![], vec![0], vec![1], vec![2, 0]]);
        assert_no_overlap(&l);
        assert_edges_avoid_nodes(&l);
        let direct = l.edges.iter().find(|e| e.from == 0 && e.to == 3).unwrap();
        assert_eq!(
            direct.points.len(),
            2 + 2 * 2,
            "two dummy slots, entered and left"
        );
    }

    #[test]
    fn fan_out_and_join_have_no_overlaps_and_keep_layers() {
        let mut deps = vec![vec![]];
        deps.extend((0..30).map(|_| vec![0]));
        deps.push((1..=30).collect());
        deps.push(vec![0, 31]);
        let l = layout(&deps);
        assert_no_overlap(&l);
        assert_edges_avoid_nodes(&l);
        for (to, needs) in deps.iter().enumerate() {
            for &from in needs {
                assert!(
                    l.nodes[from].0 < l.nodes[to].0,
                    "{from} must be left of {to}"
                );
            }
        }
        assert!(l.width > 0.0 && l.height >= 30.0 * NODE_H);
    }

    #[test]
    fn a_layout_that_would_need_too_many_slots_draws_long_edges_straight() {
        // A 600-step chain where every step also needs the first: ~180,000 dummy slots.
        let n = 600;
        let deps: Vec<Vec<usize>> = (0..n)
            .map(|i| match i {
                0 => vec![],
                1 => vec![0],
                i => vec![i - 1, 0],
            })
            .collect();
        let l = layout(&deps);
        assert_eq!(l.nodes.len(), n);
        assert_eq!(l.edges.len(), 2 * n - 3);
        assert!(l.edges.iter().all(|e| e.points.len() == 2));
        assert_no_overlap(&l);
    }

    #[test]
    fn cycles_and_empty_input_still_lay_out() {
        let l = layout(&[vec![1], vec![0]]);
        assert_eq!(l.nodes.len(), 2);
        assert_no_overlap(&l);
        let empty = layout(&[]);
        assert_eq!((empty.width, empty.height), (0.0, 0.0));
    }

    #[test]
    fn svg_path_starts_at_the_source_and_ends_at_the_target() {
        let l = layout(&[vec![], vec![0]]);
        let d = l.edges[0].svg_path();
        let (x0, y0) = l.edges[0].points[0];
        assert!(d.starts_with(&format!("M{x0:.1},{y0:.1}")), "{d}");
        let (x1, y1) = *l.edges[0].points.last().unwrap();
        assert!(d.ends_with(&format!("{x1:.1},{y1:.1}")), "{d}");
    }
}
