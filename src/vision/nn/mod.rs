//! Our own small inference engine for the two face-api.js networks, in place of a
//! general ONNX runtime: the page downloads and compiles a few hundred KB instead of
//! megabytes, and loading is parsing plus repacking weights, no graph optimiser.
//!
//! [`Net::load`] reads an ONNX file ([`proto`]), folds everything computed from
//! initializers alone (the dequantisation subgraphs, in float64 as tfjs does), pins the
//! input shape, infers every shape, fuses the patterns these graphs use (activation after
//! Conv; `Slice`+`Max` pairs, which are 2x2 max pools; residual `Add` chains, summed while
//! the next depthwise conv or the global pool reads them) and keeps a list of steps.
//! [`Net::run`] executes the steps with the kernels in [`kernels`]; the load-time half
//! (folding, shapes, fusions) is in `build.rs`. Only the operators
//! and attribute values the two models need are accepted; anything else is a load error,
//! never a wrong answer. A graph may have several outputs (the expression net's
//! probabilities and its smile head): [`Net::run_all`] returns them all.

mod build;
pub mod kernels;
pub mod proto;
mod simd;

use build::{fold, Builder};

use std::cell::RefCell;
use std::collections::HashMap;

use kernels::{Act, Window};

/// No tensor may exceed this many elements (256 MiB of f32): a hostile file fails to
/// load instead of exhausting memory.
const MAX_ELEMENTS: usize = 1 << 26;

/// Why a file could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Not an ONNX file we can run: malformed, or an operator or attribute we do not support.
    #[error("{0}")]
    Invalid(String),
    /// A well-formed graph that does not fit the requested input shape: usually the
    /// other model's file, or a wrong input size.
    #[error("{0}")]
    Shape(String),
}

impl From<String> for NetError {
    fn from(s: String) -> Self {
        NetError::Invalid(s)
    }
}

impl From<&str> for NetError {
    fn from(s: &str) -> Self {
        NetError::Invalid(s.to_string())
    }
}

type R<T> = std::result::Result<T, NetError>;

/// A constant: an initializer or something folded from initializers.
#[derive(Clone, Debug)]
struct Const {
    dims: Vec<usize>,
    values: Vec<f64>,
}

/// Which kernel runs a convolution, chosen at load.
#[derive(Clone, Copy, Debug, PartialEq)]
enum ConvKind {
    /// group = channels: [`kernels::conv_depthwise`].
    Depthwise,
    /// 1x1, stride 1, no padding: straight [`kernels::gemm`].
    Pointwise,
    /// Anything else with group 1: [`kernels::conv_dense`].
    Dense,
}

#[derive(Clone, Debug)]
enum Op {
    Conv {
        kind: ConvKind,
        /// Packed for [`kernels::gemm`] when dense, `[c][kh*kw]` when depthwise.
        weights: Vec<f32>,
        bias: Vec<f32>,
        cin: usize,
        cout: usize,
        hw: (usize, usize),
        win: Window,
        act: Act,
        /// Depthwise only: the input is `pre(x0 + (x1 + ...))` of the step's inputs, a
        /// Sum folded in (`Act::None` with one input: the input itself).
        pre: Act,
    },
    Act(Act),
    /// `act(x0 + (x1 + (... + xn)))`: ONNX Add, and right-nested chains of Adds with the
    /// activation after them.
    Sum(Act),
    Max,
    /// `out = max(x[2i], x[2i+1])` along `axis`: a `Max` of two stride-2 `Slice`s.
    PairMax {
        axis: usize,
    },
    Slice {
        axis: usize,
        start: usize,
        step: usize,
    },
    Pad {
        pads: Vec<usize>,
        value: f32,
    },
    Pool {
        max: bool,
        c: usize,
        hw: (usize, usize),
        win: Window,
    },
    /// An average pool over the whole input, of `pre(x0 + (x1 + ...))` of the step's
    /// inputs (a Sum folded in, or one input and `Act::None`).
    GlobalAvg {
        c: usize,
        hw: (usize, usize),
        pre: Act,
    },
    /// Reshape or Flatten: the data is unchanged.
    Copy,
    Gemm {
        packed: Vec<f32>,
        bias: Vec<f32>,
        k: usize,
        n: usize,
    },
    Softmax,
    /// The smile head's logistic output.
    Sigmoid,
}

#[derive(Debug)]
struct Step {
    op: Op,
    inputs: Vec<usize>,
    output: usize,
}

/// A loaded network for one input shape.
#[derive(Debug)]
pub struct Net {
    steps: Vec<Step>,
    shapes: Vec<Vec<usize>>,
    /// Element count of each value, from `shapes`, so runs do not recompute it.
    lens: Vec<usize>,
    input: usize,
    /// The graph's outputs in order (or the values asked for by name).
    outputs: Vec<usize>,
    /// Values whose last reader is step i, freed after it.
    free_after: Vec<Vec<usize>>,
    /// Freed buffers, reused by later steps and runs: no allocation or zeroing per step
    /// once the first run has sized them.
    spare: RefCell<Vec<Vec<f32>>>,
    /// The kernels' working memory, kept for the same reason.
    scratch: RefCell<kernels::Scratch>,
}

impl Net {
    /// Parses `bytes` as ONNX and prepares it for inputs of `input_shape` (NCHW, batch 1).
    pub fn load(bytes: &[u8], input_shape: &[usize]) -> R<Self> {
        Self::load_outputs(bytes, input_shape, None)
    }

    /// [`Net::load`] with `outputs` naming the values to return instead of the graph's
    /// outputs: any computed value may be read, e.g. the expression net's pooled features
    /// (`flatten`) that the smile head is trained on (`examples/head_features.rs`).
    pub fn load_outputs(bytes: &[u8], input_shape: &[usize], outputs: Option<&[&str]>) -> R<Self> {
        let graph = proto::parse_model(bytes)?;
        let mut consts: HashMap<String, Const> = graph
            .initializers
            .into_iter()
            .map(|t| {
                (
                    t.name,
                    Const {
                        dims: t.dims,
                        values: t.values,
                    },
                )
            })
            .collect();
        let inputs: Vec<&String> = graph
            .inputs
            .iter()
            .filter(|n| !consts.contains_key(*n))
            .collect();
        let [input_name] = inputs[..] else {
            return Err(format!("expected 1 input, found {}", inputs.len()).into());
        };
        let output_names: Vec<String> = match outputs {
            Some(names) => names.iter().map(|n| n.to_string()).collect(),
            None => graph.outputs.clone(),
        };
        if output_names.is_empty() {
            return Err("the graph has no output".into());
        }
        if input_shape.len() != 4 || input_shape[0] != 1 {
            return Err(format!("input shape {input_shape:?} is not NCHW with batch 1").into());
        }
        let mut b = Builder::default();
        let input = b.value(input_name, input_shape.to_vec())?;
        for node in &graph.nodes {
            if !node.domain.is_empty() && node.domain != "ai.onnx" {
                return Err(format!("operator domain {} is not supported", node.domain).into());
            }
            let all_const = node
                .inputs
                .iter()
                .all(|i| i.is_empty() || consts.contains_key(i));
            if all_const {
                let out = node.outputs.first().ok_or("a node has no output")?;
                let folded = fold(node, &consts)?;
                consts.insert(out.clone(), folded);
            } else {
                b.node(node, &consts)?;
            }
        }
        let outputs = output_names
            .iter()
            .map(|n| {
                b.ids
                    .get(n)
                    .copied()
                    .ok_or_else(|| format!("the output {n} is not computed from the input"))
            })
            .collect::<Result<Vec<usize>, String>>()?;
        b.fuse(&outputs);
        Ok(b.finish(input, outputs))
    }

    pub fn input_shape(&self) -> &[usize] {
        &self.shapes[self.input]
    }

    /// The shape of output 0.
    pub fn output_shape(&self) -> &[usize] {
        &self.shapes[self.outputs[0]]
    }

    /// The shapes of all outputs, in order.
    pub fn output_shapes(&self) -> Vec<&[usize]> {
        self.outputs.iter().map(|&v| &self.shapes[v][..]).collect()
    }

    /// Runs the network on an NCHW input of the loaded shape; returns output 0.
    pub fn run(&self, input: Vec<f32>) -> R<Vec<f32>> {
        let mut all = self.run_observed(input, |_| {})?;
        Ok(all.swap_remove(0))
    }

    /// Runs the network and returns every output, in order.
    pub fn run_all(&self, input: Vec<f32>) -> R<Vec<Vec<f32>>> {
        self.run_observed(input, |_| {})
    }

    /// [`Net::run`], reading `now` (milliseconds) around every step: the per-operator
    /// profile behind `examples/profile_ops.rs`. Returns the output and each step's time.
    pub fn run_timed(
        &self,
        input: Vec<f32>,
        mut now: impl FnMut() -> f64,
    ) -> R<(Vec<f32>, Vec<f64>)> {
        let mut times = Vec::with_capacity(self.steps.len());
        let mut t = now();
        let mut out = self.run_observed(input, |_| {
            let t1 = now();
            times.push(t1 - t);
            t = t1;
        })?;
        Ok((out.swap_remove(0), times))
    }

    /// What each step does, its multiply-adds and the bytes it reads and writes.
    pub fn describe(&self) -> Vec<StepInfo> {
        let len = |v: usize| self.lens[v] as u64;
        self.steps
            .iter()
            .map(|s| {
                let out = len(s.output);
                let (label, macs, weights) = match &s.op {
                    Op::Conv {
                        kind: ConvKind::Depthwise,
                        win,
                        weights,
                        ..
                    } => (
                        format!(
                            "{}dwconv {}x{}/{}",
                            if s.inputs.len() > 1 { "sum+" } else { "" },
                            win.kh,
                            win.kw,
                            win.stride
                        ),
                        out * (win.kh * win.kw) as u64,
                        weights.len(),
                    ),
                    Op::Conv {
                        cin, win, weights, ..
                    } => (
                        format!("conv {}x{}/{}", win.kh, win.kw, win.stride),
                        out * (cin * win.kh * win.kw) as u64,
                        weights.len(),
                    ),
                    Op::Gemm { packed, k, n, .. } => ("gemm".into(), (k * n) as u64, packed.len()),
                    op => (
                        format!("{op:?}")
                            .split([' ', '{', '('])
                            .next()
                            .unwrap_or("?")
                            .to_lowercase(),
                        0,
                        0,
                    ),
                };
                let reads: u64 = s.inputs.iter().map(|&v| len(v)).sum();
                StepInfo {
                    label,
                    out_shape: self.shapes[s.output].clone(),
                    macs,
                    bytes: 4 * (reads + out + weights as u64),
                }
            })
            .collect()
    }

    fn run_observed(&self, input: Vec<f32>, mut after_step: impl FnMut(usize)) -> R<Vec<Vec<f32>>> {
        let want = self.lens[self.input];
        if input.len() != want {
            return Err(NetError::Shape(format!(
                "input has {} values, expected {want}",
                input.len()
            )));
        }
        // Buffers may be longer than their value (reused ones never shrink); value v is
        // the first lens[v] entries.
        let mut vals: Vec<Option<Vec<f32>>> = vec![None; self.shapes.len()];
        vals[self.input] = Some(input);
        let mut spare = self.spare.take();
        let mut scratch = self.scratch.take();
        for (i, (step, free)) in self.steps.iter().zip(&self.free_after).enumerate() {
            // The smallest spare buffer that fits, else the largest, grown. Every kernel
            // writes all of its output, so a reused buffer's old values never show.
            let n = self.lens[step.output];
            let fits = spare
                .iter()
                .enumerate()
                .filter(|(_, b)| b.len() >= n)
                .min_by_key(|(_, b)| b.len());
            let largest = || {
                spare
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, b)| b.len())
                    .map(|(j, _)| j)
            };
            let pick = fits.map(|(j, _)| j).or_else(largest);
            let mut out = pick.map(|j| spare.swap_remove(j)).unwrap_or_default();
            if out.len() < n {
                out.resize(n, 0.0);
            }
            let args = step
                .inputs
                .iter()
                .map(|&v| {
                    vals[v]
                        .as_deref()
                        .map(|b| &b[..self.lens[v]])
                        .ok_or(NetError::Invalid(
                            "a value was used after it was freed".into(),
                        ))
                })
                .collect::<R<Vec<&[f32]>>>()?;
            eval(
                &step.op,
                &args,
                &self.shapes[step.inputs[0]],
                &mut out[..n],
                &mut scratch,
            );
            vals[step.output] = Some(out);
            for &v in free {
                if v == self.input {
                    // The caller's buffer, new every run: pooling it would grow the pool
                    // by one input per run, for ever (wasm memory never shrinks).
                    vals[v] = None;
                } else if !self.outputs.contains(&v) {
                    spare.extend(vals[v].take());
                }
            }
            after_step(i);
        }
        let mut outs = Vec::with_capacity(self.outputs.len());
        for &o in &self.outputs {
            // An output may be listed twice, or be the input itself: copy, do not move.
            let out = vals[o]
                .as_deref()
                .ok_or(NetError::Invalid("no output".into()))?;
            outs.push(out[..self.lens[o]].to_vec());
        }
        // Only buffers the pool handed out go back: it holds at most the run's peak.
        vals[self.input] = None;
        spare.extend(vals.into_iter().flatten());
        *self.spare.borrow_mut() = spare;
        *self.scratch.borrow_mut() = scratch;
        Ok(outs)
    }
}

/// One step of a loaded network, for profiles.
#[derive(Clone, Debug)]
pub struct StepInfo {
    pub label: String,
    pub out_shape: Vec<usize>,
    /// Multiply-adds per run.
    pub macs: u64,
    /// Bytes read (inputs, weights) and written (output) per run.
    pub bytes: u64,
}

fn eval(
    op: &Op,
    args: &[&[f32]],
    shape: &[usize],
    out: &mut [f32],
    scratch: &mut kernels::Scratch,
) {
    let x = args[0];
    match op {
        Op::Conv {
            kind,
            weights,
            bias,
            cin,
            cout,
            hw,
            win,
            act,
            pre,
        } => match kind {
            ConvKind::Depthwise => kernels::conv_depthwise(
                args, *pre, *cin, *hw, *win, weights, bias, out, *act, scratch,
            ),
            ConvKind::Pointwise => {
                let n = hw.0 * hw.1;
                kernels::gemm(
                    weights, bias, *cout, *cin, x, n, n, out, n, 0, *act, scratch,
                )
            }
            ConvKind::Dense => {
                kernels::conv_dense(x, *cin, *hw, *win, weights, bias, *cout, out, *act, scratch)
            }
        },
        Op::Act(act) => {
            for (o, v) in out.iter_mut().zip(x) {
                *o = act.apply(*v);
            }
        }
        Op::Sum(act) => kernels::sum_into(out, args, 0, *act),
        Op::Max => {
            for ((o, a), b) in out.iter_mut().zip(x).zip(args[1]) {
                *o = a.max(*b);
            }
        }
        Op::PairMax { axis } => {
            let (outer, dim, inner) = split(shape, *axis);
            let half = out.len() / (outer * inner);
            for o in 0..outer {
                for i in 0..half {
                    let a = &x[(o * dim + 2 * i) * inner..][..inner];
                    let b = &x[(o * dim + 2 * i + 1) * inner..][..inner];
                    let d = &mut out[(o * half + i) * inner..][..inner];
                    for ((d, a), b) in d.iter_mut().zip(a).zip(b) {
                        *d = a.max(*b);
                    }
                }
            }
        }
        Op::Slice { axis, start, step } => {
            let (outer, dim, inner) = split(shape, *axis);
            let len = out.len() / (outer * inner);
            for o in 0..outer {
                for i in 0..len {
                    let src = &x[(o * dim + start + i * step) * inner..][..inner];
                    out[(o * len + i) * inner..][..inner].copy_from_slice(src);
                }
            }
        }
        Op::Pad { pads, value } => pad(x, shape, pads, *value, out),
        Op::Pool { max, c, hw, win } => kernels::pool(x, *c, *hw, *win, *max, out, scratch),
        Op::GlobalAvg { c, hw, pre } => kernels::global_avg(args, *pre, *c, *hw, out, scratch),
        Op::Copy => out.copy_from_slice(x),
        Op::Gemm { packed, bias, k, n } => {
            kernels::gemm(packed, bias, *n, *k, x, 1, 1, out, 1, 0, Act::None, scratch)
        }
        Op::Softmax => {
            out.copy_from_slice(x);
            let last = shape.last().copied().unwrap_or(1).max(1);
            for row in out.chunks_mut(last) {
                kernels::softmax(row);
            }
        }
        Op::Sigmoid => {
            for (o, v) in out.iter_mut().zip(x) {
                *o = 1.0 / (1.0 + (-v).exp());
            }
        }
    }
}

/// `(product of dims before axis, dims[axis], product after)`.
fn split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

fn pad(x: &[f32], shape: &[usize], pads: &[usize], value: f32, out: &mut [f32]) {
    let rank = shape.len();
    let oshape: Vec<usize> = (0..rank)
        .map(|a| shape[a] + pads[a] + pads[a + rank])
        .collect();
    out.fill(value);
    // Copy the input row by row (last axis contiguous) to its place in the output.
    let last = shape[rank - 1];
    let rows = x.len() / last.max(1);
    for r in 0..rows {
        let (mut rem, mut off, mut ostride) = (r, 0, 1);
        let mut idx = vec![0; rank];
        for a in (0..rank - 1).rev() {
            idx[a] = rem % shape[a];
            rem /= shape[a];
        }
        idx[rank - 1] = 0;
        for a in (0..rank).rev() {
            off += (idx[a] + pads[a]) * ostride;
            ostride *= oshape[a];
        }
        out[off..off + last].copy_from_slice(&x[r * last..(r + 1) * last]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The buffers the pool keeps between runs (count, floats).
    fn pool(net: &Net) -> (usize, usize) {
        let spare = net.spare.borrow();
        (spare.len(), spare.iter().map(Vec::len).sum())
    }

    #[test]
    fn repeated_runs_do_not_grow_the_buffer_pool() {
        for (file, shape) in [
            ("models/tiny_face_detector.onnx", [1, 3, 224, 224]),
            ("models/face_expression.onnx", [1, 3, 112, 112]),
        ] {
            let net = Net::load(&std::fs::read(file).unwrap(), &shape).unwrap();
            let n: usize = shape.iter().product();
            let input = |seed: usize| (0..n).map(|i| ((i * 7 + seed) % 255) as f32).collect();
            net.run_all(input(0)).unwrap();
            let after_first = pool(&net);
            for run in 1..20 {
                net.run_all(input(run)).unwrap();
            }
            assert_eq!(
                pool(&net),
                after_first,
                "{file}: the pool grew over 19 more runs"
            );
        }
    }

    #[test]
    fn loads_both_models_and_fuses_their_patterns() {
        let det = std::fs::read("models/tiny_face_detector.onnx").unwrap();
        let net = Net::load(&det, &[1, 3, 224, 224]).unwrap();
        assert_eq!(net.output_shape(), [1, 25, 7, 7]);
        // 12 convs (activations fused) and 6 max pools (5 from Slice+Max pairs, one with
        // its -inf Pad folded in): nothing else is left.
        assert_eq!(net.steps.len(), 18);
        assert!(net
            .steps
            .iter()
            .all(|s| matches!(s.op, Op::Conv { .. } | Op::Pool { .. })));
        let expr = std::fs::read("models/face_expression.onnx").unwrap();
        let net = Net::load(&expr, &[1, 3, 112, 112]).unwrap();
        assert_eq!(net.output_shapes(), [&[1, 7][..], &[1, 1]]);
        // Every activation is fused into its conv or sum, every Add chain is one sum (12
        // residual sums), and nothing element-wise is left on its own. The 11 sums that
        // feed a depthwise conv are made in its plane fill, the last in the global pool.
        assert!(!net.steps.iter().any(|s| matches!(
            s.op,
            Op::Act(_) | Op::Max | Op::PairMax { .. } | Op::Slice { .. } | Op::Pad { .. }
        )));
        let count = |f: fn(&Step) -> bool| net.steps.iter().filter(|s| f(s)).count();
        assert_eq!(count(|s| matches!(s.op, Op::Sum(_))), 0);
        assert_eq!(
            count(|s| matches!(s.op, Op::GlobalAvg { pre: Act::Relu, .. }) && s.inputs.len() == 4),
            1
        );
        let folded = |s: &Step| {
            matches!(s.op, Op::Conv { pre: Act::Relu, .. }) && (2..=4).contains(&s.inputs.len())
        };
        assert_eq!(count(folded), 11);
        // Asked for by name, a block's sum keeps its own step.
        let named = Net::load_outputs(&expr, &[1, 3, 112, 112], Some(&["dense2/out"])).unwrap();
        assert_eq!(named.steps.iter().filter(|s| folded(s)).count(), 10);
        assert!(matches!(net.run(vec![0.0; 5]), Err(NetError::Shape(_))));
    }

    #[test]
    fn wrong_files_fail_to_load() {
        let expr = std::fs::read("models/face_expression.onnx").unwrap();
        // The expression net cannot take a 3x8x8 input (its average pool is 7x7 at 1/16).
        // A wrong input shape is a shape error (the user sees ModelShape), not a bad file.
        assert!(matches!(
            Net::load(&expr, &[1, 3, 8, 8]),
            Err(NetError::Shape(_))
        ));
        assert!(matches!(
            Net::load(&expr, &[1, 3, 1 << 14, 1 << 14]),
            Err(NetError::Shape(_))
        ));
        assert!(Net::load(&expr, &[2, 3, 112, 112]).is_err());
        assert!(matches!(
            Net::load(b"", &[1, 3, 112, 112]),
            Err(NetError::Invalid(_))
        ));
    }

    /// The smile head is Gemm + Sigmoid on the pooled features, a second output: what
    /// `run_all` gives equals the head computed here in f64 from the file's own weights,
    /// on the features the same run reads (`load_outputs` by name), and `run` gives
    /// output 0 alone.
    #[test]
    fn the_second_output_is_the_smile_head_on_the_pooled_features() {
        let expr = std::fs::read("models/face_expression.onnx").unwrap();
        let shape = [1, 3, 112, 112];
        let both = Net::load(&expr, &shape).unwrap();
        let named =
            Net::load_outputs(&expr, &shape, Some(&["flatten", "smile", "probabilities"])).unwrap();
        assert_eq!(named.output_shapes(), [&[1, 256][..], &[1, 1], &[1, 7]]);
        let graph = proto::parse_model(&expr).unwrap();
        let init = |name: &str| {
            graph
                .initializers
                .iter()
                .find(|t| t.name == name)
                .map(|t| t.values.clone())
                .unwrap()
        };
        let (w, b) = (init("smile_head/weights"), init("smile_head/bias"));
        assert_eq!((w.len(), b.len()), (256, 1));
        let mut x = 0x9E37_79B9u32;
        for _ in 0..3 {
            let input: Vec<f32> = (0..3 * 112 * 112)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x as f32 / u32::MAX as f32) - 0.5
                })
                .collect();
            let outs = both.run_all(input.clone()).unwrap();
            let by_name = named.run_all(input.clone()).unwrap();
            assert_eq!(outs[0], by_name[2]);
            assert_eq!(outs[1], by_name[1]);
            assert_eq!(both.run(input).unwrap(), outs[0]);
            let logit: f64 = by_name[0]
                .iter()
                .zip(&w)
                .map(|(f, w)| *f as f64 * w)
                .sum::<f64>()
                + b[0];
            let want = 1.0 / (1.0 + (-logit).exp());
            assert!(
                (outs[1][0] as f64 - want).abs() < 1e-5,
                "{} vs {want}",
                outs[1][0]
            );
        }
        assert!(Net::load_outputs(&expr, &shape, Some(&["no such value"])).is_err());
    }
}
