//! The server's own model run (detector, then the smile score of the largest face) on
//! JPEG crops made from the fixtures, against face-api.js's labels in
//! tests/fixtures/faceapi_reference.json for the clear cases.

mod common;

use smile_factor_server::frames::decode_crop;

fn smile(name: &str) -> Option<f32> {
    let crop = decode_crop(&common::jpeg_crop(name)).expect("decodes");
    common::judge().smile(&crop).expect("runs")
}

#[test]
fn clear_smiles_and_a_clear_neutral_face_are_told_apart() {
    for name in ["smile_1", "smile_2", "smile_3"] {
        let s = smile(name).expect("a face");
        assert!(s >= 0.5, "{name}: {s}");
    }
    let s = smile("neutral_1").expect("a face");
    assert!(s < 0.1, "neutral_1: {s}");
}

#[test]
fn a_crop_without_a_face_has_no_score() {
    let grey = common::encode_jpeg(&image::RgbImage::from_pixel(
        128,
        128,
        image::Rgb([128, 128, 128]),
    ));
    let crop = decode_crop(&grey).expect("decodes");
    assert_eq!(common::judge().smile(&crop).expect("runs"), None);
}
