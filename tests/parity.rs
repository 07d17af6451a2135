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
    let log = check_crops(|buf, w, h| {
        a.classify_face(buf, w, h)
            .expect("classify")
            .expressions
            .to_array()
    });
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
    check_crops(|buf, w, h| {
        a.classify_face(buf, w, h)
            .expect("classify")
            .expressions
            .to_array()
    });
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

/// The smile head (the expression model's second output, trained on GENKI-4K dev):
/// real smiling fixture crops score above the threshold and above every neutral one,
/// neutral crops below it. The fixtures are not GENKI images.
#[test]
fn the_smile_head_scores_smiles_above_neutral_faces() {
    use smile_factor::challenge::verdict::DEFAULT_THRESHOLD;
    let a = analyzer(224);
    let smile = |name: &str| {
        let (buf, w, h) = common::rgba(&format!("crops/{name}.png"));
        let s = a.classify_face(&buf, w, h).expect("classify").smile;
        println!("{name}: smile {s:.4}");
        assert!((0.0..=1.0).contains(&s), "{name}: {s}");
        s
    };
    let smiles = ["smile_1", "smile_2", "smile_3"].map(smile);
    let neutral = ["neutral_1", "neutral_2", "neutral_3"].map(smile);
    let lowest_smile = smiles.iter().copied().fold(f32::INFINITY, f32::min);
    let highest_neutral = neutral.iter().copied().fold(0.0, f32::max);
    assert!(lowest_smile >= DEFAULT_THRESHOLD, "{smiles:?}");
    assert!(highest_neutral < DEFAULT_THRESHOLD, "{neutral:?}");
    assert!(lowest_smile > highest_neutral);
}

/// `classify_face`'s smile score is the mean of the crop's and its mirror image's, and
/// the two differ (the net is not mirror-symmetric), while the seven expressions stay
/// those of the crop as it is (checked against face-api above).
#[test]
fn classify_face_averages_the_crop_and_its_mirror() {
    use smile_factor::View;
    let a = analyzer(224);
    let (buf, w, h) = common::rgba("crops/mixed_1.png");
    let f = RgbaFrame::new(&buf, w, h).expect("frame");
    let whole = smile_factor::BoundingBox {
        x: 0.0,
        y: 0.0,
        width: w as f64,
        height: h as f64,
    };
    let score = |v| {
        a.classify_box(&f, &whole, v)
            .expect("classify")
            .expect("a crop")
    };
    let (as_is, mirrored) = (score(View::AsIs), score(View::Mirrored));
    let averaged = a.classify_face(&buf, w, h).expect("classify");
    assert!((as_is.smile - mirrored.smile).abs() > 1e-3);
    assert!((averaged.smile - 0.5 * (as_is.smile + mirrored.smile)).abs() < 1e-6);
    assert_eq!(averaged.expressions, as_is.expressions);
    assert_eq!(score(View::Averaged), averaged);
    // classifyFace's `mirror: false`: the crop as it is, one run.
    let one = a
        .classify_face_view(&buf, w, h, View::AsIs)
        .expect("classify");
    assert_eq!(one, as_is);
}
