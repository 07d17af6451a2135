//! Parity with face-api.js 1.7.15, natively: the same models and preprocessing must
//! give face-api's own numbers on the committed fixtures.

mod common;

use common::{check_crops, check_frames, check_grid, OurFace, RefBox, DETECTOR, EXPRESSION};
use smile_factor::{AnalyzerOptions, FaceAnalyzer, RgbaFrame};

fn analyzer(input_size: usize) -> FaceAnalyzer {
    let options = AnalyzerOptions {
        input_size,
        ..Default::default()
    };
    FaceAnalyzer::new(DETECTOR, EXPRESSION, options).expect("models load")
}

#[test]
fn expression_probabilities_match_face_api_on_crops() {
    let a = analyzer(224);
    let log = check_crops(|buf, w, h| a.classify_face(buf, w, h).expect("classify").to_array());
    println!("{}", log.join("\n"));
}

#[test]
fn raw_detector_grid_matches_face_api() {
    for size in [224, 320, 416] {
        let a = analyzer(size);
        let worst = check_grid(
            size,
            |buf, w, h| {
                a.detector_grid(&RgbaFrame::new(buf, w, h).unwrap())
                    .unwrap()
            },
            1e-3,
        );
        println!("grid @{size}: max |diff| {worst:.2e}");
    }
}

#[test]
fn whole_image_pipeline_matches_face_api() {
    for size in [224, 320, 416] {
        let a = analyzer(size);
        let log = check_frames(size, |buf, w, h| {
            a.analyze(buf, w, h)
                .expect("analyze")
                .into_iter()
                .map(|f| OurFace {
                    bbox: RefBox {
                        x: f.bbox.x,
                        y: f.bbox.y,
                        width: f.bbox.width,
                        height: f.bbox.height,
                    },
                    score: f.score,
                    expressions: f.expressions.to_array(),
                })
                .collect()
        });
        println!("{}", log.join("\n"));
    }
}

#[test]
fn huge_frames_are_scaled_down_not_rejected() {
    // A 640x480 frame blown up 6x to 3840x2880 (44 MB of RGBA) must give the same faces.
    let (buf, w, h) = common::rgba("frames/sample6_640x480.png");
    let k = 6u32;
    let (bw, bh) = (w * k, h * k);
    let mut big = vec![0u8; (bw * bh * 4) as usize];
    for y in 0..bh {
        for x in 0..bw {
            let s = (((y / k) * w + x / k) * 4) as usize;
            let d = ((y * bw + x) * 4) as usize;
            big[d..d + 4].copy_from_slice(&buf[s..s + 4]);
        }
    }
    let a = analyzer(416);
    let small = a.analyze(&buf, w, h).unwrap();
    let large = a.analyze(&big, bw, bh).unwrap();
    assert_eq!(small.len(), large.len());
    assert!(small.len() >= 2);
    for f in &small {
        let scaled = f.bbox.scale(k as f64, k as f64);
        let best = large
            .iter()
            .map(|g| g.bbox.iou(&scaled))
            .fold(0.0, f64::max);
        assert!(
            best > 0.8,
            "face {:?} lost when upscaled (best IoU {best})",
            f.bbox
        );
    }
}

/// The worker's warm-up leaves nothing behind: afterwards the numbers are face-api's
/// still (the nets reuse their buffers and scratch between runs), at any input size.
#[test]
fn warm_up_changes_no_result() {
    let a = analyzer(224);
    a.warm_up().expect("warm-up");
    check_crops(|buf, w, h| a.classify_face(buf, w, h).expect("classify").to_array());
    check_grid(
        224,
        |buf, w, h| {
            a.detector_grid(&RgbaFrame::new(buf, w, h).unwrap())
                .unwrap()
        },
        1e-3,
    );
    analyzer(64).warm_up().expect("warm-up at 64");
}
