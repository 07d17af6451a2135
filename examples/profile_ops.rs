//! Where the engine spends its time, per step, natively:
//! `cargo run --profile tool --example profile_ops [-- RUNS]`.
//! Prints, for both models, each step's median time, multiply-adds, bytes moved and
//! GMAC/s, so the dominant operators and whether they are compute- or memory-bound show.

use std::time::Instant;

use smile_factor::vision::nn::Net;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(50);
    let det = std::fs::read("models/tiny_face_detector.onnx")?;
    let expr = std::fs::read("models/face_expression.onnx")?;
    for (name, bytes, side) in [
        ("expression net", &expr, 112),
        ("detector", &det, 224),
        ("detector", &det, 416),
    ] {
        profile(name, bytes, side, runs)?;
    }
    Ok(())
}

fn profile(
    name: &str,
    bytes: &[u8],
    side: usize,
    runs: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut loads: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let _ = Net::load(bytes, &[1, 3, side, side]);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    loads.sort_by(f64::total_cmp);
    let net = Net::load(bytes, &[1, 3, side, side])?;
    let input: Vec<f32> = (0..3 * side * side)
        .map(|i| ((i * 7919) % 255) as f32 / 255.0 - 0.5)
        .collect();
    let clock = Instant::now();
    let now = || clock.elapsed().as_secs_f64() * 1e3;
    let mut per_step: Vec<Vec<f64>> = Vec::new();
    for run in 0..runs + 3 {
        let (_, times) = net.run_timed(input.clone(), now)?;
        if run >= 3 {
            per_step.resize(times.len(), Vec::new());
            for (v, t) in per_step.iter_mut().zip(times) {
                v.push(t);
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "\n{name} at {side}x{side}, median of {runs} runs (load: {:.1} ms, median of 5)",
        loads[2]
    );
    println!("| # | step | output | ms | MMAC | MB moved | GMAC/s |");
    println!("| ---: | --- | --- | ---: | ---: | ---: | ---: |");
    let mut total = 0.0;
    for (i, (info, times)) in net.describe().iter().zip(per_step.iter_mut()).enumerate() {
        let ms = median(times);
        total += ms;
        let rate = if ms > 0.0 {
            info.macs as f64 / ms / 1e6
        } else {
            0.0
        };
        println!(
            "| {i} | {} | {:?} | {ms:.3} | {:.1} | {:.2} | {rate:.1} |",
            info.label,
            info.out_shape,
            info.macs as f64 / 1e6,
            info.bytes as f64 / 1e6
        );
    }
    println!("| | total (sum of medians) | | {total:.2} | | | |");
    Ok(())
}
