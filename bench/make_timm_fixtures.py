"""Makes timm MixNet fixtures the way ../shared/fixtures/timm/README.md describes, for models that
are not shipped there (mixnet_m, mixnet_l, tf_mixnet_m, ...). Needs torch + timm (see
../shared/bench/torch_reference.py for the venv). Writes NAME.weights.safetensors and
NAME.io.safetensors into OUT; the evaluator's ignored test `larger_mixnets_reproduce_timm_logits`
reads all four M/L models from target/testdata/timm-extra/ (CI does not run it: no torch there).

  ~/torchref/bin/python bench/make_timm_fixtures.py --out target/testdata/timm-extra mixnet_m mixnet_l tf_mixnet_m tf_mixnet_l
  cargo test -p evaluator --lib -- --ignored larger_mixnets
"""
import argparse, os
import torch, timm
from safetensors.torch import save_file

p = argparse.ArgumentParser()
p.add_argument('--out', required=True)
p.add_argument('--seed', type=int, default=7)
p.add_argument('models', nargs='+')
a = p.parse_args()
os.makedirs(a.out, exist_ok=True)
for name in a.models:
    torch.manual_seed(a.seed)
    m = timm.create_model(name, pretrained=False, num_classes=1000)
    g = torch.Generator().manual_seed(a.seed + 1)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            with torch.no_grad():
                mod.weight.copy_(torch.rand(mod.weight.shape, generator=g) * 1.5 + 0.25)
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.1)
                mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g) + 0.5)
    m.eval()
    sd = {k: v.contiguous() for k, v in m.state_dict().items() if not k.endswith('num_batches_tracked')}
    save_file(sd, os.path.join(a.out, f'{name}.weights.safetensors'))
    x = torch.randn(2, 3, 96, 96, generator=g)
    with torch.no_grad():
        y = m(x)
    save_file({'input': x, 'logits': y}, os.path.join(a.out, f'{name}.io.safetensors'))
    print(name, sum(p.numel() for p in m.parameters()), float(y.abs().max()))
