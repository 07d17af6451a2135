//! Bad input gets a typed error naming the problem, never a panic; huge frames work.

use smile_factor::{AnalyzerOptions, FaceAnalyzer, SmileError};

const DETECTOR: &[u8] = include_bytes!("../models/tiny_face_detector.onnx");
const EXPRESSION: &[u8] = include_bytes!("../models/face_expression.onnx");

fn small() -> AnalyzerOptions {
    AnalyzerOptions {
        input_size: 224,
        ..Default::default()
    }
}

fn load_err(detector: &[u8], expression: &[u8]) -> SmileError {
    match FaceAnalyzer::new(detector, expression, small()) {
        Ok(_) => panic!("loading should have failed"),
        Err(e) => e,
    }
}

#[test]
fn truncated_models_are_load_errors_naming_the_model() {
    for cut in [1, 100, DETECTOR.len() / 2, DETECTOR.len() - 1] {
        let e = load_err(&DETECTOR[..cut], EXPRESSION);
        assert!(
            matches!(
                e,
                SmileError::ModelLoad {
                    model: "face detector",
                    ..
                } | SmileError::ModelShape {
                    model: "face detector",
                    ..
                }
            ),
            "cut at {cut}: {e}"
        );
    }
    let e = load_err(DETECTOR, &EXPRESSION[..EXPRESSION.len() / 3]);
    assert!(e.to_string().contains("expression"), "{e}");
}

#[test]
fn empty_garbage_and_html_are_load_errors() {
    let html = b"<!doctype html><html><body>404 Not Found</body></html>";
    let noise: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for bytes in [&b""[..], &html[..], &noise[..]] {
        let e = load_err(bytes, EXPRESSION);
        assert!(
            matches!(
                e,
                SmileError::ModelLoad { .. } | SmileError::ModelShape { .. }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("face detector"), "{e}");
    }
}

#[test]
fn swapped_models_are_shape_errors() {
    let e = load_err(EXPRESSION, DETECTOR);
    assert!(matches!(e, SmileError::ModelShape { .. }), "{e}");
    assert!(e.to_string().contains("wrong shape"), "{e}");
}

#[test]
fn bad_options_are_rejected_before_loading() {
    let o = AnalyzerOptions {
        input_size: 300,
        ..Default::default()
    };
    let e = FaceAnalyzer::new(DETECTOR, EXPRESSION, o)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("multiple of 32"), "{e}");
}

#[test]
fn bad_buffers_and_tiny_images_are_image_errors() {
    let a = FaceAnalyzer::new(DETECTOR, EXPRESSION, small()).unwrap();
    let cases: [(&[u8], u32, u32, &str); 5] = [
        (&[0; 100], 10, 10, "must hold 400 bytes"),
        (&[0; 401], 10, 10, "must hold 400 bytes"),
        (&[], 0, 0, "too small"),
        (&[0; 4], 1, 1, "too small"),
        (&[0; 0], 0, 480, "too small"),
    ];
    for (buf, w, h, msg) in cases {
        for r in [a.analyze(buf, w, h).err(), a.classify_face(buf, w, h).err()] {
            let e = r.expect("must fail");
            assert!(matches!(e, SmileError::Image(_)), "{e}");
            assert!(e.to_string().contains(msg), "{w}x{h}: {e}");
        }
    }
    // width * height * 4 overflowing must not wrap into a "valid" length.
    let e = a.analyze(&[0; 16], u32::MAX, u32::MAX).unwrap_err();
    assert!(matches!(e, SmileError::Image(_)), "{e}");
}

/// Corrupted files, as a flaky network or a bad cache could deliver them: random bytes
/// overwritten in the real models. Each either fails to load with an error or loads and
/// runs; none may panic or allocate without bound.
#[test]
fn corrupted_models_never_panic() {
    use smile_factor::vision::nn::Net;
    let mut seed = 0x9e37_79b9_u32;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed as usize
    };
    let (mut loaded, mut failed) = (0, 0);
    for (bytes, side) in [(DETECTOR, 64), (EXPRESSION, 112)] {
        for _ in 0..150 {
            let mut b = bytes.to_vec();
            for _ in 0..1 + next() % 4 {
                let at = next() % b.len();
                b[at] = next() as u8;
            }
            match Net::load(&b, &[1, 3, side, side]) {
                Ok(net) => {
                    let _ = net.run(vec![0.5; 3 * side * side]);
                    loaded += 1;
                }
                Err(_) => failed += 1,
            }
        }
    }
    // Most flips land in weight bytes and still load; some break the structure.
    assert!(loaded > 0 && failed > 0, "loaded {loaded}, failed {failed}");
}
