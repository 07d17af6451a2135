//! The arithmetic, on NCHW f32 tensors of batch 1. Plain Rust written so LLVM
//! vectorises the inner loops (fixed-width tiles, no bounds checks inside them): the same
//! code runs natively in `cargo test` and as simd128 in the browser.

/// Output channels per GEMM tile, and pixels per tile (two f32x4 lanes each).
pub const MR: usize = 4;
pub const NR: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    None,
    Relu,
    Leaky(f32),
}

impl Act {
    #[inline(always)]
    pub fn apply(self, v: f32) -> f32 {
        match self {
            Act::None => v,
            Act::Relu => v.max(0.0),
            Act::Leaky(a) => {
                if v < 0.0 {
                    v * a
                } else {
                    v
                }
            }
        }
    }
}

/// Weights `[cout][k]` repacked as `[cout/MR][k][MR]` (zero rows pad the last block), so
/// one tile reads them contiguously.
pub fn pack_weights(w: &[f32], cout: usize, k: usize) -> Vec<f32> {
    let blocks = cout.div_ceil(MR);
    let mut out = vec![0.0; blocks * k * MR];
    for co in 0..cout {
        for ki in 0..k {
            out[(co / MR * k + ki) * MR + co % MR] = w[co * k + ki];
        }
    }
    out
}

/// `out[co][o_off + p] = act(bias[co] + sum_k w[co][k] * x[k * x_stride + p])` for
/// `p < n`: a 1x1 convolution, or an im2col block of a larger one. `out` rows are
/// `o_stride` apart.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    packed: &[f32],
    bias: &[f32],
    cout: usize,
    k: usize,
    x: &[f32],
    x_stride: usize,
    n: usize,
    out: &mut [f32],
    o_stride: usize,
    o_off: usize,
    act: Act,
) {
    let mut col = vec![0f32; k * NR];
    for p0 in (0..n).step_by(NR) {
        let width = NR.min(n - p0);
        // Gather the tile's columns contiguously: k rows of NR pixels.
        for (ki, dst) in col.chunks_exact_mut(NR).enumerate() {
            let src = &x[ki * x_stride + p0..ki * x_stride + p0 + width];
            dst[..width].copy_from_slice(src);
            dst[width..].fill(0.0);
        }
        for (blk, w) in packed.chunks_exact(k * MR).enumerate() {
            let mut acc = [[0f32; NR]; MR];
            for (wk, xk) in w.chunks_exact(MR).zip(col.chunks_exact(NR)) {
                let wk: &[f32; MR] = wk.try_into().unwrap_or(&[0.0; MR]);
                let xk: &[f32; NR] = xk.try_into().unwrap_or(&[0.0; NR]);
                for r in 0..MR {
                    for j in 0..NR {
                        acc[r][j] += wk[r] * xk[j];
                    }
                }
            }
            for (r, row) in acc.iter().enumerate() {
                let co = blk * MR + r;
                if co >= cout {
                    break;
                }
                let b = bias[co];
                let o = &mut out[co * o_stride + o_off + p0..co * o_stride + o_off + p0 + width];
                for (dst, &v) in o.iter_mut().zip(row) {
                    *dst = act.apply(v + b);
                }
            }
        }
    }
}

/// Geometry of a 2-D convolution or pooling window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    /// Top, left, bottom, right.
    pub pads: [usize; 4],
}

impl Window {
    /// Output side for an input side; None when the window does not fit.
    pub fn out_dims(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let ph = h + self.pads[0] + self.pads[2];
        let pw = w + self.pads[1] + self.pads[3];
        if ph < self.kh || pw < self.kw || self.stride == 0 {
            return None;
        }
        Some((
            (ph - self.kh) / self.stride + 1,
            (pw - self.kw) / self.stride + 1,
        ))
    }
}

/// A dense convolution (group 1) as im2col of a few output rows at a time, then [`gemm`].
#[allow(clippy::too_many_arguments)]
pub fn conv_dense(
    x: &[f32],
    cin: usize,
    (h, w): (usize, usize),
    win: Window,
    packed: &[f32],
    bias: &[f32],
    cout: usize,
    out: &mut [f32],
    act: Act,
) {
    let Some((oh, ow)) = win.out_dims(h, w) else {
        return;
    };
    let k = cin * win.kh * win.kw;
    let rows = 256usize.div_ceil(ow).max(1);
    let mut col = vec![0f32; k * rows * ow];
    for y0 in (0..oh).step_by(rows) {
        let nrows = rows.min(oh - y0);
        let n = nrows * ow;
        for c in 0..cin {
            for dy in 0..win.kh {
                for dx in 0..win.kw {
                    let ki = (c * win.kh + dy) * win.kw + dx;
                    let dst = &mut col[ki * n..(ki + 1) * n];
                    for r in 0..nrows {
                        let iy = ((y0 + r) * win.stride + dy) as isize - win.pads[0] as isize;
                        let d = &mut dst[r * ow..(r + 1) * ow];
                        if iy < 0 || iy >= h as isize {
                            d.fill(0.0);
                            continue;
                        }
                        let src = &x[c * h * w + iy as usize * w..][..w];
                        for (ox, v) in d.iter_mut().enumerate() {
                            let ix = (ox * win.stride + dx) as isize - win.pads[1] as isize;
                            *v = if ix < 0 || ix >= w as isize {
                                0.0
                            } else {
                                src[ix as usize]
                            };
                        }
                    }
                }
            }
        }
        gemm(
            packed,
            bias,
            cout,
            k,
            &col,
            n,
            n,
            out,
            oh * ow,
            y0 * ow,
            act,
        );
    }
}

/// A depthwise convolution (group = channels, one filter each), with bias and activation.
#[allow(clippy::too_many_arguments)]
pub fn conv_depthwise(
    x: &[f32],
    c: usize,
    (h, w): (usize, usize),
    win: Window,
    filters: &[f32],
    bias: &[f32],
    out: &mut [f32],
    act: Act,
) {
    let Some((oh, ow)) = win.out_dims(h, w) else {
        return;
    };
    let taps = win.kh * win.kw;
    let fast = win.stride == 1 && win.kh == 3 && win.kw == 3 && win.pads == [1; 4] && w >= 3;
    for ch in 0..c {
        let xin = &x[ch * h * w..(ch + 1) * h * w];
        let f = &filters[ch * taps..(ch + 1) * taps];
        let o = &mut out[ch * oh * ow..(ch + 1) * oh * ow];
        if fast {
            depthwise3x3_s1(xin, h, w, f.try_into().unwrap_or(&[0.0; 9]), o);
        } else {
            depthwise_any(xin, (h, w), win, f, (oh, ow), o);
        }
        let b = bias[ch];
        for v in o.iter_mut() {
            *v = act.apply(*v + b);
        }
    }
}

/// 3x3, stride 1, padding 1: each output row is three shifted input rows per filter row,
/// so the interior vectorises along x; the two border columns are done apart.
fn depthwise3x3_s1(x: &[f32], h: usize, w: usize, f: &[f32; 9], o: &mut [f32]) {
    o.fill(0.0);
    for y in 0..h {
        let orow = &mut o[y * w..(y + 1) * w];
        for dy in 0..3 {
            let iy = y as isize + dy as isize - 1;
            if iy < 0 || iy >= h as isize {
                continue;
            }
            let r = &x[iy as usize * w..(iy as usize + 1) * w];
            let (f0, f1, f2) = (f[dy * 3], f[dy * 3 + 1], f[dy * 3 + 2]);
            // Interior: out[x] += f0*r[x-1] + f1*r[x] + f2*r[x+1] for 1 <= x < w-1.
            let inner = &mut orow[1..w - 1];
            for (((dst, &a), &b), &c) in inner
                .iter_mut()
                .zip(&r[..w - 2])
                .zip(&r[1..w - 1])
                .zip(&r[2..])
            {
                *dst += f0 * a + f1 * b + f2 * c;
            }
            orow[0] += f1 * r[0] + f2 * r[1];
            orow[w - 1] += f0 * r[w - 2] + f1 * r[w - 1];
        }
    }
}

fn depthwise_any(
    x: &[f32],
    (h, w): (usize, usize),
    win: Window,
    f: &[f32],
    (oh, ow): (usize, usize),
    o: &mut [f32],
) {
    for oy in 0..oh {
        for ox in 0..ow {
            let mut acc = 0.0;
            for dy in 0..win.kh {
                let iy = (oy * win.stride + dy) as isize - win.pads[0] as isize;
                if iy < 0 || iy >= h as isize {
                    continue;
                }
                for dx in 0..win.kw {
                    let ix = (ox * win.stride + dx) as isize - win.pads[1] as isize;
                    if ix >= 0 && ix < w as isize {
                        acc += f[dy * win.kw + dx] * x[iy as usize * w + ix as usize];
                    }
                }
            }
            o[oy * ow + ox] = acc;
        }
    }
}

/// Max or average pooling per channel; padding never counts (ONNX's defaults).
pub fn pool(x: &[f32], c: usize, (h, w): (usize, usize), win: Window, max: bool, out: &mut [f32]) {
    let Some((oh, ow)) = win.out_dims(h, w) else {
        return;
    };
    for ch in 0..c {
        let xin = &x[ch * h * w..(ch + 1) * h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let (mut acc, mut n) = (if max { f32::NEG_INFINITY } else { 0.0 }, 0u32);
                for dy in 0..win.kh {
                    let iy = (oy * win.stride + dy) as isize - win.pads[0] as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    for dx in 0..win.kw {
                        let ix = (ox * win.stride + dx) as isize - win.pads[1] as isize;
                        if ix >= 0 && ix < w as isize {
                            let v = xin[iy as usize * w + ix as usize];
                            acc = if max { acc.max(v) } else { acc + v };
                            n += 1;
                        }
                    }
                }
                out[(ch * oh + oy) * ow + ox] = if max || n == 0 { acc } else { acc / n as f32 };
            }
        }
    }
}

/// 2x2 max pooling with stride 2 over rows `0..2*oh` and columns `0..2*ow` (the callers
/// pad odd sides with -inf first, as the models' Pad + Slice + Max pattern does).
pub fn maxpool2x2s2(
    x: &[f32],
    c: usize,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
    out: &mut [f32],
) {
    for ch in 0..c {
        for oy in 0..oh {
            let r0 = &x[(ch * h + 2 * oy) * w..][..w];
            let r1 = &x[(ch * h + 2 * oy + 1) * w..][..w];
            let o = &mut out[(ch * oh + oy) * ow..][..ow];
            for (ox, v) in o.iter_mut().enumerate() {
                let a = r0[2 * ox].max(r0[2 * ox + 1]);
                let b = r1[2 * ox].max(r1[2 * ox + 1]);
                *v = a.max(b);
            }
        }
    }
}

/// In-place softmax of one row, max-subtracted for range.
pub fn softmax(v: &mut [f32]) {
    let m = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - m).exp();
        sum += *x;
    }
    for x in v.iter_mut() {
        *x /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook definition, for checking the fast paths.
    fn conv_ref(
        x: &[f32],
        cin: usize,
        (h, w): (usize, usize),
        win: Window,
        wts: &[f32],
        group: usize,
        cout: usize,
    ) -> Vec<f32> {
        let (oh, ow) = win.out_dims(h, w).unwrap();
        let cpg = cin / group;
        let opg = cout / group;
        let mut out = vec![0.0; cout * oh * ow];
        for co in 0..cout {
            let g = co / opg;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = 0.0f64;
                    for ci in 0..cpg {
                        for dy in 0..win.kh {
                            for dx in 0..win.kw {
                                let iy = (oy * win.stride + dy) as isize - win.pads[0] as isize;
                                let ix = (ox * win.stride + dx) as isize - win.pads[1] as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    let xv =
                                        x[((g * cpg + ci) * h + iy as usize) * w + ix as usize];
                                    let wv = wts[((co * cpg + ci) * win.kh + dy) * win.kw + dx];
                                    acc += (xv * wv) as f64;
                                }
                            }
                        }
                    }
                    out[(co * oh + oy) * ow + ox] = acc as f32;
                }
            }
        }
        out
    }

    fn data(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() < 1e-4, "at {i}: {x} vs {y}");
        }
    }

    #[test]
    fn dense_conv_matches_the_definition() {
        for (cin, cout, h, w, win) in [
            (
                3,
                16,
                11,
                9,
                Window {
                    kh: 3,
                    kw: 3,
                    stride: 1,
                    pads: [0; 4],
                },
            ),
            (
                3,
                6,
                12,
                12,
                Window {
                    kh: 3,
                    kw: 3,
                    stride: 2,
                    pads: [0, 0, 1, 1],
                },
            ),
            (
                13,
                25,
                5,
                7,
                Window {
                    kh: 1,
                    kw: 1,
                    stride: 1,
                    pads: [0; 4],
                },
            ),
        ] {
            let x = data(cin * h * w, 1);
            let wts = data(cout * cin * win.kh * win.kw, 2);
            let (oh, ow) = win.out_dims(h, w).unwrap();
            let mut out = vec![f32::NAN; cout * oh * ow];
            let packed = pack_weights(&wts, cout, cin * win.kh * win.kw);
            conv_dense(
                &x,
                cin,
                (h, w),
                win,
                &packed,
                &vec![0.0; cout],
                cout,
                &mut out,
                Act::None,
            );
            close(&out, &conv_ref(&x, cin, (h, w), win, &wts, 1, cout));
        }
    }

    #[test]
    fn depthwise_conv_matches_the_definition() {
        for (c, h, w, win) in [
            (
                5,
                9,
                10,
                Window {
                    kh: 3,
                    kw: 3,
                    stride: 1,
                    pads: [1; 4],
                },
            ),
            (
                4,
                3,
                3,
                Window {
                    kh: 3,
                    kw: 3,
                    stride: 1,
                    pads: [1; 4],
                },
            ),
            (
                3,
                8,
                9,
                Window {
                    kh: 3,
                    kw: 3,
                    stride: 2,
                    pads: [0, 0, 1, 1],
                },
            ),
        ] {
            let x = data(c * h * w, 3);
            let f = data(c * 9, 4);
            let (oh, ow) = win.out_dims(h, w).unwrap();
            let mut out = vec![f32::NAN; c * oh * ow];
            conv_depthwise(&x, c, (h, w), win, &f, &vec![0.0; c], &mut out, Act::None);
            close(&out, &conv_ref(&x, c, (h, w), win, &f, c, c));
        }
    }

    #[test]
    fn bias_and_activations() {
        let x = [-2.0, 3.0];
        let packed = pack_weights(&[1.0], 1, 1);
        let mut out = [0.0; 2];
        gemm(
            &packed,
            &[0.5],
            1,
            1,
            &x,
            2,
            2,
            &mut out,
            2,
            0,
            Act::Leaky(0.1),
        );
        assert_eq!(out, [-0.15, 3.5]);
        gemm(&packed, &[0.5], 1, 1, &x, 2, 2, &mut out, 2, 0, Act::Relu);
        assert_eq!(out, [0.0, 3.5]);
    }

    #[test]
    fn pools() {
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let mut out = vec![0.0; 4];
        maxpool2x2s2(&x, 1, (4, 4), (2, 2), &mut out);
        assert_eq!(out, [5.0, 7.0, 13.0, 15.0]);
        let mut avg = vec![0.0; 1];
        pool(
            &x,
            1,
            (4, 4),
            Window {
                kh: 4,
                kw: 4,
                stride: 2,
                pads: [0; 4],
            },
            false,
            &mut avg,
        );
        assert_eq!(avg, [7.5]);
        // SAME_UPPER 2x2 stride 1: the last row/column sees only itself.
        let mut same = vec![0.0; 16];
        pool(
            &x,
            1,
            (4, 4),
            Window {
                kh: 2,
                kw: 2,
                stride: 1,
                pads: [0, 0, 1, 1],
            },
            true,
            &mut same,
        );
        assert_eq!(same[15], 15.0);
        assert_eq!(same[0], 5.0);
        let mut s = [1.0, 2.0, 3.0];
        softmax(&mut s);
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-6 && s[2] > s[1]);
    }
}
