//! The arithmetic, on NCHW f32 tensors of batch 1, written on [`F4`] (four f32 lanes:
//! simd128 in the browser, SSE or NEON natively) so the same code, with the same
//! rounding, runs in `cargo test` and in the page.
//!
//! Windowed ops (convolutions, pools) first lay each input channel out as [`Planes`]:
//! padded, and split by column phase for strides above 1, so every tap of an output row
//! is one contiguous slice and the inner loops are plain vector loops without borders.
//!
//! One file though long: the kernels share the plane layout and the GEMM tile, and their
//! unit tests (a third of the file) compare each against a plain loop.

use super::simd::{axpy, vadd, vmax, F4};

/// Output channels per GEMM tile, and pixels per tile (two F4 each).
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
            Act::Relu => {
                if v < 0.0 {
                    0.0
                } else {
                    v
                }
            }
            Act::Leaky(a) => {
                if v < 0.0 {
                    v * a
                } else {
                    v
                }
            }
        }
    }

    #[inline(always)]
    fn apply4(self, v: F4) -> F4 {
        match self {
            Act::None => v,
            Act::Relu => v.max(F4::splat(0.0)),
            Act::Leaky(a) => v.leaky(F4::splat(a)),
        }
    }

    /// `v[i] = act(v[i] + bias)`.
    pub fn apply_with_bias(self, v: &mut [f32], bias: f32) {
        let b = F4::splat(bias);
        let (chunks, tail) = v.as_chunks_mut::<4>();
        for c in chunks {
            self.apply4(F4::load(c).add(b)).store(c);
        }
        for x in tail {
            *x = self.apply(*x + bias);
        }
    }
}

/// `dst = act(x0 + (x1 + (... + xn)))` over `xs[i][at..at + dst.len()]`, added from the
/// last input back as the graphs nest their Adds, so a Sum folded into another step
/// rounds exactly as the Sum step did.
#[inline(always)]
pub fn sum_into(dst: &mut [f32], xs: &[&[f32]], at: usize, act: Act) {
    let n = dst.len();
    // One pass with every input in registers for the counts the models have (a residual
    // block sums 2 to 4); a loop of passes for any other count.
    match xs {
        [a, b] => sum_n(dst, [&a[at..][..n], &b[at..][..n]], act),
        [a, b, c] => sum_n(dst, [&a[at..][..n], &b[at..][..n], &c[at..][..n]], act),
        [a, b, c, d] => sum_n(
            dst,
            [&a[at..][..n], &b[at..][..n], &c[at..][..n], &d[at..][..n]],
            act,
        ),
        _ => {
            let Some((last, rest)) = xs.split_last() else {
                return;
            };
            dst.copy_from_slice(&last[at..][..n]);
            for y in rest.iter().rev() {
                vadd(dst, &y[at..][..n]);
            }
            if act != Act::None {
                act.apply_with_bias(dst, 0.0);
            }
        }
    }
}

/// [`sum_into`] for `N` inputs of `dst`'s length, in one pass.
#[inline(always)]
fn sum_n<const N: usize>(dst: &mut [f32], xs: [&[f32]; N], act: Act) {
    let (dc, dt) = dst.as_chunks_mut::<4>();
    let xc: [&[[f32; 4]]; N] = xs.map(|x| x.as_chunks::<4>().0);
    for (j, d) in dc.iter_mut().enumerate() {
        let mut acc = F4::load(&xc[N - 1][j]);
        for x in xc[..N - 1].iter().rev() {
            acc = acc.add(F4::load(&x[j]));
        }
        act.apply4(acc).store(d);
    }
    let t0 = 4 * dc.len();
    for (j, d) in dt.iter_mut().enumerate() {
        let mut acc = xs[N - 1][t0 + j];
        for x in xs[..N - 1].iter().rev() {
            acc += x[t0 + j];
        }
        *d = act.apply(acc);
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

/// Working memory the kernels reuse from step to step and run to run, so a frame
/// allocates nothing once the first run has sized it.
#[derive(Debug, Default)]
pub struct Scratch {
    planes: Planes,
    col: Vec<f32>,
    panel: Vec<f32>,
}

/// `dst.copy_from_slice(src)` in groups of four: a variable-length copy is a
/// `memory.copy` in wasm, which V8 runs as a call, too dear for rows of 7 to 56 values.
#[inline(always)]
fn copy(dst: &mut [f32], src: &[f32]) {
    let (dc, dt) = dst.as_chunks_mut::<4>();
    let (sc, st) = src.as_chunks::<4>();
    for (d, s) in dc.iter_mut().zip(sc) {
        *d = *s;
    }
    for (d, s) in dt.iter_mut().zip(st) {
        *d = *s;
    }
}

/// The first `n` values of `buf`, grown if needed. Old values stay: callers overwrite
/// all `n`.
fn first(buf: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if buf.len() < n {
        buf.resize(n, 0.0);
    }
    &mut buf[..n]
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
    s: &mut Scratch,
) {
    // One panel of NR pixels by k inputs, contiguous; it stays in L1 while every block
    // of weights passes over it.
    let panel = first(&mut s.panel, k * NR);
    for p0 in (0..n).step_by(NR) {
        let width = NR.min(n - p0);
        if width <= 4 {
            // A last panel of at most four pixels (n = 49 at 7x7, 196 at 14x14): one F4
            // per row, half the work of a zero-padded full tile.
            let p4 = &mut panel[..k * 4];
            for (ki, dst) in p4.as_chunks_mut::<4>().0.iter_mut().enumerate() {
                *dst = [0.0; 4];
                dst[..width].copy_from_slice(&x[ki * x_stride + p0..][..width]);
            }
            for (blk, w) in packed.chunks_exact(k * MR).enumerate() {
                let acc = tile4(w, p4);
                for (r, row) in acc.iter().enumerate() {
                    let co = blk * MR + r;
                    if co >= cout {
                        break;
                    }
                    let mut v = [0f32; 4];
                    act.apply4(row.add(F4::splat(bias[co]))).store(&mut v);
                    out[co * o_stride + o_off + p0..][..width].copy_from_slice(&v[..width]);
                }
            }
            continue;
        }
        for (ki, dst) in panel.as_chunks_mut::<NR>().0.iter_mut().enumerate() {
            let src = &x[ki * x_stride + p0..][..width];
            // Fixed-size copies: a variable-length one is a memcpy call in wasm.
            match src.first_chunk::<NR>() {
                Some(full) => *dst = *full,
                None => {
                    dst[..width].copy_from_slice(src);
                    dst[width..].fill(0.0);
                }
            }
        }
        for (blk, w) in packed.chunks_exact(k * MR).enumerate() {
            let acc = tile(w, panel);
            for (r, row) in acc.iter().enumerate() {
                let co = blk * MR + r;
                if co >= cout {
                    break;
                }
                let b = F4::splat(bias[co]);
                let (lo, hi) = (act.apply4(row[0].add(b)), act.apply4(row[1].add(b)));
                let dst = &mut out[co * o_stride + o_off + p0..][..width];
                if let Some(d) = dst.first_chunk_mut::<NR>() {
                    let (d0, d1) = d.split_at_mut(4);
                    if let (Some(d0), Some(d1)) =
                        (d0.first_chunk_mut::<4>(), d1.first_chunk_mut::<4>())
                    {
                        lo.store(d0);
                        hi.store(d1);
                    }
                } else {
                    let mut v = [0f32; NR];
                    let (v0, v1) = v.split_at_mut(4);
                    if let (Some(v0), Some(v1)) =
                        (v0.first_chunk_mut::<4>(), v1.first_chunk_mut::<4>())
                    {
                        lo.store(v0);
                        hi.store(v1);
                    }
                    dst.copy_from_slice(&v[..width]);
                }
            }
        }
    }
}

/// The MR x NR micro-kernel: one block of packed weights `[k][MR]` times one panel
/// `[k][NR]`, accumulated in registers (8 F4 accumulators, 2 inputs, 1 broadcast load).
#[inline(always)]
fn tile(w: &[f32], panel: &[f32]) -> [[F4; 2]; MR] {
    let mut acc = [[F4::splat(0.0); 2]; MR];
    let (wc, _) = w.as_chunks::<MR>();
    let (xc, _) = panel.as_chunks::<NR>();
    for (wk, xk) in wc.iter().zip(xc) {
        let (x0, x1) = F4::load2(xk);
        for (a, wr) in acc.iter_mut().zip(wk) {
            let wr = F4::load_splat(wr);
            a[0] = a[0].mul_add(wr, x0);
            a[1] = a[1].mul_add(wr, x1);
        }
    }
    acc
}

/// [`tile`] for a panel `[k][4]`: four accumulators, the same order of additions.
#[inline(always)]
fn tile4(w: &[f32], panel: &[f32]) -> [F4; MR] {
    let mut acc = [F4::splat(0.0); MR];
    let (wc, _) = w.as_chunks::<MR>();
    let (xc, _) = panel.as_chunks::<4>();
    for (wk, xk) in wc.iter().zip(xc) {
        let x = F4::load(xk);
        for (a, wr) in acc.iter_mut().zip(wk) {
            *a = a.mul_add(F4::load_splat(wr), x);
        }
    }
    acc
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

/// Channels laid out for a window: padded with a fill value, each padded row split into
/// `stride` phase rows (phase q holds padded columns q, q + s, q + 2s, ...). Tap (dy, dx)
/// of output row oy then reads `ow` contiguous values.
#[derive(Debug, Default)]
struct Planes {
    buf: Vec<f32>,
    /// One summed input channel, when the planes are filled from a sum.
    sum: Vec<f32>,
    /// Padded rows per channel, and values per phase row.
    rows: usize,
    len: usize,
    stride: usize,
    /// What the padding of `buf` was last cleared for (channels, input size, window,
    /// fill value's bits): fills write only the inside, so the same geometry and value
    /// find the padding as it was left and need not clear it again.
    cleared: Option<(usize, (usize, usize), Window, u32)>,
}

impl Planes {
    /// Lays out channels `chans` of `act(xs[0] + (xs[1] + ...))` (one input: a plain
    /// copy), each input NCHW of `h x w`. The sum is made row by row here, so a Sum step
    /// folded into the next windowed op costs no pass of its own and no buffer.
    fn fill(
        &mut self,
        xs: &[&[f32]],
        act: Act,
        chans: std::ops::Range<usize>,
        (h, w): (usize, usize),
        win: Window,
        value: f32,
    ) {
        let s = win.stride.max(1);
        let [pt, pl, pb, pr] = win.pads;
        self.rows = h + pt + pb;
        // Three slack columns: a row's last group of four outputs may read past ow. A
        // multiple of four, so consecutive output rows' taps are whole groups of four
        // apart (the depthwise 3x3 indexes one slice per tap for all rows).
        self.len = ((w + pl + pr).div_ceil(s) + 3).next_multiple_of(4);
        self.stride = s;
        let key = Some((chans.len(), (h, w), win, value.to_bits()));
        if self.cleared != key {
            self.buf.clear();
            self.buf
                .resize(chans.len() * self.rows * s * self.len, value);
            self.cleared = key;
        }
        let plain = xs.len() == 1 && act == Act::None;
        let summed = first(&mut self.sum, if plain { 0 } else { h * w });
        for (ch, x_ch) in chans.enumerate() {
            if s == 1 && !plain {
                // Stride 1: each summed row goes straight to its place in the plane.
                for iy in 0..h {
                    let row = &mut self.buf[(ch * self.rows + iy + pt) * self.len..][..self.len];
                    sum_into(&mut row[pl..pl + w], xs, (x_ch * h + iy) * w, act);
                }
                continue;
            }
            // Otherwise a sum is made a whole channel at a time (one long pass, in L1).
            let chan: &[f32] = if plain {
                &xs[0][x_ch * h * w..][..h * w]
            } else {
                sum_into(summed, xs, x_ch * h * w, act);
                summed
            };
            for iy in 0..h {
                let src = &chan[iy * w..][..w];
                let row =
                    &mut self.buf[(ch * self.rows + iy + pt) * s * self.len..][..s * self.len];
                if s == 1 {
                    copy(&mut row[pl..pl + w], src);
                } else if s == 2 {
                    // Even input columns land in phase pl % 2 from pl / 2 on, odd ones in
                    // the other phase from (pl + 1) / 2 on.
                    let (len, (chunks, tail)) = (self.len, src.as_chunks::<8>());
                    let (even, odd) = row.split_at_mut(len);
                    let (e, o) = if pl % 2 == 0 {
                        (even, odd)
                    } else {
                        (odd, even)
                    };
                    let (e, o) = (&mut e[pl / 2..], &mut o[pl.div_ceil(2)..]);
                    for (j, c) in chunks.iter().enumerate() {
                        let (ev, ov) = F4::deinterleave(c);
                        if let (Some(de), Some(dd)) = (
                            e[4 * j..].first_chunk_mut::<4>(),
                            o[4 * j..].first_chunk_mut::<4>(),
                        ) {
                            ev.store(de);
                            ov.store(dd);
                        }
                    }
                    let j0 = 4 * chunks.len();
                    for (i, &v) in tail.iter().enumerate() {
                        if i % 2 == 0 {
                            e[j0 + i / 2] = v;
                        } else {
                            o[j0 + i / 2] = v;
                        }
                    }
                } else {
                    for (ix, &v) in src.iter().enumerate() {
                        let px = ix + pl;
                        row[(px % s) * self.len + px / s] = v;
                    }
                }
            }
        }
    }

    #[inline(always)]
    fn tap(&self, ch: usize, oy: usize, dy: usize, dx: usize, ow: usize) -> &[f32] {
        let s = self.stride;
        let py = oy * s + dy;
        &self.buf[((ch * self.rows + py) * s + dx % s) * self.len + dx / s..][..ow]
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
    s: &mut Scratch,
) {
    let Some((oh, ow)) = win.out_dims(h, w) else {
        return;
    };
    s.planes.fill(&[x], Act::None, 0..cin, (h, w), win, 0.0);
    let k = cin * win.kh * win.kw;
    let rows = 256usize.div_ceil(ow).max(1);
    // Taken out for the loop, as gemm needs the rest of the scratch; put back after.
    let mut col_buf = std::mem::take(&mut s.col);
    let col = first(&mut col_buf, k * rows * ow);
    for y0 in (0..oh).step_by(rows) {
        let nrows = rows.min(oh - y0);
        let n = nrows * ow;
        for c in 0..cin {
            for dy in 0..win.kh {
                for dx in 0..win.kw {
                    let ki = (c * win.kh + dy) * win.kw + dx;
                    let dst = &mut col[ki * n..(ki + 1) * n];
                    for (r, d) in dst.chunks_exact_mut(ow).enumerate() {
                        d.copy_from_slice(s.planes.tap(c, y0 + r, dy, dx, ow));
                    }
                }
            }
        }
        gemm(
            packed,
            bias,
            cout,
            k,
            col,
            n,
            n,
            out,
            oh * ow,
            y0 * ow,
            act,
            s,
        );
    }
    s.col = col_buf;
}

/// A depthwise convolution (group = channels, one filter each), with bias and activation,
/// of `pre(xs[0] + (xs[1] + ...))`: a residual sum feeding the convolution is added while
/// each channel is laid out (one input and `Act::None`: the input as it is).
#[allow(clippy::too_many_arguments)]
pub fn conv_depthwise(
    xs: &[&[f32]],
    pre: Act,
    c: usize,
    (h, w): (usize, usize),
    win: Window,
    filters: &[f32],
    bias: &[f32],
    out: &mut [f32],
    act: Act,
    s: &mut Scratch,
) {
    let Some((oh, ow)) = win.out_dims(h, w) else {
        return;
    };
    let taps = win.kh * win.kw;
    let planes = &mut s.planes;
    for ch in 0..c {
        planes.fill(xs, pre, ch..ch + 1, (h, w), win, 0.0);
        let f = &filters[ch * taps..][..taps];
        if let Ok(f9) = <&[f32; 9]>::try_from(f) {
            // 3x3: all nine taps of four outputs summed in registers, then bias and
            // activation, one store. The planes' slack columns let the last, partial
            // group of four read whole vectors too.
            let fv: [F4; 9] = std::array::from_fn(|i| F4::splat(f9[i]));
            let b = F4::splat(bias[ch]);
            let groups = ow.div_ceil(4);
            // This channel's outputs and every later one's: a row's last, partial group
            // is stored whole, spilling into the next row (or channel), which is written
            // after it. Only the very end of `out` takes a partial store.
            let o = &mut out[ch * oh * ow..];
            // One slice per tap for all output rows, built once per channel: output row
            // oy's taps start `step` groups after row oy - 1's.
            let step = planes.stride * planes.stride * planes.len / 4;
            let need = (oh - 1) * step + groups;
            let tc: [&[[f32; 4]]; 9] = std::array::from_fn(|i| {
                &planes.tap(0, 0, i / 3, i % 3, 4 * need).as_chunks::<4>().0[..need]
            });
            // Stride 1: bands of rows first (they share input rows), the rest one by one.
            let banded = if planes.stride == 1 {
                oh - oh % BAND
            } else {
                0
            };
            for oy in (0..banded).step_by(BAND) {
                dw3x3_band(&planes.buf, planes.len, (oy, ow, groups), &fv, b, act, o);
            }
            for oy in banded..oh {
                for j in 0..groups {
                    let mut acc = F4::splat(0.0);
                    let m = oy * step + j;
                    for (fi, ti) in fv.iter().zip(&tc) {
                        // SAFETY: every tap slice holds `need` groups, and m < need for
                        // oy < oh and j < groups.
                        acc = acc.mul_add(*fi, F4::load(unsafe { ti.get_unchecked(m) }));
                    }
                    store_group(o, oy * ow + 4 * j, act.apply4(acc.add(b)));
                }
            }
        } else {
            let o = &mut out[ch * oh * ow..][..oh * ow];
            for (oy, orow) in o.chunks_exact_mut(ow).enumerate() {
                orow.fill(0.0);
                for dy in 0..win.kh {
                    for dx in 0..win.kw {
                        axpy(orow, f[dy * win.kw + dx], planes.tap(0, oy, dy, dx, ow));
                    }
                }
                act.apply_with_bias(orow, bias[ch]);
            }
        }
    }
}

/// Output rows per band of [`dw3x3_band`].
const BAND: usize = 4;

/// `v` at `o[at..at + 4]`, or as much of it as `o` holds.
#[inline(always)]
fn store_group(o: &mut [f32], at: usize, v: F4) {
    match o[at..].first_chunk_mut::<4>() {
        Some(dst) => v.store(dst),
        None => {
            let mut last = [0f32; 4];
            v.store(&mut last);
            for (d, l) in o[at..].iter_mut().zip(last) {
                *d = l;
            }
        }
    }
}

/// Output rows `oy..oy + BAND` of a 3x3 stride-1 depthwise conv of one plane (rows of
/// `len` values) into `o`, as [`conv_depthwise`] does them one by one: each input
/// vector is loaded once for the up to three output rows it feeds (4.5 loads per
/// group of outputs instead of 9), and each output still adds its nine taps in order.
#[inline(always)]
fn dw3x3_band(
    plane: &[f32],
    len: usize,
    (oy, ow, groups): (usize, usize, usize),
    fv: &[F4; 9],
    b: F4,
    act: Act,
    o: &mut [f32],
) {
    // A row's groups read up to 4 * groups + 2 values; the planes' slack holds them.
    let rows: [&[f32]; BAND + 2] =
        std::array::from_fn(|i| &plane[(oy + i) * len..][..4 * groups + 2]);
    // Last group first: a row's last, partial group spills into the next row's first
    // group, which is stored after it.
    for j in (0..groups).rev() {
        let mut acc = [F4::splat(0.0); BAND];
        // Input row $ir adds its taps of row $dy to output row $r.
        macro_rules! row {
            ($ir:expr, $(($r:expr, $dy:expr)),*) => {
                for dx in 0..3 {
                    // SAFETY: 4 * j + dx + 4 <= 4 * groups + 2, the row's length.
                    let v = F4::load(unsafe {
                        &*(rows[$ir].as_ptr().add(4 * j + dx) as *const [f32; 4])
                    });
                    $(acc[$r] = acc[$r].mul_add(fv[$dy * 3 + dx], v);)*
                }
            };
        }
        row!(0, (0, 0));
        row!(1, (0, 1), (1, 0));
        row!(2, (0, 2), (1, 1), (2, 0));
        row!(3, (1, 2), (2, 1), (3, 0));
        row!(4, (2, 2), (3, 1));
        row!(5, (3, 2));
        for (r, a) in acc.into_iter().enumerate() {
            store_group(o, (oy + r) * ow + 4 * j, act.apply4(a.add(b)));
        }
    }
}

/// Max or average pooling per channel; padding never counts (ONNX's defaults).
pub fn pool(
    x: &[f32],
    c: usize,
    (h, w): (usize, usize),
    win: Window,
    max: bool,
    out: &mut [f32],
    s: &mut Scratch,
) {
    let Some((oh, ow)) = win.out_dims(h, w) else {
        return;
    };
    // How many of a window's rows (columns) fall inside the input, for averages.
    let inside = |o: usize, k: usize, pad: usize, n: usize| {
        (0..k)
            .filter(|d| (o * win.stride + d).checked_sub(pad).is_some_and(|i| i < n))
            .count() as f32
    };
    let cols: Vec<f32> = if max {
        Vec::new()
    } else {
        (0..ow)
            .map(|ox| inside(ox, win.kw, win.pads[1], w))
            .collect()
    };
    let planes = &mut s.planes;
    for ch in 0..c {
        planes.fill(
            &[x],
            Act::None,
            ch..ch + 1,
            (h, w),
            win,
            if max { f32::NEG_INFINITY } else { 0.0 },
        );
        let o = &mut out[ch * oh * ow..][..oh * ow];
        for (oy, orow) in o.chunks_exact_mut(ow).enumerate() {
            orow.copy_from_slice(planes.tap(0, oy, 0, 0, ow));
            for dy in 0..win.kh {
                for dx in 0..win.kw {
                    if dy + dx == 0 {
                        continue;
                    }
                    let src = planes.tap(0, oy, dy, dx, ow);
                    if max {
                        vmax(orow, src)
                    } else {
                        vadd(orow, src)
                    }
                }
            }
            if !max {
                let rows = inside(oy, win.kh, win.pads[0], h);
                for (v, n) in orow.iter_mut().zip(&cols) {
                    *v /= rows * n;
                }
            }
        }
    }
}

/// The mean of each channel of `pre(xs[0] + (xs[1] + ...))` (a residual sum folded in,
/// as in [`conv_depthwise`]): an average pool whose window is the whole `h x w` input.
/// Each mean adds its values in the order [`pool`] does (row-major, then one division),
/// four channels at a time for four independent chains instead of pool's plane layout.
pub fn global_avg(
    xs: &[&[f32]],
    pre: Act,
    c: usize,
    (h, w): (usize, usize),
    out: &mut [f32],
    s: &mut Scratch,
) {
    let hw = h * w;
    let plain = xs.len() == 1 && pre == Act::None;
    let buf = first(&mut s.col, if plain { 0 } else { 4 * hw });
    let n = (h as f32) * (w as f32);
    for c0 in (0..c).step_by(4) {
        let cs = 4.min(c - c0);
        let block: &[f32] = if plain {
            &xs[0][c0 * hw..][..cs * hw]
        } else {
            let b = &mut buf[..cs * hw];
            sum_into(b, xs, c0 * hw, pre);
            b
        };
        let mut acc = [0f32; 4];
        for (a, ch) in acc.iter_mut().zip(block.chunks_exact(hw)) {
            *a = ch[0];
        }
        for p in 1..hw {
            for (j, a) in acc[..cs].iter_mut().enumerate() {
                *a += block[j * hw + p];
            }
        }
        for (o, a) in out[c0..c0 + cs].iter_mut().zip(acc) {
            *o = a / n;
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
        // One scratch for every case: later cases run on buffers earlier ones left dirty.
        let mut s = Scratch::default();
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
                &mut s,
            );
            close(&out, &conv_ref(&x, cin, (h, w), win, &wts, 1, cout));
        }
    }

    #[test]
    fn depthwise_conv_matches_the_definition() {
        // One scratch for every case: later cases run on buffers earlier ones left dirty.
        let mut s = Scratch::default();
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
            (
                2,
                11,
                21,
                Window {
                    kh: 3,
                    kw: 3,
                    stride: 2,
                    pads: [1; 4],
                },
            ),
            (
                2,
                9,
                13,
                Window {
                    kh: 2,
                    kw: 2,
                    stride: 2,
                    pads: [0, 1, 0, 1],
                },
            ),
            (
                2,
                9,
                13,
                Window {
                    kh: 2,
                    kw: 3,
                    stride: 3,
                    pads: [1, 2, 0, 1],
                },
            ),
        ] {
            let x = data(c * h * w, 3);
            let f = data(c * win.kh * win.kw, 4);
            let (oh, ow) = win.out_dims(h, w).unwrap();
            let mut out = vec![f32::NAN; c * oh * ow];
            conv_depthwise(
                &[&x],
                Act::None,
                c,
                (h, w),
                win,
                &f,
                &vec![0.0; c],
                &mut out,
                Act::None,
                &mut s,
            );
            close(&out, &conv_ref(&x, c, (h, w), win, &f, c, c));
        }
    }

    /// Planes keep their padding between fills of the same geometry: a scratch that has
    /// run other data, and a max pool's -inf padding of the same window, gives a fresh
    /// scratch's bits.
    #[test]
    fn reused_planes_give_a_fresh_scratchs_bits() {
        let (c, h, w) = (3, 7, 9);
        let f = data(c * 9, 7);
        let bias = data(c, 8);
        let mut dirty = Scratch::default();
        for stride in [1, 2] {
            let win = Window {
                kh: 3,
                kw: 3,
                stride,
                pads: [1; 4],
            };
            let (oh, ow) = win.out_dims(h, w).unwrap();
            for seed in 0..3 {
                let xs: Vec<Vec<f32>> = (0..2).map(|i| data(c * h * w, 30 + seed + i)).collect();
                let refs: Vec<&[f32]> = xs.iter().map(Vec::as_slice).collect();
                let mut pooled = vec![f32::NAN; c * oh * ow];
                pool(&xs[0], c, (h, w), win, true, &mut pooled, &mut dirty);
                for inputs in [&refs[..1], &refs[..]] {
                    let dw = |out: &mut [f32], s: &mut Scratch| {
                        conv_depthwise(
                            inputs,
                            Act::Relu,
                            c,
                            (h, w),
                            win,
                            &f,
                            &bias,
                            out,
                            Act::None,
                            s,
                        )
                    };
                    let (mut got, mut want) =
                        (vec![f32::NAN; c * oh * ow], vec![f32::NAN; c * oh * ow]);
                    dw(&mut got, &mut dirty);
                    dw(&mut want, &mut Scratch::default());
                    assert_eq!(
                        got,
                        want,
                        "stride {stride}, seed {seed}, {} inputs",
                        inputs.len()
                    );
                }
            }
        }
    }

    /// Stride-1 3x3 rows done in bands give the bits of rows done one by one: every
    /// three output rows of a tall input equal a conv of just their five input rows
    /// (three outputs: fewer than a band, so one by one), for widths with a partial group.
    #[test]
    fn banded_depthwise_rows_equal_rows_one_by_one() {
        let mut s = Scratch::default();
        for (c, h, w) in [(3, 13, 7), (2, 10, 14), (2, 9, 5)] {
            let x = data(c * h * w, 40);
            let f = data(c * 9, 41);
            let bias = data(c, 42);
            let win = |top, bottom| Window {
                kh: 3,
                kw: 3,
                stride: 1,
                pads: [top, 1, bottom, 1],
            };
            let mut all = vec![f32::NAN; c * h * w];
            let act = Act::Leaky(0.1);
            conv_depthwise(
                &[&x],
                Act::None,
                c,
                (h, w),
                win(1, 1),
                &f,
                &bias,
                &mut all,
                act,
                &mut s,
            );
            for oy in (0..h).step_by(3) {
                // Output rows oy.. read input rows oy - 1.. (padding above row 0, below h - 1).
                let (top, bottom) = (usize::from(oy == 0), usize::from(oy + 3 >= h));
                let first = oy + top - 1;
                let rows = (oy + 3 + 1 - bottom).min(h) - first;
                let part: Vec<f32> = (0..c)
                    .flat_map(|ch| x[(ch * h + first) * w..][..rows * w].to_vec())
                    .collect();
                let win = win(top, bottom);
                let (oh, _) = win.out_dims(rows, w).unwrap();
                let mut got = vec![f32::NAN; c * oh * w];
                conv_depthwise(
                    &[&part],
                    Act::None,
                    c,
                    (rows, w),
                    win,
                    &f,
                    &bias,
                    &mut got,
                    act,
                    &mut s,
                );
                for ch in 0..c {
                    assert_eq!(
                        got[ch * oh * w..][..oh * w],
                        all[(ch * h + oy) * w..][..oh * w],
                        "{c}x{h}x{w}, rows {oy}.., channel {ch}"
                    );
                }
            }
        }
    }

    /// A sum folded into the depthwise conv's plane fill gives the bits of the Sum step
    /// followed by the conv, and matches the definition, for 2 to 5 inputs (5: the
    /// generic path) and strides 1 and 2.
    #[test]
    fn depthwise_conv_of_a_sum_equals_the_sum_then_the_conv() {
        let mut s = Scratch::default();
        for (inputs, stride, pads) in [
            (2, 1, [1; 4]),
            (3, 2, [0, 0, 1, 1]),
            (4, 1, [1; 4]),
            (5, 2, [1; 4]),
        ] {
            let (c, h, w) = (3, 9, 13);
            let win = Window {
                kh: 3,
                kw: 3,
                stride,
                pads,
            };
            let xs: Vec<Vec<f32>> = (0..inputs)
                .map(|i| data(c * h * w, 10 + i as u32))
                .collect();
            let refs: Vec<&[f32]> = xs.iter().map(Vec::as_slice).collect();
            let f = data(c * 9, 5);
            let bias = data(c, 6);
            let (oh, ow) = win.out_dims(h, w).unwrap();
            let mut fused = vec![f32::NAN; c * oh * ow];
            let dw = |xs: &[&[f32]], pre, out: &mut [f32], s: &mut Scratch| {
                conv_depthwise(xs, pre, c, (h, w), win, &f, &bias, out, Act::Leaky(0.1), s)
            };
            dw(&refs, Act::Relu, &mut fused, &mut s);
            let mut summed = vec![f32::NAN; c * h * w];
            sum_into(&mut summed, &refs, 0, Act::Relu);
            let mut unfused = vec![f32::NAN; c * oh * ow];
            dw(&[&summed], Act::None, &mut unfused, &mut s);
            assert_eq!(fused, unfused, "{inputs} inputs, stride {stride}");
            // The definition: relu(x0 + (x1 + ...)), then the textbook conv.
            let def: Vec<f32> = (0..c * h * w)
                .map(|i| xs.iter().rev().fold(0.0, |acc, x| x[i] + acc).max(0.0))
                .collect();
            let want: Vec<f32> = conv_ref(&def, c, (h, w), win, &f, c, c)
                .iter()
                .enumerate()
                .map(|(i, v)| Act::Leaky(0.1).apply(v + bias[i / (oh * ow)]))
                .collect();
            close(&fused, &want);
        }
    }

    /// The global average pool gives pool's bits with a whole-input window, and with a
    /// sum folded in, the bits of the sum then the pool.
    #[test]
    fn global_average_equals_the_pool() {
        let mut s = Scratch::default();
        for (c, h, w) in [(9, 7, 7), (4, 3, 5), (2, 1, 1)] {
            let win = Window {
                kh: h,
                kw: w,
                stride: 1,
                pads: [0; 4],
            };
            let xs: Vec<Vec<f32>> = (0..3).map(|i| data(c * h * w, 20 + i)).collect();
            let refs: Vec<&[f32]> = xs.iter().map(Vec::as_slice).collect();
            let mut want = vec![f32::NAN; c];
            pool(&xs[0], c, (h, w), win, false, &mut want, &mut s);
            let mut got = vec![f32::NAN; c];
            global_avg(&refs[..1], Act::None, c, (h, w), &mut got, &mut s);
            assert_eq!(got, want, "{c}x{h}x{w}");
            let mut summed = vec![f32::NAN; c * h * w];
            sum_into(&mut summed, &refs, 0, Act::Relu);
            pool(&summed, c, (h, w), win, false, &mut want, &mut s);
            global_avg(&refs, Act::Relu, c, (h, w), &mut got, &mut s);
            assert_eq!(got, want, "{c}x{h}x{w}, a sum folded in");
        }
    }

    #[test]
    fn bias_and_activations() {
        // One scratch for every case: later cases run on buffers earlier ones left dirty.
        let mut s = Scratch::default();
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
            &mut s,
        );
        assert_eq!(out, [-0.15, 3.5]);
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
            Act::Relu,
            &mut s,
        );
        assert_eq!(out, [0.0, 3.5]);
    }

    #[test]
    fn pools() {
        // One scratch for every case: later cases run on buffers earlier ones left dirty.
        let mut s = Scratch::default();
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let mut out = vec![0.0; 4];
        let two = Window {
            kh: 2,
            kw: 2,
            stride: 2,
            pads: [0; 4],
        };
        pool(&x, 1, (4, 4), two, true, &mut out, &mut s);
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
            &mut s,
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
            &mut s,
        );
        assert_eq!(same[15], 15.0);
        assert_eq!(same[0], 5.0);
        let mut s = [1.0, 2.0, 3.0];
        softmax(&mut s);
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-6 && s[2] > s[1]);
    }
}
