//! Faster tract kernels for NanoDet-style detectors (NCHW, f32), in two passes.
//!
//! [`fuse`] runs on the decluttered model, before tract optimises it: 3×3 and 1×1
//! convolutions go to the direct AVX-512 kernel of [`conv`] (with their bias and `LeakyRelu`),
//! and a −∞ `Pad` feeding a max-pool is folded into [`FastMaxPool`]. [`accelerate`] runs on
//! the optimised model and swaps the memory-bound operators left: constant `Pad`, 2-D
//! `MaxPool` and linear `Resize`, which do the same arithmetic row by row on contiguous
//! slices. Profiled on nanodet-m-416 (one thread, tract 0.23.9), tract's own path took about
//! twice ONNX Runtime's time per frame: convolutions as pad + im2col + matrix products, and
//! 5.7 ms (28 pads), 3.0 ms (one max-pool) and 5.2 ms (4 resizes) of a 46 ms frame.
//!
//! Only the exact cases written here are replaced (f32, concrete shapes, the attributes
//! checked in each `from_*`); every other node is left to tract. Resize reuses tract's own
//! per-axis sampling plans, so the taps and weights are tract's, and MaxPool follows tract's
//! comparison rule (NaN never taken, f32::MIN floor); the tests compare these operators with
//! tract's bit for bit on random inputs with −∞, NaN and zeros (only the sign of a zero
//! maximum may differ, from the order windows are scanned). The convolutions add the same
//! products in another order; their tests hold them and tract to the f32 summation bound.

use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::array::{Pad, PadMode};
use tract_onnx::tract_core::ops::cnn::{MaxPool, OptMaxPool, PaddingSpec, PoolSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;
use tract_onnx::tract_core::ops::nn::resize::{AxisPlan, Interpolator, Resize};

/// How many nodes [`accelerate`] swapped, per operator.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swapped {
    pub pad: usize,
    pub max_pool: usize,
    pub resize: usize,
}

fn concrete(fact: &TypedFact) -> Option<Vec<usize>> {
    fact.shape.as_concrete().map(<[usize]>::to_vec)
}

/// The one node that consumes `outlet`, when it has exactly one consumer and is not a model
/// output: only then can the value be folded into the node after it.
fn only_successor(model: &TypedModel, outlet: OutletId, outputs: &[OutletId]) -> Option<usize> {
    match model.node(outlet.node).outputs[outlet.slot]
        .successors
        .as_slice()
    {
        [only] if !outputs.contains(&outlet) => Some(only.node),
        _ => None,
    }
}

/// How many nodes [`fuse`] replaced in a decluttered model.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fused {
    /// 3×3 convolutions now run by [`conv::DirectConv`]
    pub conv3x3: usize,
    /// 1×1 convolutions (tract's `EinSum` form) now run by [`conv::DirectConv`]
    pub conv1x1: usize,
    /// bias `Add`s folded into a 1×1 one
    pub bias: usize,
    /// `LeakyRelu`s folded into either
    pub leaky_relu: usize,
    /// −∞ pads folded into the max-pool after them
    pub max_pool_pads: usize,
}

/// Before tract optimises a decluttered model: 3×3 and 1×1 convolutions onto
/// [`conv::DirectConv`] (where the CPU has AVX-512F) and −∞ pads into the max-pools they feed.
///
/// # Errors
/// tract's, when a node's facts cannot be read or a patch cannot be applied.
pub fn fuse(model: &mut TypedModel) -> TractResult<Fused> {
    let mut fused = Fused::default();
    conv::fuse(model, &mut fused)?;
    fused.max_pool_pads = fold_max_pool_pads(model)?;
    Ok(fused)
}

/// Replaces the nodes of an optimised `model` that the operators here cover.
///
/// # Errors
/// tract's, when a node's facts cannot be read.
pub fn accelerate(model: &mut TypedModel) -> TractResult<Swapped> {
    let mut swapped = Swapped::default();
    for id in 0..model.nodes().len() {
        let node = model.node(id);
        let Some(input) = node.inputs.first() else {
            continue;
        };
        let fact = model.outlet_fact(*input)?;
        if fact.datum_type != f32::datum_type() {
            continue;
        }
        let Some(shape) = concrete(fact) else {
            continue;
        };
        // the same max-pool before and after tract's optimisation
        let max_pool = node
            .op_as::<OptMaxPool>()
            .map(|p| (&p.pool_spec, p.with_index_outputs))
            .or_else(|| {
                node.op_as::<MaxPool>()
                    .map(|p| (&p.pool_spec, p.with_index_outputs))
            });
        let replacement: Option<Box<dyn TypedOp>> = if let Some(pad) = node.op_as::<Pad>() {
            FastPad::from_pad(pad).map(|op| {
                swapped.pad += 1;
                Box::new(op) as Box<dyn TypedOp>
            })
        } else if let Some((spec, index_outputs)) = max_pool {
            index_outputs
                .is_none()
                .then(|| FastMaxPool::from_spec(spec, &shape))
                .flatten()
                .map(|op| {
                    swapped.max_pool += 1;
                    Box::new(op) as Box<dyn TypedOp>
                })
        } else if let Some(resize) = node.op_as::<Resize>() {
            let out = model.outlet_fact(OutletId::new(id, 0))?;
            // A full-rank scales input is what tract's eval samples with; swap only when it
            // states exactly output/input per axis (what FastResize samples with).
            let scales = match resize
                .optional_scales_input
                .and_then(|ix| node.inputs.get(ix))
            {
                None => None,
                Some(o) => match &model.outlet_fact(*o)?.konst {
                    Some(t) => Some(
                        t.cast_to::<f32>()?
                            .try_as_plain_ram()?
                            .as_slice::<f32>()?
                            .to_vec(),
                    ),
                    None => continue,
                },
            };
            concrete(out)
                .filter(|out| {
                    scales.as_ref().is_none_or(|s| {
                        s.len() != shape.len()
                            || s.iter()
                                .zip(out.iter().zip(&shape))
                                .all(|(&s, (&o, &i))| s == o as f32 / i as f32)
                    })
                })
                .and_then(|out| FastResize::from_resize(resize, &shape, &out))
                .map(|op| {
                    swapped.resize += 1;
                    Box::new(op) as Box<dyn TypedOp>
                })
        } else {
            None
        };
        if let Some(op) = replacement {
            model.node_mut(id).op = op;
        }
    }
    Ok(swapped)
}

fn plain_f32(input: &TValue) -> TractResult<&[f32]> {
    input.try_as_plain_ram()?.as_slice::<f32>()
}

fn tensor(shape: &[usize], data: Vec<f32>) -> TractResult<TValue> {
    Ok(tract_ndarray::ArrayD::from_shape_vec(shape, data)?
        .into_tensor()
        .into_tvalue())
}

/// `Op` and `EvalOp` for a kernel with `fn run(&self, &[f32], shape) -> (shape, data)` and a
/// `fn describe(&self) -> String`: one f32 input, one f32 output.
macro_rules! f32_kernel_op {
    ($ty:ty, $name:literal) => {
        impl Op for $ty {
            fn name(&self) -> StaticName {
                $name.into()
            }
            fn info(&self) -> TractResult<Vec<String>> {
                Ok(vec![self.describe()])
            }
            op_as_typed_op!();
        }

        impl EvalOp for $ty {
            op_out_of_plan!();
            fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
                let input = inputs
                    .first()
                    .with_context(|| format!("{}: no input", $name))?;
                let (shape, data) = self.run(plain_f32(input)?, input.shape())?;
                Ok(tvec!(tensor(&shape, data)?))
            }
        }
    };
}

pub mod conv;

// ---------------------------------------------------------------------------------------------
// Pad

/// Constant padding of an f32 tensor of any rank: fill, then copy the input a row (last axis)
/// at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct FastPad {
    pads: Vec<(usize, usize)>,
    value: f32,
}

impl Eq for FastPad {}

impl std::hash::Hash for FastPad {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.pads.hash(state);
        self.value.to_bits().hash(state);
    }
}

impl FastPad {
    fn from_pad(pad: &Pad) -> Option<Self> {
        let PadMode::Constant(v) = &pad.mode else {
            return None;
        };
        let value = v.cast_to_scalar::<f32>().ok()?;
        (!pad.pads.is_empty()).then(|| Self {
            pads: pad.pads.clone(),
            value,
        })
    }

    fn describe(&self) -> String {
        format!("constant {} pads {:?}", self.value, self.pads)
    }

    fn run(&self, input: &[f32], shape: &[usize]) -> TractResult<(Vec<usize>, Vec<f32>)> {
        ensure!(shape.len() == self.pads.len(), "pad rank mismatch");
        let out_shape: Vec<usize> = shape
            .iter()
            .zip(&self.pads)
            .map(|(&d, &(a, b))| d + a + b)
            .collect();
        let total: usize = out_shape.iter().product();
        let mut out = vec![self.value; total];
        let rank = shape.len();
        let row = shape[rank - 1];
        if row == 0 || input.is_empty() {
            return Ok((out_shape, out));
        }
        // Output strides (elements).
        let mut ostride = vec![1usize; rank];
        for a in (0..rank - 1).rev() {
            ostride[a] = ostride[a + 1] * out_shape[a + 1];
        }
        let lead = self.pads[rank - 1].0;
        let mut idx = vec![0usize; rank.saturating_sub(1)];
        for src in input.chunks_exact(row) {
            let mut off = lead;
            for (a, &i) in idx.iter().enumerate() {
                off += (i + self.pads[a].0) * ostride[a];
            }
            out[off..off + row].copy_from_slice(src);
            // Next input row index (odometer over all axes but the last).
            for a in (0..idx.len()).rev() {
                idx[a] += 1;
                if idx[a] < shape[a] {
                    break;
                }
                idx[a] = 0;
            }
        }
        Ok((out_shape, out))
    }
}

f32_kernel_op!(FastPad, "EdgecellPad");

impl TypedOp for FastPad {
    as_op!();
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let input = inputs.first().context("pad: no input")?;
        let mut fact = input.without_value();
        ensure!(fact.rank() == self.pads.len(), "pad rank mismatch");
        for (ix, (b, e)) in self.pads.iter().enumerate() {
            fact.shape.set(ix, fact.shape[ix].clone() + *b + *e);
        }
        Ok(tvec!(fact))
    }
}

// ---------------------------------------------------------------------------------------------
// MaxPool

/// 2-D max-pooling of NCHW f32 without dilation: for each output row, the max of the kernel's
/// input rows element-wise, then the max over each window of that row. `pads` (top, left,
/// bottom, right) stand for a `Pad` with −∞ folded in by [`fuse`]: under tract's
/// rule a −∞ is never taken, so padded cells are simply left out of the windows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FastMaxPool {
    kernel: [usize; 2],
    strides: [usize; 2],
    pads: [usize; 4],
}

impl FastMaxPool {
    fn from_spec(spec: &PoolSpec, input_shape: &[usize]) -> Option<Self> {
        let valid = matches!(spec.padding, PaddingSpec::Valid)
            || matches!(&spec.padding, PaddingSpec::Explicit(b, a) if b.iter().chain(a).all(|&p| p == 0));
        let no_dilation = spec
            .dilations
            .as_ref()
            .is_none_or(|d| d.iter().all(|&x| x == 1));
        let kernel: [usize; 2] = spec.kernel_shape.as_slice().try_into().ok()?;
        let strides: [usize; 2] = match &spec.strides {
            None => [1, 1],
            Some(s) => s.as_slice().try_into().ok()?,
        };
        (spec.data_format == DataFormat::NCHW
            && valid
            && no_dilation
            && input_shape.len() == 4
            && kernel.iter().all(|&k| k > 0)
            && strides.iter().all(|&s| s > 0)
            && input_shape[2] >= kernel[0]
            && input_shape[3] >= kernel[1])
            .then_some(Self {
                kernel,
                strides,
                pads: [0; 4],
            })
    }

    /// The padded length of spatial `axis` (0 = rows) of an input `len` long.
    fn padded(&self, len: usize, axis: usize) -> usize {
        len + self.pads[axis] + self.pads[axis + 2]
    }

    fn out_len(&self, len: usize, axis: usize) -> usize {
        (self.padded(len, axis) - self.kernel[axis]) / self.strides[axis] + 1
    }

    fn describe(&self) -> String {
        format!(
            "kernel {:?} strides {:?} −∞ pads {:?}",
            self.kernel, self.strides, self.pads
        )
    }

    fn run(&self, input: &[f32], shape: &[usize]) -> TractResult<(Vec<usize>, Vec<f32>)> {
        let [n, c, h, w] =
            <[usize; 4]>::try_from(shape).map_err(|_| format_err!("max-pool rank"))?;
        ensure!(
            self.padded(h, 0) >= self.kernel[0] && self.padded(w, 1) >= self.kernel[1],
            "max-pool window larger than input"
        );
        ensure!(h > 0 && w > 0, "max-pool of an empty plane");
        let (oh, ow) = (self.out_len(h, 0), self.out_len(w, 1));
        let [pt, pl, ..] = self.pads;
        let mut out = vec![0f32; n * c * oh * ow];
        let mut rowmax = vec![0f32; self.padded(w, 1)];
        for (plane, dst) in input.chunks_exact(h * w).zip(out.chunks_exact_mut(oh * ow)) {
            for (oy, drow) in dst.chunks_exact_mut(ow).enumerate() {
                let y0 = oy * self.strides[0];
                // tract's rule: start from f32::MIN, take a value only if it is greater (so a
                // NaN is never taken and an all −∞ window gives f32::MIN)
                // written as a select rather than a conditional store, so it vectorises (x86
                // `maxps` is exactly this: the second operand when unordered); padding rows
                // and columns stay at f32::MIN, as a −∞ pad would leave them
                rowmax.fill(f32::MIN);
                for ky in 0..self.kernel[0] {
                    let Some(y) = (y0 + ky).checked_sub(pt).filter(|&y| y < h) else {
                        continue;
                    };
                    let dst = &mut rowmax[pl..][..w];
                    for (m, &v) in dst.iter_mut().zip(&plane[y * w..][..w]) {
                        *m = take_greater(*m, v);
                    }
                }
                for (ox, d) in drow.iter_mut().enumerate() {
                    let win = &rowmax[ox * self.strides[1]..][..self.kernel[1]];
                    *d = win.iter().fold(f32::MIN, |acc, &v| take_greater(acc, v));
                }
            }
        }
        Ok((vec![n, c, oh, ow], out))
    }
}

/// tract's max-pool step: `v` when it is greater than `acc`, else `acc` (a NaN is never taken).
#[inline]
fn take_greater(acc: f32, v: f32) -> f32 {
    if v > acc { v } else { acc }
}

f32_kernel_op!(FastMaxPool, "EdgecellMaxPool");

impl TypedOp for FastMaxPool {
    as_op!();
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let input = inputs.first().context("max-pool: no input")?;
        let shape = input
            .shape
            .as_concrete()
            .context("max-pool: symbolic shape")?;
        ensure!(
            shape.len() == 4
                && self.padded(shape[2], 0) >= self.kernel[0]
                && self.padded(shape[3], 1) >= self.kernel[1]
        );
        let out = [
            shape[0],
            shape[1],
            self.out_len(shape[2], 0),
            self.out_len(shape[3], 1),
        ];
        Ok(tvec!(f32::fact(out)))
    }
}

/// Folds each constant −∞ `Pad` of the two spatial axes that feeds only an unpadded 2-D
/// `MaxPool` (no index output) into a [`FastMaxPool`] with those pads, in a decluttered model:
/// the padded copy of the input is never made. Returns how many were folded.
///
/// # Errors
/// tract's, when a node's facts cannot be read or a patch cannot be applied.
fn fold_max_pool_pads(model: &mut TypedModel) -> TractResult<usize> {
    let mut folded = 0;
    let outputs = model.output_outlets()?.to_vec();
    for id in 0..model.nodes().len() {
        let node = model.node(id);
        let Some(pool) = node.op_as::<MaxPool>() else {
            continue;
        };
        let Some(pad_node) = node.inputs.first().map(|i| model.node(i.node)) else {
            continue;
        };
        let Some(pad) = pad_node.op_as::<Pad>() else {
            continue;
        };
        let pad_out = OutletId::new(pad_node.id, 0);
        let Some(&input) = pad_node.inputs.first() else {
            continue;
        };
        let fact = model.outlet_fact(input)?;
        let minus_inf = matches!(&pad.mode, PadMode::Constant(v)
            if v.cast_to_scalar::<f32>().is_ok_and(|v| v == f32::NEG_INFINITY));
        let Some(shape) = concrete(fact) else {
            continue;
        };
        if fact.datum_type != f32::datum_type()
            || !minus_inf
            || pool.with_index_outputs.is_some()
            || pad.pads.len() != 4
            || pad.pads[0] != (0, 0)
            || pad.pads[1] != (0, 0)
            || only_successor(model, pad_out, &outputs).is_none()
            || shape.len() != 4
            || shape[2] == 0
            || shape[3] == 0
        {
            continue;
        }
        // pads smaller than the window, as "same" pooling needs: a window made only of padding
        // would be tract's f32::MIN floor, and sizes stay within a window of the input's
        let kernel = &pool.pool_spec.kernel_shape;
        let small = kernel.len() == 2
            && pad.pads[2..]
                .iter()
                .zip(kernel.iter())
                .all(|(&(a, b), &k)| a < k && b < k);
        if !small {
            continue;
        }
        let padded: Vec<usize> = shape
            .iter()
            .zip(&pad.pads)
            .map(|(&d, &(a, b))| d + a + b)
            .collect();
        let Some(mut op) = FastMaxPool::from_spec(&pool.pool_spec, &padded) else {
            continue;
        };
        op.pads = [pad.pads[2].0, pad.pads[3].0, pad.pads[2].1, pad.pads[3].1];
        let mut patch = TypedModelPatch::default();
        let tap = patch.tap_model(model, input)?;
        let wire = patch.wire_node(format!("{}.edgecell_max_pool", node.name), op, &[tap])?;
        patch.shunt_outside(model, OutletId::new(id, 0), wire[0])?;
        patch.apply(model)?;
        folded += 1;
    }
    model.compact()?;
    Ok(folded)
}

// ---------------------------------------------------------------------------------------------
// Resize

/// Linear resize of the two spatial axes of NCHW f32 (N and C unchanged), with tract's own
/// sampling plans: rows blended into a scratch plane, then each row sampled along x.
#[derive(Debug, Clone)]
pub struct FastResize {
    input: [usize; 4],
    output: [usize; 4],
    rows: AxisPlan,
    cols: AxisPlan,
}

impl PartialEq for FastResize {
    fn eq(&self, other: &Self) -> bool {
        self.input == other.input
            && self.output == other.output
            && plan_eq(&self.rows, &other.rows)
            && plan_eq(&self.cols, &other.cols)
    }
}

impl Eq for FastResize {}

impl std::hash::Hash for FastResize {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.input.hash(state);
        self.output.hash(state);
    }
}

fn plan_eq(a: &AxisPlan, b: &AxisPlan) -> bool {
    a.window == b.window
        && a.indices == b.indices
        && a.extrapolated == b.extrapolated
        && a.weights
            .iter()
            .map(|w| w.to_bits())
            .eq(b.weights.iter().map(|w| w.to_bits()))
}

impl FastResize {
    fn from_resize(resize: &Resize, input: &[usize], output: &[usize]) -> Option<Self> {
        let input: [usize; 4] = input.try_into().ok()?;
        let output: [usize; 4] = output.try_into().ok()?;
        if resize.interpolator != Interpolator::Linear
            || input[0] != output[0]
            || input[1] != output[1]
            || input[2] == 0
            || input[3] == 0
            || output[2] == 0
            || output[3] == 0
        {
            return None;
        }
        // tract's eval takes each axis's scale as output/input length when the scales input is
        // not a full-rank tensor; only such resizes (sizes input, or scales that agree with the
        // shapes) are swapped, checked by comparing tract's plan output lengths.
        let scale = |a: usize| output[a] as f32 / input[a] as f32;
        let rows = resize.plan_axis(scale(2), input[2], output[2]);
        let cols = resize.plan_axis(scale(3), input[3], output[3]);
        let sane = |p: &AxisPlan, len_in: usize, len_out: usize| {
            p.window == 2
                && p.extrapolated.len() == len_out
                && !p.extrapolated.iter().any(|&e| e)
                && p.indices.len() == 2 * len_out
                && p.weights.len() == 2 * len_out
                && p.indices.iter().all(|&i| i < len_in)
        };
        (sane(&rows, input[2], output[2]) && sane(&cols, input[3], output[3])).then_some(Self {
            input,
            output,
            rows,
            cols,
        })
    }

    fn describe(&self) -> String {
        format!("linear {:?} -> {:?}", self.input, self.output)
    }

    fn run(&self, input: &[f32], shape: &[usize]) -> TractResult<(Vec<usize>, Vec<f32>)> {
        ensure!(
            shape == self.input,
            "resize: input shape {shape:?} differs from {:?}",
            self.input
        );
        let [n, c, h, w] = self.input;
        let [_, _, oh, ow] = self.output;
        ensure!(
            oh > 0 && ow > 0 && h > 0 && w > 0,
            "resize: empty spatial axis"
        );
        let mut out = vec![0f32; n * c * oh * ow];
        let mut scratch = vec![0f32; oh * w];
        for (plane, dst) in input.chunks_exact(h * w).zip(out.chunks_exact_mut(oh * ow)) {
            // y first, as tract resamples axis 2 before axis 3.
            for (y, srow) in scratch.chunks_exact_mut(w).enumerate() {
                let (i0, i1) = (self.rows.indices[2 * y], self.rows.indices[2 * y + 1]);
                let (w0, w1) = (self.rows.weights[2 * y], self.rows.weights[2 * y + 1]);
                let (r0, r1) = (&plane[i0 * w..][..w], &plane[i1 * w..][..w]);
                for ((d, &a), &b) in srow.iter_mut().zip(r0).zip(r1) {
                    *d = skip_zero(0.0, w0, a);
                    *d = skip_zero(*d, w1, b);
                }
            }
            for (srow, drow) in scratch.chunks_exact(w).zip(dst.chunks_exact_mut(ow)) {
                for (x, d) in drow.iter_mut().enumerate() {
                    let (i0, i1) = (self.cols.indices[2 * x], self.cols.indices[2 * x + 1]);
                    let (w0, w1) = (self.cols.weights[2 * x], self.cols.weights[2 * x + 1]);
                    *d = skip_zero(skip_zero(0.0, w0, srow[i0]), w1, srow[i1]);
                }
            }
        }
        Ok((self.output.to_vec(), out))
    }
}

/// `acc + w * v`, skipping zero weights as tract does (so an infinite or NaN value under a
/// zero weight stays out, exactly as in tract).
#[inline]
fn skip_zero(acc: f32, w: f32, v: f32) -> f32 {
    if w == 0.0 { acc } else { acc + w * v }
}

f32_kernel_op!(FastResize, "EdgecellResize");

impl TypedOp for FastResize {
    as_op!();
    fn output_facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(self.output)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use tract_onnx::prelude::InferenceModelExt;
    use tract_onnx::tract_core::ops::nn::resize::{CoordTransformer, Nearest};

    /// A deterministic pseudo-random tensor with a few infinities and exact zeros mixed in.
    fn random(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let data: Vec<f32> = (0..n)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                match i % 97 {
                    0 => 0.0,
                    1 if seed.is_multiple_of(2) => f32::NEG_INFINITY,
                    2 if seed.is_multiple_of(3) => f32::NAN,
                    _ => (s >> 40) as f32 / (1u64 << 23) as f32 * 8.0 - 4.0,
                }
            })
            .collect();
        tract_ndarray::ArrayD::from_shape_vec(shape, data)
            .unwrap()
            .into_tensor()
    }

    fn same(a: &TValue, b: &TValue, what: &str) {
        assert_eq!(a.shape(), b.shape(), "{what}");
        let (a, b) = (plain_f32(a).unwrap(), plain_f32(b).unwrap());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                "{what} [{i}]: {x} vs {y}"
            );
        }
    }

    fn both(ours: &dyn EvalOp, theirs: &dyn EvalOp, inputs: TVec<TValue>, what: &str) {
        let a = ours.eval_out_of_plan(inputs.clone()).unwrap().unwrap();
        let b = theirs.eval_out_of_plan(inputs).unwrap().unwrap();
        same(&a[0], &b[0], what);
    }

    #[test]
    fn pad_equals_tracts_for_every_rank_and_value() {
        type Case<'a> = (&'a [usize], Vec<(usize, usize)>, f32);
        let cases: [Case; 5] = [
            (&[1, 3, 5, 7], vec![(0, 0), (0, 0), (1, 1), (1, 1)], 0.0),
            (
                &[2, 4, 6, 6],
                vec![(0, 0), (1, 2), (0, 3), (2, 0)],
                f32::NEG_INFINITY,
            ),
            (&[9], vec![(3, 1)], 1.5),
            (&[3, 1, 4], vec![(1, 0), (0, 2), (0, 0)], -2.0),
            (&[1, 2, 1, 1], vec![(0, 0), (0, 0), (2, 2), (2, 2)], 0.0),
        ];
        for (i, (shape, pads, value)) in cases.into_iter().enumerate() {
            let theirs = Pad::new(pads, PadMode::Constant(Arc::new(value.into())));
            let ours = FastPad::from_pad(&theirs).unwrap();
            both(
                &ours,
                &theirs,
                tvec!(random(shape, i as u64).into_tvalue()),
                &format!("pad {i}"),
            );
            let fact = f32::fact(shape);
            assert_eq!(
                ours.output_facts(&[&fact]).unwrap(),
                theirs.output_facts(&[&fact]).unwrap()
            );
        }
        // Other modes stay with tract.
        assert!(FastPad::from_pad(&Pad::new(vec![(1, 1)], PadMode::Edge)).is_none());
    }

    /// Pad (with `value`) then max-pool, as a model, run with tract's operators and after
    /// [`fuse`]; returns both outputs and how many pads were folded.
    fn pad_then_pool(
        shape: [usize; 4],
        pads: [(usize, usize); 2],
        value: f32,
        seed: u64,
    ) -> (TValue, TValue, usize) {
        let build = || {
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact(shape)).unwrap();
            let pad = Pad::new(
                vec![(0, 0), (0, 0), pads[0], pads[1]],
                PadMode::Constant(Arc::new(value.into())),
            );
            let wire = model.wire_node("pad", pad, &[x]).unwrap();
            let pool = MaxPool {
                pool_spec: PoolSpec {
                    data_format: DataFormat::NCHW,
                    kernel_shape: tvec!(3, 3),
                    padding: PaddingSpec::Valid,
                    dilations: None,
                    strides: Some(tvec!(2, 2)),
                    input_channels: shape[1],
                    output_channels: shape[1],
                },
                with_index_outputs: None,
            };
            let wire = model.wire_node("pool", pool, &wire).unwrap();
            model.select_output_outlets(&wire).unwrap();
            model
        };
        let input = random(&shape, seed).into_tvalue();
        let run = |m: TypedModel| {
            m.into_optimized()
                .unwrap()
                .into_runnable()
                .unwrap()
                .run(tvec!(input.clone()))
                .unwrap()[0]
                .clone()
        };
        let theirs = run(build());
        let mut model = build();
        let fused = fuse(&mut model).unwrap();
        (run(model), theirs, fused.max_pool_pads)
    }

    #[test]
    fn a_minus_infinity_pad_folds_into_the_max_pool_bit_for_bit() {
        for (i, (shape, pads)) in [
            ([1, 32, 20, 20], [(1, 1), (1, 1)]),
            ([2, 3, 9, 10], [(0, 2), (1, 0)]),
            ([1, 1, 2, 2], [(1, 1), (1, 1)]),
        ]
        .into_iter()
        .enumerate()
        {
            let (ours, theirs, folded) = pad_then_pool(shape, pads, f32::NEG_INFINITY, i as u64);
            assert_eq!(folded, 1, "case {i}");
            same(&ours, &theirs, &format!("folded max-pool {i}"));
        }
        // a pad with any other value stays a pad, and so do one around an empty plane and
        // one as wide as the window
        for (shape, pads, value) in [
            ([1, 2, 6, 6], [(1, 1), (1, 1)], 0.0),
            ([1, 1, 0, 4], [(2, 1), (1, 1)], f32::NEG_INFINITY),
            ([1, 1, 5, 5], [(3, 0), (0, 0)], f32::NEG_INFINITY),
        ] {
            let (ours, theirs, folded) = pad_then_pool(shape, pads, value, 9);
            assert_eq!(folded, 0, "{shape:?} {pads:?}");
            same(&ours, &theirs, "not folded");
        }
    }

    #[test]
    fn max_pool_equals_tracts_including_infinities() {
        for (i, (shape, k, s)) in [
            ([1, 24, 210, 210], [3, 3], [2, 2]),
            ([2, 3, 9, 11], [2, 3], [1, 2]),
            ([1, 1, 4, 4], [4, 4], [1, 1]),
            ([1, 2, 7, 5], [1, 1], [3, 2]),
        ]
        .into_iter()
        .enumerate()
        {
            let spec = PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: k.iter().copied().collect(),
                padding: PaddingSpec::Valid,
                dilations: None,
                strides: Some(s.iter().copied().collect()),
                input_channels: shape[1],
                output_channels: shape[1],
            };
            let theirs = MaxPool {
                pool_spec: spec.clone(),
                with_index_outputs: None,
            };
            let ours = FastMaxPool::from_spec(&spec, &shape).unwrap();
            both(
                &ours,
                &theirs,
                tvec!(random(&shape, i as u64 * 2).into_tvalue()),
                &format!("max-pool {i}"),
            );
        }
        // Windows made only of −∞ and NaN: tract's floor (f32::MIN) and NaN rule.
        let spec = PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: [1, 2].into_iter().collect(),
            padding: PaddingSpec::Valid,
            dilations: None,
            strides: Some([1, 2].into_iter().collect()),
            input_channels: 1,
            output_channels: 1,
        };
        let x = tract_ndarray::ArrayD::from_shape_vec(
            vec![1, 1, 1, 6],
            vec![
                f32::NEG_INFINITY,
                f32::NEG_INFINITY,
                f32::NAN,
                f32::NAN,
                f32::NAN,
                2.0,
            ],
        )
        .unwrap()
        .into_tensor();
        let theirs = MaxPool {
            pool_spec: spec.clone(),
            with_index_outputs: None,
        };
        let ours = FastMaxPool::from_spec(&spec, &[1, 1, 1, 6]).unwrap();
        both(
            &ours,
            &theirs,
            tvec!(x.into_tvalue()),
            "max-pool of -inf/NaN windows",
        );
        let padded = PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: [3, 3].into_iter().collect(),
            padding: PaddingSpec::SameUpper,
            dilations: None,
            strides: None,
            input_channels: 1,
            output_channels: 1,
        };
        assert!(FastMaxPool::from_spec(&padded, &[1, 1, 8, 8]).is_none());
    }

    #[test]
    fn linear_resize_equals_tracts_for_each_coordinate_mode() {
        let modes = [
            CoordTransformer::HalfPixel,
            CoordTransformer::AlignCorners,
            CoordTransformer::Asymmetric,
            CoordTransformer::PytorchHalfPixel,
        ];
        for (m, mode) in modes.into_iter().enumerate() {
            for (i, (input, output)) in [
                ([1, 96, 13, 13], [1, 96, 26, 26]),
                ([2, 3, 5, 7], [2, 3, 9, 4]),
                ([1, 1, 1, 3], [1, 1, 4, 6]),
            ]
            .into_iter()
            .enumerate()
            {
                let theirs = Resize {
                    coord_transformer: mode.clone(),
                    interpolator: Interpolator::Linear,
                    nearest: Nearest::Floor,
                    optional_scales_input: None,
                    optional_sizes_input: Some(1),
                };
                let ours = FastResize::from_resize(&theirs, &input, &output).unwrap();
                let sizes = tract_ndarray::arr1(&output.map(|d| d as i64)).into_tensor();
                let inputs = tvec!(
                    random(&input, (m * 10 + i) as u64 + 1).into_tvalue(),
                    sizes.into_tvalue()
                );
                both(
                    &ours,
                    &theirs,
                    inputs,
                    &format!("resize {mode:?} {input:?}->{output:?}"),
                );
            }
        }
        let nearest = Resize {
            coord_transformer: CoordTransformer::Asymmetric,
            interpolator: Interpolator::Nearest,
            nearest: Nearest::Floor,
            optional_scales_input: None,
            optional_sizes_input: Some(1),
        };
        assert!(FastResize::from_resize(&nearest, &[1, 1, 2, 2], &[1, 1, 4, 4]).is_none());
        // An empty output axis stays with tract (which returns an empty tensor).
        let linear = Resize {
            interpolator: Interpolator::Linear,
            ..nearest
        };
        assert!(FastResize::from_resize(&linear, &[1, 1, 2, 2], &[1, 1, 0, 4]).is_none());
        assert!(FastResize::from_resize(&linear, &[1, 1, 2, 2], &[1, 1, 4, 0]).is_none());
    }

    #[test]
    fn nanodet_on_the_swapped_kernels_gives_tracts_outputs_bit_for_bit() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../models/nanodet-m-416.onnx"
        );
        let plain = tract_onnx::onnx()
            .model_for_path(path)
            .unwrap()
            .into_optimized()
            .unwrap();
        let mut fast = plain.clone();
        let swapped = accelerate(&mut fast).unwrap();
        eprintln!("{swapped:?}");
        assert!(
            swapped.pad >= 27 && swapped.max_pool == 1 && swapped.resize == 4,
            "{swapped:?}"
        );
        let input = random(&[1, 3, 416, 416], 7);
        let a = plain
            .into_runnable()
            .unwrap()
            .run(tvec!(input.clone().into_tvalue()))
            .unwrap();
        let b = fast
            .into_runnable()
            .unwrap()
            .run(tvec!(input.into_tvalue()))
            .unwrap();
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            same(x, y, &format!("output {i}"));
        }
    }
}
