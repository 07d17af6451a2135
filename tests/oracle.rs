//! Our engine (`src/vision/nn`) against tract-onnx, a general ONNX runtime written
//! independently of it: both models, every output the graph declares, on seeded random
//! tensors and on the fixture images, at every detector input size the product uses.
//! A new model, a new output (such as a smile head) or a kernel change is proved here
//! without face-api.js in the loop.
// tract is a native dev-dependency only: wasm-pack's test build skips this file.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{rgba, CROPS, DETECTOR, EXPRESSION};
use smile_factor::vision::frame::{Region, RgbaFrame};
use smile_factor::vision::nn::{proto, Net};
use smile_factor::vision::preprocess::{
    square_input, Padding, DETECTOR_MEAN_RGB, EXPRESSION_INPUT_SIZE, EXPRESSION_MEAN_RGB,
};
use std::sync::Arc;

use tract_onnx::prelude::*;

/// Largest absolute difference allowed between the two runtimes on any output value.
const TOLERANCE: f32 = 1e-4;
const DETECTOR_SIZES: [usize; 4] = [160, 224, 320, 416];
const FRAMES: [&str; 3] = ["sample1_640x480", "sample3_416x416", "sample6_640x480"];

/// tract's plan for the whole graph, every declared output, for one input shape.
fn tract_plan(bytes: &[u8], shape: &[usize]) -> Arc<TypedRunnableModel> {
    tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(bytes))
        .and_then(|m| m.with_input_fact(0, f32::fact(shape).into()))
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .expect("tract loads the model")
}

fn tract_run(plan: &Arc<TypedRunnableModel>, shape: &[usize], input: &[f32]) -> Vec<Vec<f32>> {
    let tensor = Tensor::from_shape(shape, input).expect("input tensor");
    plan.run(tvec![tensor.into()])
        .expect("tract runs")
        .iter()
        .map(|t| {
            t.to_plain_array_view::<f32>()
                .expect("f32 output")
                .iter()
                .copied()
                .collect()
        })
        .collect()
}

/// Reads one protobuf field: (field number, whole encoded field).
fn next_field(bytes: &[u8], at: usize) -> (u64, usize) {
    let varint = |mut i: usize| {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let b = bytes[i];
            v |= u64::from(b & 0x7f) << shift;
            i += 1;
            shift += 7;
            if b & 0x80 == 0 {
                return (v, i);
            }
        }
    };
    let (key, i) = varint(at);
    let end = match key & 7 {
        0 => varint(i).1,
        1 => i + 8,
        2 => {
            let (len, j) = varint(i);
            j + len as usize
        }
        5 => i + 4,
        w => panic!("wire type {w} in an ONNX file"),
    };
    (key >> 3, end)
}

/// The payload of a length-delimited field that starts at `start` and ends at `end`.
fn payload(bytes: &[u8], start: usize, end: usize) -> &[u8] {
    let mut i = start;
    while bytes[i] & 0x80 != 0 {
        i += 1;
    }
    i += 1;
    while bytes[i] & 0x80 != 0 {
        i += 1;
    }
    &bytes[i + 1..end]
}

fn put_field(out: &mut Vec<u8>, field: u64, data: &[u8]) {
    let mut put = |mut v: u64| loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    };
    put(field << 3 | 2);
    put(data.len() as u64);
    out.extend_from_slice(data);
}

/// A copy of the model whose graph lists output number `first` before the others. Our
/// engine computes a graph's first output, so this lets it compute each one in turn; the
/// nodes and weights are byte for byte the same.
fn with_output_first(model: &[u8], first: usize) -> Vec<u8> {
    const GRAPH: u64 = 7;
    const GRAPH_OUTPUT: u64 = 12;
    let mut out = Vec::with_capacity(model.len());
    let mut at = 0;
    while at < model.len() {
        let (field, end) = next_field(model, at);
        if field != GRAPH {
            out.extend_from_slice(&model[at..end]);
        } else {
            let graph = payload(model, at, end);
            let (mut outputs, mut rest) = (Vec::new(), Vec::new());
            let mut g = 0;
            while g < graph.len() {
                let (f, e) = next_field(graph, g);
                if f == GRAPH_OUTPUT {
                    outputs.push(&graph[g..e]);
                } else {
                    rest.extend_from_slice(&graph[g..e]);
                }
                g = e;
            }
            let chosen = outputs.remove(first);
            let mut reordered = chosen.to_vec();
            for o in outputs {
                reordered.extend_from_slice(o);
            }
            reordered.extend_from_slice(&rest);
            put_field(&mut out, GRAPH, &reordered);
        }
        at = end;
    }
    out
}

/// Both runtimes on one model at one input shape.
struct Pair {
    names: Vec<String>,
    ours: Vec<Net>,
    tract: Arc<TypedRunnableModel>,
    shape: Vec<usize>,
}

impl Pair {
    fn new(bytes: &[u8], shape: &[usize]) -> Pair {
        let names = proto::parse_model(bytes).expect("parses").outputs;
        assert!(!names.is_empty(), "the model declares no output");
        let ours = (0..names.len())
            .map(|i| {
                let reordered = with_output_first(bytes, i);
                let graph = proto::parse_model(&reordered).expect("reordered parses");
                assert_eq!(graph.outputs[0], names[i], "output {i} moved first");
                Net::load(&reordered, shape)
                    .unwrap_or_else(|e| panic!("our engine loads output {}: {e}", names[i]))
            })
            .collect();
        Pair {
            names,
            ours,
            tract: tract_plan(bytes, shape),
            shape: shape.to_vec(),
        }
    }

    /// Max |ours - tract| per output name on `input`; fails on a shape mismatch.
    fn compare(&self, input: &[f32]) -> Vec<(String, f32)> {
        let theirs = tract_run(&self.tract, &self.shape, input);
        assert_eq!(theirs.len(), self.names.len(), "tract's output count");
        self.names
            .iter()
            .zip(&self.ours)
            .zip(theirs)
            .map(|((name, net), theirs)| {
                let ours = net.run(input.to_vec()).expect("our engine runs");
                assert_eq!(ours.len(), theirs.len(), "output {name}: length");
                assert!(
                    ours.iter().all(|v| v.is_finite()),
                    "output {name}: non-finite"
                );
                let worst = ours
                    .iter()
                    .zip(&theirs)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                (name.clone(), worst)
            })
            .collect()
    }
}

/// Seeded xorshift64*: the same "random" tensors on every run, no extra dependency.
fn random_input(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let u = (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32;
            // The range preprocessing produces: (0..255 - mean) / 255.
            u * 1.0 - 0.46
        })
        .collect()
}

fn check(label: &str, results: Vec<(String, f32)>, log: &mut Vec<String>) {
    for (name, worst) in results {
        log.push(format!("{label:<40} {name:<24} max |diff| {worst:.2e}"));
        assert!(
            worst <= TOLERANCE,
            "{label}, output {name}: ours and tract differ by {worst:e} (> {TOLERANCE:e})"
        );
    }
}

#[test]
fn expression_net_agrees_with_tract_on_every_output() {
    let e = EXPRESSION_INPUT_SIZE;
    let pair = Pair::new(EXPRESSION, &[1, 3, e, e]);
    let mut log = Vec::new();
    for seed in 1..=3 {
        check(
            &format!("expression, random seed {seed}"),
            pair.compare(&random_input(3 * e * e, seed)),
            &mut log,
        );
    }
    for name in CROPS {
        let (buf, w, h) = rgba(&format!("crops/{name}.png"));
        let frame = RgbaFrame::new(&buf, w, h).unwrap();
        let input = square_input(
            &frame,
            Region::whole(&frame),
            Padding::Centered,
            e,
            EXPRESSION_MEAN_RGB,
        );
        check(
            &format!("expression, crops/{name}"),
            pair.compare(&input),
            &mut log,
        );
    }
    println!("{}", log.join("\n"));
}

#[test]
fn detector_agrees_with_tract_at_every_input_size() {
    let mut log = Vec::new();
    for size in DETECTOR_SIZES {
        let pair = Pair::new(DETECTOR, &[1, 3, size, size]);
        for seed in 1..=2 {
            check(
                &format!("detector {size}, random seed {seed}"),
                pair.compare(&random_input(3 * size * size, seed)),
                &mut log,
            );
        }
        for name in FRAMES {
            let (buf, w, h) = rgba(&format!("frames/{name}.png"));
            let frame = RgbaFrame::new(&buf, w, h).unwrap();
            let input = square_input(
                &frame,
                Region::whole(&frame),
                Padding::BottomRight,
                size,
                DETECTOR_MEAN_RGB,
            );
            check(
                &format!("detector {size}, frames/{name}"),
                pair.compare(&input),
                &mut log,
            );
        }
    }
    println!("{}", log.join("\n"));
}

/// The reordering the test relies on keeps the model intact: the rewritten file has the
/// same nodes, weights and outputs, only in another order.
#[test]
fn reordering_outputs_keeps_the_graph() {
    for bytes in [DETECTOR, EXPRESSION] {
        let original = proto::parse_model(bytes).unwrap();
        for i in 0..original.outputs.len() {
            let g = proto::parse_model(&with_output_first(bytes, i)).unwrap();
            assert_eq!(g.nodes, original.nodes);
            assert_eq!(g.initializers, original.initializers);
            assert_eq!(g.inputs, original.inputs);
            let mut want = original.outputs.clone();
            let first = want.remove(i);
            want.insert(0, first);
            assert_eq!(g.outputs, want);
        }
    }
}
