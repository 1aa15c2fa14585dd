//! MixConv: several depthwise groups with their own kernel, dilation and padding, run as one
//! CustomOp over `(x, packed weights)`. A direct loop per (n, c) plane replaces candle's grouped
//! conv2d, which runs one small conv per channel.

use std::mem::MaybeUninit;

use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu::{check_dtypes, dispatch, filled, min_planes, simd, slice, unpack, zeroed, Real};
use super::{conv_padding, MixConvSpec};
pub use eval::MixConvPlan;

mod eval;
mod lanes;

/// One group's geometry for a given input size.
#[derive(Clone, Debug)]
struct Group {
    /// First channel and channel count.
    c0: usize,
    channels: usize,
    k: usize,
    dil: usize,
    /// Offset of the group's `[channels, k, k]` weights in the packed tensor.
    w0: usize,
    /// Top padding; left padding is folded into `cols`, bottom/right follow from the output size.
    pad_t: usize,
    /// Left padding (the stride-1 path pads planes explicitly).
    pad_l: usize,
    /// Per kernel column: (first output col, end output col, first input col) that hit the input.
    cols: Vec<(usize, usize, usize)>,
    /// The padded path's layout when its planes take it ([`use_padded`]), decided once per op.
    padded: Option<Padded>,
}

/// The whole op's geometry: input `[n, c, h, w]`, output `[n, c, ho, wo]`.
#[derive(Clone, Debug)]
struct Geom {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
    stride: usize,
    groups: Vec<Group>,
    /// Channel -> group index.
    group_of: Vec<usize>,
    w_len: usize,
}

/// Output positions `o` in `0..out` whose input index `o * s + tap - pad` lies in `0..size`, as
/// (first, end, first input index).
fn valid_range(out: usize, size: usize, s: usize, tap: usize, pad: usize) -> (usize, usize, usize) {
    let lo = pad.saturating_sub(tap).div_ceil(s);
    let hi = if size + pad > tap { ((size + pad - tap - 1) / s + 1).min(out) } else { 0 };
    if lo >= hi {
        return (0, 0, 0);
    }
    (lo, hi, lo * s + tap - pad)
}

impl Geom {
    fn new(spec: &MixConvSpec, dims: (usize, usize, usize, usize)) -> Result<Self> {
        let (n, c, h, w) = dims;
        let s = spec.stride;
        if s == 0 || spec.groups.is_empty() {
            bail!("mix_conv: stride must be >= 1 and there must be at least one group")
        }
        let (mut groups, mut group_of, mut c0, mut w0, mut out) = (vec![], vec![], 0, 0, None);
        for (gi, g) in spec.groups.iter().enumerate() {
            if g.kernel == 0 || g.dilation == 0 {
                bail!("mix_conv: group {gi} has kernel {} and dilation {}, both must be >= 1", g.kernel, g.dilation)
            }
            let [t, b, l, r] = conv_padding(spec.padding, g.kernel, g.dilation, s, h, w);
            let ext = (g.kernel - 1) * g.dilation + 1;
            if h + t + b < ext || w + l + r < ext {
                bail!("mix_conv: input {h}x{w} is smaller than group {gi}'s kernel extent {ext}")
            }
            let size = ((h + t + b - ext) / s + 1, (w + l + r - ext) / s + 1);
            if *out.get_or_insert(size) != size {
                bail!("mix_conv: groups disagree on the output size ({:?} vs {size:?})", out.unwrap())
            }
            let cols = (0..g.kernel).map(|kx| valid_range(size.1, w, s, kx * g.dilation, l)).collect();
            groups.push(Group {
                c0,
                channels: g.channels,
                k: g.kernel,
                dil: g.dilation,
                w0,
                pad_t: t,
                pad_l: l,
                cols,
                padded: None,
            });
            group_of.extend((0..g.channels).map(|_| gi));
            c0 += g.channels;
            w0 += g.channels * g.kernel * g.kernel;
        }
        if c0 != c {
            bail!("mix_conv: groups cover {c0} channels but the input has {c}")
        }
        let (ho, wo) = out.unwrap_or((0, 0));
        let mut geo = Self { n, c, h, w, ho, wo, stride: s, groups, group_of, w_len: w0 };
        for i in 0..geo.groups.len() {
            let g = &geo.groups[i];
            geo.groups[i].padded = use_padded(&geo, g).then(|| Padded::new(&geo, g));
        }
        Ok(geo)
    }

    /// The group of channel `ch` and that channel's `k * k` weights.
    fn kernel<'a, T>(&self, ch: usize, w: &'a [T]) -> (&Group, &'a [T]) {
        let g = &self.groups[self.group_of[ch]];
        let kk = g.k * g.k;
        let start = g.w0 + (ch - g.c0) * kk;
        (g, &w[start..start + kk])
    }

    /// The packed weights (or their gradient) split into each channel's `k * k` slice.
    fn per_channel<'a, T>(&self, mut packed: &'a mut [T]) -> Vec<&'a mut [T]> {
        let mut out = Vec::with_capacity(self.c);
        for g in &self.groups {
            for _ in 0..g.channels {
                let (head, tail) = packed.split_at_mut(g.k * g.k);
                out.push(head);
                packed = tail;
            }
        }
        out
    }

    /// Input rows hit by kernel row `ky` for output row `oy`, if inside the image.
    #[inline(always)]
    fn in_row(&self, g: &Group, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.stride + ky * g.dil).checked_sub(g.pad_t).filter(|&iy| iy < self.h)
    }
}

/// Planes run on zero-padded copies split into `s * s` phases (`s` the stride): phase `(a, b)`
/// holds padded input rows `a, a + s, ...` and columns `b, b + s, ...` as `hq x wq` with
/// `wq = wo + (ext - 1) / s`. Output `(oy, ox)` sits at `oy * wq + ox`, and tap `(ky, kx)` reads
/// one phase at a fixed offset from there, so each tap is one contiguous multiply-add over
/// `len = (ho - 1) * wq + wo` elements, stride 2 included (the `wq - wo` columns between output
/// rows are scratch). At stride 1 there is one phase: the plainly padded plane.
#[derive(Clone, Debug)]
struct Padded {
    s: usize,
    hq: usize,
    wq: usize,
    len: usize,
    /// Per tap `(ky, kx)`, row-major: where it reads for output 0 (see [`Padded::offset`]).
    taps: Vec<usize>,
    /// Per phase column `b` (stride > 1): the first input column it holds, the phase column
    /// that lands in, and how many columns; computed once instead of per input row.
    phase_cols: Vec<(usize, usize, usize)>,
}

/// Scratch for a padded input plane, remembering the layout its zero border was laid for.
#[derive(Clone)]
struct PadBuf<T> {
    data: Vec<T>,
    layout: Option<[usize; 7]>,
}

impl<T> Default for PadBuf<T> {
    fn default() -> Self {
        Self { data: Vec::new(), layout: None }
    }
}

/// Whether the padded path pays: it runs every tap over all `len` positions, eight lanes at a
/// time, while the direct loops run only the taps that hit the image, one lane at a time. On
/// planes barely larger than the kernel most taps miss, and the direct loops win.
fn use_padded(geo: &Geom, g: &Group) -> bool {
    let pd = Padded::new(geo, g);
    let rows: usize = (0..g.k).map(|ky| (0..geo.ho).filter(|&oy| geo.in_row(g, oy, ky).is_some()).count()).sum();
    let cols: usize = g.cols.iter().map(|&(lo, hi, _)| hi - lo).sum();
    g.k * g.k * pd.len <= 5 * rows * cols
}

impl Padded {
    fn new(geo: &Geom, g: &Group) -> Self {
        let (s, ext) = (geo.stride, (g.k - 1) * g.dil + 1);
        let wq = geo.wo + (ext - 1) / s;
        let mut pd = Self {
            s,
            hq: geo.ho + (ext - 1) / s,
            wq,
            len: (geo.ho - 1) * wq + geo.wo,
            taps: vec![],
            phase_cols: vec![],
        };
        pd.taps = (0..g.k * g.k).map(|t| pd.offset(g, t / g.k, t % g.k)).collect();
        pd.phase_cols = (0..s)
            .map(|b| {
                let x0 = (b + s - g.pad_l % s) % s;
                let j0 = (x0 + g.pad_l) / s;
                let n = if j0 < wq { (wq - j0).min(geo.w.saturating_sub(x0).div_ceil(s)) } else { 0 };
                (x0, j0, n)
            })
            .collect();
        pd
    }
    /// Where tap `(ky, kx)` reads for output 0: its phase's start plus its shift in that phase.
    fn offset(&self, g: &Group, ky: usize, kx: usize) -> usize {
        let (r, c) = (ky * g.dil, kx * g.dil);
        ((r % self.s) * self.s + c % self.s) * self.hq * self.wq + (r / self.s) * self.wq + c / self.s
    }
    /// Copies input plane `x` into the phases of `buf`, shifted by (pad_t, pad_l), zeros elsewhere.
    /// Inlined into its callers' [`simd`] sections, so the copies run in AVX2 lanes.
    #[inline(always)]
    fn pad_input<T: Real>(&self, geo: &Geom, g: &Group, x: &[T], buf: &mut PadBuf<T>) {
        // The copy below writes the same positions for the same layout, so the zeros around
        // them from the last plane of this layout are still in place.
        let layout = [geo.h, geo.w, g.pad_t, g.pad_l, self.s, self.hq, self.wq];
        if buf.layout != Some(layout) {
            buf.data.clear();
            buf.data.resize(self.s * self.s * self.hq * self.wq, T::ZERO);
            buf.layout = Some(layout);
        }
        let buf = &mut buf.data;
        for (iy, row) in x.chunks_exact(geo.w).enumerate() {
            let y = iy + g.pad_t;
            if self.s == 1 {
                let start = y * self.wq + g.pad_l;
                buf[start..start + geo.w].copy_from_slice(row);
                continue;
            }
            let (a, i) = (y % self.s, y / self.s);
            if i >= self.hq {
                continue;
            }
            for (b, &(x0, j0, n)) in self.phase_cols.iter().enumerate() {
                if n == 0 {
                    continue;
                }
                let start = (a * self.s + b) * self.hq * self.wq + i * self.wq + j0;
                let dst = &mut buf[start..start + n];
                if self.s == 2 {
                    // Pairs instead of a stepped iterator: this loop vectorises.
                    let src = &row[x0..];
                    let pairs = src.chunks_exact(2);
                    let whole = pairs.len().min(n);
                    for (d, pair) in dst[..whole].iter_mut().zip(pairs) {
                        *d = pair[0];
                    }
                    if whole < n {
                        dst[whole] = src[2 * whole];
                    }
                } else {
                    for (d, &v) in dst.iter_mut().zip(row[x0..].iter().step_by(self.s)) {
                        *d = v;
                    }
                }
            }
        }
    }
    /// Spreads output-shaped plane `grad` over `len` elements, scratch columns zero.
    fn spread_output<T: Real>(&self, geo: &Geom, grad: &[T], buf: &mut Vec<T>) {
        buf.clear();
        buf.resize(self.len, T::ZERO);
        for (oy, row) in grad.chunks_exact(geo.wo).enumerate() {
            buf[oy * self.wq..oy * self.wq + geo.wo].copy_from_slice(row);
        }
    }
}

/// Padded forward of one plane: the sum of the taps into `acc[..len]`, output row `oy` at
/// `acc[oy * wq..][..wo]` (the columns between are scratch); each output's taps summed in order
/// from zero, as in [`plane_fwd`]. The `len` positions run in blocks of up to 64 that are summed
/// in registers over every tap and stored once, instead of `k * k` passes over an accumulator
/// in memory.
#[inline(always)]
fn plane_fwd_padded<T: Real>(geo: &Geom, g: &Group, wk: &[T], x: &[T], xp: &mut PadBuf<T>, acc: &mut Vec<T>) {
    let pd = g.padded.as_ref().expect("called for groups on the padded path");
    pd.pad_input(geo, g, x, xp);
    // No zeroing: the blocks store every position.
    acc.resize(acc.len().max(pd.len), T::ZERO);
    let (xp, taps, acc) = (&xp.data[..], &pd.taps[..], &mut acc[..pd.len]);
    match pd.len {
        64.. => tap_blocks::<T, 64>(wk, taps, xp, acc),
        32.. => tap_blocks::<T, 32>(wk, taps, xp, acc),
        8.. => tap_blocks::<T, 8>(wk, taps, xp, acc),
        _ => tap_blocks::<T, 1>(wk, taps, xp, acc),
    }
}

/// `acc[p] = sum_t wk[t] * xp[taps[t] + p]` in blocks of `B` (`acc.len() >= B`); the last
/// block ends at the end and may overlap the one before (it stores the same values again).
#[inline(always)]
fn tap_blocks<T: Real, const B: usize>(wk: &[T], taps: &[usize], xp: &[T], acc: &mut [T]) {
    let len = acc.len();
    let mut p = 0;
    loop {
        let p0 = p.min(len - B);
        let mut sum = [T::ZERO; B];
        for (&wv, &off) in wk.iter().zip(taps) {
            let src: &[T; B] = xp[off + p0..][..B].try_into().expect("B elements");
            for i in 0..B {
                sum[i] += wv * src[i];
            }
        }
        acc[p0..p0 + B].copy_from_slice(&sum);
        p += B;
        if p >= len {
            break;
        }
    }
}

/// Padded input gradient of one plane into `gx` (zeroed): every tap scatters the whole output
/// gradient into its phase at once, then the phases are read back into input order.
#[inline(always)]
fn plane_grad_x_padded<T: Real>(
    geo: &Geom,
    g: &Group,
    wk: &[T],
    grad: &[T],
    gx: &mut [T],
    gp: &mut Vec<T>,
    acc: &mut Vec<T>,
) {
    let pd = g.padded.as_ref().expect("called for groups on the padded path");
    pd.spread_output(geo, grad, gp);
    acc.clear();
    acc.resize(pd.s * pd.s * pd.hq * pd.wq, T::ZERO);
    for ky in 0..g.k {
        for kx in 0..g.k {
            let (wv, off) = (wk[ky * g.k + kx], pd.taps[ky * g.k + kx]);
            for (a, &v) in acc[off..off + pd.len].iter_mut().zip(gp.iter()) {
                *a += wv * v;
            }
        }
    }
    if pd.s == 1 {
        for (iy, row) in gx.chunks_exact_mut(geo.w).enumerate() {
            let start = (iy + g.pad_t) * pd.wq + g.pad_l;
            row.copy_from_slice(&acc[start..start + geo.w]);
        }
        return;
    }
    // Phase by phase: phase (a, b) row i, column j is padded (i * s + a, j * s + b). Input
    // positions no phase stores (past the last output) keep their zero.
    let (s, plane) = (pd.s, pd.hq * pd.wq);
    for (phase, src) in acc.chunks_exact(plane).enumerate() {
        let (a, b) = (phase / s, phase % s);
        let cols = |j: usize| (j * s + b).checked_sub(g.pad_l).filter(|&ix| ix < geo.w);
        let Some(j0) = (0..pd.wq).find(|&j| cols(j).is_some()) else { continue };
        let n = (j0..pd.wq).take_while(|&j| cols(j).is_some()).count();
        let ix0 = cols(j0).unwrap_or(0);
        for (i, srow) in src.chunks_exact(pd.wq).enumerate() {
            let Some(iy) = (i * s + a).checked_sub(g.pad_t).filter(|&iy| iy < geo.h) else { continue };
            let row = &mut gx[iy * geo.w..(iy + 1) * geo.w];
            for (t, &v) in srow[j0..j0 + n].iter().enumerate() {
                row[ix0 + t * s] = v;
            }
        }
    }
}

/// Padded weight gradient contribution of one plane, added to `gw`.
#[inline(always)]
fn plane_grad_w_padded<T: Real>(
    geo: &Geom,
    g: &Group,
    x: &[T],
    grad: &[T],
    gw: &mut [T],
    xp: &mut PadBuf<T>,
    gp: &mut Vec<T>,
) {
    let pd = g.padded.as_ref().expect("called for groups on the padded path");
    pd.pad_input(geo, g, x, xp);
    let xp = &xp.data;
    pd.spread_output(geo, grad, gp);
    for ky in 0..g.k {
        for kx in 0..g.k {
            let off = pd.taps[ky * g.k + kx];
            // Eight partial sums so the reduction vectorises.
            let mut part = [T::ZERO; 8];
            let (xs, gs) = (&xp[off..off + pd.len], &gp[..pd.len]);
            let mut xc = xs.chunks_exact(8);
            let mut gc = gs.chunks_exact(8);
            for (xv, gv) in (&mut xc).zip(&mut gc) {
                for i in 0..8 {
                    part[i] += xv[i] * gv[i];
                }
            }
            let mut sum = T::ZERO;
            for (&xv, &gv) in xc.remainder().iter().zip(gc.remainder()) {
                sum += xv * gv;
            }
            for p in part {
                sum += p;
            }
            gw[ky * g.k + kx] += sum;
        }
    }
}

/// Forward of one plane: `out` (zeroed) `+=` the taps of `x`.
fn plane_fwd<T: Real>(geo: &Geom, g: &Group, wk: &[T], x: &[T], out: &mut [T]) {
    let (s, w, wo) = (geo.stride, geo.w, geo.wo);
    for (oy, orow) in out.chunks_exact_mut(wo).enumerate() {
        for (ky, wrow) in wk.chunks_exact(g.k).enumerate() {
            let Some(iy) = geo.in_row(g, oy, ky) else { continue };
            let xrow = &x[iy * w..(iy + 1) * w];
            for (&wv, &(lo, hi, ix)) in wrow.iter().zip(&g.cols) {
                let o = &mut orow[lo..hi];
                if s == 1 {
                    for (o, &xv) in o.iter_mut().zip(&xrow[ix..ix + (hi - lo)]) {
                        *o += wv * xv;
                    }
                } else {
                    for (o, &xv) in o.iter_mut().zip(xrow[ix..].iter().step_by(s)) {
                        *o += wv * xv;
                    }
                }
            }
        }
    }
}

/// Input gradient of one plane: scatter `grad` back through the taps into `gx` (zeroed).
fn plane_grad_x<T: Real>(geo: &Geom, g: &Group, wk: &[T], grad: &[T], gx: &mut [T]) {
    let (s, w, wo) = (geo.stride, geo.w, geo.wo);
    for (oy, grow) in grad.chunks_exact(wo).enumerate() {
        for (ky, wrow) in wk.chunks_exact(g.k).enumerate() {
            let Some(iy) = geo.in_row(g, oy, ky) else { continue };
            let gxrow = &mut gx[iy * w..(iy + 1) * w];
            for (&wv, &(lo, hi, ix)) in wrow.iter().zip(&g.cols) {
                let gr = &grow[lo..hi];
                if s == 1 {
                    for (o, &gv) in gxrow[ix..ix + (hi - lo)].iter_mut().zip(gr) {
                        *o += wv * gv;
                    }
                } else {
                    for (o, &gv) in gxrow[ix..].iter_mut().step_by(s).zip(gr) {
                        *o += wv * gv;
                    }
                }
            }
        }
    }
}

/// Weight gradient contribution of one plane, added to `gw` (`k * k`).
fn plane_grad_w<T: Real>(geo: &Geom, g: &Group, x: &[T], grad: &[T], gw: &mut [T]) {
    let (s, w, wo) = (geo.stride, geo.w, geo.wo);
    for (oy, grow) in grad.chunks_exact(wo).enumerate() {
        for (ky, gwrow) in gw.chunks_exact_mut(g.k).enumerate() {
            let Some(iy) = geo.in_row(g, oy, ky) else { continue };
            let xrow = &x[iy * w..(iy + 1) * w];
            for (acc, &(lo, hi, ix)) in gwrow.iter_mut().zip(&g.cols) {
                let gr = &grow[lo..hi];
                let mut sum = T::ZERO;
                if s == 1 {
                    for (&gv, &xv) in gr.iter().zip(&xrow[ix..ix + (hi - lo)]) {
                        sum += gv * xv;
                    }
                } else {
                    for (&gv, &xv) in gr.iter().zip(xrow[ix..].iter().step_by(s)) {
                        sum += gv * xv;
                    }
                }
                *acc += sum;
            }
        }
    }
}

struct MixConvOp {
    geo: Geom,
}

impl MixConvOp {
    fn fwd<T: Real>(&self, x: &[T], w: &[T]) -> Vec<T> {
        let geo = &self.geo;
        let (plane_in, plane_out) = (geo.h * geo.w, geo.ho * geo.wo);
        if lanes::pays(geo) {
            // SAFETY: `lanes::fwd` writes every output element.
            return unsafe { filled(geo.n * geo.c * plane_out, |out| lanes::fwd(geo, x, w, out)) };
        }
        let fill = |out: &mut [MaybeUninit<T>]| {
            let chunks = out.par_chunks_mut(plane_out).with_min_len(min_planes(plane_in)).enumerate();
            chunks.for_each_with((PadBuf::default(), Vec::new()), |(xp, acc), (p, o)| {
                self.plane(p, x, w, zeroed(o), xp, acc);
            })
        };
        // SAFETY: `zeroed` initialises every plane.
        unsafe { filled(geo.n * geo.c * plane_out, fill) }
    }

    /// Output plane `p` into `o` (zeroed); `xp` and `acc` are scratch.
    fn plane<T: Real>(&self, p: usize, x: &[T], w: &[T], o: &mut [T], xp: &mut PadBuf<T>, acc: &mut Vec<T>) {
        let geo = &self.geo;
        let plane_in = geo.h * geo.w;
        let (g, wk) = geo.kernel(p % geo.c, w);
        let xs = &x[p * plane_in..(p + 1) * plane_in];
        if let Some(pd) = &g.padded {
            simd(
                #[inline(always)]
                || plane_fwd_padded(geo, g, wk, xs, xp, acc),
            );
            for (oy, orow) in o.chunks_exact_mut(geo.wo).enumerate() {
                orow.copy_from_slice(&acc[oy * pd.wq..oy * pd.wq + geo.wo]);
            }
        } else {
            plane_fwd(geo, g, wk, xs, o);
        }
    }
}

impl CustomOp2 for MixConvOp {
    fn name(&self) -> &'static str {
        "mix_conv"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = &self.geo;
        let shape = Shape::from((g.n, g.c, g.ho, g.wo));
        dispatch!(self.name(), s1, T => {
            let out = self.fwd::<T>(slice(self.name(), s1, l1)?, slice(self.name(), s2, l2)?);
            Ok((T::storage(out), shape))
        })
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let bwd = MixConvBwd { geo: self.geo.clone() };
        let packed = x.apply_op3_no_bwd(w, &grad.contiguous()?, &bwd)?;
        let g = &self.geo;
        let parts = unpack(&packed, &[&[g.n, g.c, g.h, g.w], &[g.w_len]])?;
        Ok((Some(parts[0].clone()), Some(parts[1].clone())))
    }
}

/// Backward of [`MixConvOp`] over `(x, packed w, grad)`, giving `[grad x | grad w]` flat.
struct MixConvBwd {
    geo: Geom,
}

impl MixConvBwd {
    fn run<T: Real>(&self, x: &[T], w: &[T], grad: &[T]) -> Vec<T> {
        let geo = &self.geo;
        let (plane_in, plane_out) = (geo.h * geo.w, geo.ho * geo.wo);
        let nx = geo.n * geo.c * plane_in;
        let mut out = vec![T::ZERO; nx + geo.w_len];
        let (gx, gw) = out.split_at_mut(nx);
        if lanes::pays(geo) {
            lanes::bwd(geo, x, w, grad, gx, gw);
            return out;
        }
        let chunks = gx.par_chunks_mut(plane_in).with_min_len(min_planes(plane_in)).enumerate();
        chunks.for_each_with((Vec::new(), Vec::new()), |(gp, acc), (p, gxp)| {
            let (g, wk) = geo.kernel(p % geo.c, w);
            let gs = &grad[p * plane_out..(p + 1) * plane_out];
            if g.padded.is_some() {
                simd(
                    #[inline(always)]
                    || plane_grad_x_padded(geo, g, wk, gs, gxp, gp, acc),
                );
            } else {
                plane_grad_x(geo, g, wk, gs, gxp);
            }
        });
        // Weight gradients: each channel sums over the batch, so channels are the parallel unit.
        geo.per_channel(gw).into_par_iter().enumerate().for_each_with(
            (PadBuf::default(), Vec::new()),
            |(xb, gb), (ch, gwc)| {
                let g = &geo.groups[geo.group_of[ch]];
                for n in 0..geo.n {
                    let p = n * geo.c + ch;
                    let xs = &x[p * plane_in..(p + 1) * plane_in];
                    let gs = &grad[p * plane_out..(p + 1) * plane_out];
                    if g.padded.is_some() {
                        simd(
                            #[inline(always)]
                            || plane_grad_w_padded(geo, g, xs, gs, gwc, xb, gb),
                        );
                    } else {
                        plane_grad_w(geo, g, xs, gs, gwc);
                    }
                }
            },
        );
        out
    }
}

impl CustomOp3 for MixConvBwd {
    fn name(&self) -> &'static str {
        "mix_conv_bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        dispatch!(name, s1, T => {
            let out = self.run::<T>(slice(name, s1, l1)?, slice(name, s2, l2)?, slice(name, s3, l3)?);
            let len = out.len();
            Ok((T::storage(out), Shape::from(len)))
        })
    }
}

/// Checks each group's weight shape and packs them flat, in group order, so that autograd
/// reaches every group's weight through one op.
fn pack_weights(weights: &[Tensor], spec: &MixConvSpec) -> Result<Tensor> {
    if weights.len() != spec.groups.len() {
        bail!("mix_conv: {} weight tensors for {} groups", weights.len(), spec.groups.len())
    }
    for (gi, (w, g)) in weights.iter().zip(&spec.groups).enumerate() {
        if w.dims() != [g.channels, 1, g.kernel, g.kernel] {
            bail!("mix_conv: group {gi} weight is {:?}, expected [{}, 1, {k}, {k}]", w.dims(), g.channels, k = g.kernel)
        }
    }
    let flat = weights.iter().map(|w| w.flatten_all()).collect::<Result<Vec<_>>>()?;
    if flat.len() == 1 {
        flat[0].contiguous()
    } else {
        Tensor::cat(&flat, 0)
    }
}

/// Fast [`super::mix_conv`].
pub(crate) fn mix_conv(x: &Tensor, weights: &[Tensor], spec: &MixConvSpec) -> Result<Tensor> {
    let packed = pack_weights(weights, spec)?;
    check_dtypes("mix_conv", &[x, &packed])?;
    let geo = Geom::new(spec, x.dims4()?)?;
    x.contiguous()?.apply_op2(&packed, MixConvOp { geo })
}

#[cfg(test)]
mod tests {
    use super::super::{reference, DepthwiseGroup, Padding};
    use super::*;
    use candle_core::DType;
    use testkit::grad::{check_against, grad_check};
    use testkit::tensor::rand;

    fn spec(groups: &[(usize, usize, usize)], stride: usize, padding: Padding) -> MixConvSpec {
        let groups = groups.iter().map(|&(channels, kernel, dilation)| DepthwiseGroup { channels, kernel, dilation });
        MixConvSpec { groups: groups.collect(), stride, padding }
    }

    fn inputs(n: usize, hw: (usize, usize), spec: &MixConvSpec, dtype: DType) -> Result<Vec<Tensor>> {
        let c = spec.groups.iter().map(|g| g.channels).sum();
        let mut ts = vec![rand(&[n, c, hw.0, hw.1], 1, dtype)?];
        for (i, g) in spec.groups.iter().enumerate() {
            ts.push(rand(&[g.channels, 1, g.kernel, g.kernel], 10 + i as u64, dtype)?);
        }
        Ok(ts)
    }

    #[test]
    fn matches_reference_forward_and_backward() -> Result<()> {
        use Padding::{PytorchSymmetric as Sym, TfSame as Tf};
        let cases = [
            (2, (9, 11), spec(&[(4, 3, 1), (3, 5, 1), (3, 7, 1)], 1, Sym)),
            (2, (9, 11), spec(&[(4, 3, 1), (3, 5, 1), (3, 7, 1)], 2, Tf)),
            (1, (12, 10), spec(&[(4, 3, 1), (3, 5, 1), (3, 7, 1)], 2, Sym)),
            (3, (8, 8), spec(&[(5, 3, 1)], 2, Tf)),
            (2, (13, 12), spec(&[(3, 3, 2), (2, 5, 3)], 1, Tf)),
            (2, (13, 12), spec(&[(3, 3, 3), (2, 5, 2)], 2, Sym)),
            (1, (15, 14), spec(&[(2, 9, 1), (3, 11, 1)], 1, Sym)),
            (2, (15, 14), spec(&[(2, 9, 1), (3, 11, 1)], 2, Tf)),
            (1, (5, 5), spec(&[(2, 11, 1)], 1, Tf)),
            // Planes under 64 pixels take the direct loops at stride 2 as well.
            (2, (7, 7), spec(&[(3, 3, 1), (2, 5, 1)], 2, Sym)),
            (1, (16, 17), spec(&[(2, 3, 1), (2, 5, 1), (2, 9, 1)], 2, Tf)),
            // Wide padded planes: many register blocks of 64, the last one overlapping.
            (1, (9, 70), spec(&[(2, 3, 1), (2, 5, 1)], 1, Sym)),
            (2, (10, 74), spec(&[(2, 3, 1), (1, 7, 1)], 2, Tf)),
            // A batch of 16+ small planes takes the images-as-lanes path.
            (16, (7, 7), spec(&[(3, 3, 1), (2, 5, 1)], 2, Sym)),
            (17, (4, 4), spec(&[(2, 9, 1), (3, 11, 1)], 1, Tf)),
            (20, (3, 5), spec(&[(3, 3, 2), (2, 5, 1)], 1, Sym)),
            (16, (8, 8), spec(&[(2, 3, 1), (2, 5, 1)], 2, Tf)),
        ];
        for (i, (n, hw, spec)) in cases.iter().enumerate() {
            let fast = |t: &[Tensor]| mix_conv(&t[0], &t[1..], spec);
            let slow = |t: &[Tensor]| reference::mix_conv(&t[0], &t[1..], spec);
            check_against(&fast, &slow, &inputs(*n, *hw, spec, DType::F32)?, &format!("case {i}: {spec:?}"))?;
        }
        Ok(())
    }

    #[test]
    fn gradients_match_finite_differences() -> Result<()> {
        for spec in
            [spec(&[(2, 3, 1), (3, 5, 2)], 2, Padding::TfSame), spec(&[(3, 5, 1)], 1, Padding::PytorchSymmetric)]
        {
            let f = |t: &[Tensor]| mix_conv(&t[0], &t[1..], &spec);
            grad_check(&f, &inputs(2, (7, 6), &spec, DType::F64)?, 40, "mix_conv")?;
            // Large enough for the padded (phase-split at stride 2) path.
            grad_check(&f, &inputs(1, (11, 10), &spec, DType::F64)?, 40, "mix_conv padded")?;
            grad_check(&f, &inputs(16, (5, 4), &spec, DType::F64)?, 40, "mix_conv images as lanes")?;
        }
        Ok(())
    }

    #[test]
    fn non_contiguous_input_is_accepted() -> Result<()> {
        let spec = spec(&[(3, 3, 1), (2, 5, 1)], 1, Padding::PytorchSymmetric);
        let ts = inputs(2, (6, 6), &spec, DType::F32)?;
        let xt = ts[0].transpose(2, 3)?;
        let got = mix_conv(&xt, &ts[1..], &spec)?;
        let want = reference::mix_conv(&xt.contiguous()?, &ts[1..], &spec)?;
        testkit::float::assert_close(&got, &want, 1e-5, "transposed input")
    }

    #[test]
    fn rejects_bad_dtype_and_shapes() -> Result<()> {
        let spec = spec(&[(3, 3, 1), (2, 5, 1)], 1, Padding::TfSame);
        let ts = inputs(1, (6, 6), &spec, DType::F32)?;
        let half: Vec<Tensor> = ts.iter().map(|t| t.to_dtype(DType::F16)).collect::<Result<_>>()?;
        let err = mix_conv(&half[0], &half[1..], &spec).unwrap_err().to_string();
        assert!(err.contains("unsupported dtype"), "{err}");
        assert!(mix_conv(&ts[0].narrow(1, 0, 4)?, &ts[1..], &spec).is_err());
        assert!(mix_conv(&ts[0], &ts[1..2], &spec).is_err());
        Ok(())
    }
}
