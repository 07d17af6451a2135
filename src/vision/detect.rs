//! Turning TinyFaceDetector's raw grid into face boxes, as face-api.js does in
//! TinyYolov2Base.extractBoxes and ops/nonMaxSuppression.ts: sigmoid and exp per
//! anchor cell, a score threshold, then greedy non-maximum suppression.

use serde::Serialize;

/// Anchor sizes in grid cells (face-api src/tinyFaceDetector/const.ts, BOX_ANCHORS).
pub const ANCHORS: [(f64, f64); 5] = [
    (1.603231, 2.094468),
    (6.041143, 7.080126),
    (2.882459, 3.518061),
    (4.266906, 5.178857),
    (9.041765, 10.66308),
];
/// Values per anchor: x, y, w, h, objectness.
pub const BOX_ENCODING: usize = 5;
/// Channels of the detector output: one encoding per anchor.
pub const GRID_CHANNELS: usize = ANCHORS.len() * BOX_ENCODING;
/// Overlap above which the weaker of two boxes is dropped (IOU_THRESHOLD in const.ts).
pub const IOU_THRESHOLD: f64 = 0.4;

/// An axis-aligned box. In pixels of the analysed frame unless stated otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct BoundingBox {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

impl BoundingBox {
    pub fn right(&self) -> f64 {
        self.x + self.width
    }

    pub fn bottom(&self) -> f64 {
        self.y + self.height
    }

    pub fn area(&self) -> f64 {
        self.width * self.height
    }

    /// Intersection over union; 0 for disjoint or degenerate boxes.
    pub fn iou(&self, other: &BoundingBox) -> f64 {
        let w = (self.right().min(other.right()) - self.x.max(other.x)).max(0.0);
        let h = (self.bottom().min(other.bottom()) - self.y.max(other.y)).max(0.0);
        let inter = w * h;
        let union = self.area() + other.area() - inter;
        if union > 0.0 {
            inter / union
        } else {
            0.0
        }
    }

    pub fn scale(&self, sx: f64, sy: f64) -> BoundingBox {
        BoundingBox {
            x: self.x * sx,
            y: self.y * sy,
            width: self.width * sx,
            height: self.height * sy,
        }
    }
}

/// A detected face: its box relative to the frame (0..1 on each axis) and its score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    pub relative: BoundingBox,
    pub score: f64,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The size of the frame once scaled into the detector's square, as face-api's
/// computeReshapedDimensions rounds it; boxes are corrected by it.
fn reshaped(width: u32, height: u32, input_size: usize) -> (f64, f64) {
    let scale = input_size as f64 / width.max(height) as f64;
    (
        (width as f64 * scale).round().max(1.0),
        (height as f64 * scale).round().max(1.0),
    )
}

/// Index of the largest box by area: with several faces in view, the one nearest the
/// camera is the user's, and only that one is judged (and classified, which saves time).
pub fn largest(boxes: &[BoundingBox]) -> Option<usize> {
    boxes
        .iter()
        .enumerate()
        .max_by(|(_, a), (_, b)| a.area().total_cmp(&b.area()))
        .map(|(i, _)| i)
}

/// Decodes a `[1, 25, cells, cells]` NCHW grid for a `width` x `height` frame that was
/// padded bottom-right and resized to `input_size`, keeping cells scoring above
/// `score_threshold`, then suppresses overlaps. Strongest first.
pub fn decode(
    grid: &[f32],
    cells: usize,
    input_size: usize,
    width: u32,
    height: u32,
    score_threshold: f64,
) -> Vec<Detection> {
    let (rw, rh) = reshaped(width, height, input_size);
    let (fx, fy) = (input_size as f64 / rw, input_size as f64 / rh);
    let plane = cells * cells;
    let at = |channel: usize, row: usize, col: usize| -> f64 {
        grid.get(channel * plane + row * cells + col)
            .copied()
            .unwrap_or(f32::NEG_INFINITY) as f64
    };
    let n = cells as f64;
    let mut found = Vec::new();
    for row in 0..cells {
        for col in 0..cells {
            for (anchor, (aw, ah)) in ANCHORS.iter().enumerate() {
                let c = anchor * BOX_ENCODING;
                let score = sigmoid(at(c + 4, row, col));
                if score <= score_threshold {
                    continue;
                }
                let cx = (col as f64 + sigmoid(at(c, row, col))) / n * fx;
                let cy = (row as f64 + sigmoid(at(c + 1, row, col))) / n * fy;
                let w = at(c + 2, row, col).exp() * aw / n * fx;
                let h = at(c + 3, row, col).exp() * ah / n * fy;
                found.push(Detection {
                    relative: BoundingBox {
                        x: cx - w / 2.0,
                        y: cy - h / 2.0,
                        width: w,
                        height: h,
                    },
                    score,
                });
            }
        }
    }
    non_max_suppression(found, IOU_THRESHOLD)
}

/// Greedy NMS in face-api's order: take the best remaining box, drop every box that
/// overlaps it by more than `iou_threshold`, repeat. Equal scores keep face-api's
/// tie order (a stable ascending sort popped from the end).
pub fn non_max_suppression(mut boxes: Vec<Detection>, iou_threshold: f64) -> Vec<Detection> {
    boxes.sort_by(|a, b| a.score.total_cmp(&b.score));
    let mut picked = Vec::new();
    while let Some(best) = boxes.pop() {
        boxes.retain(|other| best.relative.iou(&other.relative) <= iou_threshold);
        picked.push(best);
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_face_is_judged() {
        let b = |x: f64, width: f64, height: f64| BoundingBox {
            x,
            y: 0.0,
            width,
            height,
        };
        assert_eq!(largest(&[]), None);
        let boxes = [b(0.0, 10.0, 10.0), b(50.0, 40.0, 30.0), b(90.0, 20.0, 20.0)];
        assert_eq!(largest(&boxes), Some(1));
        assert_eq!(largest(&boxes[..1]), Some(0));
    }

    fn bx(x: f64, y: f64, w: f64, h: f64) -> BoundingBox {
        BoundingBox {
            x,
            y,
            width: w,
            height: h,
        }
    }

    #[test]
    fn iou_of_known_boxes() {
        assert_eq!(bx(0.0, 0.0, 2.0, 2.0).iou(&bx(0.0, 0.0, 2.0, 2.0)), 1.0);
        assert_eq!(bx(0.0, 0.0, 1.0, 1.0).iou(&bx(2.0, 2.0, 1.0, 1.0)), 0.0);
        let v = bx(0.0, 0.0, 2.0, 2.0).iou(&bx(1.0, 0.0, 2.0, 2.0));
        assert!((v - 2.0 / 6.0).abs() < 1e-12);
        assert_eq!(bx(0.0, 0.0, 0.0, 0.0).iou(&bx(0.0, 0.0, 0.0, 0.0)), 0.0);
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_and_all_disjoint() {
        let d = |x: f64, s: f64| Detection {
            relative: bx(x, 0.0, 1.0, 1.0),
            score: s,
        };
        let kept = non_max_suppression(vec![d(0.0, 0.6), d(0.1, 0.9), d(5.0, 0.7)], 0.4);
        let scores: Vec<f64> = kept.iter().map(|k| k.score).collect();
        assert_eq!(scores, vec![0.9, 0.7]);
    }

    #[test]
    fn decode_places_one_confident_cell() {
        // 2x2 grid, anchor 0 at row 1, col 0 fires with centre offsets 0 (sigmoid 0.5).
        let cells = 2;
        let mut grid = vec![-20.0f32; GRID_CHANNELS * cells * cells];
        let plane = cells * cells;
        let cell = cells; // row 1, col 0
        for k in 0..4 {
            grid[k * plane + cell] = 0.0;
        }
        grid[4 * plane + cell] = 3.0;
        let found = decode(&grid, cells, 64, 64, 64, 0.5);
        assert_eq!(found.len(), 1);
        let b = found[0].relative;
        assert!((found[0].score - sigmoid(3.0)).abs() < 1e-12);
        let (cx, cy) = (b.x + b.width / 2.0, b.y + b.height / 2.0);
        assert!((cx - 0.25).abs() < 1e-9 && (cy - 0.75).abs() < 1e-9);
        assert!((b.width - ANCHORS[0].0 / 2.0).abs() < 1e-9);
    }

    #[test]
    fn decode_corrects_for_non_square_frames() {
        // A 64x32 frame fills the top half of the square: y coordinates stretch x2.
        let cells = 1;
        let mut grid = vec![0.0f32; GRID_CHANNELS];
        for a in 1..ANCHORS.len() {
            grid[a * BOX_ENCODING + 4] = -20.0;
        }
        grid[4] = 3.0;
        let found = decode(&grid, cells, 64, 64, 32, 0.5);
        assert_eq!(found.len(), 1);
        let b = found[0].relative;
        assert!((b.y + b.height / 2.0 - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_short_grid_yields_nothing_rather_than_panicking() {
        assert!(decode(&[1.0; 3], 13, 416, 640, 480, 0.5).is_empty());
    }
}
