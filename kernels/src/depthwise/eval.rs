//! MixConv of one image at inference, batch norm folded into the weights: `out[c] =
//! act(conv_c(x[c]) + bias[c])`, the bias and activation applied to each plane while it is in
//! cache, and, for the SE squeeze, its mean taken then too. The planes run on the training
//! forward's kernels.

use candle_core::Result;
use rayon::prelude::*;

use super::super::bias_act::{bias_act_in_place, bias_act_rows};
use super::super::cpu::{lane_sum, simd};
use super::super::{Act, MixConvSpec};
use super::{plane_fwd, plane_fwd_padded, Geom, PadBuf};

/// A MixConv on one input size, for [`MixConvPlan::run`].
pub struct MixConvPlan {
    geo: Geom,
}

/// Per-thread scratch: the padded plane and the accumulator.
type Scratch = (PadBuf<f32>, Vec<f32>);

impl MixConvPlan {
    /// The plan of `spec` on `h x w` planes.
    pub fn new(spec: &MixConvSpec, h: usize, w: usize) -> Result<Self> {
        let c = spec.groups.iter().map(|g| g.channels).sum();
        Ok(Self { geo: Geom::new(spec, (1, c, h, w))? })
    }

    pub fn out_size(&self) -> (usize, usize) {
        (self.geo.ho, self.geo.wo)
    }

    pub fn channels(&self) -> usize {
        self.geo.c
    }

    /// `x` `[c, h, w]` to `out` `[c, ho, wo]`; `w` holds the groups' `[channels, k, k]` weights
    /// packed in order; `means[c]`, when given, the mean of `out[c]`. With `parallel`, channels
    /// spread over the rayon pool.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        x: &[f32],
        w: &[f32],
        bias: &[f32],
        act: Act,
        out: &mut [f32],
        means: Option<&mut [f32]>,
        parallel: bool,
    ) {
        let geo = &self.geo;
        let (c, plane_out) = (geo.c, geo.ho * geo.wo);
        assert!(x.len() == c * geo.h * geo.w && out.len() == c * plane_out, "MixConvPlan::run: sizes");
        assert!(w.len() == geo.w_len && bias.len() == c, "MixConvPlan::run: weights");
        let inv = 1.0 / plane_out as f32;
        let one = |s: &mut Scratch, ch: usize, o: &mut [f32]| self.channel(ch, x, w, o, s, bias[ch], act) * inv;
        let planes = out.par_chunks_mut(plane_out).enumerate();
        match (means, parallel) {
            (Some(m), true) => {
                planes.zip(m.par_iter_mut()).for_each_init(Scratch::default, |s, ((ch, o), m)| *m = one(s, ch, o))
            }
            (None, true) => planes.for_each_init(Scratch::default, |s, (ch, o)| {
                one(s, ch, o);
            }),
            (mut means, false) => {
                let mut s = Scratch::default();
                for (ch, o) in out.chunks_exact_mut(plane_out).enumerate() {
                    let mean = one(&mut s, ch, o);
                    if let Some(m) = means.as_deref_mut() {
                        m[ch] = mean;
                    }
                }
            }
        }
    }

    /// Channel `ch` into `o`, `act(conv + b)`; returns the sum of `o`. On the padded path the
    /// activation runs as the rows are copied out of the accumulator (whose rows are wider: 1.5-2x
    /// the outputs on 7x7 and 14x14 planes with 9x9 kernels), one pass instead of two.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn channel(&self, ch: usize, x: &[f32], w: &[f32], o: &mut [f32], s: &mut Scratch, b: f32, act: Act) -> f32 {
        let geo = &self.geo;
        let plane_in = geo.h * geo.w;
        let (g, wk) = geo.kernel(ch, w);
        let xs = &x[ch * plane_in..(ch + 1) * plane_in];
        if let Some(pd) = &g.padded {
            let (xp, acc) = (&mut s.0, &mut s.1);
            simd(
                #[inline(always)]
                || plane_fwd_padded(geo, g, wk, xs, xp, acc),
            );
            // The output rows leave the accumulator through the activation.
            bias_act_rows(acc, pd.wq, o, geo.wo, b, act);
        } else {
            o.fill(0.0);
            plane_fwd(geo, g, wk, xs, o);
            bias_act_in_place(o, b, act);
        }
        simd(
            #[inline(always)]
            || lane_sum(o, |v| v),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::{channel_affine, channel_mean, mix_conv, DepthwiseGroup, Padding};
    use super::*;
    use candle_core::{DType, Device, Tensor};
    use testkit::float::assert_close;
    use testkit::tensor::{rand, vec};

    #[test]
    fn matches_mix_conv_then_affine_and_mean() -> Result<()> {
        use Padding::{PytorchSymmetric as Sym, TfSame as Tf};
        let spec = |g: &[(usize, usize, usize)], stride, padding| MixConvSpec {
            groups: g
                .iter()
                .map(|&(channels, kernel, dilation)| DepthwiseGroup { channels, kernel, dilation })
                .collect(),
            stride,
            padding,
        };
        // Small planes take the direct loops, larger ones the padded path.
        let cases = [
            ((9, 11), spec(&[(4, 3, 1), (3, 5, 1), (3, 7, 1)], 1, Sym), Act::Swish, false),
            ((9, 11), spec(&[(4, 3, 1), (3, 5, 1), (3, 7, 1)], 2, Tf), Act::Relu, true),
            ((12, 10), spec(&[(4, 3, 1), (3, 5, 1), (3, 9, 1)], 2, Sym), Act::None, false),
            ((13, 12), spec(&[(3, 3, 2), (2, 5, 3)], 1, Tf), Act::Swish, true),
            ((13, 12), spec(&[(3, 3, 3), (2, 5, 2)], 2, Sym), Act::Relu, false),
            ((7, 7), spec(&[(2, 9, 1), (3, 11, 1)], 1, Tf), Act::Swish, true),
            ((28, 28), spec(&[(5, 3, 1)], 2, Tf), Act::Relu, true),
            ((30, 40), spec(&[(3, 3, 1), (2, 5, 1)], 1, Sym), Act::Swish, false),
        ];
        for (i, ((h, w), spec, act, par)) in cases.into_iter().enumerate() {
            let c: usize = spec.groups.iter().map(|g| g.channels).sum();
            let x = rand(&[1, c, h, w], 1, DType::F32)?;
            let ws: Vec<Tensor> = spec
                .groups
                .iter()
                .enumerate()
                .map(|(g, d)| rand(&[d.channels, 1, d.kernel, d.kernel], 10 + g as u64, DType::F32))
                .collect::<Result<_>>()?;
            let bias = rand(&[c], 3, DType::F32)?;
            let ones = Tensor::ones(c, DType::F32, &Device::Cpu)?;
            let want = channel_affine(&mix_conv(&x, &ws, &spec)?, &ones, &bias, act)?;
            let want_mean = channel_mean(&want)?;
            let plan = MixConvPlan::new(&spec, h, w)?;
            let (ho, wo) = plan.out_size();
            let packed: Vec<f32> = ws.iter().map(vec).collect::<Result<Vec<_>>>()?.concat();
            let mut out = vec![f32::NAN; c * ho * wo];
            let mut means = vec![f32::NAN; c];
            plan.run(&vec(&x)?, &packed, &vec(&bias)?, act, &mut out, Some(&mut means), par);
            let got = Tensor::from_vec(out, want.shape(), &Device::Cpu)?;
            assert_close(&got, &want, 1e-5, &format!("case {i}"))?;
            assert_close(&Tensor::from_vec(means, (1, c), &Device::Cpu)?, &want_mean, 1e-5, &format!("case {i} mean"))?;
        }
        Ok(())
    }
}
