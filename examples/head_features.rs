//! The smile head's training data: features of the expression net, computed by our own
//! engine with the same preprocessing as `FaceAnalyzer::classify_face`, for every crop of
//! a labelled set and its mirror image, and (with `--augment K`) for K augmented copies
//! of every crop and their mirrors. `models/smile_head/train.py` reads `features.f32`
//! and `index.tsv`; `models/smile_head/experiments.py` reads all of it.
//!
//! `cargo run --profile tool --example head_features -- --labelled DIR --out DIR
//!  [--models DIR] [--augment K] [--seed S] [--maps]`
//!
//! All files are little-endian f32, per crop: the crop, then its mirror.
//! - `OUT/features.f32`: the 256 pooled features (`flatten`, after global average
//!   pooling), what the shipped head reads.
//! - `OUT/rows.f32`: the row means of two feature maps, the last block's `dense3/out`
//!   (256 channels, 7 rows) and the block before's `dense2/out` (128 channels, 14 rows),
//!   channel-major: any band of rows the experiments pool is an exact mean of these.
//! - `OUT/augmented.f32`: the same row means, per crop, per augmented copy.
//! - `OUT/index.tsv`: file, label (1 = smile), face-api's `happy` as is and mirrored.
//! - with `--maps`, for `models/smile_head/finetune.py`: `OUT/maps.f32` (per crop: crop,
//!   mirror) and `OUT/maps_augmented.f32` (per crop, per copy: copy, mirror), the last
//!   block's `dense3/sum4` (256x7x7, channel-major): the sum that block's last separable
//!   conv (`conv3`) is added to, and, through a Relu, that conv's input (`dense3/in4`).
//!
//! Augmentation is seeded and deterministic: a random similarity transform (scale,
//! rotation, shift; edges repeated), then sometimes a Gaussian blur, then brightness and
//! contrast. `./run train-head DIR` runs this into `target/smile_head/`.

use std::error::Error;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use image::RgbaImage;
use smile_factor::vision::frame::{Region, RgbaFrame};
use smile_factor::vision::nn::Net;
use smile_factor::vision::preprocess::{
    mirror, square_input, Padding, EXPRESSION_INPUT_SIZE, EXPRESSION_MEAN_RGB,
};

type AnyResult<T> = Result<T, Box<dyn Error>>;

/// The graph values read: two feature maps, the pooled features, face-api's 7 probabilities.
const OUTPUTS: [&str; 4] = ["dense3/out", "dense2/out", "flatten", "probabilities"];
const FEATURES: usize = 256;
/// The last block's sum before its last separable conv: `dense3/in4` is its Relu, and
/// `dense3/out` is the Relu of it plus that conv's output.
const SUM4: &str = "dense3/sum4";
const USAGE: &str = "usage: head_features --labelled DIR --out DIR [--models DIR] [--augment K] \
     [--seed S] [--maps]";
/// (channels, rows, columns) of the two maps at the net's 112x112 input.
const MAPS: [(usize, usize, usize); 2] = [(256, 7, 7), (128, 14, 14)];

fn images_in(dir: &Path) -> AnyResult<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("jpg" | "jpeg" | "png")
            )
        })
        .collect();
    files.sort();
    Ok(files)
}

/// splitmix64: a tiny seeded generator, so the augmented set is the same on every run.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, crop: u64, copy: u64) -> Self {
        let mut r = Rng(seed ^ crop.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ copy << 48);
        r.next();
        r
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }
}

/// One augmented copy: small changes a face detector's box and a webcam make anyway.
fn augment(img: &RgbaImage, rng: &mut Rng) -> RgbaImage {
    let scale = rng.uniform(0.9, 1.1);
    let angle = rng.uniform(-10.0, 10.0).to_radians();
    let (w, h) = img.dimensions();
    let (dx, dy) = (
        rng.uniform(-0.06, 0.06) * w as f32,
        rng.uniform(-0.06, 0.06) * h as f32,
    );
    let blur = if rng.uniform(0.0, 1.0) < 0.5 {
        0.0
    } else {
        rng.uniform(0.3, 1.2)
    };
    let brightness = rng.uniform(-20.0, 20.0);
    let contrast = rng.uniform(0.8, 1.2);
    // Output pixel -> source pixel: the inverse of scale-rotate about the centre, then shift.
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let (sin, cos) = angle.sin_cos();
    let mut out = RgbaImage::new(w, h);
    for (x, y, px) in out.enumerate_pixels_mut() {
        let (ux, uy) = (x as f32 + 0.5 - cx - dx, y as f32 + 0.5 - cy - dy);
        let sx = (cos * ux + sin * uy) / scale + cx - 0.5;
        let sy = (-sin * ux + cos * uy) / scale + cy - 0.5;
        *px = bilinear(img, sx, sy);
    }
    if blur > 0.0 {
        out = image::imageops::blur(&out, blur);
    }
    for px in out.pixels_mut() {
        for c in &mut px.0[..3] {
            *c = ((*c as f32 - 128.0) * contrast + 128.0 + brightness)
                .round()
                .clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// Bilinear sample at (x, y) in pixel-centre coordinates, edges repeated.
fn bilinear(img: &RgbaImage, x: f32, y: f32) -> image::Rgba<u8> {
    let (w, h) = img.dimensions();
    let clamp = |v: f32, n: u32| v.clamp(0.0, (n - 1) as f32);
    let (x, y) = (clamp(x, w), clamp(y, h));
    let (x0, y0) = (x.floor() as u32, y.floor() as u32);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let p = |xx, yy| img.get_pixel(xx, yy).0;
    let (a, b, c, d) = (p(x0, y0), p(x1, y0), p(x0, y1), p(x1, y1));
    let mut o = [0u8, 0, 0, 255];
    for i in 0..3 {
        let top = a[i] as f32 + (b[i] as f32 - a[i] as f32) * fx;
        let bottom = c[i] as f32 + (d[i] as f32 - c[i] as f32) * fx;
        o[i] = (top + (bottom - top) * fy).round().clamp(0.0, 255.0) as u8;
    }
    image::Rgba(o)
}

/// Writes the row means of the two maps for one net input, and the pooled features if
/// `pooled` is given; returns face-api's `happy`.
fn features(
    net: &Net,
    input: Vec<f32>,
    rows_out: &mut impl std::io::Write,
    pooled: Option<&mut dyn std::io::Write>,
    maps_out: Option<&mut dyn std::io::Write>,
) -> AnyResult<f32> {
    let outs = net.run_all(input)?;
    if let (Some(out), Some(sum4)) = (maps_out, outs.get(OUTPUTS.len())) {
        for v in sum4 {
            out.write_all(&v.to_le_bytes())?;
        }
    }
    for (map, &(c, rows, cols)) in outs.iter().zip(MAPS.iter()) {
        for ch in 0..c {
            for r in 0..rows {
                let row = &map[(ch * rows + r) * cols..][..cols];
                let mean = row.iter().sum::<f32>() / cols as f32;
                rows_out.write_all(&mean.to_le_bytes())?;
            }
        }
    }
    if let Some(out) = pooled {
        for v in &outs[2] {
            out.write_all(&v.to_le_bytes())?;
        }
    }
    Ok(outs[3][1])
}

fn net_input(img: &RgbaImage) -> AnyResult<[Vec<f32>; 2]> {
    let (w, h) = img.dimensions();
    let frame = RgbaFrame::new(img.as_raw(), w, h)?;
    let e = EXPRESSION_INPUT_SIZE;
    let input = square_input(
        &frame,
        Region::whole(&frame),
        Padding::Centered,
        e,
        EXPRESSION_MEAN_RGB,
    );
    let mut mirrored = input.clone();
    mirror(&mut mirrored, e);
    Ok([input, mirrored])
}

fn main() -> AnyResult<()> {
    let (mut labelled, mut out) = (None, None);
    let mut models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    let (mut copies, mut seed) = (0u64, 20261201u64);
    let mut maps = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--labelled" => labelled = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--models" => models = value()?.into(),
            "--augment" => copies = value()?.parse()?,
            "--seed" => seed = value()?.parse()?,
            "--maps" => maps = true,
            _ => return Err(format!("unknown argument {a}; {USAGE}").into()),
        }
    }
    let (Some(labelled), Some(out)) = (labelled, out) else {
        return Err(USAGE.into());
    };
    let bytes = std::fs::read(models.join("face_expression.onnx"))?;
    let e = EXPRESSION_INPUT_SIZE;
    let mut names = OUTPUTS.to_vec();
    if maps {
        names.push(SUM4);
    }
    let net = Net::load_outputs(&bytes, &[1, 3, e, e], Some(&names))?;
    let want: Vec<Vec<usize>> = MAPS
        .iter()
        .map(|&(c, r, w)| vec![1, c, r, w])
        .chain([vec![1, FEATURES], vec![1, 7]])
        .chain(maps.then(|| vec![1, FEATURES, 7, 7]))
        .collect();
    if net.output_shapes() != want.iter().map(|v| &v[..]).collect::<Vec<_>>() {
        return Err(format!("unexpected outputs {:?}", net.output_shapes()).into());
    }
    std::fs::create_dir_all(&out)?;
    let file = |name: &str| -> AnyResult<_> {
        Ok(std::io::BufWriter::new(std::fs::File::create(
            out.join(name),
        )?))
    };
    let mut plain = file("features.f32")?;
    let mut rows = file("rows.f32")?;
    let mut augmented = file("augmented.f32")?;
    let (mut maps_plain, mut maps_aug) = if maps {
        (Some(file("maps.f32")?), Some(file("maps_augmented.f32")?))
    } else {
        (None, None)
    };
    let mut index = String::from("file\tlabel\thappy\thappy_mirror\n");
    let mut n = 0u64;
    for (label, sub) in ["non_smile", "smile"].iter().enumerate() {
        for path in images_in(&labelled.join(sub))? {
            let img = image::open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .to_rgba8();
            let mut happy = [0f32; 2];
            for (slot, x) in happy.iter_mut().zip(net_input(&img)?) {
                let m = maps_plain.as_mut().map(|f| f as &mut dyn std::io::Write);
                *slot = features(&net, x, &mut rows, Some(&mut plain), m)?;
            }
            for k in 0..copies {
                let copy = augment(&img, &mut Rng::new(seed, n, k));
                for x in net_input(&copy)? {
                    let m = maps_aug.as_mut().map(|f| f as &mut dyn std::io::Write);
                    features(&net, x, &mut augmented, None, m)?;
                }
            }
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            writeln!(index, "{sub}/{name}\t{label}\t{}\t{}", happy[0], happy[1])?;
            n += 1;
        }
    }
    plain.flush()?;
    rows.flush()?;
    augmented.flush()?;
    for f in [&mut maps_plain, &mut maps_aug].into_iter().flatten() {
        f.flush()?;
    }
    std::fs::write(out.join("index.tsv"), index)?;
    eprintln!(
        "{n} crops, their mirrors and {copies} augmented copies of each -> {}",
        out.display()
    );
    Ok(())
}
