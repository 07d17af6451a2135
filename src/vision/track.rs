//! Detect, then track: the face detector is most of a frame's cost, so it runs on the
//! first frame, every `redetect_every` frames, and whenever the tracked face is lost
//! or drifts. On the frames in between only the expression net runs, on the tracked
//! box expanded by a margin.
//!
//! Between detections the face is followed by template matching: when the detector
//! finds a face, a small grey template of its box is kept ([`TEMPLATE_CELLS`] cells a
//! side, each the mean of a few pixels). Each tracked frame, the template is compared
//! by normalised cross-correlation (NCC) with every position of a window around the
//! detected box, one cell apart, then refined to an eighth of a cell (under a pixel
//! for a webcam face). NCC ignores brightness and contrast changes, so a camera's
//! auto-exposure does not lose the face. The best match moves the box; a best
//! correlation under `min_correlation` means the face is lost and a shift beyond
//! `max_shift` means it drifted: either way the detector runs on that very frame.
//! The template is never updated between detections, so errors cannot accumulate.
//! Matching reads about 100k pixels and does about 75k multiply-adds: 0.3 ms natively,
//! against 15-20 ms for the detector on the page's 320x240 frame.
//!
//! Long only with its unit tests (a third of the file): one tracker and its matcher.

use serde::Serialize;

use crate::vision::analyzer::{FaceAnalyzer, View};
use crate::vision::detect::BoundingBox;
use crate::vision::distance::RETRY_CANVASES;
use crate::vision::error::{Result, SmileError};
use crate::vision::frame::RgbaFrame;

/// Cells per side of the face template. 20 cells put one step of the search at 5% of
/// the face's size, finer than the detector's own jitter between frames.
pub const TEMPLATE_CELLS: usize = 20;
/// Pixel samples per cell and axis at most, so a large face costs no more than a small one.
const TAPS: usize = 4;
/// A patch whose grey levels vary less than this (standard deviation, 0..255) has no
/// texture to match: a flat face template cannot be tracked, a flat patch is no face.
const MIN_STD_DEV: f64 = 2.0;

/// How often the detector runs and when the tracked face counts as lost.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackerOptions {
    /// The detector runs at least once every this many frames (1 = on every frame,
    /// which turns tracking off). Between, up to `redetect_every - 1` frames run only
    /// the expression net.
    pub redetect_every: u32,
    /// On tracked frames the box is grown by this fraction of its width and height on
    /// each side before classification: slack against tracking error, paid for with a
    /// crop looser than the detector's boxes that the expression net is used to.
    /// Detect frames classify the detector's box as it is. 0 to 0.5.
    pub margin: f64,
    /// Lost below this normalised cross-correlation with the template (0 to 1). A held
    /// face, even one that starts smiling, stays far above it; a face that left the
    /// box or was covered falls well below.
    pub min_correlation: f64,
    /// Drift beyond this fraction of the box size from where the detector last put it
    /// triggers detection (0.05 to 0.5); the search window reaches one step further.
    pub max_shift: f64,
    /// Odd frames read the smile score of the crop's mirror image, even frames the crop
    /// as it is, so the verdict's hold sees both views for the cost of one run a frame.
    /// Off by default: on video-like sequences from GENKI dev it did not help (README,
    /// "Accuracy"), though averaging both views does help on single images.
    pub mirror_odd_frames: bool,
}

impl Default for TrackerOptions {
    /// The detector runs on one frame in five: at the page's 10-20 analysed frames a
    /// second that still re-anchors the box several times a second, while most of the
    /// saving is already had (one frame in ten would save only a little more). No
    /// margin: the matched box is where the detector would put it, and the expression
    /// net reads a detector-sized box on every frame alike.
    fn default() -> Self {
        Self {
            redetect_every: 5,
            margin: 0.0,
            min_correlation: 0.7,
            max_shift: 0.25,
            mirror_odd_frames: false,
        }
    }
}

impl TrackerOptions {
    pub const MAX_REDETECT_EVERY: u32 = 1000;

    fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(SmileError::Option(msg));
        if !(1..=Self::MAX_REDETECT_EVERY).contains(&self.redetect_every) {
            return bad(format!(
                "redetectEvery must be a whole number from 1 to {}, not {}",
                Self::MAX_REDETECT_EVERY,
                self.redetect_every
            ));
        }
        if !(0.0..=0.5).contains(&self.margin) {
            return bad(format!(
                "margin must lie from 0 to 0.5, not {}",
                self.margin
            ));
        }
        if !(self.min_correlation > 0.0 && self.min_correlation < 1.0) {
            return bad(format!(
                "minCorrelation must lie strictly between 0 and 1, not {}",
                self.min_correlation
            ));
        }
        if !(0.05..=0.5).contains(&self.max_shift) {
            return bad(format!(
                "maxShift must lie from 0.05 to 0.5, not {}",
                self.max_shift
            ));
        }
        Ok(())
    }

    /// Whole cells searched each way: one beyond `max_shift`, so that a face that
    /// moved further shows up as a match beyond it rather than as a poor one inside.
    fn window_cells(&self) -> i32 {
        (self.max_shift * TEMPLATE_CELLS as f64).ceil() as i32 + 1
    }
}

/// What one frame gave. Serialises as the JS `FaceTracker.step` result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrackStep {
    /// Boxes to draw, in pixels: every detection on a detect frame, the tracked box otherwise.
    pub boxes: Vec<BoundingBox>,
    /// Index in `boxes` of the face that was classified (the largest on a detect frame).
    pub judged: Option<usize>,
    /// Its smile score (the smile head's, 0..1); `None` when there is no face in this frame.
    pub smile: Option<f32>,
    /// True when the detector ran on this frame.
    pub detected: bool,
}

/// Follows the largest face across frames; see the module docs.
pub struct Tracker {
    options: TrackerOptions,
    /// The face being followed: its template from the last detection.
    track: Option<Template>,
    /// Frames since the detector last ran (0 on a detect frame).
    since_detect: u32,
    /// The scale the detector looks at next: 0 is the frame as it is, `i > 0` the frame centred
    /// in `RETRY_CANVASES[i - 1]`. Kept while it finds a face, moved on when it misses.
    scale: usize,
    /// Misses in a row, which picks the next view: see [`Tracker::next_scale`].
    misses: usize,
    /// Frames stepped since the start or the last reset: odd ones may be mirrored.
    frames: u64,
}

impl Tracker {
    /// Checks the options; the first `step` runs the detector.
    pub fn new(options: TrackerOptions) -> Result<Tracker> {
        options.validate()?;
        Ok(Tracker {
            options,
            track: None,
            since_detect: 0,
            scale: 0,
            misses: 0,
            frames: 0,
        })
    }

    pub fn options(&self) -> TrackerOptions {
        self.options
    }

    /// Forgets the face, so that the next frame runs the detector (after a pause, or
    /// when the frames come from somewhere else).
    pub fn reset(&mut self) {
        self.track = None;
        self.since_detect = 0;
        self.scale = 0;
        self.misses = 0;
        self.frames = 0;
    }

    /// The view this frame's smile score comes from.
    fn view(&self) -> View {
        if self.options.mirror_odd_frames && self.frames % 2 == 1 {
            View::Mirrored
        } else {
            View::AsIs
        }
    }

    /// Analyses one frame: a tracked frame when a face is held, detection is not due
    /// and the match holds; otherwise the detector runs on this frame. On an error the
    /// face is forgotten, so the next frame starts again from detection.
    pub fn step(&mut self, analyzer: &FaceAnalyzer, frame: &RgbaFrame) -> Result<TrackStep> {
        let view = self.view();
        self.frames += 1;
        let track = self.track.take();
        let due = self.since_detect + 1 >= self.options.redetect_every;
        if let (Some(track), false) = (track, due) {
            if let Some(step) = self.follow(&track, analyzer, frame, view)? {
                self.track = Some(track);
                self.since_detect += 1;
                return Ok(step);
            }
        }
        self.detect(analyzer, frame, view)
    }

    /// A tracked frame, or `None` when the face is lost or drifted.
    fn follow(
        &self,
        template: &Template,
        analyzer: &FaceAnalyzer,
        frame: &RgbaFrame,
        view: View,
    ) -> Result<Option<TrackStep>> {
        let Some(found) = template.locate(frame, self.options.window_cells()) else {
            return Ok(None);
        };
        let reach = self.options.max_shift * TEMPLATE_CELLS as f64;
        if found.correlation < self.options.min_correlation
            || found.dx.abs() > reach
            || found.dy.abs() > reach
        {
            return Ok(None);
        }
        let bbox = template.shifted(found.dx, found.dy);
        let crop = grow(&bbox, self.options.margin);
        let Some(scores) = analyzer.classify_box(frame, &crop, view)? else {
            return Ok(None);
        };
        Ok(Some(TrackStep {
            boxes: vec![bbox],
            judged: Some(0),
            smile: Some(scores.smile),
            detected: false,
        }))
    }

    /// A detect frame: exactly what detect-every-frame does, plus a new template.
    /// One detector run per frame, as before faces at any distance: the frame as it is,
    /// or one larger canvas (`vision::distance`, at an input no larger than the first
    /// run's) while a close face is followed or searched for, so a video frame never
    /// costs more than one run as it is.
    fn detect(
        &mut self,
        analyzer: &FaceAnalyzer,
        frame: &RgbaFrame,
        view: View,
    ) -> Result<TrackStep> {
        self.since_detect = 0;
        let found = match self
            .scale
            .checked_sub(1)
            .and_then(|i| RETRY_CANVASES.get(i))
        {
            Some(&factor) => analyzer.detect_in_canvas(frame, factor)?,
            None => analyzer.detect_once(frame)?,
        };
        if found.is_empty() {
            self.misses += 1;
            self.scale = Self::next_scale(self.misses);
        } else {
            self.misses = 0;
        }
        let boxes: Vec<BoundingBox> = found.into_iter().map(|(b, _)| b).collect();
        let judged = crate::vision::detect::largest(&boxes);
        let mut smile = None;
        if let Some(b) = judged.and_then(|i| boxes.get(i)) {
            smile = analyzer.classify_box(frame, b, view)?.map(|s| s.smile);
            if smile.is_some() {
                self.track = Template::capture(frame, *b);
            }
        }
        Ok(TrackStep {
            boxes,
            judged,
            smile,
            detected: true,
        })
    }
}

impl Tracker {
    /// The scale after `misses` misses in a row: the frame as it is every other frame
    /// (a face at a normal distance is found at once), the retry canvases in turn between
    /// (a face filling the frame within `2 * RETRY_CANVASES.len()` frames).
    fn next_scale(misses: usize) -> usize {
        if misses.is_multiple_of(2) {
            0
        } else {
            1 + (misses / 2) % RETRY_CANVASES.len()
        }
    }
}

/// `b` grown by `margin` of its size on each side.
fn grow(b: &BoundingBox, margin: f64) -> BoundingBox {
    let (mx, my) = (b.width * margin, b.height * margin);
    BoundingBox {
        x: b.x - mx,
        y: b.y - my,
        width: b.width + 2.0 * mx,
        height: b.height + 2.0 * my,
    }
}

/// The grey appearance of a detected face, zero mean and unit norm.
struct Template {
    anchor: BoundingBox,
    frame_size: (u32, u32),
    cells: Vec<f32>,
}

/// The best match of a template: its offset in cells from the anchor and its NCC.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Match {
    dx: f64,
    dy: f64,
    correlation: f64,
}

impl Template {
    /// `None` if the box is degenerate or the face has no texture to match.
    fn capture(frame: &RgbaFrame, anchor: BoundingBox) -> Option<Template> {
        let finite = [anchor.x, anchor.y, anchor.width, anchor.height]
            .iter()
            .all(|v| v.is_finite());
        if !finite || anchor.width < 1.0 || anchor.height < 1.0 {
            return None;
        }
        let grid = Grid::sample(frame, &anchor, (0.0, 0.0), 0);
        let mut cells = grid.values;
        let n = cells.len() as f64;
        let mean = cells.iter().map(|&v| v as f64).sum::<f64>() / n;
        let ss: f64 = cells.iter().map(|&v| (v as f64 - mean).powi(2)).sum();
        if (ss / n).sqrt() < MIN_STD_DEV {
            return None;
        }
        let norm = ss.sqrt();
        for v in &mut cells {
            *v = ((*v as f64 - mean) / norm) as f32;
        }
        Some(Template {
            anchor,
            frame_size: (frame.width(), frame.height()),
            cells,
        })
    }

    fn cell_size(&self) -> (f64, f64) {
        let t = TEMPLATE_CELLS as f64;
        (self.anchor.width / t, self.anchor.height / t)
    }

    /// The anchor moved by `dx`, `dy` cells.
    fn shifted(&self, dx: f64, dy: f64) -> BoundingBox {
        let (cw, ch) = self.cell_size();
        BoundingBox {
            x: self.anchor.x + dx * cw,
            y: self.anchor.y + dy * ch,
            ..self.anchor
        }
    }

    /// The best NCC over whole-cell offsets of up to `window` cells each way, then
    /// refined to a quarter cell around it; `None` when the frame size changed since
    /// the template was taken (a new camera mode).
    fn locate(&self, frame: &RgbaFrame, window: i32) -> Option<Match> {
        if (frame.width(), frame.height()) != self.frame_size {
            return None;
        }
        let w = window.max(0) as usize;
        let grid = Grid::sample(frame, &self.anchor, (0.0, 0.0), w);
        let mut best = Match {
            dx: 0.0,
            dy: 0.0,
            correlation: f64::NEG_INFINITY,
        };
        let consider = |best: &mut Match, dx: f64, dy: f64, correlation: f64| {
            // Ties go to the smaller shift, so a still face never wanders.
            let nearer = dx.abs() + dy.abs() < best.dx.abs() + best.dy.abs();
            if correlation > best.correlation + 1e-9
                || (correlation >= best.correlation - 1e-9 && nearer)
            {
                *best = Match {
                    dx,
                    dy,
                    correlation,
                };
            }
        };
        for oy in 0..=2 * w {
            for ox in 0..=2 * w {
                let c = self.correlation(&grid, ox, oy);
                consider(&mut best, ox as f64 - w as f64, oy as f64 - w as f64, c);
            }
        }
        // The whole-cell lattice is coarse (5% of the face): refine to an eighth of a
        // cell, each step moving along x or y while that improves the match (a cheap
        // descent; the peak of a face's NCC is smooth at this scale). Only a strictly
        // better match moves the box, so a still face stays put.
        for step in [0.5, 0.25, 0.125] {
            for _ in 0..2 {
                let centre = best;
                for (sx, sy) in [(-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0)] {
                    let (dx, dy) = (centre.dx + sx * step, centre.dy + sy * step);
                    let patch = Grid::sample(frame, &self.anchor, (dx, dy), 0);
                    let c = self.correlation(&patch, 0, 0);
                    if c > best.correlation + 1e-9 {
                        best = Match {
                            dx,
                            dy,
                            correlation: c,
                        };
                    }
                }
                if best == centre {
                    break;
                }
            }
        }
        Some(best)
    }

    /// NCC of the template with the TEMPLATE_CELLS-square patch of `grid` at (ox, oy).
    fn correlation(&self, grid: &Grid, ox: usize, oy: usize) -> f64 {
        let t = TEMPLATE_CELLS;
        let n = (t * t) as f64;
        let (mut dot, mut sum, mut sq) = (0f64, 0f64, 0f64);
        for r in 0..t {
            let row = &grid.values[(oy + r) * grid.side + ox..][..t];
            let tpl = &self.cells[r * t..][..t];
            for (&p, &q) in row.iter().zip(tpl) {
                let p = p as f64;
                dot += p * q as f64;
                sum += p;
                sq += p * p;
            }
        }
        // The template has zero mean, so `dot` already ignores the patch's mean.
        let var = (sq - sum * sum / n).max(0.0);
        // A flat patch correlates with nothing (and would divide by zero).
        if (var / n).sqrt() < MIN_STD_DEV {
            0.0
        } else {
            dot / var.sqrt()
        }
    }
}

/// Grey cell means over the anchor's cell lattice, `pad` cells beyond it on each side.
struct Grid {
    side: usize,
    values: Vec<f32>,
}

impl Grid {
    /// Cell `(i, j)` (from `-pad`) spans `anchor.x + (i + shift.0) * cw ..+ cw` (and
    /// likewise in y); its value is the mean grey of up to TAPS x TAPS pixels sampled
    /// evenly inside it. Samples outside the frame take the nearest edge pixel. The
    /// template, the search window and the refinement all use this one formula, so the
    /// same offset always samples the same pixels: a still face matches at 0 exactly.
    fn sample(frame: &RgbaFrame, anchor: &BoundingBox, shift: (f64, f64), pad: usize) -> Grid {
        let t = TEMPLATE_CELLS as f64;
        let (cw, ch) = (anchor.width / t, anchor.height / t);
        let side = TEMPLATE_CELLS + 2 * pad;
        let taps = |cell: f64| (cell.ceil() as usize).clamp(1, TAPS);
        let (kx, ky) = (taps(cw), taps(ch));
        let (fw, fh) = (frame.width() as usize, frame.height() as usize);
        // Pixel columns and rows of every sample, clamped to the frame, computed once.
        let positions = |origin: f64, cell: f64, shift: f64, k: usize, limit: usize| {
            (0..side)
                .flat_map(|c| {
                    let start = origin + (c as f64 - pad as f64 + shift) * cell;
                    (0..k).map(move |a| start + (a as f64 + 0.5) / k as f64 * cell)
                })
                .map(|p| (p.floor().max(0.0) as usize).min(limit - 1))
                .collect::<Vec<usize>>()
        };
        let xs = positions(anchor.x, cw, shift.0, kx, fw);
        let ys = positions(anchor.y, ch, shift.1, ky, fh);
        let mut values = vec![0f32; side * side];
        let scale = 1.0 / (kx * ky) as f32;
        for (j, row_ys) in ys.chunks(ky).enumerate() {
            for (i, col_xs) in xs.chunks(kx).enumerate() {
                let mut acc = 0f32;
                for &y in row_ys {
                    for &x in col_xs {
                        let [r, g, b] = frame.rgb(x, y);
                        // ITU-R BT.601 luma weights.
                        acc += 0.299 * r + 0.587 * g + 0.114 * b;
                    }
                }
                values[j * side + i] = acc * scale;
            }
        }
        Grid { side, values }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misses_alternate_the_frame_as_it_is_with_each_canvas_in_turn() {
        // After a miss: canvas 1, as is, canvas 2, as is, ..., then canvas 1 again.
        let n = RETRY_CANVASES.len();
        let views: Vec<usize> = (1..=2 * n + 2).map(Tracker::next_scale).collect();
        let mut expected: Vec<usize> = (1..=n).flat_map(|c| [c, 0]).collect();
        expected.extend([1, 0]);
        assert_eq!(views, expected);
    }

    /// A smooth but non-repeating texture: a few incommensurate sine waves in grey.
    fn textured(w: u32, h: u32, dx: i32, dy: i32) -> Vec<u8> {
        let mut out = Vec::with_capacity((w * h * 4) as usize);
        for y in 0..h as i32 {
            for x in 0..w as i32 {
                let (u, v) = ((x - dx) as f64, (y - dy) as f64);
                let g = 128.0
                    + 50.0 * (u * 0.21).sin() * (v * 0.13).cos()
                    + 40.0 * ((u + 2.0 * v) * 0.071).sin()
                    + 25.0 * ((u * v) * 0.0009).cos();
                let g = g.clamp(0.0, 255.0) as u8;
                out.extend_from_slice(&[g, g, g, 255]);
            }
        }
        out
    }

    fn face_box() -> BoundingBox {
        BoundingBox {
            x: 100.0,
            y: 60.0,
            width: 80.0,
            height: 100.0,
        }
    }

    fn template(buf: &[u8]) -> Template {
        let f = RgbaFrame::new(buf, 320, 240).unwrap();
        Template::capture(&f, face_box()).expect("textured patch gives a template")
    }

    #[test]
    fn a_still_frame_matches_at_zero_with_correlation_one() {
        let buf = textured(320, 240, 0, 0);
        let t = template(&buf);
        let m = t
            .locate(&RgbaFrame::new(&buf, 320, 240).unwrap(), 6)
            .unwrap();
        assert_eq!((m.dx, m.dy), (0.0, 0.0));
        assert!((m.correlation - 1.0).abs() < 1e-6, "{m:?}");
    }

    #[test]
    fn a_shifted_frame_is_found_at_its_shift() {
        let t = template(&textured(320, 240, 0, 0));
        // Cells are 4 x 5 pixels: shift by 3 and -2 cells.
        let moved = textured(320, 240, 12, -10);
        let m = t
            .locate(&RgbaFrame::new(&moved, 320, 240).unwrap(), 6)
            .unwrap();
        assert_eq!((m.dx, m.dy), (3.0, -2.0), "{m:?}");
        assert!(m.correlation > 0.95, "{m:?}");
        let b = t.shifted(m.dx, m.dy);
        assert_eq!((b.x, b.y, b.width), (112.0, 50.0, 80.0));
    }

    #[test]
    fn a_shift_between_cells_is_found_to_a_quarter_cell() {
        let t = template(&textured(320, 240, 0, 0));
        // 1.5 cells right, 0.4 cells up.
        let moved = textured(320, 240, 6, -2);
        let m = t
            .locate(&RgbaFrame::new(&moved, 320, 240).unwrap(), 6)
            .unwrap();
        assert!(
            (m.dx - 1.5).abs() <= 0.25 && (m.dy + 0.4).abs() <= 0.25,
            "{m:?}"
        );
        assert!(m.correlation > 0.95, "{m:?}");
    }

    #[test]
    fn brightness_and_contrast_do_not_matter() {
        let buf = textured(320, 240, 0, 0);
        let t = template(&buf);
        let dimmer: Vec<u8> = buf
            .chunks(4)
            .flat_map(|p| {
                let g = (p[0] as f32 * 0.6 + 20.0) as u8;
                [g, g, g, 255]
            })
            .collect();
        let m = t
            .locate(&RgbaFrame::new(&dimmer, 320, 240).unwrap(), 6)
            .unwrap();
        assert_eq!((m.dx, m.dy), (0.0, 0.0));
        assert!(m.correlation > 0.99, "{m:?}");
    }

    #[test]
    fn a_flat_frame_correlates_with_nothing() {
        let t = template(&textured(320, 240, 0, 0));
        let grey = vec![128u8; 320 * 240 * 4];
        let m = t
            .locate(&RgbaFrame::new(&grey, 320, 240).unwrap(), 6)
            .unwrap();
        assert_eq!(m.correlation, 0.0);
        // And a flat face gives no template at all.
        let f = RgbaFrame::new(&grey, 320, 240).unwrap();
        assert!(Template::capture(&f, face_box()).is_none());
    }

    #[test]
    fn unrelated_texture_falls_below_the_default_threshold() {
        let t = template(&textured(320, 240, 0, 0));
        // The same texture rotated a quarter turn is different structure.
        let other: Vec<u8> = {
            let src = textured(320, 320, 0, 0);
            (0..240usize)
                .flat_map(|y| (0..320usize).map(move |x| (x, y)))
                .flat_map(|(x, y)| {
                    let i = (x * 320 + (319 - y)) * 4;
                    [src[i], src[i + 1], src[i + 2], 255]
                })
                .collect()
        };
        let m = t
            .locate(&RgbaFrame::new(&other, 320, 240).unwrap(), 6)
            .unwrap();
        assert!(
            m.correlation < TrackerOptions::default().min_correlation,
            "{m:?}"
        );
    }

    #[test]
    fn another_frame_size_is_not_matched() {
        let t = template(&textured(320, 240, 0, 0));
        let buf = textured(160, 120, 0, 0);
        assert!(t
            .locate(&RgbaFrame::new(&buf, 160, 120).unwrap(), 6)
            .is_none());
    }

    #[test]
    fn boxes_partly_outside_the_frame_still_sample() {
        let buf = textured(320, 240, 0, 0);
        let f = RgbaFrame::new(&buf, 320, 240).unwrap();
        let edge = BoundingBox {
            x: -30.0,
            y: 200.0,
            width: 80.0,
            height: 80.0,
        };
        let t = Template::capture(&f, edge).expect("the inside part has texture");
        let m = t.locate(&f, 6).unwrap();
        assert_eq!((m.dx, m.dy), (0.0, 0.0));
        let nan = BoundingBox {
            x: f64::NAN,
            ..face_box()
        };
        assert!(Template::capture(&f, nan).is_none());
    }

    #[test]
    fn grow_adds_the_margin_on_each_side() {
        let g = grow(&face_box(), 0.1);
        assert_eq!((g.x, g.y, g.width, g.height), (92.0, 50.0, 96.0, 120.0));
    }

    #[test]
    fn options_are_checked() {
        let d = TrackerOptions::default();
        assert!(d.validate().is_ok());
        assert_eq!(d.window_cells(), 6);
        let bad = [
            TrackerOptions {
                redetect_every: 0,
                ..d
            },
            TrackerOptions {
                redetect_every: 1001,
                ..d
            },
            TrackerOptions { margin: -0.1, ..d },
            TrackerOptions {
                margin: f64::NAN,
                ..d
            },
            TrackerOptions { margin: 0.6, ..d },
            TrackerOptions {
                min_correlation: 0.0,
                ..d
            },
            TrackerOptions {
                min_correlation: 1.0,
                ..d
            },
            TrackerOptions {
                max_shift: 0.01,
                ..d
            },
            TrackerOptions {
                max_shift: f64::INFINITY,
                ..d
            },
        ];
        for o in bad {
            assert!(
                matches!(Tracker::new(o), Err(SmileError::Option(_))),
                "{o:?}"
            );
        }
    }
}
