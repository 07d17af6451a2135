//! A frame's signature: a 64-bit hash of every pixel, equal for bit-identical frames and
//! different (but for a 2^-64 chance) for any other. The challenge's frozen-frame rule
//! compares consecutive signatures; it never sees the pixels.
//!
//! Every byte is hashed, not a sparse sample: a live camera may change only a few pixels
//! between frames (a still scene, little noise) and a sample could miss them. Eight
//! bytes per step make it cheap: about 40k steps for the 320x240 analysis frame, well
//! under 1% of its analysis.

use crate::vision::frame::RgbaFrame;

/// The multiplier of FxHash (rustc's hasher): odd, with well-spread bits.
const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// The frame's signature (size included, so two sizes never share one).
pub fn frame_signature(frame: &RgbaFrame) -> u64 {
    let mix = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(K);
    let mut h = mix(
        0,
        (u64::from(frame.width()) << 32) | u64::from(frame.height()),
    );
    let bytes = frame.bytes();
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = mix(h, u64::from_le_bytes(b));
    }
    for &b in words.remainder() {
        h = mix(h, u64::from(b));
    }
    // A final avalanche so that nearby inputs end far apart in every bit.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(data: &[u8], w: u32, h: u32) -> RgbaFrame<'_> {
        RgbaFrame::new(data, w, h).expect("valid frame")
    }

    #[test]
    fn identical_frames_share_a_signature() {
        let a: Vec<u8> = (0..16 * 8 * 4).map(|i| (i * 7 % 251) as u8).collect();
        let b = a.clone();
        assert_eq!(
            frame_signature(&frame(&a, 16, 8)),
            frame_signature(&frame(&b, 16, 8))
        );
    }

    #[test]
    fn any_changed_byte_changes_it() {
        let a: Vec<u8> = (0..16 * 9 * 4).map(|i| (i * 13 % 256) as u8).collect();
        let base = frame_signature(&frame(&a, 16, 9));
        let mut seen = std::collections::HashSet::new();
        for i in 0..a.len() {
            let mut b = a.clone();
            b[i] ^= 1;
            let s = frame_signature(&frame(&b, 16, 9));
            assert_ne!(s, base, "byte {i}");
            assert!(seen.insert(s), "byte {i} collides");
        }
    }

    #[test]
    fn the_size_is_part_of_it() {
        let a = vec![0u8; 16 * 16 * 4];
        assert_ne!(
            frame_signature(&frame(&a, 16, 16)),
            frame_signature(&frame(&a[..8 * 32 * 4], 8, 32))
        );
    }
}
