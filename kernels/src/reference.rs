//! Slow, plainly correct versions of every op in [`super`], from stock candle ops. The fast
//! kernels are tested against these; nothing on a hot path should call them.

use candle_core::{Result, Tensor, D};

use super::{conv_padding, Act, BatchStats, MixConvSpec};

fn activate(x: Tensor, act: Act) -> Result<Tensor> {
    match act {
        Act::None => Ok(x),
        Act::Relu => x.relu(),
        Act::Swish => swish(&x),
    }
}

pub fn swish(x: &Tensor) -> Result<Tensor> {
    x * candle_nn::ops::sigmoid(x)?
}

/// Depthwise conv of all channels of `x` with `w` (`[C, 1, k, k]`), explicit padding.
pub fn depthwise(x: &Tensor, w: &Tensor, stride: usize, dilation: usize, pad: [usize; 4]) -> Result<Tensor> {
    let [t, b, l, r] = pad;
    let x = x.pad_with_zeros(2, t, b)?.pad_with_zeros(3, l, r)?;
    // Drop trailing rows/cols no window reaches: candle's conv2d backward gets the input
    // gradient's size wrong when (padded - extent) is not a multiple of the stride.
    let ext = (w.dim(2)? - 1) * dilation + 1;
    let used = |size: usize| (size - ext) / stride * stride + ext;
    let (_, c, hp, wp) = x.dims4()?;
    let x = x.narrow(2, 0, used(hp))?.narrow(3, 0, used(wp))?;
    x.conv2d(w, 0, stride, dilation, c)
}

pub fn mix_conv(x: &Tensor, weights: &[Tensor], spec: &MixConvSpec) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let mut outs = Vec::with_capacity(weights.len());
    let mut start = 0;
    for (g, wt) in spec.groups.iter().zip(weights) {
        let pad = conv_padding(spec.padding, g.kernel, g.dilation, spec.stride, h, w);
        let xs = x.narrow(1, start, g.channels)?;
        outs.push(depthwise(&xs, wt, spec.stride, g.dilation, pad)?);
        start += g.channels;
    }
    Tensor::cat(&outs, 1)
}

pub fn pointwise(x: &Tensor, weights: &[Tensor]) -> Result<Tensor> {
    let mut outs = Vec::with_capacity(weights.len());
    let mut start = 0;
    for wt in weights {
        let cin = wt.dim(1)?;
        outs.push(x.narrow(1, start, cin)?.conv2d(wt, 0, 1, 1, 1)?);
        start += cin;
    }
    Tensor::cat(&outs, 1)
}

pub fn batch_norm_train(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64, act: Act) -> Result<(Tensor, BatchStats)> {
    let (n, c, h, w) = x.dims4()?;
    let count = (n * h * w) as f64;
    let mean = x.mean_keepdim(0)?.mean_keepdim(2)?.mean_keepdim(3)?;
    let centered = x.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(0)?.mean_keepdim(2)?.mean_keepdim(3)?;
    let y = centered.broadcast_div(&(var.clone() + eps)?.sqrt()?)?;
    let y = y.broadcast_mul(&gamma.reshape((1, c, 1, 1))?)?.broadcast_add(&beta.reshape((1, c, 1, 1))?)?;
    let stats = BatchStats {
        mean: mean.flatten_all()?.detach(),
        var_unbiased: (var.flatten_all()? * (count / (count - 1.0).max(1.0)))?.detach(),
    };
    Ok((activate(y, act)?, stats))
}

pub fn channel_affine(x: &Tensor, scale: &Tensor, shift: &Tensor, act: Act) -> Result<Tensor> {
    let c = x.dim(1)?;
    let y = x.broadcast_mul(&scale.reshape((1, c, 1, 1))?)?.broadcast_add(&shift.reshape((1, c, 1, 1))?)?;
    activate(y, act)
}

pub fn channel_mean(x: &Tensor) -> Result<Tensor> {
    x.flatten_from(2)?.mean(D::Minus1)
}

pub fn channel_scale(x: &Tensor, gate: &Tensor) -> Result<Tensor> {
    let (n, c) = gate.dims2()?;
    x.broadcast_mul(&gate.reshape((n, c, 1, 1))?)
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use candle_core::Device;

    #[test]
    fn tf_same_pads_less_on_top_left_at_stride_two() {
        // Reference section 1.4: in=112, stride 2, k=3..11 -> top (k-3)/2, bottom (k-1)/2.
        for k in [3, 5, 7, 9, 11] {
            assert_eq!(
                conv_padding(Padding::TfSame, k, 1, 2, 112, 112),
                [(k - 3) / 2, (k - 1) / 2, (k - 3) / 2, (k - 1) / 2]
            );
            assert_eq!(conv_padding(Padding::TfSame, k, 1, 1, 56, 56), [k / 2; 4]);
            assert_eq!(conv_padding(Padding::PytorchSymmetric, k, 1, 2, 112, 112), [k / 2; 4]);
        }
    }

    #[test]
    fn mix_conv_keeps_spatial_size_and_channel_order() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (2, 10, 9, 9), &dev)?;
        let groups = vec![
            DepthwiseGroup { channels: 4, kernel: 3, dilation: 1 },
            DepthwiseGroup { channels: 3, kernel: 5, dilation: 1 },
            DepthwiseGroup { channels: 3, kernel: 7, dilation: 1 },
        ];
        let weights: Vec<Tensor> = groups
            .iter()
            .map(|g| Tensor::randn(0f32, 1., (g.channels, 1, g.kernel, g.kernel), &dev))
            .collect::<Result<_>>()?;
        for (stride, padding, want) in
            [(1, Padding::PytorchSymmetric, 9), (2, Padding::TfSame, 5), (2, Padding::PytorchSymmetric, 5)]
        {
            let spec = MixConvSpec { groups: groups.clone(), stride, padding };
            assert_eq!(reference::mix_conv(&x, &weights, &spec)?.dims4()?, (2, 10, want, want));
        }
        Ok(())
    }
}
