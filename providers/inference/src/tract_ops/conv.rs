//! Direct convolutions for tract on AVX-512 (NCHW, f32, one group): 3×3 kernels at stride 1
//! or 2 and 1×1 kernels, with the bias and a following `LeakyRelu` folded in.
//!
//! tract runs a 3×3 convolution as an explicit `Pad`, a lazy im2col that packs the input for
//! its matrix kernel as it goes, and a 16×12 matrix product, and a 1×1 convolution as an
//! `EinSum` that packs its input, then adds the bias in a separate node: on nanodet-m-416
//! these ran at about half the rate of ONNX Runtime's direct convolutions on the same core.
//! Here the input is copied once into planes whose rows are the padded width long, so that for
//! every tap `(ky, kx)` the inputs of consecutive output positions are consecutive in memory:
//! position `q` of the flattened padded grid reads `q + ky·PW + kx` (at stride 2 the input is
//! split into four phase planes of even/odd rows and columns, and each tap reads one of them
//! the same way). The kernel needs no packing: 8 output channels × 48 positions sit in 24
//! vector registers, and each (input channel, tap) step is 3 unaligned loads, 8 weight
//! broadcasts and 24 fused multiply-adds. The padding columns computed per row are dropped by
//! the compressing stores that write each finished vector to the output.
//!
//! The sums are the same products as tract's, added in another order (bias first, then input
//! channel by input channel, tap by tap), so results differ from tract's in the last bits; the
//! tests hold both to the error bound of an f32 sum against an f64 reference.
//!
//! Only x86-64 CPUs with AVX-512F get these operators ([`available`]); elsewhere the model
//! keeps tract's. This module holds the inference crate's only `unsafe` code: the call into the
//! `avx512f` functions once the feature is detected, and their vector loads and stores, each
//! inside a slice whose length was checked first.

use std::ops::Range;
use std::sync::Arc;

use super::{Fused, concrete, only_successor, plain_f32, tensor};

use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::math::Add;
use tract_onnx::tract_core::ops::nn::{DataFormat, LeakyRelu};

/// Output channels per register block.
const OB: usize = 8;
/// f32 lanes per vector.
const LANES: usize = 16;
/// Vectors of positions per full block.
const NV: usize = 3;
/// Positions per full block.
const QB: usize = NV * LANES;
/// Input channels per chunk (see `avx512::image`).
const CB: usize = 32;

/// The vector instructions a [`DirectConv`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// AVX-512F: 16 lanes, 8 output channels × 48 positions per register block
    Avx512,
    /// AVX2 with FMA: 8 lanes, 4 output channels × 24 positions per register block
    Avx2,
}

impl Isa {
    /// Whether this CPU has the instructions.
    #[must_use]
    pub fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Self::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
                Self::Avx2 => {
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = self;
            false
        }
    }

    /// AVX-512F when this CPU has it; otherwise none, and tract's own convolutions run. The
    /// AVX2 kernel made a whole NanoDet frame 1.21–1.27× slower than tract's AVX2 matrix
    /// kernels (both measured on one core with tract held to AVX2, BENCHMARKS.md), so it runs
    /// only when asked: `EDGECELL_CONV_ISA=avx2` (where the CPU has AVX2 and FMA);
    /// `EDGECELL_CONV_ISA=off` leaves every convolution to tract.
    #[must_use]
    pub fn best() -> Option<Self> {
        let cap = std::env::var("EDGECELL_CONV_ISA").unwrap_or_default();
        let allowed: &[Self] = match cap.as_str() {
            "off" => &[],
            "avx2" => &[Self::Avx2],
            _ => &[Self::Avx512],
        };
        allowed.iter().copied().find(|isa| isa.supported())
    }
}

/// Whether this CPU runs [`DirectConv`] (AVX-512F, or AVX2 with FMA when asked for).
#[must_use]
pub fn available() -> bool {
    Isa::best().is_some()
}

/// A direct convolution with its weights packed per block of 8 output channels (`OB`):
/// `weights[(ob · ic + c) · k² + tap][o]`, zero for the channels past `oc`.
#[derive(Debug, Clone)]
pub struct DirectConv {
    /// kernel side: 1 or 3
    k: usize,
    ic: usize,
    oc: usize,
    /// 1 or 2, both axes
    stride: usize,
    /// top, left, bottom, right
    pads: [usize; 4],
    weights: Arc<Vec<[f32; OB]>>,
    /// one per output channel, zero past `oc` (length rounded up to [`OB`])
    bias: Arc<Vec<f32>>,
    /// the folded `LeakyRelu`'s slope, if one was folded
    alpha: Option<f32>,
    /// what runs it: the widest this CPU has when built ([`Isa::best`])
    isa: Option<Isa>,
}

impl PartialEq for DirectConv {
    fn eq(&self, other: &Self) -> bool {
        self.k == other.k
            && self.ic == other.ic
            && self.oc == other.oc
            && self.stride == other.stride
            && self.pads == other.pads
            && self.alpha.map(f32::to_bits) == other.alpha.map(f32::to_bits)
            && bits_eq(self.weights.as_flattened(), other.weights.as_flattened())
            && bits_eq(&self.bias, &other.bias)
            && self.isa == other.isa
    }
}

impl Eq for DirectConv {}

fn bits_eq(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

impl DirectConv {
    /// Packs an OIHW `[oc, ic, k, k]` kernel (k = 3, or k = 1 at stride 1 without padding)
    /// and a bias of `oc` values or one.
    ///
    /// # Errors
    /// For any other kernel shape, stride or padding, or a bias neither one value nor `oc`.
    pub fn new(
        kernel: &[f32],
        kernel_shape: &[usize],
        bias: &[f32],
        stride: usize,
        pads: [usize; 4],
        alpha: Option<f32>,
    ) -> TractResult<Self> {
        ensure!(stride == 1 || stride == 2, "conv: stride {stride}");
        // pads up to k - 1, as padding "same" and "valid" need: larger ones would only add
        // outputs made of padding, and keep every size below within a few rows of the input's
        let (oc, ic, k) = match *kernel_shape {
            [oc, ic, 3, 3] if pads.iter().all(|&p| p <= 2) => (oc, ic, 3),
            [oc, ic, 1, 1] if stride == 1 && pads == [0; 4] => (oc, ic, 1),
            _ => bail!("conv: kernel shape {kernel_shape:?} at stride {stride}, pads {pads:?}"),
        };
        let taps = k * k;
        ensure!(
            oc > 0 && ic > 0 && kernel.len() == oc * ic * taps,
            "conv: kernel size"
        );
        ensure!(
            bias.len() == 1 || bias.len() == oc,
            "conv: bias of {} values",
            bias.len()
        );
        let blocks = oc.div_ceil(OB);
        let mut packed = vec![[0f32; OB]; blocks * ic * taps];
        for o in 0..oc {
            for c in 0..ic {
                for tap in 0..taps {
                    packed[(o / OB * ic + c) * taps + tap][o % OB] =
                        kernel[(o * ic + c) * taps + tap];
                }
            }
        }
        let mut b = vec![0f32; blocks * OB];
        for (o, v) in b.iter_mut().take(oc).enumerate() {
            *v = if bias.len() == 1 { bias[0] } else { bias[o] };
        }
        Ok(Self {
            k,
            ic,
            oc,
            stride,
            pads,
            weights: Arc::new(packed),
            bias: Arc::new(b),
            alpha,
            isa: Isa::best(),
        })
    }

    /// The output's height and width for an `h × w` input: none for an empty input or one
    /// that, padded, is smaller than the kernel (tract gives an empty output there; such
    /// convolutions stay with tract).
    fn out_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let ph = h.checked_add(self.pads[0] + self.pads[2])?;
        let pw = w.checked_add(self.pads[1] + self.pads[3])?;
        let k = self.k;
        (h > 0 && w > 0 && ph >= k && pw >= k)
            .then(|| ((ph - k) / self.stride + 1, (pw - k) / self.stride + 1))
    }

    /// Whether [`DirectConv::run`] takes an input of this shape.
    fn accepts(&self, shape: &[usize]) -> bool {
        matches!(*shape, [n, c, h, w] if n > 0 && c == self.ic && self.out_hw(h, w).is_some())
    }

    fn describe(&self) -> String {
        format!(
            "{0}×{0}, {1}→{2} channels, stride {3}, pads {4:?}, leaky relu {5:?}",
            self.k, self.ic, self.oc, self.stride, self.pads, self.alpha
        )
    }

    /// Runs on an NCHW input.
    ///
    /// # Errors
    /// When the input is not `[n, ic, h, w]` with a non-empty output, or the CPU lacks the
    /// instructions of [`DirectConv::with_isa`] (by default the widest it has).
    pub fn run(&self, input: &[f32], shape: &[usize]) -> TractResult<(Vec<usize>, Vec<f32>)> {
        let &[n, c, h, w] = shape else {
            bail!("conv: input rank {}", shape.len());
        };
        ensure!(
            c == self.ic,
            "conv: {c} input channels, expected {}",
            self.ic
        );
        ensure!(
            n > 0
                && [n, c, h, w]
                    .iter()
                    .try_fold(1usize, |a, &d| a.checked_mul(d))
                    == Some(input.len()),
            "conv: input length"
        );
        let (oh, ow) = self
            .out_hw(h, w)
            .with_context(|| format!("conv: input {h}×{w} empty or too small"))?;
        let [pt, pl, _, pr] = self.pads;
        let st = self.stride;
        // the padded input split into st × st phase planes, phase (a, b) holding the padded
        // rows ≡ a and columns ≡ b (mod st): tap (ky, kx) of output (y, x) is then at row
        // y + ky / st, column x + kx / st of phase (ky % st, kx % st)
        let pw = (w + pl + pr).div_ceil(st);
        let phases = st * st;
        // pads are at most 2 and the input exists in memory, so the planes are a few rows and
        // columns larger than it; checked all the same, before any of it is allocated
        let (plane, padded_len, out_len) = plane_len(h, w, self.pads, st, self.k, oh)
            .and_then(|plane| {
                let padded = c.checked_mul(phases)?.checked_mul(plane)?;
                let out = n.checked_mul(self.oc)?.checked_mul(oh)?.checked_mul(ow)?;
                Some((plane, padded, out))
            })
            .context("conv: sizes overflow")?;
        let mut taps = [0usize; 9];
        for (t, tap) in taps.iter_mut().take(self.k * self.k).enumerate() {
            let (ky, kx) = (t / self.k, t % self.k);
            // phase plane, then row and column in it
            *tap = ((ky % st) * st + kx % st) * plane + (ky / st) * pw + kx / st;
        }
        let positions = (oh * pw).next_multiple_of(LANES);
        let mut out = vec![0f32; out_len];
        let mut padded = vec![0f32; padded_len];
        for (img, dst) in input
            .chunks_exact(c * h * w)
            .zip(out.chunks_exact_mut(self.oc * oh * ow))
        {
            for (src, p) in img
                .chunks_exact(h * w)
                .zip(padded.chunks_exact_mut(phases * plane))
            {
                for (y, row) in src.chunks_exact(w).enumerate() {
                    let r = y + pt;
                    if st == 1 {
                        p[r * pw + pl..][..w].copy_from_slice(row);
                        continue;
                    }
                    // stride 2: the row's even and odd padded columns go to two planes
                    for b in 0..2 {
                        let first = (b + 2 - pl % 2) % 2; // first x with (x + pl) % 2 == b
                        let start = ((r % 2) * 2 + b) * plane + (r / 2) * pw + (first + pl) / 2;
                        let dst = &mut p[start..][..(w - first.min(w)).div_ceil(2)];
                        for (d, &v) in dst.iter_mut().zip(row.iter().skip(first).step_by(2)) {
                            *d = v;
                        }
                    }
                }
            }
            let geo = Geometry {
                pw,
                plane,
                phases,
                taps,
                ntaps: self.k * self.k,
                positions,
                oh,
                ow,
            };
            self.image(&padded, dst, &geo)?;
        }
        Ok((vec![n, self.oc, oh, ow], out))
    }

    /// The same operator on other instructions (tests and benchmarks compare them).
    #[must_use]
    pub fn with_isa(mut self, isa: Isa) -> Self {
        self.isa = Some(isa);
        self
    }

    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    fn image(&self, padded: &[f32], out: &mut [f32], geo: &Geometry) -> TractResult<()> {
        let isa = self
            .isa
            .context("conv: this CPU has neither AVX-512F nor AVX2 with FMA")?;
        ensure!(isa.supported(), "conv: this CPU has no {isa:?}");
        let done = match isa {
            // SAFETY: the CPU has AVX-512F (checked just above), the only requirement of the
            // `avx512f` target feature this function is compiled for.
            Isa::Avx512 => unsafe { avx512::image(self, padded, out, geo) },
            // SAFETY: the CPU has AVX2 and FMA (checked just above), the only requirements of
            // the `avx2,fma` target features this function is compiled for.
            Isa::Avx2 => unsafe { avx2::image(self, padded, out, geo) },
        };
        ensure!(done, "conv: a block would read or write outside its slice");
        Ok(())
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn image(&self, _padded: &[f32], _out: &mut [f32], _geo: &Geometry) -> TractResult<()> {
        bail!("conv: needs AVX-512F or AVX2 with FMA on x86-64")
    }
}

/// Floats per phase plane of an `h × w` input padded by `pads` (top, left, bottom, right) at
/// stride `st` for a `k × k` kernel with `oh` output rows: the plane itself, and room for
/// every read. Computed positions are the flattened grid of rows `pw` long (the columns past
/// the output width thrown away) rounded up to a whole vector, and the furthest tap is
/// `(k - 1) / st · (pw + 1)` past its position.
/// None when a size overflows.
fn plane_len(
    h: usize,
    w: usize,
    pads: [usize; 4],
    st: usize,
    k: usize,
    oh: usize,
) -> Option<usize> {
    let pw = w.checked_add(pads[1] + pads[3])?.div_ceil(st);
    let ph = h.checked_add(pads[0] + pads[2])?.div_ceil(st);
    let positions = oh.checked_mul(pw)?.checked_next_multiple_of(LANES)?;
    let reach = ((k - 1) / st).checked_mul(pw + 1)?;
    Some(ph.checked_mul(pw)?.max(positions.checked_add(reach)?))
}

/// What one block reads, shared by both kernels: the taps' offsets, the distance between two
/// input channels in the padded planes, and the block's weights (K taps × [`OB`] output
/// channels per input channel of the chunk).
struct Reads<'a, const K: usize> {
    taps: [usize; K],
    channels: usize,
    weights: &'a [[f32; OB]],
}

/// [`Reads`] for the block of `width` positions from `q0`, output-channel block `ob` and input
/// channels `chunk`, after checking once every load its loop makes: channel `c` reads
/// `c · channels + q0 + taps[t] + [0, width)`, which must end inside the `padded_len` floats
/// of the padded planes. None if a load or the weights would leave their slice, or `K` is
/// not the geometry's tap count.
fn reads<'a, const K: usize>(
    conv: &'a DirectConv,
    geo: &Geometry,
    padded_len: usize,
    (q0, ob, chunk): (usize, usize, &Range<usize>),
    width: usize,
) -> Option<Reads<'a, K>> {
    if K != geo.ntaps {
        return None;
    }
    let channels = geo.phases * geo.plane;
    let taps: [usize; K] = std::array::from_fn(|t| geo.taps[t]);
    let span = taps.iter().max()?.checked_add(width)?;
    let end = chunk
        .end
        .checked_sub(1)?
        .checked_mul(channels)?
        .checked_add(q0)?
        .checked_add(span)?;
    if end > padded_len {
        return None;
    }
    let first = (ob * conv.ic + chunk.start) * K;
    let weights = conv.weights.get(first..first + chunk.len() * K)?;
    Some(Reads {
        taps,
        channels,
        weights,
    })
}

/// Where one image's padded planes and output live.
#[derive(Debug)]
struct Geometry {
    /// row length of a phase plane
    pw: usize,
    /// floats per phase plane
    plane: usize,
    /// phase planes per channel (stride²)
    phases: usize,
    /// per tap (row-major), the offset of its input from the output position's, counted
    /// from the channel's first phase plane
    taps: [usize; 9],
    /// taps in use: 9, or 1 for a 1×1 kernel
    ntaps: usize,
    /// computed positions per plane, a multiple of [`LANES`]
    positions: usize,
    oh: usize,
    ow: usize,
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512 {
    use std::arch::x86_64::{
        __m512, _CMP_LT_OQ, _mm512_cmp_ps_mask, _mm512_fmadd_ps, _mm512_loadu_ps,
        _mm512_mask_compressstoreu_ps, _mm512_mask_mul_ps, _mm512_set1_ps, _mm512_setzero_ps,
        _mm512_storeu_ps,
    };
    use std::ops::Range;

    use super::{CB, DirectConv, Geometry, LANES, NV, OB, QB, Reads, reads};

    /// One image: every block of [`OB`] output channels × [`QB`] positions (a last block of
    /// one or two vectors). Positions are outermost, then chunks of [`CB`] input channels,
    /// then output-channel blocks, so that a chunk's inputs stay in L1 while every block of
    /// output channels reads them; the partial sums wait in `acc` between chunks, and the last
    /// chunk writes the output.
    #[target_feature(enable = "avx512f")]
    pub(super) fn image(
        conv: &DirectConv,
        padded: &[f32],
        out: &mut [f32],
        geo: &Geometry,
    ) -> bool {
        let blocks = conv.oc.div_ceil(OB);
        let mut acc = vec![[[0f32; QB]; OB]; blocks];
        let mut q0 = 0;
        while q0 < geo.positions {
            let left = (geo.positions - q0) / LANES;
            // 3, 3, …, then 2 + 2 rather than 3 + 1 (a one-vector block is load-bound)
            let nv = if left == NV + 1 { 2 } else { left.min(NV) };
            let lanes = lanes(geo, q0);
            for c0 in (0..conv.ic).step_by(CB) {
                let chunk = c0..(c0 + CB).min(conv.ic);
                for (ob, acc) in acc.iter_mut().enumerate() {
                    let at = Block {
                        q0,
                        ob,
                        chunk: chunk.clone(),
                        nv,
                        lanes,
                    };
                    let done = match (nv, geo.ntaps) {
                        (3, 9) => block::<3, 9>(conv, padded, geo, &at, acc),
                        (2, 9) => block::<2, 9>(conv, padded, geo, &at, acc),
                        (_, 9) => block::<1, 9>(conv, padded, geo, &at, acc),
                        (3, _) => block::<3, 1>(conv, padded, geo, &at, acc),
                        (2, _) => block::<2, 1>(conv, padded, geo, &at, acc),
                        _ => block::<1, 1>(conv, padded, geo, &at, acc),
                    };
                    if !done || (chunk.end == conv.ic && !write(conv, geo, &at, acc, out)) {
                        return false;
                    }
                }
            }
            q0 += nv * LANES;
        }
        true
    }

    /// For each vector of a block starting at position `q0`: which of its lanes are real
    /// outputs (not a column past `ow`, not past the last row), and the output index of the
    /// first of them. In the NCHW output the real lanes of a vector are consecutive, even
    /// across a row's end, so one compressing store writes them all.
    fn lanes(geo: &Geometry, q0: usize) -> [(u16, usize); NV] {
        let mut lanes = [(0u16, 0usize); NV];
        for (v, (mask, first)) in lanes.iter_mut().enumerate() {
            let mut found = false;
            for i in 0..LANES {
                let q = q0 + v * LANES + i;
                let (y, x) = (q / geo.pw, q % geo.pw);
                if y < geo.oh && x < geo.ow {
                    *mask |= 1 << i;
                    if !found {
                        *first = y * geo.ow + x;
                        found = true;
                    }
                }
            }
        }
        lanes
    }

    /// Which positions, output channels and input channels a call of [`block`] covers, and
    /// where its vectors land in the output ([`lanes`]).
    struct Block {
        q0: usize,
        ob: usize,
        chunk: Range<usize>,
        /// vectors in the block (1 to NV)
        nv: usize,
        lanes: [(u16, usize); NV],
    }

    /// Adds the input channels of `at.chunk` to `acc[o][j]`, the sum for output channel
    /// `ob·OB + o` at position `q0 + j` (`j < V·LANES`); the first chunk starts from the
    /// bias. False, with nothing added, if a read would leave its slice.
    #[target_feature(enable = "avx512f")]
    fn block<const V: usize, const K: usize>(
        conv: &DirectConv,
        padded: &[f32],
        geo: &Geometry,
        at: &Block,
        acc: &mut [[f32; QB]; OB],
    ) -> bool {
        let Block {
            q0, ob, ref chunk, ..
        } = *at;
        let mut a: [[__m512; V]; OB] = [[_mm512_setzero_ps(); V]; OB];
        if chunk.start == 0 {
            let bias = &conv.bias[ob * OB..][..OB];
            for (o, row) in a.iter_mut().enumerate() {
                *row = [_mm512_set1_ps(bias[o]); V];
            }
        } else {
            for (o, row) in a.iter_mut().enumerate() {
                for (v, r) in row.iter_mut().enumerate() {
                    let s = &acc[o][v * LANES..][..LANES];
                    // SAFETY: `s` holds exactly LANES f32s; unaligned loads are allowed.
                    *r = unsafe { _mm512_loadu_ps(s.as_ptr()) };
                }
            }
        }
        let Some(Reads {
            taps,
            channels,
            weights: w,
        }) = reads::<K>(conv, geo, padded.len(), (q0, ob, chunk), V * LANES)
        else {
            return false;
        };
        let base = padded.as_ptr();
        for (c, wc) in chunk.clone().zip(w.chunks_exact(K)) {
            let at = c * channels + q0;
            for (&off, wt) in taps.iter().zip(wc) {
                let mut x = [_mm512_setzero_ps(); V];
                for (v, xv) in x.iter_mut().enumerate() {
                    // SAFETY: `reads` checked that every channel's loads, up to V·LANES f32s
                    // past q0 + taps[t], end inside `padded`; unaligned loads are allowed.
                    *xv = unsafe { _mm512_loadu_ps(base.add(at + off + v * LANES)) };
                }
                for (row, &k) in a.iter_mut().zip(wt) {
                    let k = _mm512_set1_ps(k);
                    for (r, xv) in row.iter_mut().zip(&x) {
                        *r = _mm512_fmadd_ps(k, *xv, *r);
                    }
                }
            }
        }
        for (o, row) in a.iter().enumerate() {
            for (v, r) in row.iter().enumerate() {
                let d = &mut acc[o][v * LANES..][..LANES];
                // SAFETY: `d` holds exactly LANES f32s; unaligned stores are allowed.
                unsafe { _mm512_storeu_ps(d.as_mut_ptr(), *r) };
            }
        }
        true
    }

    /// Writes a block's finished sums from `acc` to the NCHW output through the folded
    /// `LeakyRelu`, one compressing store per vector ([`lanes`]). False, with the output
    /// partly written, if a store would leave its output plane.
    #[target_feature(enable = "avx512f")]
    fn write(
        conv: &DirectConv,
        geo: &Geometry,
        at: &Block,
        acc: &[[f32; QB]; OB],
        out: &mut [f32],
    ) -> bool {
        let plane = geo.oh * geo.ow;
        let (zero, alpha) = (
            _mm512_setzero_ps(),
            _mm512_set1_ps(conv.alpha.unwrap_or(1.0)),
        );
        for (o, sums) in acc.iter().enumerate() {
            let oc = at.ob * OB + o;
            if oc >= conv.oc {
                break;
            }
            let Some(dst) = out.get_mut(oc * plane..(oc + 1) * plane) else {
                return false;
            };
            for (v, &(mask, first)) in at.lanes.iter().take(at.nv).enumerate() {
                let n = mask.count_ones() as usize;
                if n == 0 {
                    continue;
                }
                let Some(d) = dst.get_mut(first..first + n) else {
                    return false;
                };
                let s = &sums[v * LANES..][..LANES];
                // SAFETY: `s` holds exactly LANES f32s; unaligned loads are allowed.
                let mut r = unsafe { _mm512_loadu_ps(s.as_ptr()) };
                if conv.alpha.is_some() {
                    // LeakyRelu as tract computes it: v · alpha where v < 0 (NaN stays NaN)
                    r = _mm512_mask_mul_ps(r, _mm512_cmp_ps_mask::<_CMP_LT_OQ>(r, zero), r, alpha);
                }
                // SAFETY: the store writes `mask.count_ones()` = n consecutive f32s from
                // `d`'s start, and `d` is n long.
                unsafe { _mm512_mask_compressstoreu_ps(d.as_mut_ptr(), mask, r) };
            }
        }
        true
    }
}

/// The same kernel on AVX2 with FMA (only with `EDGECELL_CONV_ISA=avx2`: on AVX2 tract's own
/// matrix kernels were faster for NanoDet, see [`Isa::best`]): 16 vector
/// registers hold 4 output channels × 24 positions, so each block of [`OB`] output channels
/// is computed in two halves over the same (L1-resident) inputs, and the finished sums are
/// copied to the output a row run at a time (AVX2 has no compressing store).
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    use std::arch::x86_64::{
        __m256, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps,
        _mm256_storeu_ps,
    };
    use std::ops::Range;

    use super::{CB, DirectConv, Geometry, OB, Reads, reads};

    /// f32 lanes per vector.
    const L: usize = 8;
    /// Vectors of positions per full block.
    const NV: usize = 3;
    /// Positions per full block.
    const QB: usize = NV * L;
    /// Output channels per pass (half of [`OB`]).
    const HALF: usize = OB / 2;

    /// One image, in the loop order of `avx512::image`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn image(
        conv: &DirectConv,
        padded: &[f32],
        out: &mut [f32],
        geo: &Geometry,
    ) -> bool {
        let blocks = conv.oc.div_ceil(OB);
        let mut acc = vec![[[0f32; QB]; OB]; blocks];
        let mut q0 = 0;
        while q0 < geo.positions {
            let left = (geo.positions - q0) / L;
            let nv = if left == NV + 1 { 2 } else { left.min(NV) };
            for c0 in (0..conv.ic).step_by(CB) {
                let chunk = c0..(c0 + CB).min(conv.ic);
                for (ob, acc) in acc.iter_mut().enumerate() {
                    for half in 0..2 {
                        let at = (q0, ob, half, &chunk);
                        let done = match (nv, geo.ntaps) {
                            (3, 9) => block::<3, 9>(conv, padded, geo, at, acc),
                            (2, 9) => block::<2, 9>(conv, padded, geo, at, acc),
                            (_, 9) => block::<1, 9>(conv, padded, geo, at, acc),
                            (3, _) => block::<3, 1>(conv, padded, geo, at, acc),
                            (2, _) => block::<2, 1>(conv, padded, geo, at, acc),
                            _ => block::<1, 1>(conv, padded, geo, at, acc),
                        };
                        if !done {
                            return false;
                        }
                    }
                    if chunk.end == conv.ic && !store(conv, geo, q0, nv * L, ob, acc, out) {
                        return false;
                    }
                }
            }
            q0 += nv * L;
        }
        true
    }

    /// `avx512::block` for output channels `ob·OB + half·HALF + o`, `o < HALF`.
    #[target_feature(enable = "avx2,fma")]
    fn block<const V: usize, const K: usize>(
        conv: &DirectConv,
        padded: &[f32],
        geo: &Geometry,
        (q0, ob, half, chunk): (usize, usize, usize, &Range<usize>),
        acc: &mut [[f32; QB]; OB],
    ) -> bool {
        let lo = half * HALF;
        let mut a: [[__m256; V]; HALF] = [[_mm256_setzero_ps(); V]; HALF];
        if chunk.start == 0 {
            let bias = &conv.bias[ob * OB + lo..][..HALF];
            for (o, row) in a.iter_mut().enumerate() {
                *row = [_mm256_set1_ps(bias[o]); V];
            }
        } else {
            for (o, row) in a.iter_mut().enumerate() {
                for (v, r) in row.iter_mut().enumerate() {
                    let s = &acc[lo + o][v * L..][..L];
                    // SAFETY: `s` holds exactly L f32s; unaligned loads are allowed.
                    *r = unsafe { _mm256_loadu_ps(s.as_ptr()) };
                }
            }
        }
        let Some(Reads {
            taps,
            channels,
            weights: w,
        }) = reads::<K>(conv, geo, padded.len(), (q0, ob, chunk), V * L)
        else {
            return false;
        };
        let base = padded.as_ptr();
        for (c, wc) in chunk.clone().zip(w.chunks_exact(K)) {
            let at = c * channels + q0;
            for (&off, wt) in taps.iter().zip(wc) {
                let mut x = [_mm256_setzero_ps(); V];
                for (v, xv) in x.iter_mut().enumerate() {
                    // SAFETY: `reads` checked that every channel's loads, up to V·L f32s
                    // past q0 + taps[t], end inside `padded`; unaligned loads are allowed.
                    *xv = unsafe { _mm256_loadu_ps(base.add(at + off + v * L)) };
                }
                let (first_half, second_half) = wt.split_at(HALF);
                let wh = if half == 0 { first_half } else { second_half };
                for (row, &k) in a.iter_mut().zip(wh) {
                    let k = _mm256_set1_ps(k);
                    for (r, xv) in row.iter_mut().zip(&x) {
                        *r = _mm256_fmadd_ps(k, *xv, *r);
                    }
                }
            }
        }
        for (o, row) in a.iter().enumerate() {
            for (v, r) in row.iter().enumerate() {
                let d = &mut acc[lo + o][v * L..][..L];
                // SAFETY: `d` holds exactly L f32s; unaligned stores are allowed.
                unsafe { _mm256_storeu_ps(d.as_mut_ptr(), *r) };
            }
        }
        true
    }

    /// Copies a block's finished sums (`len` positions from `q0`) to the NCHW output, one run
    /// of a row at a time, skipping the columns past `ow` and the rows past `oh`, through the
    /// folded `LeakyRelu`. False if a run would leave its output plane.
    fn store(
        conv: &DirectConv,
        geo: &Geometry,
        q0: usize,
        len: usize,
        ob: usize,
        acc: &[[f32; QB]; OB],
        out: &mut [f32],
    ) -> bool {
        let plane = geo.oh * geo.ow;
        for (o, sums) in acc.iter().enumerate() {
            let oc = ob * OB + o;
            if oc >= conv.oc {
                break;
            }
            let Some(dst) = out.get_mut(oc * plane..(oc + 1) * plane) else {
                return false;
            };
            let mut j = 0;
            while j < len {
                let (y, x) = ((q0 + j) / geo.pw, (q0 + j) % geo.pw);
                if y >= geo.oh {
                    break;
                }
                if x >= geo.ow {
                    j += geo.pw - x;
                    continue;
                }
                let run = (geo.ow - x).min(len - j);
                let Some(d) = dst.get_mut(y * geo.ow + x..y * geo.ow + x + run) else {
                    return false;
                };
                d.copy_from_slice(&sums[j..j + run]);
                if let Some(alpha) = conv.alpha {
                    // LeakyRelu as tract computes it: v · alpha where v < 0 (NaN stays NaN)
                    for v in d.iter_mut() {
                        *v = if *v < 0.0 { *v * alpha } else { *v };
                    }
                }
                j += run;
            }
        }
        true
    }
}

f32_kernel_op!(DirectConv, "EdgecellConv");

impl TypedOp for DirectConv {
    as_op!();
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let input = inputs.first().context("conv: no input")?;
        let shape = input.shape.as_concrete().context("conv: symbolic shape")?;
        let &[n, c, h, w] = shape else {
            bail!("conv: input rank {}", shape.len());
        };
        ensure!(
            c == self.ic,
            "conv: {c} input channels, expected {}",
            self.ic
        );
        let (oh, ow) = self.out_hw(h, w).context("conv: input too small")?;
        Ok(tvec!(f32::fact([n, self.oc, oh, ow])))
    }
}

fn konst_f32(model: &TypedModel, outlet: OutletId) -> TractResult<Option<(Vec<usize>, Vec<f32>)>> {
    let fact = model.outlet_fact(outlet)?;
    let Some(k) = &fact.konst else {
        return Ok(None);
    };
    if k.datum_type() != f32::datum_type() {
        return Ok(None);
    }
    let data = k.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
    Ok(Some((k.shape().to_vec(), data)))
}

/// What follows a convolution's output and can be folded into it: a constant per-channel
/// bias `Add` (1×1 form only; the 3×3 form has its bias as an input), then a `LeakyRelu`,
/// each taken only when it is the only consumer of the value before it and that value is not
/// a model output.
struct Tail {
    bias: Option<Vec<f32>>,
    alpha: Option<f32>,
    /// the outlet the fused node replaces
    last: OutletId,
}

fn tail(
    model: &TypedModel,
    out: OutletId,
    oc: usize,
    with_bias: bool,
    outputs: &[OutletId],
) -> TractResult<Tail> {
    let mut tail = Tail {
        bias: None,
        alpha: None,
        last: out,
    };
    if with_bias && let Some(succ) = only_successor(model, tail.last, outputs) {
        let node = model.node(succ);
        let is_add = node
            .op_as::<TypedBinOp>()
            .is_some_and(|b| b.0.downcast_ref::<Add>().is_some() && b.1.is_none());
        if is_add && node.inputs.len() == 2 {
            let other = node.inputs[usize::from(node.inputs[0] == tail.last)];
            if let Some((shape, bias)) = konst_f32(model, other)?
                && shape.iter().product::<usize>() == oc
                && (shape == [1, oc, 1, 1] || shape == [oc, 1, 1])
            {
                tail.bias = Some(bias);
                tail.last = OutletId::new(succ, 0);
            }
        }
    }
    if let Some(succ) = only_successor(model, tail.last, outputs)
        && let Some(l) = model
            .node(succ)
            .op_as::<ElementWiseOp>()
            .and_then(|e| e.0.downcast_ref::<LeakyRelu>())
    {
        tail.alpha = Some(l.alpha);
        tail.last = OutletId::new(succ, 0);
    }
    Ok(tail)
}

/// The [`DirectConv`] for a decluttered node, and the input it reads: an f32 NCHW `Conv`
/// with a 3×3 kernel, stride 1 or 2, no dilation, one group, explicit padding and constant
/// weights and bias; or the `EinSum NIHW,OI->NOHW` with constant weights tract makes of a 1×1
/// convolution.
fn direct_conv(
    model: &TypedModel,
    node: &TypedNode,
    outputs: &[OutletId],
) -> TractResult<Option<(DirectConv, Tail)>> {
    let out = OutletId::new(node.id, 0);
    let Some(input) = node.inputs.first() else {
        return Ok(None);
    };
    let fact = model.outlet_fact(*input)?;
    // a concrete input the kernel takes (no symbolic batch, not empty, not smaller than the
    // kernel once padded): anything else stays with tract
    let Some(shape) = concrete(fact) else {
        return Ok(None);
    };
    if fact.datum_type != f32::datum_type() {
        return Ok(None);
    }
    if let Some(es) = node.op_as::<EinSum>() {
        if es.q_params.is_some()
            || es.operating_dt != f32::datum_type()
            || es.axes.to_string() != "NIHW,OI->NOHW"
            || node.inputs.len() != 2
        {
            return Ok(None);
        }
        let Some((kshape, kernel)) = konst_f32(model, node.inputs[1])? else {
            return Ok(None);
        };
        let &[oc, ic] = kshape.as_slice() else {
            return Ok(None);
        };
        let tail = tail(model, out, oc, true, outputs)?;
        let bias = tail.bias.clone().unwrap_or_else(|| vec![0.0]);
        let op = DirectConv::new(&kernel, &[oc, ic, 1, 1], &bias, 1, [0; 4], tail.alpha);
        return Ok(op.ok().filter(|op| op.accepts(&shape)).map(|op| (op, tail)));
    }
    let Some(conv) = node.op_as::<Conv>() else {
        return Ok(None);
    };
    let spec = &conv.pool_spec;
    let stride = match spec.strides.as_ref().map(TVec::as_slice) {
        None | Some([1, 1]) => 1,
        Some([2, 2]) => 2,
        _ => return Ok(None),
    };
    let no_dilation = spec
        .dilations
        .as_ref()
        .is_none_or(|d| d.iter().all(|&d| d == 1));
    let pads = match &spec.padding {
        PaddingSpec::Explicit(b, a) if b.len() == 2 && a.len() == 2 => [b[0], b[1], a[0], a[1]],
        PaddingSpec::Valid => [0; 4],
        _ => return Ok(None),
    };
    if conv.group != 1
        || conv.q_params.is_some()
        || conv.kernel_fmt != KernelFormat::OIHW
        || spec.data_format != DataFormat::NCHW
        || spec.kernel_shape.as_slice() != [3, 3]
        || !no_dilation
        || node.inputs.len() != 3
    {
        return Ok(None);
    }
    let (Some((kshape, kernel)), Some((_, bias))) = (
        konst_f32(model, node.inputs[1])?,
        konst_f32(model, node.inputs[2])?,
    ) else {
        return Ok(None);
    };
    let tail = tail(model, out, spec.output_channels, false, outputs)?;
    let op = DirectConv::new(&kernel, &kshape, &bias, stride, pads, tail.alpha);
    Ok(op.ok().filter(|op| op.accepts(&shape)).map(|op| (op, tail)))
}

/// Replaces, in a decluttered model, each convolution [`direct_conv`] accepts by a
/// [`DirectConv`], folding the bias `Add` and `LeakyRelu` after it ([`Tail`]). Does nothing
/// where [`available`] is false.
///
/// # Errors
/// tract's, when a node's facts cannot be read or a patch cannot be applied.
pub(super) fn fuse(model: &mut TypedModel, fused: &mut Fused) -> TractResult<()> {
    if !available() {
        return Ok(());
    }
    let outputs = model.output_outlets()?.to_vec();
    for id in 0..model.nodes().len() {
        let node = model.node(id);
        let Some((op, tail)) = direct_conv(model, node, &outputs)? else {
            continue;
        };
        let name = model.node(tail.last.node).name.clone();
        let k = op.k;
        let mut patch = TypedModelPatch::default();
        let tap = patch.tap_model(model, node.inputs[0])?;
        // a node whose facts the operator would not give stays with tract
        let Ok(wire) = patch.wire_node(format!("{name}.edgecell_conv"), op, &[tap]) else {
            continue;
        };
        patch.shunt_outside(model, tail.last, wire[0])?;
        patch.apply(model)?;
        if k == 1 {
            fused.conv1x1 += 1;
        } else {
            fused.conv3x3 += 1;
        }
        fused.bias += usize::from(tail.bias.is_some());
        fused.leaky_relu += usize::from(tail.alpha.is_some());
    }
    model.compact()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::PoolSpec;
    use tract_onnx::tract_core::ops::nn::leaky_relu;

    /// Deterministic values in [-scale, scale).
    fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    /// One convolution case: input NCHW, output channels, stride, pads (top, left, bottom,
    /// right), LeakyRelu slope.
    struct Case {
        /// kernel side
        k: usize,
        input: [usize; 4],
        oc: usize,
        stride: usize,
        pads: [usize; 4],
        alpha: Option<f32>,
    }

    const CASES: &[Case] = &[
        Case {
            k: 3,
            input: [1, 3, 13, 13],
            oc: 32,
            stride: 2,
            pads: [1, 1, 1, 1],
            alpha: Some(0.1),
        },
        Case {
            k: 3,
            input: [1, 16, 9, 11],
            oc: 16,
            stride: 1,
            pads: [1, 1, 1, 1],
            alpha: Some(0.1),
        },
        // two input-channel chunks, output channels that are no multiple of 8
        Case {
            k: 3,
            input: [2, 40, 7, 5],
            oc: 13,
            stride: 1,
            pads: [1, 1, 1, 1],
            alpha: None,
        },
        Case {
            k: 3,
            input: [1, 33, 6, 6],
            oc: 20,
            stride: 2,
            pads: [0, 1, 2, 0],
            alpha: Some(0.5),
        },
        // no padding, a 3×3 input: one output position
        Case {
            k: 3,
            input: [1, 5, 3, 3],
            oc: 1,
            stride: 1,
            pads: [0, 0, 0, 0],
            alpha: None,
        },
        // odd sizes at stride 2, asymmetric pads, a row shorter than a vector
        Case {
            k: 3,
            input: [1, 8, 10, 4],
            oc: 9,
            stride: 2,
            pads: [2, 0, 1, 2],
            alpha: Some(0.2),
        },
        // a plane larger than a block in both directions
        Case {
            k: 3,
            input: [1, 4, 30, 37],
            oc: 8,
            stride: 1,
            pads: [1, 1, 1, 1],
            alpha: Some(0.1),
        },
        // 1×1: tract's EinSum form with the bias added after it, with and without LeakyRelu
        Case {
            k: 1,
            input: [1, 40, 9, 7],
            oc: 12,
            stride: 1,
            pads: [0; 4],
            alpha: Some(0.1),
        },
        Case {
            k: 1,
            input: [2, 3, 5, 5],
            oc: 8,
            stride: 1,
            pads: [0; 4],
            alpha: None,
        },
    ];

    /// f64 reference at one output, and the bound on an f32 sum of the same terms in any
    /// order: terms · ε · Σ|term|.
    fn reference(case: &Case, x: &[f32], k: &[f32], b: &[f32], at: [usize; 4]) -> (f64, f64) {
        let [_, c, h, w] = case.input;
        let [n, o, y, xo] = at;
        let mut sum = f64::from(b[o]);
        let mut abs = sum.abs();
        let mut terms = 1.0;
        let kk = case.k;
        for ci in 0..c {
            for ky in 0..kk {
                for kx in 0..kk {
                    let iy = (y * case.stride + ky).checked_sub(case.pads[0]);
                    let ix = (xo * case.stride + kx).checked_sub(case.pads[1]);
                    let (Some(iy), Some(ix)) = (iy, ix) else {
                        continue;
                    };
                    if iy >= h || ix >= w {
                        continue;
                    }
                    let t = f64::from(k[((o * c + ci) * kk + ky) * kk + kx])
                        * f64::from(x[((n * c + ci) * h + iy) * w + ix]);
                    sum += t;
                    abs += t.abs();
                    terms += 1.0;
                }
            }
        }
        let slope = case.alpha.map_or(1.0, f64::from);
        if sum < 0.0 {
            sum *= slope;
        }
        (
            sum,
            terms * f64::from(f32::EPSILON) * abs * slope.max(1.0) + 1e-30,
        )
    }

    /// The case as a tract model: a convolution (and its LeakyRelu) over constant weights.
    fn model(case: &Case, k: &[f32], b: &[f32]) -> TypedModel {
        let [_, c, ..] = case.input;
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact(case.input)).unwrap();
        let kernel =
            tract_ndarray::ArrayD::from_shape_vec(vec![case.oc, c, case.k, case.k], k.to_vec())
                .unwrap()
                .into_tensor();
        let bias = tract_ndarray::ArrayD::from_shape_vec(vec![case.oc], b.to_vec())
            .unwrap()
            .into_tensor();
        let kernel = model.add_const("kernel", kernel).unwrap();
        let bias = model.add_const("bias", bias).unwrap();
        let [pt, pl, pb, pr] = case.pads;
        let conv = Conv {
            pool_spec: PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: tvec!(case.k, case.k),
                padding: PaddingSpec::Explicit(tvec!(pt, pl), tvec!(pb, pr)),
                dilations: None,
                strides: Some(tvec!(case.stride, case.stride)),
                input_channels: c,
                output_channels: case.oc,
            },
            kernel_fmt: KernelFormat::OIHW,
            group: 1,
            q_params: None,
        };
        let mut wire = model.wire_node("conv", conv, &[x, kernel, bias]).unwrap();
        if let Some(alpha) = case.alpha {
            wire = model.wire_node("leaky", leaky_relu(alpha), &wire).unwrap();
        }
        model.select_output_outlets(&wire).unwrap();
        model
    }

    /// Every instruction set this CPU runs the kernel on.
    fn isas() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .filter(|isa| isa.supported())
            .collect()
    }

    /// Puts every fused convolution of `model` on `isa`.
    fn force(model: &mut TypedModel, isa: Isa) {
        for id in 0..model.nodes().len() {
            if let Some(op) = model.node(id).op_as::<DirectConv>() {
                let op = op.clone().with_isa(isa);
                model.node_mut(id).op = Box::new(op);
            }
        }
    }

    fn run(model: TypedModel, x: &[f32], shape: [usize; 4]) -> (Vec<usize>, Vec<f32>) {
        let input = tract_ndarray::ArrayD::from_shape_vec(shape.to_vec(), x.to_vec())
            .unwrap()
            .into_tensor();
        let out = model
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap()
            .run(tvec!(input.into_tvalue()))
            .unwrap();
        (
            out[0].shape().to_vec(),
            plain_f32(&out[0]).unwrap().to_vec(),
        )
    }

    #[test]
    fn fused_convolutions_agree_with_tract_and_an_f64_reference() {
        for (i, case) in CASES.iter().enumerate() {
            let [n, c, ..] = case.input;
            let x = values(case.input.iter().product(), 3 * i as u64 + 1, 4.0);
            let k = values(case.oc * c * case.k * case.k, 3 * i as u64 + 2, 0.5);
            let b = values(case.oc, 3 * i as u64 + 3, 1.0);
            let (shape, theirs) = run(model(case, &k, &b), &x, case.input);
            // as the provider does: fused after tract's declutter (which turns a 1×1
            // convolution into an EinSum and an Add)
            let mut fused = model(case, &k, &b).into_decluttered().unwrap();
            let mut counts = Fused::default();
            fuse(&mut fused, &mut counts).unwrap();
            let want = usize::from(available());
            let (three, one) = if case.k == 3 { (want, 0) } else { (0, want) };
            assert_eq!((counts.conv3x3, counts.conv1x1), (three, one), "case {i}");
            assert_eq!(counts.bias, one, "case {i}");
            assert_eq!(
                counts.leaky_relu,
                want * usize::from(case.alpha.is_some()),
                "case {i}"
            );
            let [_, oc, oh, ow] = <[usize; 4]>::try_from(shape.as_slice()).unwrap();
            assert_eq!(oc, case.oc);
            for isa in isas() {
                let mut on = fused.clone();
                force(&mut on, isa);
                let (ours_shape, ours) = run(on, &x, case.input);
                assert_eq!(ours_shape, shape, "case {i} {isa:?}");
                for at in 0..n * oc * oh * ow {
                    let idx = [
                        at / (oc * oh * ow),
                        at / (oh * ow) % oc,
                        at / ow % oh,
                        at % ow,
                    ];
                    let (want, bound) = reference(case, &x, &k, &b, idx);
                    for (who, got) in [("ours", ours[at]), ("tract", theirs[at])] {
                        assert!(
                            (f64::from(got) - want).abs() <= bound,
                            "case {i} {isa:?} {who} at {idx:?}: {got} vs {want} (bound {bound})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_nan_input_reaches_the_same_outputs_as_in_tract() {
        let case = &CASES[1];
        let [_, c, h, w] = case.input;
        let mut x = values(case.input.iter().product(), 7, 4.0);
        x[(2 * h + 4) * w + 5] = f32::NAN; // channel 2, row 4, column 5
        x[(5 * h) * w] = f32::INFINITY; // channel 5, top-left corner
        let k = values(case.oc * c * 9, 8, 0.5);
        let b = values(case.oc, 9, 1.0);
        let (_, theirs) = run(model(case, &k, &b), &x, case.input);
        let mut fused = model(case, &k, &b).into_decluttered().unwrap();
        fuse(&mut fused, &mut Fused::default()).unwrap();
        let kinds = |v: &[f32]| -> Vec<u8> {
            v.iter()
                .map(|f| match f {
                    f if f.is_nan() => 0,
                    f if f.is_infinite() => 1 + u8::from(*f > 0.0),
                    _ => 3,
                })
                .collect()
        };
        for isa in isas() {
            let mut on = fused.clone();
            force(&mut on, isa);
            let (_, ours) = run(on, &x, case.input);
            assert_eq!(kinds(&ours), kinds(&theirs), "{isa:?}");
            assert!(kinds(&ours).iter().filter(|&&k| k < 3).count() >= 9);
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let k = values(2 * 3 * 9, 1, 1.0);
        let op = DirectConv::new(&k, &[2, 3, 3, 3], &[0.5], 1, [0; 4], None).unwrap();
        // wrong channel count, wrong rank, short data, a plane smaller than the kernel
        assert!(op.run(&[0.0; 4 * 9], &[1, 4, 3, 3]).is_err());
        assert!(op.run(&[0.0; 27], &[3, 3, 3]).is_err());
        assert!(op.run(&[0.0; 26], &[1, 3, 3, 3]).is_err());
        assert!(op.run(&[0.0; 12], &[1, 3, 2, 2]).is_err());
        assert!(DirectConv::new(&k, &[2, 3, 3, 3], &[0.0; 3], 1, [0; 4], None).is_err());
        assert!(DirectConv::new(&k, &[2, 3, 3, 3], &[0.0], 3, [0; 4], None).is_err());
        assert!(DirectConv::new(&k[1..], &[2, 3, 3, 3], &[0.0], 1, [0; 4], None).is_err());
        // a 1×1 kernel only at stride 1 without padding
        let k1 = values(2 * 3, 2, 1.0);
        assert!(DirectConv::new(&k1, &[2, 3, 1, 1], &[0.0], 1, [0; 4], None).is_ok());
        assert!(DirectConv::new(&k1, &[2, 3, 1, 1], &[0.0], 2, [0; 4], None).is_err());
        assert!(DirectConv::new(&k1, &[2, 3, 1, 1], &[0.0], 1, [1, 0, 0, 0], None).is_err());
        assert!(
            DirectConv::new(&values(8, 1, 1.0), &[2, 1, 2, 2], &[0.0], 1, [0; 4], None).is_err()
        );
        // with the right shape it runs on the instructions this CPU has and says so elsewhere
        for isa in [Isa::Avx512, Isa::Avx2] {
            let on = op.clone().with_isa(isa);
            assert_eq!(
                on.run(&[0.0; 27], &[1, 3, 3, 3]).is_ok(),
                isa.supported(),
                "{isa:?}"
            );
        }
    }

    /// A 3×3 convolution over `input` (any dims, maybe symbolic) with `pads`, as a model.
    fn conv_model(input: &[TDim], ic: usize, pads: [usize; 4], model: &mut TypedModel) {
        let x = model.add_source("x", f32::fact(input.to_vec())).unwrap();
        let k =
            tract_ndarray::ArrayD::from_shape_vec(vec![2, ic, 3, 3], values(2 * ic * 9, 5, 1.0))
                .unwrap()
                .into_tensor();
        let kernel = model.add_const("kernel", k).unwrap();
        let bias = model.add_const("bias", tensor1(&[0.5f32, -0.5])).unwrap();
        let [pt, pl, pb, pr] = pads;
        let conv = Conv {
            pool_spec: PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: tvec!(3, 3),
                padding: PaddingSpec::Explicit(tvec!(pt, pl), tvec!(pb, pr)),
                dilations: None,
                strides: None,
                input_channels: ic,
                output_channels: 2,
            },
            kernel_fmt: KernelFormat::OIHW,
            group: 1,
            q_params: None,
        };
        let wire = model.wire_node("conv", conv, &[x, kernel, bias]).unwrap();
        model.select_output_outlets(&wire).unwrap();
    }

    #[test]
    fn unusual_convolutions_stay_with_tract() {
        let dims = |d: [usize; 4]| d.map(TDim::from).to_vec();
        // a symbolic batch, an input smaller than the kernel, an empty plane, pads wider than
        // the kernel needs (a hostile model's: sizes that overflow): fusing leaves each to
        // tract instead of failing the load or reading out of bounds
        let mut symbolic = TypedModel::default();
        let n = symbolic.symbols.sym("N");
        conv_model(
            &[n.into(), 3.into(), 8.into(), 8.into()],
            3,
            [1; 4],
            &mut symbolic,
        );
        let mut small = TypedModel::default();
        conv_model(&dims([1, 2, 2, 2]), 2, [0; 4], &mut small);
        let mut empty = TypedModel::default();
        conv_model(&dims([1, 2, 0, 5]), 2, [2, 1, 1, 1], &mut empty);
        let mut wide = TypedModel::default();
        conv_model(
            &dims([1, 3, 1, 1]),
            3,
            [2, 3_074_457_345_618_258_608, 2, 3_074_457_345_618_258_609],
            &mut wide,
        );
        let mut three = TypedModel::default();
        conv_model(&dims([1, 3, 4, 4]), 3, [3, 0, 0, 0], &mut three);
        for (what, model) in [
            ("symbolic", symbolic),
            ("small", small),
            ("empty", empty),
            ("wide", wide),
            ("pad 3", three),
        ] {
            let mut model = model.into_decluttered().unwrap();
            let mut counts = Fused::default();
            fuse(&mut model, &mut counts).unwrap();
            assert_eq!(counts, Fused::default(), "{what}");
        }
        // and those tract can run still run, with tract's result
        let mut empty = TypedModel::default();
        conv_model(&dims([1, 2, 0, 5]), 2, [2, 1, 1, 1], &mut empty);
        let mut fused = empty.clone().into_decluttered().unwrap();
        fuse(&mut fused, &mut Fused::default()).unwrap();
        let (shape, out) = run(fused, &[], [1, 2, 0, 5]);
        assert_eq!((shape, out), run(empty, &[], [1, 2, 0, 5]));
    }
}
