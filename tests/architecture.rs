//! The rooms of `src/` and their one-way arrows, checked by reading the code (cargo cannot
//! state rules between modules of one crate):
//! - `vision/` knows nothing of logins or the browser;
//! - `challenge/` knows nothing of pixels or the browser: a frame reaches it as a smile
//!   score (`Option<f32>`), the only seam, so it names no vision type at all;
//! - inside each room the modules' references form no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// Paths a room must not name, with why.
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "vision",
        &[
            "crate::challenge",
            "crate::web",
            "web_sys",
            "wasm_bindgen",
            "js_sys",
        ],
    ),
    (
        "challenge",
        &[
            "crate::vision",
            "crate::web",
            "web_sys",
            "wasm_bindgen",
            "js_sys",
        ],
    ),
];

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("read src dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The file's code lines with line numbers: comments (`//`, `///`, `//!`) left out, so
/// a doc link that names another room is not an arrow.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    let text = fs::read_to_string(path).expect("read source");
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split("//").next().unwrap_or("").to_owned()))
        .filter(|(_, l)| !l.trim().is_empty())
        .collect()
}

/// The top-level module of `room` a file belongs to (`challenge/verdict.rs` -> `verdict`,
/// `vision/nn/kernels.rs` -> `nn`); `None` for the room's `mod.rs`.
fn module_of(room: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(room).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    let name = first.trim_end_matches(".rs").to_owned();
    (name != "mod").then_some(name)
}

#[test]
fn rooms_name_nothing_across_their_walls() {
    let mut breaches = Vec::new();
    for (room, forbidden) in FORBIDDEN {
        let files = rust_files(&Path::new(SRC).join(room));
        assert!(!files.is_empty(), "src/{room} has no files");
        for file in files {
            for (n, line) in code_lines(&file) {
                for bad in *forbidden {
                    if line.contains(bad) {
                        breaches.push(format!("{}:{n}: names {bad}", file.display()));
                    }
                }
            }
        }
    }
    assert!(
        breaches.is_empty(),
        "arrows against the layout:\n{}",
        breaches.join("\n")
    );
}

/// A cycle in `edges`, as the list of modules around it, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(2) => return None,
            Some(1) => {
                let start = path.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(node.to_owned(), 1);
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if let Some(c) = visit(node, edges, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

/// Module -> the modules of the same room it names (`crate::<room>::<module>` paths).
fn room_graph(room: &str) -> BTreeMap<String, BTreeSet<String>> {
    let dir = Path::new(SRC).join(room);
    let prefix = format!("crate::{room}::");
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&dir) {
        let Some(from) = module_of(&dir, &file) else {
            continue;
        };
        let targets = edges.entry(from.clone()).or_default();
        for (_, line) in code_lines(&file) {
            for (i, _) in line.match_indices(&prefix) {
                let to: String = line[i + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !to.is_empty() && to != from {
                    targets.insert(to);
                }
            }
        }
    }
    edges
}

#[test]
fn modules_inside_each_room_form_no_cycle() {
    for room in ["vision", "challenge"] {
        let edges = room_graph(room);
        assert!(edges.len() > 3, "{room}: too few modules read: {edges:?}");
        if let Some(cycle) = find_cycle(&edges) {
            panic!(
                "{room}: modules import each other in a circle: {}",
                cycle.join(" -> ")
            );
        }
    }
}

#[test]
fn the_challenge_arrows_are_the_documented_ones() {
    let edges = room_graph("challenge");
    let names = |m: &str| edges.get(m).cloned().unwrap_or_default();
    // The leaves everything else builds on.
    assert!(
        names("outcome").is_empty(),
        "outcome names {:?}",
        names("outcome")
    );
    assert!(
        names("effects").is_empty(),
        "effects names {:?}",
        names("effects")
    );
    // The feed's rules (a lost camera, frozen frames) are timing on plain numbers.
    assert!(names("feed").is_empty(), "feed names {:?}", names("feed"));
    // So is the analysis budget: clock times and scores in, a yes or no out.
    assert!(
        names("pacing").is_empty(),
        "pacing names {:?}",
        names("pacing")
    );
    // The verdict and the way back do not know the config that tunes them.
    assert!(!names("verdict").contains("config"));
    assert!(!names("redirect").contains("config"));
    assert!(!names("redirect").contains("verdict"));
    // And the config does use both (so the check above reads real edges).
    assert!(names("config").contains("redirect") && names("config").contains("verdict"));
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&edges), None);
    edges.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&edges).map(|c| c.len()), Some(4));
}
