//! Per-operator profile of both optimised tract plans:
//! `cargo run --profile tool --example profile_ops [-- ROUNDS]`.
//! Times every node of the plan (detector at 224 and 416 on a 640x480 frame, expression
//! net on a 112x112 crop) and prints, per op kind, the median ms per call, its share of
//! the model, and the bytes each call moves through node inputs and outputs (tensors
//! handed between nodes; weights held inside an op are not counted). Then the ten
//! slowest nodes. GB/s is bytes over time: far below an elementwise op's rate means the
//! op is bound by its own loop, not by memory (IntoShape is a view, so its rate is
//! meaningless). Native and single-threaded: it shows where the time goes, not what
//! Chromium measures.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::time::Instant;

use smile_factor::frame::{Region, RgbaFrame};
use smile_factor::preprocess::{
    square_input, Padding, DETECTOR_MEAN_RGB, EXPRESSION_INPUT_SIZE, EXPRESSION_MEAN_RGB,
};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::{eval, SimpleState};

const DETECTOR: &[u8] = include_bytes!("../models/tiny_face_detector.onnx");
const EXPRESSION: &[u8] = include_bytes!("../models/face_expression.onnx");
const FRAME: &[u8] = include_bytes!("../tests/fixtures/frames/sample6_640x480.png");
const CROP: &[u8] = include_bytes!("../tests/fixtures/crops/smile_1.png");
const WARMUP: usize = 5;

type Error = Box<dyn std::error::Error>;

/// Same steps as `src/model.rs`: parse, pin input 0, optimise, freeze into a plan.
fn load(bytes: &[u8], input_shape: &[usize]) -> TractResult<std::sync::Arc<TypedSimplePlan>> {
    tract_onnx::onnx()
        .model_for_read(&mut Cursor::new(bytes))?
        .with_input_fact(0, f32::fact(input_shape).into())?
        .into_optimized()?
        .into_runnable()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Bytes of plain tensors. Packed matmul operands are exotic tensors and not counted, so
/// OptMatMul rows undercount; their OptMatMulPack rows show the unpacked side.
fn bytes(ts: &[TValue]) -> usize {
    ts.iter()
        .filter(|t| t.is_plain())
        .map(|t| t.len() * t.datum_type().size_of())
        .sum()
}

fn mib(b: usize) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// One node as seen during a call.
struct NodeInfo {
    name: String,
    op: String,
    shapes: String,
    detail: String,
    bytes: usize,
}

fn profile(title: &str, bytes_: &[u8], input: Tensor, rounds: usize) -> Result<(), Error> {
    let shape = input.shape().to_vec();
    let plan = load(bytes_, &shape)?;
    let nodes = plan.order_without_consts().len();

    // Plain whole-model time, without the per-node clock, as the reference.
    let mut plain: Vec<f64> = Vec::with_capacity(rounds);
    for i in 0..WARMUP + rounds {
        let t = Instant::now();
        std::hint::black_box(plan.run(tvec!(input.clone().into()))?);
        if i >= WARMUP {
            plain.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }

    let mut state = SimpleState::new(&plan)?;
    let mut info: BTreeMap<usize, NodeInfo> = BTreeMap::new();
    // ms per node id, one entry per timed call.
    let mut per_node: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut whole: Vec<f64> = Vec::with_capacity(rounds);
    for i in 0..WARMUP + rounds {
        let timed = i >= WARMUP;
        let t = Instant::now();
        let out = state.run_plan_with_eval(tvec!(input.clone().into()), |ctx, st, node, ins| {
            let in_bytes = bytes(&ins);
            let in_shapes: Vec<String> = ins.iter().map(|t| format!("{:?}", t.shape())).collect();
            let t = Instant::now();
            let outs = eval(ctx, st, node, ins)?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            if timed {
                per_node.entry(node.id).or_default().push(ms);
                info.entry(node.id).or_insert_with(|| NodeInfo {
                    name: node.name.clone(),
                    op: node.op.name().to_string(),
                    shapes: format!(
                        "{} -> {}",
                        in_shapes.join(" "),
                        outs.iter()
                            .map(|t| format!("{:?}", t.shape()))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                    detail: node.op.info().map(|i| i.join(", ")).unwrap_or_default(),
                    bytes: in_bytes + bytes(&outs),
                });
            }
            TractResult::Ok(outs)
        })?;
        std::hint::black_box(out);
        if timed {
            whole.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }

    // Per op kind: sum the kind's nodes within each call, then take the median over calls.
    let mut kinds: BTreeMap<&str, (usize, Vec<f64>, usize)> = BTreeMap::new();
    for (id, n) in &info {
        let e = kinds
            .entry(n.op.as_str())
            .or_insert((0, vec![0.0; rounds], 0));
        e.0 += 1;
        e.2 += n.bytes;
        for (acc, ms) in e.1.iter_mut().zip(&per_node[id]) {
            *acc += ms;
        }
    }
    let whole_med = median(&mut whole);
    let plain_med = median(&mut plain);
    let mut node_sum: Vec<f64> = (0..rounds)
        .map(|r| per_node.values().map(|v| v[r]).sum())
        .collect();
    let node_sum_med = median(&mut node_sum);
    let total_bytes: usize = info.values().map(|n| n.bytes).sum();

    println!(
        "\n## {title}: input {shape:?}, {nodes} plan nodes, {rounds} calls after {WARMUP} warm-up"
    );
    println!(
        "whole model median: {plain_med:.2} ms (plain run), {whole_med:.2} ms (instrumented), \
         sum of nodes {node_sum_med:.2} ms; tensors moved {:.1} MiB per call",
        mib(total_bytes)
    );
    let mut rows: Vec<(&str, usize, f64, usize)> = kinds
        .into_iter()
        .map(|(k, (count, mut ms, b))| (k, count, median(&mut ms), b))
        .collect();
    rows.sort_by(|a, b| b.2.total_cmp(&a.2));
    // Medians do not add up; shares are of the sum of the kind medians so they total 100%.
    let kind_sum: f64 = rows.iter().map(|r| r.2).sum();
    println!("sum of op-kind medians {kind_sum:.2} ms (the base of the share column)");
    println!("| op kind                  | count | median ms | share | MiB moved | GB/s |");
    println!("|--------------------------|-------|-----------|-------|-----------|------|");
    for (k, count, ms, b) in &rows {
        println!(
            "| {k:<24} | {count:>5} | {ms:>9.3} | {:>4.1}% | {:>9.2} | {:>4.1} |",
            100.0 * ms / kind_sum,
            mib(*b),
            *b as f64 / (ms * 1e6).max(1e-9),
        );
    }

    let mut top: Vec<(usize, f64)> = per_node
        .iter_mut()
        .map(|(id, v)| (*id, median(v)))
        .collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("top 10 nodes:");
    println!("| median ms | share | MiB  | op               | node: input shapes -> output shapes");
    println!("|-----------|-------|------|------------------|------------------------------------");
    for (id, ms) in top.iter().take(10) {
        let n = &info[id];
        println!(
            "| {ms:>9.3} | {:>4.1}% | {:>4.2} | {:<16} | {}: {}",
            100.0 * ms / kind_sum,
            mib(n.bytes),
            n.op,
            n.name,
            n.shapes
        );
        if !n.detail.is_empty() {
            println!(
                "|           |       |      |                  |   {}",
                n.detail
            );
        }
    }
    Ok(())
}

fn rgba(png: &[u8]) -> Result<(Vec<u8>, u32, u32), image::ImageError> {
    let img = image::load_from_memory(png)?.to_rgba8();
    let (w, h) = img.dimensions();
    Ok((img.into_raw(), w, h))
}

fn main() -> Result<(), Error> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(50)
        .max(1);
    let (frame, fw, fh) = rgba(FRAME)?;
    let frame = RgbaFrame::new(&frame, fw, fh)?;
    let (crop, cw, ch) = rgba(CROP)?;
    let crop = RgbaFrame::new(&crop, cw, ch)?;
    println!("native tract profile, single thread, per-node medians over {rounds} calls");
    for size in [224, 416] {
        let input = square_input(
            &frame,
            Region::whole(&frame),
            Padding::BottomRight,
            size,
            DETECTOR_MEAN_RGB,
        )?;
        profile(
            &format!("detector at {size} (640x480 frame)"),
            DETECTOR,
            input,
            rounds,
        )?;
    }
    let e = EXPRESSION_INPUT_SIZE;
    let input = square_input(
        &crop,
        Region::whole(&crop),
        Padding::Centered,
        e,
        EXPRESSION_MEAN_RGB,
    )?;
    profile("expression net (112x112 crop)", EXPRESSION, input, rounds)?;
    Ok(())
}
