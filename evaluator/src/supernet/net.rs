//! The supernet's shared tensors and its single-path forward.
//!
//! Each position of the space (`SearchSpace::position_options`: row, layer in the row) holds one
//! set of tensors sized for the largest option there: an inverted-residual block's expansion,
//! depthwise, SE and projection weights at the widest expansion, the largest kernel and the
//! most SE channels, and, where the position offers it, a strided 1x1 conv (NAS-Bench-Macro's
//! identity at a stride). A block takes slices (Once-for-All's sharing): the first `mid`
//! channels, the centre `k x k` of each channel's kernel (MixConv group `g` takes the channels
//! after group `g - 1`'s), the first SE channels, and block-diagonal slices for grouped 1x1
//! convs. Slices are views of the shared tensors, so gradients land in them.

use candle_core::{Device, Result, Tensor, Var};
use kernels::{Act, MixConvSpec};
use space::{Arch, Block, Padding, SearchSpace};

use crate::model::layers::{squeeze_excite, Activations, BatchNorm, Conv, Pointwise};
use crate::model::params::{Named, ParamStore};
use crate::model::{adapt_for_resolution, MixNet};

/// The tensors a block takes from its position: what [`SharedBlock::slice`] returns.
pub(super) struct BlockWeights {
    /// Per expansion group `[o, i, 1, 1]`; empty without expansion.
    expand: Vec<Tensor>,
    bn1: Option<[Tensor; 2]>,
    /// Per MixConv group `[c, 1, k, k]`.
    dw: Vec<Tensor>,
    bn2: [Tensor; 2],
    /// Reduce weight and bias, expand weight and bias.
    se: Option<[Tensor; 4]>,
    project: Vec<Tensor>,
    bn3: [Tensor; 2],
}

/// An inverted-residual block's tensors at one position, at their largest.
struct SharedBlock {
    prefix: String,
    expand: Option<Var>,
    bn1: Option<[Var; 2]>,
    dw: Var,
    bn2: [Var; 2],
    se: Option<[Var; 4]>,
    project: Var,
    bn3: [Var; 2],
    kernel: usize,
}

/// A strided 1x1 conv + BN at one position: the same shape for every point, so not sliced.
struct SharedConv {
    conv: Conv,
    bn: BatchNorm,
}

struct Position {
    block: Option<SharedBlock>,
    conv: Option<SharedConv>,
}

/// A one-shot supernet over every point of a search space.
pub struct SuperNet {
    space: SearchSpace,
    /// Input side the supernet trains at (small inputs get the proxy adaptation).
    resolution: usize,
    stem: (Conv, BatchNorm),
    positions: Vec<Vec<Position>>,
    head: (Pointwise, BatchNorm),
    classifier: [Var; 2],
    params: Vec<Named>,
    bn: space::BatchNorm,
    padding: Padding,
}

/// Gamma and beta of a shared batch norm over `c` channels.
fn bn_pair(ps: &mut ParamStore, prefix: &str, c: usize) -> Result<[Var; 2]> {
    Ok([ps.constant(format!("{prefix}.weight"), c, 1.0, true)?, ps.constant(format!("{prefix}.bias"), c, 0.0, true)?])
}

/// The first `c` channels of a shared batch norm.
fn bn_slice(bn: &[Var; 2], c: usize) -> Result<[Tensor; 2]> {
    Ok([bn[0].narrow(0, 0, c)?, bn[1].narrow(0, 0, c)?])
}

/// Block-diagonal slices of a shared 1x1 weight `[out, in, 1, 1]` for a grouped conv
/// `cin -> cout` in `groups` groups (the equal split rule of `Block::pointwise_splits`).
fn block_diagonal(w: &Var, cin: usize, cout: usize, groups: usize) -> Result<Vec<Tensor>> {
    let (mut i0, mut o0) = (0, 0);
    let mut out = Vec::with_capacity(groups);
    for (i, o) in Block::pointwise_splits(cin, cout, groups) {
        out.push(w.narrow(0, o0, o)?.narrow(1, i0, i)?.contiguous()?);
        (i0, o0) = (i0 + i, o0 + o);
    }
    Ok(out)
}

impl SharedBlock {
    fn new(ps: &mut ParamStore, prefix: String, options: &[&Block]) -> Result<Self> {
        let (in_ch, out) = (options[0].in_ch, options[0].out);
        let mid = options.iter().map(|b| b.mid()).max().unwrap_or(0);
        let kernel = options.iter().flat_map(|b| b.kernels.iter().copied()).max().unwrap_or(1);
        let se = options.iter().filter_map(|b| b.se_channels()).max();
        let p = &prefix;
        let expanding = options.iter().any(|b| b.has_expansion());
        let expand = match expanding {
            true => Some(ps.conv(format!("{p}.expand.weight"), [mid, in_ch, 1, 1], mid)?),
            false => None,
        };
        let bn1 = if expanding { Some(bn_pair(ps, &format!("{p}.bn1"), mid)?) } else { None };
        let dw = ps.conv(format!("{p}.dw.weight"), [mid, 1, kernel, kernel], kernel * kernel)?;
        let bn2 = bn_pair(ps, &format!("{p}.bn2"), mid)?;
        let se = match se {
            Some(s) => Some([
                ps.conv(format!("{p}.se.reduce.weight"), [s, mid, 1, 1], s)?,
                ps.constant(format!("{p}.se.reduce.bias"), s, 0.0, true)?,
                ps.conv(format!("{p}.se.expand.weight"), [mid, s, 1, 1], mid)?,
                ps.constant(format!("{p}.se.expand.bias"), mid, 0.0, true)?,
            ]),
            None => None,
        };
        let project = ps.conv(format!("{p}.project.weight"), [out, mid, 1, 1], out)?;
        let bn3 = bn_pair(ps, &format!("{p}.bn3"), out)?;
        Ok(Self { prefix, expand, bn1, dw, bn2, se, project, bn3, kernel })
    }

    /// The slices block `b` (one of this position's options) takes.
    fn slice(&self, b: &Block) -> Result<BlockWeights> {
        let mid = b.mid();
        let missing = |what: &str| candle_core::Error::msg(format!("{}: no {what} for {b:?}", self.prefix));
        let (expand, bn1) = match (b.has_expansion(), &self.expand, &self.bn1) {
            (true, Some(w), Some(bn)) => (block_diagonal(w, b.in_ch, mid, b.expand_groups)?, Some(bn_slice(bn, mid)?)),
            (true, ..) => return Err(missing("expansion")),
            (false, ..) => (Vec::new(), None),
        };
        let mut dw = Vec::new();
        let mut c0 = 0;
        for g in b.depthwise_groups() {
            if g.kernel > self.kernel || g.dilation != 1 || !(self.kernel - g.kernel).is_multiple_of(2) {
                return Err(missing(&format!("{}x{} kernel (dilation {})", g.kernel, g.kernel, g.dilation)));
            }
            let k0 = (self.kernel - g.kernel) / 2;
            dw.push(self.dw.narrow(0, c0, g.channels)?.narrow(2, k0, g.kernel)?.narrow(3, k0, g.kernel)?.contiguous()?);
            c0 += g.channels;
        }
        let se = match (b.se_channels(), &self.se) {
            (Some(s), Some([rw, rb, ew, eb])) => Some([
                rw.narrow(0, 0, s)?.narrow(1, 0, mid)?.contiguous()?,
                rb.narrow(0, 0, s)?,
                ew.narrow(0, 0, mid)?.narrow(1, 0, s)?.contiguous()?,
                eb.narrow(0, 0, mid)?,
            ]),
            (Some(_), None) => return Err(missing("squeeze-excitation")),
            (None, _) => None,
        };
        let project = block_diagonal(&self.project, mid, b.out, b.project_groups)?;
        Ok(BlockWeights {
            expand,
            bn1,
            dw,
            bn2: bn_slice(&self.bn2, mid)?,
            se,
            project,
            bn3: bn_slice(&self.bn3, b.out)?,
        })
    }
}

impl BlockWeights {
    fn forward(&self, x: &Tensor, b: &Block, cfg: (space::BatchNorm, Padding)) -> Result<Tensor> {
        let (bn, padding) = cfg;
        let act = Act::from(b.act);
        let norm = |h: &Tensor, [g, beta]: &[Tensor; 2], act| {
            Ok::<_, candle_core::Error>(kernels::batch_norm_train(h, g, beta, bn.eps, act)?.0)
        };
        let mut h = match &self.bn1 {
            None => x.clone(),
            Some(bn1) => norm(&kernels::pointwise(x, &self.expand)?, bn1, act)?,
        };
        let spec = MixConvSpec { groups: b.depthwise_groups(), stride: b.stride, padding };
        h = norm(&kernels::mix_conv(&h, &self.dw, &spec)?, &self.bn2, act)?;
        if let Some([rw, rb, ew, eb]) = &self.se {
            h = squeeze_excite(&h, [rw, rb, ew, eb], act, &mut Activations::default())?;
        }
        h = norm(&kernels::pointwise(&h, &self.project)?, &self.bn3, Act::None)?;
        if b.has_residual() {
            h = (h + x)?;
        }
        Ok(h)
    }

    /// The tensors under the names [`MixNet`] gives block `i`, BN running statistics at their
    /// initial values (re-estimated per candidate).
    fn named(&self, i: usize, out: &mut Vec<(String, Tensor)>) -> Result<()> {
        let p = format!("blocks.{i}");
        let mut bn = |name: &str, [g, beta]: &[Tensor; 2]| -> Result<()> {
            out.push((format!("{p}.{name}.weight"), g.clone()));
            out.push((format!("{p}.{name}.bias"), beta.clone()));
            out.push((format!("{p}.{name}.running_mean"), g.zeros_like()?));
            out.push((format!("{p}.{name}.running_var"), g.ones_like()?));
            Ok(())
        };
        if let Some(bn1) = &self.bn1 {
            bn("bn1", bn1)?;
        }
        bn("bn2", &self.bn2)?;
        bn("bn3", &self.bn3)?;
        let groups = [("expand", &self.expand), ("dw", &self.dw), ("project", &self.project)];
        for (name, ws) in groups {
            out.extend(ws.iter().enumerate().map(|(g, w)| (format!("{p}.{name}.{g}.weight"), w.clone())));
        }
        if let Some(se) = &self.se {
            for (name, t) in ["reduce.weight", "reduce.bias", "expand.weight", "expand.bias"].iter().zip(se) {
                out.push((format!("{p}.se.{name}"), t.clone()));
            }
        }
        Ok(())
    }
}

impl SuperNet {
    /// A supernet over `space` (its classes set to the data's) for `in_ch`-channel inputs of
    /// side `resolution`, initialised from `seed` as a [`MixNet`] is.
    pub fn new(space: &SearchSpace, in_ch: usize, resolution: usize, seed: u64) -> Result<Self> {
        let mut ps = ParamStore::new(seed, &Device::Cpu);
        let any = space.decode(&vec![0; space.decisions.len()]).map_err(candle_core::Error::wrap)?;
        let any = adapt_for_resolution(&any, resolution);
        let (s, bn, padding) = (&any.stem, any.bn, any.padding);
        let stem_conv = Conv::new(&mut ps, "stem.conv.weight".into(), in_ch, s.out, s.kernel, s.stride, padding)?;
        let stem = (stem_conv, BatchNorm::new(&mut ps, "stem.bn", s.out, bn, Act::Relu)?);
        let mut positions = Vec::new();
        for (r, row) in space.position_options().iter().enumerate() {
            let mut at = Vec::new();
            for (j, options) in row.iter().enumerate() {
                let prefix = format!("rows.{r}.{j}");
                let blocks: Vec<&Block> = options.iter().filter(|b| !b.is_plain_conv()).collect();
                let block = match blocks.is_empty() {
                    true => None,
                    false => Some(SharedBlock::new(&mut ps, prefix.clone(), &blocks)?),
                };
                let conv = match options.iter().find(|b| b.is_plain_conv()) {
                    Some(b) => Some(SharedConv {
                        conv: Conv::new(
                            &mut ps,
                            format!("{prefix}.conv.weight"),
                            b.in_ch,
                            b.out,
                            1,
                            b.stride,
                            padding,
                        )?,
                        bn: BatchNorm::new(&mut ps, &format!("{prefix}.bn"), b.out, bn, Act::None)?,
                    }),
                    None => None,
                };
                at.push(Position { block, conv });
            }
            positions.push(at);
        }
        let width = any.head.width;
        let head = (
            Pointwise::new(&mut ps, "head.conv", any.last_channels(), width, 1)?,
            BatchNorm::new(&mut ps, "head.bn", width, bn, Act::Relu)?,
        );
        let classifier = [
            ps.linear("classifier.weight".into(), any.classes, width)?,
            ps.constant("classifier.bias".into(), any.classes, 0.0, true)?,
        ];
        let params = ps.entries;
        Ok(Self { space: space.clone(), resolution, stem, positions, head, classifier, params, bn, padding })
    }

    pub fn space(&self) -> &SearchSpace {
        &self.space
    }

    pub fn resolution(&self) -> usize {
        self.resolution
    }

    /// Every tensor with its name (the checkpoint's keys).
    pub fn named(&self) -> &[Named] {
        &self.params
    }

    /// The trainable tensors with their names (the optimiser's).
    pub fn trainable(&self) -> Vec<(String, Var)> {
        self.params.iter().filter(|n| n.trainable).map(|n| (n.name.clone(), n.var.clone())).collect()
    }

    /// The network point `choices` builds, as trained and scored here (adapted for the
    /// supernet's resolution, with the stem's input channels), and each block's position.
    pub fn path(&self, choices: &[usize]) -> Result<(Arch, Vec<(usize, usize)>)> {
        let arch = self.space.decode(choices).map_err(candle_core::Error::wrap)?;
        let mut arch = adapt_for_resolution(&arch, self.resolution);
        arch.stem.in_ch = self.stem.0.weight.dim(1)?;
        let positions = self.space.block_positions(choices).map_err(candle_core::Error::wrap)?;
        Ok((arch, positions))
    }

    /// Train-mode logits of the subnet `choices` (batch statistics; weights shared).
    pub fn forward_train(&self, x: &Tensor, choices: &[usize]) -> Result<Tensor> {
        let (arch, positions) = self.path(choices)?;
        let mut acts = Activations::default();
        let mut h = self.stem.1.forward(&self.stem.0.forward(x)?, true, &mut acts)?;
        for (b, &(r, j)) in arch.blocks.iter().zip(&positions) {
            let at = &self.positions[r][j];
            h = match (b.is_plain_conv(), &at.block, &at.conv) {
                (true, _, Some(c)) => c.bn.forward(&c.conv.forward(&h)?, true, &mut acts)?,
                (false, Some(shared), _) => shared.slice(b)?.forward(&h, b, (self.bn, self.padding))?,
                _ => candle_core::bail!("row {r} position {j}: the supernet has no weights for {b:?}"),
            };
        }
        h = self.head.1.forward(&self.head.0.forward(&h)?, true, &mut acts)?;
        let f = kernels::channel_mean(&h)?;
        f.matmul(&self.classifier[0].t()?)?.broadcast_add(&self.classifier[1])
    }

    /// The subnet `choices` as a stand-alone [`MixNet`] with the shared weights copied in and
    /// BN running statistics at their initial values: re-estimate them
    /// ([`MixNet::recalibrate_batch_norms`]) before scoring it.
    pub fn subnet(&self, choices: &[usize]) -> Result<MixNet> {
        let (arch, positions) = self.path(choices)?;
        let shared = ["stem.", "head.", "classifier."];
        let mut tensors: Vec<(String, Tensor)> = (self.params.iter())
            .filter(|n| shared.iter().any(|p| n.name.starts_with(p)))
            .map(|n| (n.name.clone(), n.var.as_tensor().clone()))
            .collect();
        for (i, (b, &(r, j))) in arch.blocks.iter().zip(&positions).enumerate() {
            let at = &self.positions[r][j];
            match (b.is_plain_conv(), &at.block, &at.conv) {
                (true, _, Some(c)) => {
                    let p = format!("blocks.{i}");
                    tensors.push((format!("{p}.conv.weight"), c.conv.weight.as_tensor().clone()));
                    let bn = [&c.bn.gamma, &c.bn.beta, &c.bn.running_mean, &c.bn.running_var];
                    for (name, v) in ["weight", "bias", "running_mean", "running_var"].iter().zip(bn) {
                        tensors.push((format!("{p}.bn.{name}"), v.as_tensor().clone()));
                    }
                }
                (false, Some(shared), _) => shared.slice(b)?.named(i, &mut tensors)?,
                _ => candle_core::bail!("row {r} position {j}: the supernet has no weights for {b:?}"),
            }
        }
        let net = MixNet::new(&arch, 0, &Device::Cpu)?;
        let tensors = tensors.into_iter().map(|(n, t)| Ok((n, t.detach().contiguous()?))).collect::<Result<_>>()?;
        net.load_named(&tensors)?;
        Ok(net)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use testkit::float::rel_diff;

    fn macro_space() -> SearchSpace {
        SearchSpace::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/space-nas-bench-macro.json")).unwrap()
    }

    /// The MixNet space without dropout, so train-mode logits are deterministic.
    fn mixnet_space() -> SearchSpace {
        let space = SearchSpace::default_space().with_classes(10);
        let base = space::Base { dropout: 0.0, ..space.base.clone() };
        space.with_base(base)
    }

    /// The subnet copied out computes what the supernet's path computes, on random points of
    /// both spaces: slices and names agree (MixConv groups, SE, grouped 1x1, strided 1x1 conv).
    #[test]
    fn a_subnet_computes_what_its_path_in_the_supernet_computes() -> Result<()> {
        for (space, points) in [(macro_space(), 6), (mixnet_space(), 3)] {
            let net = SuperNet::new(&space, 3, 32, 1)?;
            let x = Tensor::randn(0f32, 1., (4, 3, 32, 32), &Device::Cpu)?;
            let mut rng = StdRng::seed_from_u64(2);
            for _ in 0..points {
                let choices = space.sample(&mut rng);
                let want = net.forward_train(&x, &choices)?;
                let subnet = net.subnet(&choices)?;
                assert_eq!(subnet.param_count() as u64, space::cost(subnet.arch(), 32).total.params);
                let got = subnet.forward_train(&x, &mut rng)?;
                let d = rel_diff(&got, &want)?;
                assert!(d < 1e-4, "{}: {choices:?}: relative difference {d}", space.name);
            }
        }
        Ok(())
    }

    /// A smaller kernel is the centre of the largest, a narrower expansion its first channels:
    /// MB3_K3 at a stride-1 row of NAS-Bench-Macro trains the centre 3x3 of the first 192 of the
    /// 384 shared 5x5 depthwise kernels, and nothing else there.
    #[test]
    fn a_small_choice_trains_the_centre_of_the_shared_kernels() -> Result<()> {
        let space = macro_space();
        let net = SuperNet::new(&space, 3, 32, 1)?;
        let x = Tensor::randn(0f32, 1., (2, 3, 32, 32), &Device::Cpu)?;
        let grads = net.forward_train(&x, &[2, 1, 2, 2, 2, 2, 2, 2])?.sqr()?.sum_all()?.backward()?;
        let dw = net.named().iter().find(|n| n.name == "rows.1.0.dw.weight").unwrap();
        assert_eq!(dw.var.dims(), [384, 1, 5, 5]);
        let g = grads.get(dw.var.as_tensor()).expect("the path's depthwise weights get a gradient");
        let g: Vec<Vec<f32>> = g.reshape((384, 25))?.to_vec2()?;
        let centre = |i: usize| (1..4).contains(&(i / 5)) && (1..4).contains(&(i % 5));
        for (c, row) in g.iter().enumerate() {
            for (i, v) in row.iter().enumerate() {
                let trained = c < 192 && centre(i);
                assert_eq!(*v != 0.0, trained, "channel {c} tap {i}: gradient {v}");
            }
        }
        // The row's own stride-2 conv is not on this path.
        let conv = net.named().iter().find(|n| n.name == "rows.0.0.conv.weight").unwrap();
        assert!(grads.get(conv.var.as_tensor()).is_none());
        Ok(())
    }
}
