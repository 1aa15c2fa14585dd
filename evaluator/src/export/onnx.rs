//! ONNX export of a [`MixNet`] in eval mode (opset 17), following `MixNet::forward_eval_unfused` op by op:
//! every conv carries its BN folded into its weights and a bias; MixConv is Split -> one
//! depthwise Conv per group (group = channels, its own kernel, dilation and pads) -> Concat;
//! grouped 1x1 convs are one Conv with `group` when the slices are equal, else Split/Concat;
//! SE is GlobalAveragePool -> Conv -> act -> Conv -> Sigmoid -> Mul; swish is x * Sigmoid(x);
//! dropout is the identity at inference and is left out. Pads are fixed per conv from the
//! input resolution, as `kernels::conv_padding` computes them (TF SAME is asymmetric).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{bail, Result, Tensor};
use space::{Arch, Block};

use super::proto::{self, AttributeProto, NodeProto, TensorProto};
use crate::model::MixNet;
use kernels::{conv_padding, Act};

pub const OPSET: i64 = 17;
/// IR version 8 is the one that goes with opset 17 (onnx 1.12).
const IR_VERSION: i64 = 8;
pub const INPUT: &str = "input";
pub const OUTPUT: &str = "logits";

/// Writes `net` as an ONNX model for `[N, C, resolution, resolution]` inputs (N dynamic),
/// atomically: a failure leaves no file behind.
pub fn write(net: &MixNet, resolution: usize, path: &Path) -> Result<()> {
    let bytes = export(net, resolution)?;
    crate::checkpoint::write_atomic(path, &bytes)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))
}

/// The serialised ONNX model of `net` at `resolution`.
pub fn export(net: &MixNet, resolution: usize) -> Result<Vec<u8>> {
    let arch = net.arch();
    let tensors: HashMap<String, Tensor> =
        net.named().iter().map(|n| (n.name.clone(), n.var.as_tensor().clone())).collect();
    let folds = net.batch_norms().map(|bn| Ok((bn.prefix().to_string(), bn.folded_f64()?))).collect::<Result<_>>()?;
    let mut g = Graph { tensors, folds, nodes: Vec::new(), initializers: Vec::new(), next: 0 };
    let logits = g.network(arch, resolution)?;
    let graph = proto::GraphProto {
        node: g.nodes,
        name: Some(arch.name.clone().unwrap_or_else(|| "mixnet".into())),
        initializer: g.initializers,
        input: vec![value_info(INPUT, &[None, Some(arch.stem.in_ch), Some(resolution), Some(resolution)])],
        output: vec![value_info(OUTPUT, &[None, Some(arch.classes)])],
    };
    debug_assert_eq!(logits, OUTPUT);
    let model = proto::ModelProto {
        ir_version: Some(IR_VERSION),
        producer_name: Some("mixnas".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(format!(
            "{} at {resolution}x{resolution}, eval mode, BN folded",
            graph.name.as_ref().unwrap()
        )),
        graph: Some(graph),
        opset_import: vec![proto::OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET) }],
    };
    Ok(model.to_bytes())
}

/// A float tensor's ValueInfo; `None` dims are the dynamic batch size `N`.
fn value_info(name: &str, dims: &[Option<usize>]) -> proto::ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| proto::Dimension {
            value: Some(match d {
                Some(n) => proto::DimValue::Fixed(*n as i64),
                None => proto::DimValue::Named("N".into()),
            }),
        })
        .collect();
    let tensor_type =
        proto::TensorTypeProto { elem_type: Some(proto::FLOAT), shape: Some(proto::TensorShapeProto { dim }) };
    proto::ValueInfoProto { name: Some(name.into()), r#type: Some(proto::TypeProto { tensor_type: Some(tensor_type) }) }
}

fn int(name: &str, v: usize) -> AttributeProto {
    AttributeProto { name: Some(name.into()), i: Some(v as i64), ints: vec![], r#type: Some(proto::ATTR_INT) }
}

fn ints(name: &str, v: &[usize]) -> AttributeProto {
    let ints = v.iter().map(|&x| x as i64).collect();
    AttributeProto { name: Some(name.into()), i: None, ints, r#type: Some(proto::ATTR_INTS) }
}

/// One conv's geometry; `pads` in ONNX order (top, left, bottom, right).
#[derive(Clone, Copy)]
struct ConvGeometry {
    kernel: usize,
    stride: usize,
    dilation: usize,
    pads: [usize; 4],
    group: usize,
}

impl ConvGeometry {
    fn pointwise(group: usize) -> Self {
        Self { kernel: 1, stride: 1, dilation: 1, pads: [0; 4], group }
    }

    /// Padded as the model pads an `h x h` input; also returns the output size.
    fn padded(
        arch: &Arch,
        kernel: usize,
        dilation: usize,
        stride: usize,
        group: usize,
        h: usize,
    ) -> Result<(Self, usize)> {
        let [t, b, l, r] = conv_padding(arch.padding, kernel, dilation, stride, h, h);
        let extent = (kernel - 1) * dilation + 1;
        if h + t + b < extent {
            bail!("resolution too small: a {h}x{h} feature map is smaller than a {kernel}x{kernel} kernel (dilation {dilation})")
        }
        let out = (h + t + b - extent) / stride + 1;
        Ok((Self { kernel, stride, dilation, pads: [t, l, b, r], group }, out))
    }
}

/// A conv's weights with the following BN folded in: `w * scale` per output channel, bias `shift`.
struct FoldedConv {
    dims: [usize; 4],
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// The graph under construction, over the model's tensors by name.
struct Graph {
    tensors: HashMap<String, Tensor>,
    /// Each batch norm's eval-mode `(scale, shift)` by prefix, in f64.
    folds: HashMap<String, (Vec<f64>, Vec<f64>)>,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    next: usize,
}

impl Graph {
    fn network(&mut self, arch: &Arch, resolution: usize) -> Result<String> {
        if resolution == 0 {
            bail!("resolution must be at least 1")
        }
        let s = &arch.stem;
        let (geo, mut h) = ConvGeometry::padded(arch, s.kernel, 1, s.stride, 1, resolution)?;
        let bn = self.bn_affine("stem.bn")?;
        let stem = self.folded("stem.conv.weight", &bn, 0)?;
        let mut x = self.conv(INPUT, stem, geo, "stem")?;
        x = self.act(&x, Act::Relu, "stem")?;
        for (i, b) in arch.blocks.iter().enumerate() {
            (x, h) = self.block(&x, i, b, arch, h).map_err(|e| candle_core::Error::Msg(format!("blocks[{i}]: {e}")))?;
        }
        x = self.pointwise(&x, "head.conv", "head.bn", arch.last_channels(), arch.head.width, 1)?;
        x = self.act(&x, Act::Relu, "head")?;
        let pooled = self.node("GlobalAveragePool", &[&x], vec![], "head.pool");
        let flat = self.node("Flatten", &[&pooled], vec![int("axis", 1)], "head.flatten");
        let (w, b) = (self.raw("classifier.weight")?, self.raw("classifier.bias")?);
        let w = self.initializer("classifier.weight", &[arch.classes, arch.head.width], w);
        let b = self.initializer("classifier.bias", &[arch.classes], b);
        self.nodes.push(node("Gemm", &[&flat, &w, &b], OUTPUT, vec![int("transB", 1)]));
        Ok(OUTPUT.into())
    }

    /// [expand 1x1, BN, act] -> MixConv, BN, act -> [SE] -> project 1x1, BN -> [residual].
    fn block(&mut self, x: &str, i: usize, b: &Block, arch: &Arch, h: usize) -> Result<(String, usize)> {
        let p = format!("blocks.{i}");
        if b.is_plain_conv() {
            let (geo, h) = ConvGeometry::padded(arch, 1, 1, b.stride, 1, h)?;
            let w = self.folded(&format!("{p}.conv.weight"), &self.bn_affine(&format!("{p}.bn"))?, 0)?;
            let y = self.conv(x, w, geo, &format!("{p}.conv"))?;
            return Ok(match b.has_residual() {
                true => (self.node("Add", &[&y, x], vec![], &format!("{p}.residual")), h),
                false => (y, h),
            });
        }
        let act = Act::from(b.act);
        let mut y = x.to_string();
        if b.has_expansion() {
            y = self.pointwise(&y, &format!("{p}.expand"), &format!("{p}.bn1"), b.in_ch, b.mid(), b.expand_groups)?;
            y = self.act(&y, act, &format!("{p}.expand"))?;
        }
        let (dw, h) = self.mix_conv(&y, &p, b, arch, h)?;
        y = self.act(&dw, act, &format!("{p}.dw"))?;
        if let Some(se) = b.se_channels() {
            y = self.squeeze_excite(&y, &p, b.mid(), se, act)?;
        }
        y = self.pointwise(&y, &format!("{p}.project"), &format!("{p}.bn3"), b.mid(), b.out, b.project_groups)?;
        if b.has_residual() {
            y = self.node("Add", &[&y, x], vec![], &format!("{p}.residual"));
        }
        Ok((y, h))
    }

    /// Depthwise groups over contiguous channel slices, BN `bn2` folded in.
    fn mix_conv(&mut self, x: &str, p: &str, b: &Block, arch: &Arch, h: usize) -> Result<(String, usize)> {
        let bn = self.bn_affine(&format!("{p}.bn2"))?;
        let groups = b.depthwise_groups();
        let inputs = self.split(x, &groups.iter().map(|d| d.channels).collect::<Vec<_>>(), &format!("{p}.dw"));
        let (mut outs, mut size, mut c0) = (Vec::new(), None, 0);
        for (g, (d, input)) in groups.iter().zip(&inputs).enumerate() {
            let (geo, out) = ConvGeometry::padded(arch, d.kernel, d.dilation, b.stride, d.channels, h)?;
            if *size.get_or_insert(out) != out {
                bail!("MixConv groups disagree on the output size at {h}x{h}")
            }
            let w = self.folded(&format!("{p}.dw.{g}.weight"), &bn, c0)?;
            outs.push(self.conv(input, w, geo, &format!("{p}.dw.{g}"))?);
            c0 += d.channels;
        }
        Ok((self.concat(outs, &format!("{p}.dw")), size.expect("a block has at least one group")))
    }

    /// A grouped 1x1 conv without shuffle, BN `bn` folded in.
    fn pointwise(&mut self, x: &str, conv: &str, bn: &str, cin: usize, cout: usize, groups: usize) -> Result<String> {
        let bn = self.bn_affine(bn)?;
        let splits = Block::pointwise_splits(cin, cout, groups);
        let mut folded = Vec::new();
        let mut o0 = 0;
        for (g, (_, o)) in splits.iter().enumerate() {
            folded.push(self.folded(&format!("{conv}.{g}.weight"), &bn, o0)?);
            o0 += o;
        }
        if splits.iter().all(|s| *s == splits[0]) {
            // Equal slices: ONNX's grouped Conv, whose weight is the groups' weights stacked.
            let (i, o) = splits[0];
            let merged = FoldedConv {
                dims: [cout, i, 1, 1],
                weight: folded.iter().flat_map(|f| f.weight.iter().copied()).collect(),
                bias: folded.iter().flat_map(|f| f.bias.iter().copied()).collect(),
            };
            debug_assert_eq!(merged.weight.len(), o * groups * i);
            return self.conv(x, merged, ConvGeometry::pointwise(groups), conv);
        }
        let inputs = self.split(x, &splits.iter().map(|s| s.0).collect::<Vec<_>>(), conv);
        let mut outs = Vec::new();
        for (g, (f, input)) in folded.into_iter().zip(&inputs).enumerate() {
            outs.push(self.conv(input, f, ConvGeometry::pointwise(1), &format!("{conv}.{g}"))?);
        }
        Ok(self.concat(outs, conv))
    }

    fn squeeze_excite(&mut self, x: &str, p: &str, mid: usize, se: usize, act: Act) -> Result<String> {
        let pooled = self.node("GlobalAveragePool", &[x], vec![], &format!("{p}.se.pool"));
        let dense = |g: &mut Self, input: &str, layer: &str, dims: [usize; 4]| -> Result<String> {
            let (weight, bias) = (g.raw(&format!("{p}.se.{layer}.weight"))?, g.raw(&format!("{p}.se.{layer}.bias"))?);
            g.conv(input, FoldedConv { dims, weight, bias }, ConvGeometry::pointwise(1), &format!("{p}.se.{layer}"))
        };
        let s = dense(self, &pooled, "reduce", [se, mid, 1, 1])?;
        let s = self.act(&s, act, &format!("{p}.se.reduce"))?;
        let s = dense(self, &s, "expand", [mid, se, 1, 1])?;
        let gate = self.node("Sigmoid", &[&s], vec![], &format!("{p}.se.gate"));
        Ok(self.node("Mul", &[x, &gate], vec![], &format!("{p}.se")))
    }

    fn act(&mut self, x: &str, act: Act, hint: &str) -> Result<String> {
        Ok(match act {
            Act::None => x.to_string(),
            Act::Relu => self.node("Relu", &[x], vec![], &format!("{hint}.relu")),
            Act::Swish => {
                let s = self.node("Sigmoid", &[x], vec![], &format!("{hint}.sigmoid"));
                self.node("Mul", &[x, &s], vec![], &format!("{hint}.swish"))
            }
        })
    }

    fn conv(&mut self, x: &str, f: FoldedConv, geo: ConvGeometry, hint: &str) -> Result<String> {
        let w = self.initializer(&format!("{hint}.weight"), &f.dims, f.weight);
        let b = self.initializer(&format!("{hint}.bias"), &[f.dims[0]], f.bias);
        let attrs = vec![
            ints("kernel_shape", &[geo.kernel, geo.kernel]),
            ints("strides", &[geo.stride, geo.stride]),
            ints("dilations", &[geo.dilation, geo.dilation]),
            ints("pads", &geo.pads),
            int("group", geo.group),
        ];
        Ok(self.node("Conv", &[x, &w, &b], attrs, hint))
    }

    /// Splits channels into `sizes` (no node for one slice).
    fn split(&mut self, x: &str, sizes: &[usize], hint: &str) -> Vec<String> {
        if sizes.len() == 1 {
            return vec![x.to_string()];
        }
        let split = self.fresh(&format!("{hint}.split_sizes"));
        self.initializers.push(TensorProto {
            dims: vec![sizes.len() as i64],
            data_type: Some(proto::INT64),
            name: Some(split.clone()),
            raw_data: Some(sizes.iter().flat_map(|&s| (s as i64).to_le_bytes()).collect()),
        });
        let outputs: Vec<String> = (0..sizes.len()).map(|g| self.fresh(&format!("{hint}.in{g}"))).collect();
        let mut n = node("Split", &[x, &split], &outputs[0], vec![int("axis", 1)]);
        n.output = outputs.clone();
        self.nodes.push(n);
        outputs
    }

    fn concat(&mut self, parts: Vec<String>, hint: &str) -> String {
        if parts.len() == 1 {
            return parts.into_iter().next().unwrap();
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        self.node("Concat", &refs, vec![int("axis", 1)], hint)
    }

    /// Appends a one-output node and returns its output's (unique) name.
    fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>, hint: &str) -> String {
        let out = self.fresh(hint);
        self.nodes.push(node(op, inputs, &out, attrs));
        out
    }

    fn fresh(&mut self, hint: &str) -> String {
        self.next += 1;
        format!("{hint}:{}", self.next)
    }

    fn initializer(&mut self, hint: &str, dims: &[usize], data: Vec<f32>) -> String {
        let name = self.fresh(hint);
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(proto::FLOAT),
            name: Some(name.clone()),
            raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        });
        name
    }

    fn tensor(&self, name: &str) -> Result<&Tensor> {
        self.tensors.get(name).ok_or_else(|| candle_core::Error::Msg(format!("the model has no tensor {name}")))
    }

    fn raw(&self, name: &str) -> Result<Vec<f32>> {
        self.tensor(name)?.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1()
    }

    /// The batch norm `prefix` as `(scale, shift)`.
    fn bn_affine(&self, prefix: &str) -> Result<(Vec<f64>, Vec<f64>)> {
        self.folds
            .get(prefix)
            .cloned()
            .ok_or_else(|| candle_core::Error::Msg(format!("the model has no batch norm {prefix}")))
    }

    /// Conv `weight` with the BN channels from `c0` on folded in.
    fn folded(&self, weight: &str, bn: &(Vec<f64>, Vec<f64>), c0: usize) -> Result<FoldedConv> {
        let dims: [usize; 4] = self
            .tensor(weight)?
            .dims()
            .try_into()
            .map_err(|_| candle_core::Error::Msg(format!("{weight}: a conv weight has 4 dimensions")))?;
        let per_channel = dims[1] * dims[2] * dims[3];
        let (scale, shift) = (&bn.0[c0..c0 + dims[0]], &bn.1[c0..c0 + dims[0]]);
        let weight = self
            .raw(weight)?
            .chunks(per_channel)
            .zip(scale)
            .flat_map(|(w, &s)| w.iter().map(move |&v| (f64::from(v) * s) as f32))
            .collect();
        Ok(FoldedConv { dims, weight, bias: shift.iter().map(|&b| b as f32).collect() })
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        name: Some(format!("{op}:{output}")),
        op_type: Some(op.into()),
        attribute,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use prost::Message;
    use std::collections::HashSet;

    fn exported(arch: &Arch, resolution: usize) -> proto::GraphProto {
        let net = MixNet::new(arch, 0, &Device::Cpu).unwrap();
        let bytes = export(&net, resolution).unwrap();
        let model = proto::ModelProto::decode(bytes.as_slice()).unwrap();
        assert_eq!(model.opset_import[0].version, Some(OPSET));
        model.graph.unwrap()
    }

    fn ints_of<'a>(n: &'a NodeProto, name: &str) -> &'a [i64] {
        &n.attribute.iter().find(|a| a.name.as_deref() == Some(name)).unwrap().ints
    }

    #[test]
    fn every_node_reads_values_defined_before_it() {
        let g = exported(&space::presets::mixnet_m(), 224);
        let mut defined: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_deref().unwrap()).collect();
        defined.insert(INPUT);
        for n in &g.node {
            for i in &n.input {
                assert!(defined.contains(i.as_str()), "{:?} reads {i} before it exists", n.name);
            }
            for o in &n.output {
                assert!(defined.insert(o), "{o} is written twice");
            }
        }
        assert!(defined.contains(OUTPUT));
    }

    #[test]
    fn weights_are_the_parameters_with_each_bn_folded_into_one_bias() {
        let arch = space::presets::mixnet_s();
        let net = MixNet::new(&arch, 0, &Device::Cpu).unwrap();
        let bn_channels: usize =
            net.named().iter().filter(|n| n.name.ends_with("running_mean")).map(|n| n.var.elem_count()).sum();
        let g = exported(&arch, 224);
        let floats: i64 = g
            .initializer
            .iter()
            .filter(|t| t.data_type == Some(proto::FLOAT))
            .map(|t| t.dims.iter().product::<i64>())
            .sum();
        assert_eq!(floats as usize, net.param_count() - bn_channels);
        // MixNet-S: the stem, one Conv per depthwise group, expand/project (grouped ones merged), SE, head.
        let convs = g.node.iter().filter(|n| n.op_type.as_deref() == Some("Conv")).count();
        let expected = 1
            + arch
                .blocks
                .iter()
                .map(|b| b.kernels.len() + b.has_expansion() as usize + 1 + 2 * b.se.is_some() as usize)
                .sum::<usize>()
            + 1;
        assert_eq!(convs, expected);
    }

    #[test]
    fn tf_same_pads_the_stride_2_stem_only_after() {
        let mut arch = space::presets::mixnet_s();
        let stem_pads = |arch: &Arch| ints_of(&exported(arch, 224).node[0], "pads").to_vec();
        assert_eq!(stem_pads(&arch), [1, 1, 1, 1]);
        arch.padding = space::Padding::TfSame;
        assert_eq!(stem_pads(&arch), [0, 0, 1, 1]);
    }
}
