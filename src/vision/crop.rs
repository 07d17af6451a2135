//! Face crop geometry: a face box found on the small analysed frame, widened by a margin,
//! made square and kept inside the full-size video frame. The page draws that region into
//! a small canvas to send it to the verifier; the geometry lives here, pure, so it is
//! tested natively.

/// A rectangle in pixels: `x`, `y` of the top-left corner, `width`, `height`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

/// The margin added on each side of a face box, as a share of the box's longer side.
/// The detector's box is tight around the face; the verifier runs the detector again on
/// the crop, and it finds faces far more reliably with some forehead, chin and background.
pub const DEFAULT_MARGIN: f64 = 0.25;

/// The square region of the video to crop around a face.
///
/// `face` is `[x, y, width, height]` on the analysed frame of size `analysis`
/// (`(width, height)`); `video` is the full frame's size. The box is scaled to the video,
/// grown by `margin` of its longer side on every side, made square around its centre,
/// shrunk to the video's shorter side if larger, and shifted (not cut) to lie inside the
/// video, so the result is always a square within the frame.
///
/// `None` for a degenerate input: a size or box that is not finite and positive, or a
/// box entirely outside the analysed frame.
pub fn square_crop(
    face: [f64; 4],
    analysis: (f64, f64),
    video: (f64, f64),
    margin: f64,
) -> Option<Rect> {
    let [x, y, w, h] = face;
    let (aw, ah) = analysis;
    let (vw, vh) = video;
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if !(positive(w) && positive(h) && positive(aw) && positive(ah) && positive(vw) && positive(vh))
        || !(x.is_finite() && y.is_finite() && margin.is_finite() && margin >= 0.0)
    {
        return None;
    }
    if x >= aw || y >= ah || x + w <= 0.0 || y + h <= 0.0 {
        return None;
    }
    let (sx, sy) = (vw / aw, vh / ah);
    let (cx, cy) = ((x + w / 2.0) * sx, (y + h / 2.0) * sy);
    let long = (w * sx).max(h * sy);
    let side = (long * (1.0 + 2.0 * margin)).min(vw.min(vh));
    // Centred on the face, then moved back inside the frame where it sticks out.
    let left = (cx - side / 2.0).clamp(0.0, vw - side);
    let top = (cy - side / 2.0).clamp(0.0, vh - side);
    Some(Rect {
        x: left,
        y: top,
        width: side,
        height: side,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANALYSIS: (f64, f64) = (320.0, 240.0);
    const VIDEO: (f64, f64) = (640.0, 480.0);

    fn crop(face: [f64; 4]) -> Rect {
        match square_crop(face, ANALYSIS, VIDEO, DEFAULT_MARGIN) {
            Some(r) => r,
            None => panic!("no crop for {face:?}"),
        }
    }

    fn inside(r: Rect, (vw, vh): (f64, f64)) -> bool {
        r.x >= 0.0 && r.y >= 0.0 && r.x + r.width <= vw + 1e-9 && r.y + r.height <= vh + 1e-9
    }

    #[test]
    fn a_centred_face_is_scaled_widened_and_squared() {
        // 40x60 at (140, 90) on the 320-wide frame: 80x120 on the video, centre (320, 240).
        let r = crop([140.0, 90.0, 40.0, 60.0]);
        // The longer side 120, plus 25% on each side: 180.
        assert_eq!(
            r,
            Rect {
                x: 230.0,
                y: 150.0,
                width: 180.0,
                height: 180.0
            }
        );
    }

    #[test]
    fn faces_at_the_edges_are_shifted_inside_not_cut() {
        for face in [
            [0.0, 0.0, 50.0, 50.0],
            [290.0, 200.0, 30.0, 40.0],
            [-10.0, -10.0, 40.0, 40.0],
            [300.0, 100.0, 60.0, 60.0],
        ] {
            let r = crop(face);
            assert_eq!(r.width, r.height, "{face:?}");
            assert!(inside(r, VIDEO), "{face:?}: {r:?}");
            // Still the full margin: the side is not shrunk by the edge.
            let long = face[2].max(face[3]) * 2.0;
            assert!((r.width - long * 1.5).abs() < 1e-9, "{face:?}: {r:?}");
        }
        let r = crop([0.0, 0.0, 50.0, 50.0]);
        assert_eq!((r.x, r.y), (0.0, 0.0));
    }

    #[test]
    fn a_face_larger_than_the_frame_gets_the_shorter_side() {
        let r = crop([20.0, 0.0, 280.0, 240.0]);
        assert_eq!(r.width, 480.0);
        assert_eq!(r.height, 480.0);
        assert!(inside(r, VIDEO), "{r:?}");
    }

    #[test]
    fn portrait_and_unequal_scales() {
        // A portrait camera: the analysed frame is 320 wide, so 320x568 for 720x1280.
        let r = square_crop(
            [100.0, 200.0, 100.0, 100.0],
            (320.0, 568.0),
            (720.0, 1280.0),
            0.25,
        )
        .expect("crop");
        assert_eq!(r.width, r.height);
        assert!(inside(r, (720.0, 1280.0)), "{r:?}");
        // The longer scaled side (100 * 1280/568 = 225.4) sets the size.
        assert!(
            (r.width - 100.0 * 1280.0 / 568.0 * 1.5).abs() < 1e-9,
            "{r:?}"
        );
        // No margin: just the square around the box.
        let r = square_crop([140.0, 90.0, 40.0, 60.0], ANALYSIS, VIDEO, 0.0).expect("crop");
        assert_eq!(
            r,
            Rect {
                x: 260.0,
                y: 180.0,
                width: 120.0,
                height: 120.0
            }
        );
    }

    #[test]
    fn degenerate_input_gives_none() {
        let nan = f64::NAN;
        for (face, analysis, video, margin) in [
            ([0.0, 0.0, 0.0, 10.0], ANALYSIS, VIDEO, 0.25),
            ([0.0, 0.0, 10.0, -1.0], ANALYSIS, VIDEO, 0.25),
            ([nan, 0.0, 10.0, 10.0], ANALYSIS, VIDEO, 0.25),
            ([0.0, 0.0, 10.0, f64::INFINITY], ANALYSIS, VIDEO, 0.25),
            ([0.0, 0.0, 10.0, 10.0], (0.0, 240.0), VIDEO, 0.25),
            ([0.0, 0.0, 10.0, 10.0], ANALYSIS, (640.0, 0.0), 0.25),
            ([0.0, 0.0, 10.0, 10.0], ANALYSIS, VIDEO, -0.1),
            ([0.0, 0.0, 10.0, 10.0], ANALYSIS, VIDEO, nan),
            // Entirely outside the analysed frame.
            ([320.0, 0.0, 10.0, 10.0], ANALYSIS, VIDEO, 0.25),
            ([-20.0, 0.0, 10.0, 10.0], ANALYSIS, VIDEO, 0.25),
            ([0.0, 250.0, 10.0, 10.0], ANALYSIS, VIDEO, 0.25),
        ] {
            assert_eq!(
                square_crop(face, analysis, video, margin),
                None,
                "{face:?} {analysis:?} {video:?} {margin}"
            );
        }
    }
}
