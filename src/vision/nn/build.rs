//! Loading, the half of [`Net`] that runs once: constant folding, shape inference, and
//! the fusions that turn ONNX nodes into the engine's steps.
//!
//! One file though long: every pass reads and rewrites the same step list and shape table.

use std::cell::RefCell;
use std::collections::HashMap;

use super::kernels::{Act, Window};
use super::proto::{Attr, NodeProto};
use super::{kernels, Const, ConvKind, Net, NetError, Op, Step, MAX_ELEMENTS, R};

/// Evaluates a node whose inputs are all constants.
pub(super) fn fold(node: &NodeProto, consts: &HashMap<String, Const>) -> R<Const> {
    let arg = |i: usize| -> R<&Const> {
        node.inputs
            .get(i)
            .and_then(|n| consts.get(n))
            .ok_or_else(|| format!("{} needs input {i}", node.op_type).into())
    };
    match node.op_type.as_str() {
        "Cast" => {
            let a = arg(0)?;
            let values = match node.attr("to") {
                // To float32: round each value, as a Float32Array store does.
                Some(Attr::Int(1)) => a.values.iter().map(|&v| v as f32 as f64).collect(),
                Some(Attr::Int(11)) => a.values.clone(),
                other => return Err(format!("Cast to {other:?} is not supported").into()),
            };
            Ok(Const {
                dims: a.dims.clone(),
                values,
            })
        }
        "Mul" | "Add" => {
            let (a, b) = (arg(0)?, arg(1)?);
            let f = |x: f64, y: f64| if node.op_type == "Mul" { x * y } else { x + y };
            let (big, small, swap) = if a.values.len() >= b.values.len() {
                (a, b, false)
            } else {
                (b, a, true)
            };
            let values = match small.values.len() {
                1 => big
                    .values
                    .iter()
                    .map(|&v| {
                        if swap {
                            f(small.values[0], v)
                        } else {
                            f(v, small.values[0])
                        }
                    })
                    .collect(),
                n if n == big.values.len() && a.dims == b.dims => a
                    .values
                    .iter()
                    .zip(&b.values)
                    .map(|(&x, &y)| f(x, y))
                    .collect(),
                _ => {
                    return Err(format!(
                        "{} of constants {:?} and {:?} is not supported",
                        node.op_type, a.dims, b.dims
                    )
                    .into())
                }
            };
            Ok(Const {
                dims: big.dims.clone(),
                values,
            })
        }
        "Reshape" => {
            let (a, s) = (arg(0)?, arg(1)?);
            let dims = reshape_dims(&a.dims, &s.values)?;
            Ok(Const {
                dims,
                values: a.values.clone(),
            })
        }
        op => Err(format!("{op} on constants is not supported").into()),
    }
}

/// ONNX Reshape's target: 0 keeps a dim, one -1 is inferred.
fn reshape_dims(from: &[usize], spec: &[f64]) -> R<Vec<usize>> {
    let total: usize = from.iter().product();
    let mut dims = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &s) in spec.iter().enumerate() {
        match s as i64 {
            0 => dims.push(*from.get(i).ok_or("Reshape: 0 past the input's rank")?),
            -1 if infer.is_none() => {
                infer = Some(i);
                dims.push(1);
            }
            d if d > 0 => dims.push(d as usize),
            d => return Err(format!("Reshape: bad dim {d}").into()),
        }
    }
    let known: usize = dims.iter().product();
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err("Reshape: cannot infer -1".into());
        }
        dims[i] = total / known;
    }
    if dims.iter().product::<usize>() != total {
        return Err(NetError::Shape(format!(
            "Reshape: {from:?} to {dims:?} changes the size"
        )));
    }
    Ok(dims)
}

fn ints(node: &NodeProto, name: &str) -> R<Option<Vec<usize>>> {
    match node.attr(name) {
        None => Ok(None),
        Some(Attr::Ints(v)) => v
            .iter()
            .map(|&i| {
                usize::try_from(i).map_err(|_| format!("{}: negative {name}", node.op_type).into())
            })
            .collect::<R<Vec<_>>>()
            .map(Some),
        Some(_) => Err(format!("{}: {name} is not a list of ints", node.op_type).into()),
    }
}

fn int(node: &NodeProto, name: &str, default: i64) -> R<i64> {
    match node.attr(name) {
        None => Ok(default),
        Some(Attr::Int(i)) => Ok(*i),
        Some(_) => Err(format!("{}: {name} is not an int", node.op_type).into()),
    }
}

fn float(node: &NodeProto, name: &str, default: f32) -> R<f32> {
    match node.attr(name) {
        None => Ok(default),
        Some(Attr::Float(f)) => Ok(*f),
        Some(_) => Err(format!("{}: {name} is not a float", node.op_type).into()),
    }
}

/// A 2-D window from kernel_shape/strides/pads/auto_pad/dilations.
fn window(node: &NodeProto, kernel: (usize, usize), hw: (usize, usize)) -> R<Window> {
    let op = &node.op_type;
    if let Some(d) = ints(node, "dilations")? {
        if d.iter().any(|&v| v != 1) {
            return Err(format!("{op}: dilations are not supported").into());
        }
    }
    let strides = ints(node, "strides")?.unwrap_or(vec![1, 1]);
    let [sy, sx] = strides[..] else {
        return Err(format!("{op}: strides must have 2 values").into());
    };
    if sy != sx || sy == 0 {
        return Err(format!("{op}: only equal, non-zero strides are supported").into());
    }
    let auto = match node.attr("auto_pad") {
        None => "NOTSET".to_string(),
        Some(Attr::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(_) => return Err(format!("{op}: auto_pad is not a string").into()),
    };
    let pads = match auto.as_str() {
        "NOTSET" => match ints(node, "pads")? {
            None => [0; 4],
            Some(p) => {
                let [t, l, b, r] = p[..] else {
                    return Err(format!("{op}: pads must have 4 values").into());
                };
                [t, l, b, r]
            }
        },
        "VALID" => [0; 4],
        "SAME_UPPER" | "SAME_LOWER" => {
            let total = |n: usize, k: usize| (n.div_ceil(sy) - 1) * sy + k;
            let (ph, pw) = (
                total(hw.0, kernel.0).saturating_sub(hw.0),
                total(hw.1, kernel.1).saturating_sub(hw.1),
            );
            if auto == "SAME_UPPER" {
                [ph / 2, pw / 2, ph - ph / 2, pw - pw / 2]
            } else {
                [ph - ph / 2, pw - pw / 2, ph / 2, pw / 2]
            }
        }
        other => return Err(format!("{op}: auto_pad {other} is not supported").into()),
    };
    Ok(Window {
        kh: kernel.0,
        kw: kernel.1,
        stride: sy,
        pads,
    })
}

/// `b(a(x))` as one op, for the pairs [`Builder::fuse`] merges; `x` is `a`'s input shape.
fn merge(a: &Op, b: &Op, x: &[usize]) -> Option<Op> {
    match (a, b) {
        (Op::Conv { act: Act::None, .. }, Op::Act(act)) => {
            let mut conv = a.clone();
            if let Op::Conv { act: slot, .. } = &mut conv {
                *slot = *act;
            }
            Some(conv)
        }
        (Op::Sum(Act::None), Op::Act(act)) => Some(Op::Sum(*act)),
        (Op::PairMax { axis: 2 }, Op::PairMax { axis: 3 }) => match x {
            [1, c, h, w] => Some(Op::Pool {
                max: true,
                c: *c,
                hw: (*h, *w),
                win: Window {
                    kh: 2,
                    kw: 2,
                    stride: 2,
                    pads: [0; 4],
                },
            }),
            _ => None,
        },
        (
            Op::Pad { pads, value },
            Op::Pool {
                max: true, c, win, ..
            },
        ) => match (x, &pads[..]) {
            ([1, _, h, w], [0, 0, t, l, 0, 0, b, r]) if *value == f32::NEG_INFINITY => {
                let p = win.pads;
                let win = Window {
                    pads: [p[0] + t, p[1] + l, p[2] + b, p[3] + r],
                    ..*win
                };
                Some(Op::Pool {
                    max: true,
                    c: *c,
                    hw: (*h, *w),
                    win,
                })
            }
            _ => None,
        },
        _ => None,
    }
}

#[derive(Default)]
pub(super) struct Builder {
    pub(super) ids: HashMap<String, usize>,
    shapes: Vec<Vec<usize>>,
    steps: Vec<Step>,
}

/// Removes the steps marked in `dead` (one flag per step), keeping the order.
fn drop_marked(steps: &mut Vec<Step>, dead: &[bool]) {
    let mut keep = dead.iter().map(|d| !d);
    steps.retain(|_| keep.next().unwrap_or(true));
}

impl Builder {
    pub(super) fn value(&mut self, name: &str, shape: Vec<usize>) -> R<usize> {
        let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if n.is_none_or(|n| n > MAX_ELEMENTS) {
            return Err(NetError::Shape(format!(
                "{name} would have shape {shape:?}, too large"
            )));
        }
        if self.ids.contains_key(name) {
            return Err(format!("{name} is defined twice").into());
        }
        let id = self.shapes.len();
        self.shapes.push(shape);
        self.ids.insert(name.to_string(), id);
        Ok(id)
    }

    pub(super) fn node(&mut self, node: &NodeProto, consts: &HashMap<String, Const>) -> R<()> {
        let op_type = node.op_type.as_str();
        let name = |i: usize| node.inputs.get(i).filter(|s| !s.is_empty());
        let x = name(0).and_then(|n| self.ids.get(n)).copied();
        let x = x.ok_or_else(|| {
            format!("{op_type}: its first input must be computed from the model input")
        })?;
        let xs = self.shapes[x].clone();
        let konst = |i: usize| name(i).and_then(|n| consts.get(n));
        let rank4 = || -> R<(usize, usize, usize)> {
            match xs[..] {
                [1, c, h, w] => Ok((c, h, w)),
                _ => Err(NetError::Shape(format!(
                    "{op_type}: input {xs:?} is not NCHW with batch 1"
                ))),
            }
        };
        let f32s = |c: &Const| c.values.iter().map(|&v| v as f32).collect::<Vec<f32>>();
        let mut inputs = vec![x];
        let (op, shape) = match op_type {
            "Conv" => {
                let (cin, h, w) = rank4()?;
                let wt = konst(1).ok_or("Conv: the weights must be constant")?;
                let [cout, cpg, kh, kw] = wt.dims[..] else {
                    return Err("Conv: weights must be 4-D".into());
                };
                let group =
                    usize::try_from(int(node, "group", 1)?).map_err(|_| "Conv: bad group")?;
                let depthwise = group > 1;
                if depthwise && !(group == cin && cout == cin && cpg == 1) {
                    return Err(
                        "Conv: only group 1 or depthwise (group = channels) is supported".into(),
                    );
                }
                if !depthwise && cpg != cin {
                    return Err(NetError::Shape(format!(
                        "Conv: weights for {cpg} channels, input has {cin}"
                    )));
                }
                if let Some(k) = ints(node, "kernel_shape")? {
                    if k != [kh, kw] {
                        return Err("Conv: kernel_shape disagrees with the weights".into());
                    }
                }
                let bias = match konst(2) {
                    Some(b) if b.values.len() == cout => f32s(b),
                    Some(_) => {
                        return Err("Conv: bias length differs from the output channels".into())
                    }
                    None if name(2).is_some() => {
                        return Err("Conv: the bias must be constant".into())
                    }
                    None => vec![0.0; cout],
                };
                let win = window(node, (kh, kw), (h, w))?;
                let (oh, ow) = win.out_dims(h, w).ok_or(NetError::Shape(
                    "Conv: the kernel is larger than the input".into(),
                ))?;
                let kind = if depthwise {
                    ConvKind::Depthwise
                } else if (kh, kw, win.stride, win.pads) == (1, 1, 1, [0; 4]) {
                    ConvKind::Pointwise
                } else {
                    ConvKind::Dense
                };
                let weights = if depthwise {
                    f32s(wt)
                } else {
                    kernels::pack_weights(&f32s(wt), cout, cin * kh * kw)
                };
                let op = Op::Conv {
                    kind,
                    weights,
                    bias,
                    cin,
                    cout,
                    hw: (h, w),
                    win,
                    act: Act::None,
                    pre: Act::None,
                };
                (op, vec![1, cout, oh, ow])
            }
            "Relu" => (Op::Act(Act::Relu), xs.clone()),
            "LeakyRelu" => (Op::Act(Act::Leaky(float(node, "alpha", 0.01)?)), xs.clone()),
            "Add" | "Max" => {
                let y = name(1).and_then(|n| self.ids.get(n)).copied();
                let y =
                    y.ok_or_else(|| format!("{op_type}: both inputs must be computed tensors"))?;
                if node.inputs.len() != 2 || self.shapes[y] != xs {
                    return Err(NetError::Shape(format!(
                        "{op_type}: only two inputs of equal shape are supported"
                    )));
                }
                inputs.push(y);
                (
                    if op_type == "Add" {
                        Op::Sum(Act::None)
                    } else {
                        Op::Max
                    },
                    xs.clone(),
                )
            }
            "Slice" => {
                let one = |i: usize, default: Option<i64>| -> R<i64> {
                    match konst(i) {
                        Some(c) if c.values.len() == 1 => Ok(c.values[0] as i64),
                        None if name(i).is_none() => {
                            default.ok_or_else(|| format!("Slice: input {i} is required").into())
                        }
                        _ => Err("Slice: only constant, single-axis slices are supported".into()),
                    }
                };
                let rank = xs.len() as i64;
                let axis = one(3, Some(0))?;
                let axis = if axis < 0 { axis + rank } else { axis };
                if !(0..rank).contains(&axis) {
                    return Err("Slice: axis out of range".into());
                }
                let axis = axis as usize;
                let dim = xs[axis] as i64;
                let step = one(4, Some(1))?;
                if step <= 0 {
                    return Err("Slice: only positive steps are supported".into());
                }
                let clamp = |v: i64| (if v < 0 { v + dim } else { v }).clamp(0, dim);
                let (start, end) = (clamp(one(1, None)?), clamp(one(2, None)?));
                let len = if end > start {
                    (end - start + step - 1) / step
                } else {
                    0
                };
                let mut shape = xs.clone();
                shape[axis] = len as usize;
                (
                    Op::Slice {
                        axis,
                        start: start as usize,
                        step: step as usize,
                    },
                    shape,
                )
            }
            "Pad" => {
                match node.attr("mode") {
                    None => {}
                    Some(Attr::Bytes(m)) if m == b"constant" => {}
                    _ => return Err("Pad: only constant mode is supported".into()),
                }
                let p = konst(1).ok_or("Pad: pads must be constant")?;
                if p.values.len() != 2 * xs.len() || p.values.iter().any(|&v| v < 0.0) {
                    return Err("Pad: pads must be non-negative, two per axis".into());
                }
                let pads: Vec<usize> = p.values.iter().map(|&v| v as usize).collect();
                let value = match konst(2) {
                    Some(c) if c.values.len() == 1 => c.values[0] as f32,
                    None if name(2).is_none() => 0.0,
                    _ => return Err("Pad: the value must be a constant scalar".into()),
                };
                let r = xs.len();
                let shape = (0..r).map(|a| xs[a] + pads[a] + pads[a + r]).collect();
                (Op::Pad { pads, value }, shape)
            }
            "MaxPool" | "AveragePool" => {
                let (c, h, w) = rank4()?;
                if int(node, "ceil_mode", 0)? != 0 || int(node, "storage_order", 0)? != 0 {
                    return Err(format!(
                        "{op_type}: ceil_mode and storage_order are not supported"
                    )
                    .into());
                }
                if node.outputs.len() > 1 {
                    return Err("MaxPool: the indices output is not supported".into());
                }
                let [kh, kw] = ints(node, "kernel_shape")?.unwrap_or_default()[..] else {
                    return Err(format!("{op_type}: kernel_shape must have 2 values").into());
                };
                let win = window(node, (kh, kw), (h, w))?;
                if op_type == "AveragePool"
                    && int(node, "count_include_pad", 0)? != 0
                    && win.pads != [0; 4]
                {
                    return Err("AveragePool: count_include_pad is not supported".into());
                }
                let (oh, ow) = win.out_dims(h, w).ok_or(NetError::Shape(
                    "pool: the window is larger than the input".into(),
                ))?;
                (
                    Op::Pool {
                        max: op_type == "MaxPool",
                        c,
                        hw: (h, w),
                        win,
                    },
                    vec![1, c, oh, ow],
                )
            }
            "Flatten" => {
                let axis = int(node, "axis", 1)?;
                let axis = usize::try_from(if axis < 0 {
                    axis + xs.len() as i64
                } else {
                    axis
                })
                .ok()
                .filter(|&a| a <= xs.len())
                .ok_or("Flatten: axis out of range")?;
                (
                    Op::Copy,
                    vec![xs[..axis].iter().product(), xs[axis..].iter().product()],
                )
            }
            "Reshape" => {
                let s = konst(1).ok_or("Reshape: the shape must be constant")?;
                (Op::Copy, reshape_dims(&xs, &s.values)?)
            }
            "Gemm" => {
                let [1, k] = xs[..] else {
                    return Err(NetError::Shape(format!("Gemm: input {xs:?} is not [1, K]")));
                };
                if int(node, "transA", 0)? != 0 {
                    return Err("Gemm: transA is not supported".into());
                }
                let b = konst(1).ok_or("Gemm: B must be constant")?;
                let trans_b = int(node, "transB", 0)? != 0;
                let (alpha, beta) = (float(node, "alpha", 1.0)?, float(node, "beta", 1.0)?);
                let n = match (&b.dims[..], trans_b) {
                    ([bk, n], false) | ([n, bk], true) if *bk == k => *n,
                    _ => {
                        return Err(NetError::Shape(format!(
                            "Gemm: B {:?} does not fit [1, {k}]",
                            b.dims
                        )))
                    }
                };
                // W[j][i] = alpha * B[i][j] (or B[j][i] when transposed).
                let mut w = vec![0f32; n * k];
                for j in 0..n {
                    for i in 0..k {
                        let v = if trans_b {
                            b.values[j * k + i]
                        } else {
                            b.values[i * n + j]
                        };
                        w[j * k + i] = alpha * v as f32;
                    }
                }
                let bias = match konst(2) {
                    Some(c) if c.values.len() == n => {
                        c.values.iter().map(|&v| beta * v as f32).collect()
                    }
                    Some(c) if c.values.len() == 1 => vec![beta * c.values[0] as f32; n],
                    None if name(2).is_none() => vec![0.0; n],
                    _ => return Err("Gemm: C must be a constant of length N or 1".into()),
                };
                (
                    Op::Gemm {
                        packed: kernels::pack_weights(&w, n, k),
                        bias,
                        k,
                        n,
                    },
                    vec![1, n],
                )
            }
            "Softmax" => {
                let axis = int(node, "axis", -1)?;
                if axis != -1 && axis != xs.len() as i64 - 1 {
                    return Err("Softmax: only the last axis is supported".into());
                }
                (Op::Softmax, xs.clone())
            }
            "Sigmoid" => (Op::Sigmoid, xs.clone()),
            other => return Err(format!("the operator {other} is not supported").into()),
        };
        let out_name = node.outputs.first().ok_or("a node has no output")?;
        let output = self.value(out_name, shape)?;
        self.steps.push(Step { op, inputs, output });
        Ok(())
    }

    fn readers(&self, outputs: &[usize]) -> Vec<usize> {
        let mut n = vec![0; self.shapes.len()];
        for s in &self.steps {
            for &i in &s.inputs {
                n[i] += 1;
            }
        }
        for &o in outputs {
            n[o] += 1;
        }
        n
    }

    /// Rewrites the patterns these graphs use into single steps.
    pub(super) fn fuse(&mut self, output: &[usize]) {
        let producer = |steps: &[Step], v: usize| steps.iter().position(|s| s.output == v);
        // Max(Slice(x, 0, axis, 2), Slice(x, 1, axis, 2)) -> PairMax(x, axis).
        let readers = self.readers(output);
        let mut dead = vec![false; self.steps.len()];
        for i in 0..self.steps.len() {
            if !matches!(self.steps[i].op, Op::Max) {
                continue;
            }
            let (a, b) = (self.steps[i].inputs[0], self.steps[i].inputs[1]);
            let (Some(pa), Some(pb)) = (producer(&self.steps, a), producer(&self.steps, b)) else {
                continue;
            };
            let fits = match (&self.steps[pa].op, &self.steps[pb].op) {
                (
                    Op::Slice {
                        axis: x1,
                        start: 0,
                        step: 2,
                    },
                    Op::Slice {
                        axis: x2,
                        start: 1,
                        step: 2,
                    },
                ) => (x1 == x2 && self.steps[pa].inputs == self.steps[pb].inputs).then_some(*x1),
                _ => None,
            };
            if let Some(axis) = fits {
                if readers[a] == 1 && readers[b] == 1 {
                    self.steps[i].op = Op::PairMax { axis };
                    self.steps[i].inputs = self.steps[pa].inputs.clone();
                    dead[pa] = true;
                    dead[pb] = true;
                }
            }
        }
        drop_marked(&mut self.steps, &dead);

        // Add(a, Add(b, c)) -> Sum(a, b, c) when the inner sum has no other reader (the
        // models nest their sums to the right; Sum keeps that order of float additions).
        let readers = self.readers(output);
        let mut dead = vec![false; self.steps.len()];
        for i in 0..self.steps.len() {
            if !matches!(self.steps[i].op, Op::Sum(Act::None)) {
                continue;
            }
            let Some(&last) = self.steps[i].inputs.last() else {
                continue;
            };
            let Some(j) = producer(&self.steps, last) else {
                continue;
            };
            if matches!(self.steps[j].op, Op::Sum(Act::None)) && readers[last] == 1 {
                let inner = self.steps[j].inputs.clone();
                self.steps[i].inputs.pop();
                self.steps[i].inputs.extend(inner);
                dead[j] = true;
            }
        }
        drop_marked(&mut self.steps, &dead);

        // A step whose output only the next step reads, merged into it where one kernel
        // does both: Conv + activation, the two PairMaxes of a 2x2 max pool, and a -inf
        // Pad before a max pool (which ignores padding anyway).
        let readers = self.readers(output);
        let mut i = 0;
        while i + 1 < self.steps.len() {
            let v = self.steps[i].output;
            let merged = if self.steps[i + 1].inputs == [v] && readers[v] == 1 {
                let x = &self.shapes[self.steps[i].inputs[0]];
                merge(&self.steps[i].op, &self.steps[i + 1].op, x)
            } else {
                None
            };
            match merged {
                Some(op) => {
                    let next = self.steps.remove(i + 1);
                    self.steps[i].op = op;
                    self.steps[i].output = next.output;
                    // The merged step may now merge with the one before it.
                    i = i.saturating_sub(1);
                }
                None => i += 1,
            }
        }

        // An average pool whose window is the whole input (the expression net's last
        // step before its heads) needs no planes: plain per-channel sums.
        for s in &mut self.steps {
            if let Op::Pool {
                max: false,
                c,
                hw,
                win,
            } = s.op
            {
                if (win.kh, win.kw, win.pads) == (hw.0, hw.1, [0; 4]) {
                    s.op = Op::GlobalAvg {
                        c,
                        hw,
                        pre: Act::None,
                    };
                }
            }
        }

        // A Sum read only by a depthwise conv is added while that conv lays out its
        // input planes (a copy it makes anyway), or by a global average pool while it
        // adds: one pass and one buffer fewer. A Sum that is also a graph output (or
        // asked for by name) keeps its step.
        let readers = self.readers(output);
        let mut dead = vec![false; self.steps.len()];
        for (i, dead_i) in dead.iter_mut().enumerate() {
            let Op::Sum(act) = self.steps[i].op else {
                continue;
            };
            let v = self.steps[i].output;
            if readers[v] != 1 {
                continue;
            }
            let Some(j) = self.steps.iter().position(|s| s.inputs.contains(&v)) else {
                continue;
            };
            if let Op::Conv {
                kind: ConvKind::Depthwise,
                pre: pre @ Act::None,
                ..
            }
            | Op::GlobalAvg {
                pre: pre @ Act::None,
                ..
            } = &mut self.steps[j].op
            {
                *pre = act;
                self.steps[j].inputs = self.steps[i].inputs.clone();
                *dead_i = true;
            }
        }
        drop_marked(&mut self.steps, &dead);
    }

    pub(super) fn finish(self, input: usize, outputs: Vec<usize>) -> Net {
        let mut last = vec![None; self.shapes.len()];
        for (i, s) in self.steps.iter().enumerate() {
            for &v in &s.inputs {
                last[v] = Some(i);
            }
        }
        let mut free_after = vec![Vec::new(); self.steps.len()];
        for (v, l) in last.iter().enumerate() {
            if let Some(i) = l {
                free_after[*i].push(v);
            }
        }
        Net {
            steps: self.steps,
            lens: self.shapes.iter().map(|s| s.iter().product()).collect(),
            shapes: self.shapes,
            input,
            outputs,
            free_after,
            spare: RefCell::default(),
            scratch: RefCell::default(),
        }
    }
}
