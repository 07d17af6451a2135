//! The smile head's training data: the expression net's 256 pooled features (the
//! `flatten` value, after global average pooling) of every crop of a labelled set and of
//! its mirror image, computed by our own engine with the same preprocessing as
//! `FaceAnalyzer::classify_face`. `models/smile_head/train.py` reads what this writes.
//!
//! `cargo run --profile tool --example head_features -- --labelled DIR --out DIR [--models DIR]`
//! writes `OUT/features.f32` (little-endian f32, per crop: 256 features as is, then 256
//! mirrored) and `OUT/index.tsv` (file, label 1 = smile, face-api's `happy` as is and
//! mirrored). `./run train-head DIR` runs it into `target/smile_head/`.

use std::error::Error;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use smile_factor::vision::frame::{Region, RgbaFrame};
use smile_factor::vision::nn::Net;
use smile_factor::vision::preprocess::{
    mirror, square_input, Padding, EXPRESSION_INPUT_SIZE, EXPRESSION_MEAN_RGB,
};

type AnyResult<T> = Result<T, Box<dyn Error>>;

/// The graph values read: the pooled features and face-api's 7 probabilities.
const OUTPUTS: [&str; 2] = ["flatten", "probabilities"];
const FEATURES: usize = 256;

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

fn main() -> AnyResult<()> {
    let (mut labelled, mut out) = (None, None);
    let mut models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--labelled" => labelled = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--models" => models = value()?.into(),
            _ => return Err(format!("unknown argument {a}; usage: --labelled DIR --out DIR").into()),
        }
    }
    let (Some(labelled), Some(out)) = (labelled, out) else {
        return Err("usage: head_features --labelled DIR --out DIR [--models DIR]".into());
    };
    let bytes = std::fs::read(models.join("face_expression.onnx"))?;
    let e = EXPRESSION_INPUT_SIZE;
    let net = Net::load_outputs(&bytes, &[1, 3, e, e], Some(&OUTPUTS))?;
    if net.output_shapes() != [&[1, FEATURES][..], &[1, 7]] {
        return Err(format!("unexpected outputs {:?}", net.output_shapes()).into());
    }
    std::fs::create_dir_all(&out)?;
    let mut features = std::io::BufWriter::new(std::fs::File::create(out.join("features.f32"))?);
    let mut index = String::from("file\tlabel\thappy\thappy_mirror\n");
    let mut n = 0;
    for (label, sub) in ["non_smile", "smile"].iter().enumerate() {
        for path in images_in(&labelled.join(sub))? {
            let img = image::open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .to_rgba8();
            let (w, h) = img.dimensions();
            let frame = RgbaFrame::new(img.as_raw(), w, h)?;
            let input = square_input(
                &frame,
                Region::whole(&frame),
                Padding::Centered,
                e,
                EXPRESSION_MEAN_RGB,
            );
            let mut mirrored = input.clone();
            mirror(&mut mirrored, e);
            let mut happy = [0f32; 2];
            for (slot, x) in happy.iter_mut().zip([input, mirrored]) {
                let outs = net.run_all(x)?;
                for v in &outs[0] {
                    features.write_all(&v.to_le_bytes())?;
                }
                *slot = outs[1][1];
            }
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            writeln!(index, "{sub}/{name}\t{label}\t{}\t{}", happy[0], happy[1])?;
            n += 1;
        }
    }
    features.flush()?;
    std::fs::write(out.join("index.tsv"), index)?;
    eprintln!("{n} crops (and their mirrors) -> {}", out.display());
    Ok(())
}
