"""`nas export --timm` round trip: the exported folder, built in PyTorch by timm's own builder
(its model.py) with the exported weights, must give the logits `nas infer` gives for the same
checkpoint and input (max abs difference <= 1e-4).

Cases:
  - timm's MixNet-S from the shared fixture weights (../shared/fixtures/timm/), imported with
    `nas import-timm`; also against the fixture's own timm logits.
  - MixNet-M, MixNet-L and tf_mixnet_s made here by timm.create_model (random weights and BN
    statistics, as make_timm_fixtures.py does), imported, exported, and run both ways: the
    export must equal timm's own model within 1e-4; nas infer is held to the import tests' 1e-3.
  - a searched network (results/search/default-75ms/best.json) trained by `nas train` for one
    epoch on a subset of the embedded default data (Fashion-MNIST: 1 channel, 28 px, so proxy
    strides and in_chans 1), at a learning rate low enough that its logits stay small (at 0.1
    the 1-epoch run diverges to logits of 6e5, where float32 rounding alone exceeds 1e-4).
  - architecture-only exports: timm's parameter count equals `nas inspect`'s.

Needs torch, timm and safetensors (not CI): python3 -m venv target/timm-venv &&
target/timm-venv/bin/pip install torch timm safetensors; and a built nas (cargo build --release -p nas).

  target/timm-venv/bin/python bench/timm_roundtrip.py --nas target/release/nas | tee results/export/timm-roundtrip-DATE.txt
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import safetensors
import timm
import torch
from safetensors.torch import load_file, save_file

TOLERANCE = 1e-4
# mixnas's own forward against timm's for imported M and L weights (evaluator/src/timm.rs tests).
IMPORT_TOLERANCE = 1e-3
ROOT = Path(__file__).resolve().parent.parent

p = argparse.ArgumentParser()
p.add_argument('--nas', default=str(ROOT / 'target/release/nas'))
p.add_argument('--fixtures', default=str(ROOT.parent / 'shared/fixtures/timm'))
p.add_argument('--found', default=str(ROOT / 'results/search/default-75ms/best.json'))
p.add_argument('--subset', type=int, default=50, help='training images per class for the 1-epoch run')
p.add_argument('--lr', type=float, default=0.01, help='peak learning rate of the 1-epoch run')
p.add_argument('--threads', type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)
failures = []


def nas(*args):
    cmd = [a.nas, *map(str, args)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr}")
    return r.stdout


def load_model_py(folder):
    """Imports FOLDER/model.py under a name of its own (each export has one)."""
    spec = importlib.util.spec_from_file_location(f'export_{abs(hash(str(folder)))}', Path(folder) / 'model.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cpu_name():
    try:
        return next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or 'unknown'


def check(name, a, b, what, tolerance=TOLERANCE):
    diff = (a - b).abs().max().item()
    ok = diff <= tolerance
    scale = b.abs().max().item()
    print(f'{name:<28} {what:<32} max abs diff {diff:.3e} (max |logit| {scale:.3g}, tolerance {tolerance:g})  {"ok" if ok else "FAIL"}')
    if not ok:
        failures.append(name)


def roundtrip(name, ckpt, x, work, reference=None, tolerance=TOLERANCE):
    """export --timm, build with timm, compare with nas infer (and a reference output if given)."""
    out, x_path, y_path = work / f'{name}-timm', work / f'{name}-x.safetensors', work / f'{name}-y.safetensors'
    nas('export', '--checkpoint', ckpt, '--timm', out)
    save_file({'input': x.contiguous()}, str(x_path))
    nas('infer', '--checkpoint', ckpt, '--tensor', x_path, '--output', y_path, '--threads', a.threads)
    ours = load_file(str(y_path))['logits']
    net = load_model_py(out).build()
    with torch.no_grad():
        theirs = net(x)
    config = json.loads((out / 'arch_def.json').read_text())
    stages = ' | '.join(' '.join(s) for s in config['arch_def'])
    print(f'{name}: {sum(p.numel() for p in net.parameters())} parameters, stem stride {config["stem_stride"]}, arch_def: {stages}')
    check(name, theirs, ours, 'timm build vs nas infer', tolerance)
    if reference is not None:
        check(name, theirs, reference, "timm build vs timm's own model")
    return net


def timm_made(model, work, seed=7):
    """timm's own model with random weights and BN statistics, saved in timm's names."""
    torch.manual_seed(seed)
    m = timm.create_model(model, pretrained=False, num_classes=1000)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.copy_(torch.rand(mod.weight.shape, generator=g) * 1.5 + 0.25)
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.1)
                mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g) + 0.5)
    m.eval()
    path = work / f'{model}.weights.safetensors'
    save_file({k: v.contiguous() for k, v in m.state_dict().items() if not k.endswith('num_batches_tracked')}, str(path))
    x = torch.randn(2, 3, 96, 96, generator=g)
    with torch.no_grad():
        return path, x, m(x)


def imported(model, weights, work):
    ckpt = work / model
    nas('import-timm', '--model', model, '--weights', weights, '--out', ckpt)
    return ckpt


def param_count_matches_inspect(spec, work):
    out = work / f'arch-{spec.replace(":", "-").replace("/", "-")}'
    nas('export', '--arch', spec, '--timm', out)
    theirs = sum(p.numel() for p in load_model_py(out).build().parameters())
    ours = json.loads(nas('inspect', spec, '--json'))['params']
    ok = theirs == ours
    print(f'{Path(spec).name:<28} {"parameters, timm vs nas inspect":<36} {theirs} vs {ours}  {"ok" if ok else "FAIL"}')
    if not ok:
        failures.append(spec)


git = subprocess.run(['git', '-C', str(ROOT), 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()
print(f'command: {" ".join(sys.argv)}')
print(f'date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}')
print(f'machine: {cpu_name()}, {os.cpu_count()} cores, {platform.platform()}')
print(f'versions: {nas("--version").strip()} (commit {git}), python {platform.python_version()}, '
      f'torch {torch.__version__}, timm {timm.__version__}, safetensors {safetensors.__version__}')
print(f'tolerance: max abs diff <= {TOLERANCE}')
print()

with tempfile.TemporaryDirectory() as tmp:
    work = Path(tmp)
    fixtures = Path(a.fixtures)
    io = load_file(str(fixtures / 'mixnet_s.io.safetensors'))
    ckpt = imported('mixnet_s', fixtures / 'mixnet_s.weights.safetensors', work)
    net = roundtrip('mixnet_s (fixture)', ckpt, io['input'], work, reference=io['logits'])
    own = timm.create_model('mixnet_s', pretrained=False).state_dict()
    same = {k: tuple(v.shape) for k, v in own.items()} == {k: tuple(v.shape) for k, v in net.state_dict().items()}
    print(f'{"mixnet_s (fixture)":<28} {"state dict names and shapes":<36} {"equal to timm mixnet_s" if same else "DIFFER"}')
    if not same:
        failures.append('mixnet_s state dict')
    for model in ['tf_mixnet_s', 'mixnet_m', 'mixnet_l']:
        weights, x, y = timm_made(model, work)
        roundtrip(model, imported(model, weights, work), x, work, reference=y, tolerance=IMPORT_TOLERANCE)

    found = work / 'found'
    nas('train', '--arch', a.found, '--epochs', 1, '--subset', a.subset, '--threads', a.threads, '--quiet',
        '--lr', a.lr, '--seed', 0, '--out', found)
    metrics = json.loads((found / 'metrics.json').read_text())
    print(f'found network: {a.found}, nas train 1 epoch on default data (--subset {a.subset} --lr {a.lr}), '
          f'test accuracy {metrics.get("test_accuracy")}')
    nas('export', '--checkpoint', found, '--timm', work / 'probe')
    trained = json.loads((work / 'probe' / 'arch_def.json').read_text())
    print(f'found network as trained: input_size {trained["input_size"]}, stride changes {trained["stride_changes"]}')
    x = torch.randn(4, *trained['input_size'], generator=torch.Generator().manual_seed(3))
    roundtrip('found (trained 1 epoch)', found, x, work)

    print()
    for spec in ['mixnet-s', 'mixnet-l', 'mnasnet-a1', 'nas-bench-macro:22222212', a.found]:
        param_count_matches_inspect(spec, work)

print()
print('all ok' if not failures else f'FAILED: {", ".join(failures)}')
sys.exit(1 if failures else 0)
