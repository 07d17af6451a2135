//! Four f32 lanes: wasm simd128 in the browser, SSE on x86_64, a plain array elsewhere.
//! All round every multiply and add separately (no fused multiply-add), so the native
//! tests see the numbers the browser computes.

#[cfg(target_arch = "wasm32")]
mod imp {
    use core::arch::wasm32::*;

    #[derive(Clone, Copy)]
    pub struct F4(v128);

    impl F4 {
        #[inline(always)]
        pub fn splat(v: f32) -> Self {
            F4(f32x4_splat(v))
        }
        #[inline(always)]
        pub fn load(s: &[f32; 4]) -> Self {
            // SAFETY: 16 readable bytes; read_unaligned emits an align=1 v128.load.
            F4(unsafe { core::ptr::read_unaligned(s.as_ptr() as *const v128) })
        }
        /// One value in all four lanes, straight from memory (`v128.load32_splat`, one
        /// broadcast load on x86, no shuffle).
        #[inline(always)]
        pub fn load_splat(v: &f32) -> Self {
            // SAFETY: 4 readable bytes.
            F4(unsafe { v128_load32_splat(v as *const f32 as *const u32) })
        }
        #[inline(always)]
        pub fn load2(s: &[f32; 8]) -> (Self, Self) {
            let p = s.as_ptr() as *const v128;
            // SAFETY: 32 readable bytes, two unaligned loads.
            unsafe {
                (
                    F4(core::ptr::read_unaligned(p)),
                    F4(core::ptr::read_unaligned(p.add(1))),
                )
            }
        }
        #[inline(always)]
        pub fn store(self, d: &mut [f32; 4]) {
            // SAFETY: 16 writable bytes, unaligned store.
            unsafe { core::ptr::write_unaligned(d.as_mut_ptr() as *mut v128, self.0) }
        }
        #[inline(always)]
        pub fn add(self, o: Self) -> Self {
            F4(f32x4_add(self.0, o.0))
        }
        #[inline(always)]
        pub fn mul(self, o: Self) -> Self {
            F4(f32x4_mul(self.0, o.0))
        }
        /// `self < o ? o : self`, one x86 `maxps` (wasm's pmax).
        #[inline(always)]
        pub fn max(self, o: Self) -> Self {
            F4(f32x4_pmax(self.0, o.0))
        }
        /// `self < 0 ? self * a : self`, lane by lane.
        #[inline(always)]
        pub fn leaky(self, a: Self) -> Self {
            let neg = f32x4_lt(self.0, f32x4_splat(0.0));
            F4(v128_bitselect(f32x4_mul(self.0, a.0), self.0, neg))
        }
        /// `self + a * b` as `f32x4.relaxed_madd` (one rounding on FMA hardware).
        #[cfg(target_feature = "relaxed-simd")]
        #[inline(always)]
        pub fn relaxed_madd(self, a: Self, b: Self) -> Self {
            F4(f32x4_relaxed_madd(a.0, b.0, self.0))
        }
        /// Eight values split into the even- and odd-indexed four.
        #[inline(always)]
        pub fn deinterleave(s: &[f32; 8]) -> (Self, Self) {
            let (a, b) = Self::load2(s);
            (
                F4(i32x4_shuffle::<0, 2, 4, 6>(a.0, b.0)),
                F4(i32x4_shuffle::<1, 3, 5, 7>(a.0, b.0)),
            )
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use core::arch::x86_64::*;

    #[derive(Clone, Copy)]
    pub struct F4(__m128);

    // SAFETY (every block below): SSE2 is part of the x86_64 baseline, and the loads and
    // stores touch exactly the 16 or 32 bytes their array arguments hold.
    impl F4 {
        #[inline(always)]
        pub fn splat(v: f32) -> Self {
            F4(unsafe { _mm_set1_ps(v) })
        }
        #[inline(always)]
        pub fn load(s: &[f32; 4]) -> Self {
            F4(unsafe { _mm_loadu_ps(s.as_ptr()) })
        }
        #[inline(always)]
        pub fn load_splat(v: &f32) -> Self {
            Self::splat(*v)
        }
        #[inline(always)]
        pub fn load2(s: &[f32; 8]) -> (Self, Self) {
            unsafe {
                (
                    F4(_mm_loadu_ps(s.as_ptr())),
                    F4(_mm_loadu_ps(s.as_ptr().add(4))),
                )
            }
        }
        #[inline(always)]
        pub fn store(self, d: &mut [f32; 4]) {
            unsafe { _mm_storeu_ps(d.as_mut_ptr(), self.0) }
        }
        #[inline(always)]
        pub fn add(self, o: Self) -> Self {
            F4(unsafe { _mm_add_ps(self.0, o.0) })
        }
        #[inline(always)]
        pub fn mul(self, o: Self) -> Self {
            F4(unsafe { _mm_mul_ps(self.0, o.0) })
        }
        /// `self < o ? o : self`, as wasm's pmax.
        #[inline(always)]
        pub fn max(self, o: Self) -> Self {
            F4(unsafe { _mm_max_ps(o.0, self.0) })
        }
        #[inline(always)]
        pub fn leaky(self, a: Self) -> Self {
            unsafe {
                let neg = _mm_cmplt_ps(self.0, _mm_setzero_ps());
                let scaled = _mm_mul_ps(self.0, a.0);
                F4(_mm_or_ps(
                    _mm_and_ps(neg, scaled),
                    _mm_andnot_ps(neg, self.0),
                ))
            }
        }
        #[inline(always)]
        pub fn deinterleave(s: &[f32; 8]) -> (Self, Self) {
            let (a, b) = Self::load2(s);
            unsafe {
                (
                    F4(_mm_shuffle_ps::<0x88>(a.0, b.0)),
                    F4(_mm_shuffle_ps::<0xDD>(a.0, b.0)),
                )
            }
        }
    }
}

#[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64")))]
mod imp {
    #[derive(Clone, Copy)]
    pub struct F4([f32; 4]);

    impl F4 {
        #[inline(always)]
        fn map2(self, o: Self, f: impl Fn(f32, f32) -> f32) -> Self {
            F4([
                f(self.0[0], o.0[0]),
                f(self.0[1], o.0[1]),
                f(self.0[2], o.0[2]),
                f(self.0[3], o.0[3]),
            ])
        }
        #[inline(always)]
        pub fn splat(v: f32) -> Self {
            F4([v; 4])
        }
        #[inline(always)]
        pub fn load(s: &[f32; 4]) -> Self {
            F4(*s)
        }
        #[inline(always)]
        pub fn load_splat(v: &f32) -> Self {
            Self::splat(*v)
        }
        #[inline(always)]
        pub fn load2(s: &[f32; 8]) -> (Self, Self) {
            (F4([s[0], s[1], s[2], s[3]]), F4([s[4], s[5], s[6], s[7]]))
        }
        #[inline(always)]
        pub fn store(self, d: &mut [f32; 4]) {
            *d = self.0;
        }
        #[inline(always)]
        pub fn add(self, o: Self) -> Self {
            self.map2(o, |a, b| a + b)
        }
        #[inline(always)]
        pub fn mul(self, o: Self) -> Self {
            self.map2(o, |a, b| a * b)
        }
        #[inline(always)]
        pub fn max(self, o: Self) -> Self {
            self.map2(o, |a, b| if a < b { b } else { a })
        }
        #[inline(always)]
        pub fn leaky(self, a: Self) -> Self {
            self.map2(a, |v, a| if v < 0.0 { v * a } else { v })
        }
        #[inline(always)]
        pub fn deinterleave(s: &[f32; 8]) -> (Self, Self) {
            (F4([s[0], s[2], s[4], s[6]]), F4([s[1], s[3], s[5], s[7]]))
        }
    }
}

pub use imp::F4;

impl F4 {
    /// `self + a * b`, rounded twice.
    #[cfg(not(all(target_arch = "wasm32", target_feature = "relaxed-simd")))]
    #[inline(always)]
    pub fn mul_add(self, a: Self, b: Self) -> Self {
        self.add(a.mul(b))
    }

    /// `self + a * b`: relaxed SIMD's madd, fused (rounded once) where the CPU has FMA.
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    #[inline(always)]
    pub fn mul_add(self, a: Self, b: Self) -> Self {
        self.relaxed_madd(a, b)
    }
}

/// `o[i] = f(o[i], x[i])` over the common length: `v` on groups of four, `s` on the
/// rest (the two must agree lane by lane).
#[inline(always)]
fn lanewise(o: &mut [f32], x: &[f32], v: impl Fn(F4, F4) -> F4, s: impl Fn(f32, f32) -> f32) {
    let n = o.len().min(x.len());
    let (oc, ot) = o[..n].as_chunks_mut::<4>();
    let (xc, xt) = x[..n].as_chunks::<4>();
    for (o, x) in oc.iter_mut().zip(xc) {
        v(F4::load(o), F4::load(x)).store(o);
    }
    for (o, x) in ot.iter_mut().zip(xt) {
        *o = s(*o, *x);
    }
}

/// `o[i] += f * x[i]` over the common length.
#[inline(always)]
pub fn axpy(o: &mut [f32], f: f32, x: &[f32]) {
    let fv = F4::splat(f);
    lanewise(o, x, |o, x| o.mul_add(fv, x), |o, x| o + f * x);
}

/// `o[i] = max(o[i], x[i])` over the common length (NaN-free inputs).
#[inline(always)]
pub fn vmax(o: &mut [f32], x: &[f32]) {
    lanewise(o, x, F4::max, |o, x| if o < x { x } else { o });
}

/// `o[i] += x[i]` over the common length.
#[inline(always)]
pub fn vadd(o: &mut [f32], x: &[f32]) {
    lanewise(o, x, F4::add, |o, x| o + x);
}
