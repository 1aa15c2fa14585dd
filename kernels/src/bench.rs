//! Op micro-benchmark: forward and backward medians of each fast op beside its [`super::reference`]
//! twin at MixNet-S-like shapes. Backward is timed as `y.sum_all().backward()` on both sides, so it
//! includes one elementwise gradient fill.

use std::time::Instant;

use candle_core::{Device, Result, Tensor, Var};
use serde::Serialize;

use super::{reference, Act, DepthwiseGroup, MixConvSpec, Padding};
use crate::stats::median;

/// Medians in milliseconds over repeats; `ref_*` is the stock-candle reference.
#[derive(Clone, Debug, Serialize)]
pub struct OpTiming {
    pub op: String,
    pub shape: Vec<usize>,
    pub fwd_ms: f64,
    pub bwd_ms: f64,
    pub ref_fwd_ms: f64,
    pub ref_bwd_ms: f64,
    pub threads: usize,
}

type OpFn = Box<dyn Fn(&[Tensor]) -> Result<Tensor>>;

/// Name, inputs, fast op, reference op.
type Case = (String, Vec<Tensor>, OpFn, OpFn);

/// Median forward and backward ms of `f` over `reps` runs after one warm-up.
fn time(f: &OpFn, inputs: &[Tensor], reps: usize) -> Result<(f64, f64)> {
    let vars = inputs.iter().map(Var::from_tensor).collect::<Result<Vec<_>>>()?;
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let (mut fwd, mut bwd) = (vec![], vec![]);
    for _ in 0..=reps {
        let t0 = Instant::now();
        let y = f(&ts)?;
        let t1 = Instant::now();
        y.sum_all()?.backward()?;
        fwd.push((t1 - t0).as_secs_f64() * 1e3);
        bwd.push(t1.elapsed().as_secs_f64() * 1e3);
    }
    Ok((median(&fwd[1..]), median(&bwd[1..])))
}

fn rand(shape: &[usize]) -> Result<Tensor> {
    Tensor::randn(0f32, 1., shape, &Device::Cpu)
}

fn mix_case(n: usize, c: usize, hw: usize, kernels: &[usize], stride: usize) -> Result<Case> {
    let split = space::scale::split_equal(c, kernels.len());
    let groups: Vec<DepthwiseGroup> = split
        .iter()
        .zip(kernels)
        .map(|(&channels, &kernel)| DepthwiseGroup { channels, kernel, dilation: 1 })
        .collect();
    let mut inputs = vec![rand(&[n, c, hw, hw])?];
    for g in &groups {
        inputs.push(rand(&[g.channels, 1, g.kernel, g.kernel])?);
    }
    let spec = MixConvSpec { groups, stride, padding: Padding::TfSame };
    let name = format!("mix_conv k{kernels:?} s{stride}");
    let s2 = spec.clone();
    Ok((
        name,
        inputs,
        Box::new(move |t| super::mix_conv(&t[0], &t[1..], &spec)),
        Box::new(move |t| reference::mix_conv(&t[0], &t[1..], &s2)),
    ))
}

fn pointwise_case(n: usize, cin: usize, cout: usize, hw: usize, groups: usize) -> Result<Case> {
    let mut inputs = vec![rand(&[n, cin, hw, hw])?];
    for (i, o) in space::scale::split_equal(cin, groups).into_iter().zip(space::scale::split_equal(cout, groups)) {
        inputs.push(rand(&[o, i, 1, 1])?);
    }
    let name = format!("pointwise {cin}->{cout} g{groups}");
    Ok((
        name,
        inputs,
        Box::new(|t| super::pointwise(&t[0], &t[1..])),
        Box::new(|t| reference::pointwise(&t[0], &t[1..])),
    ))
}

fn cases() -> Result<Vec<Case>> {
    let mut cases = vec![];
    for stride in [1, 2] {
        for k in [3, 5, 7, 9, 11] {
            cases.push(mix_case(64, 120, 16, &[k], stride)?);
        }
    }
    cases.push(mix_case(64, 240, 8, &[3, 5, 7, 9], 1)?);
    // Small planes: the last stages of a 32 px network and of a 224 px one.
    cases.push(mix_case(64, 240, 8, &[3, 5, 7, 9], 2)?);
    cases.push(mix_case(64, 480, 4, &[3, 5, 7, 9], 1)?);
    cases.push(mix_case(64, 480, 2, &[3, 5], 1)?);
    cases.push(mix_case(64, 1200, 1, &[3, 5, 7, 9], 1)?);
    cases.push(mix_case(1, 1536, 7, &[3, 5, 7, 9], 1)?);
    cases.push(mix_case(1, 32, 112, &[3], 1)?);
    cases.push(mix_case(1, 192, 56, &[3, 5, 7, 9], 2)?);
    cases.push(pointwise_case(64, 240, 240, 8, 2)?);
    cases.push(pointwise_case(64, 40, 240, 16, 1)?);
    cases.push(pointwise_case(1, 32, 192, 112, 2)?);
    // MixNet-S's late stages at 32 px: planes of 2x2 and 1x1, where a gemm per image is thin.
    cases.push(pointwise_case(64, 80, 480, 2, 2)?);
    cases.push(pointwise_case(64, 200, 1536, 1, 1)?);
    let bn_x = vec![rand(&[64, 240, 8, 8])?, rand(&[240])?, rand(&[240])?];
    cases.push((
        "batch_norm_train swish".into(),
        bn_x.clone(),
        Box::new(|t| Ok(super::batch_norm_train(&t[0], &t[1], &t[2], 1e-3, Act::Swish)?.0)),
        Box::new(|t| Ok(reference::batch_norm_train(&t[0], &t[1], &t[2], 1e-3, Act::Swish)?.0)),
    ));
    cases.push((
        "channel_affine swish".into(),
        vec![rand(&[1, 192, 56, 56])?, rand(&[192])?, rand(&[192])?],
        Box::new(|t| super::channel_affine(&t[0], &t[1], &t[2], Act::Swish)),
        Box::new(|t| reference::channel_affine(&t[0], &t[1], &t[2], Act::Swish)),
    ));
    let x = bn_x[0].clone();
    cases.push((
        "channel_mean".into(),
        vec![x.clone()],
        Box::new(|t| super::channel_mean(&t[0])),
        Box::new(|t| reference::channel_mean(&t[0])),
    ));
    cases.push((
        "channel_scale".into(),
        vec![x.clone(), rand(&[64, 240])?],
        Box::new(|t| super::channel_scale(&t[0], &t[1])),
        Box::new(|t| reference::channel_scale(&t[0], &t[1])),
    ));
    cases.push((
        "swish".into(),
        vec![rand(&[64, 240, 16, 16])?],
        Box::new(|t| super::swish(&t[0])),
        Box::new(|t| reference::swish(&t[0])),
    ));
    Ok(cases)
}

/// Times every case whose name contains `only` (all when empty) on a rayon pool of `threads`
/// threads: `reps` repeats for the fast ops, one (after a warm-up) for the slow references.
pub fn run(threads: usize, reps: usize, only: &str) -> Result<Vec<OpTiming>> {
    run_each(threads, reps, only, |_| {})
}

/// [`run`], handing each timing to `each` as soon as it is measured.
pub fn run_each(
    threads: usize,
    reps: usize,
    only: &str,
    mut each: impl FnMut(&OpTiming) + Send,
) -> Result<Vec<OpTiming>> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(candle_core::Error::wrap)?;
    pool.install(|| {
        cases()?
            .into_iter()
            .filter(|case| case.0.contains(only))
            .map(|(op, inputs, fast, slow)| {
                let (fwd_ms, bwd_ms) = time(&fast, &inputs, reps)?;
                let (ref_fwd_ms, ref_bwd_ms) = time(&slow, &inputs, 1)?;
                let shape = inputs[0].dims().to_vec();
                let t = OpTiming { op, shape, fwd_ms, bwd_ms, ref_fwd_ms, ref_bwd_ms, threads };
                each(&t);
                Ok(t)
            })
            .collect()
    })
}
