"""PyTorch/timm yardstick for the network `nas bench train` and `nas bench eval` time.

Like ../shared/bench/torch_reference.py --what train (same step: forward, cross-entropy,
backward, SGD-momentum; median of --repeats after --warmup), plus --adapt: the proxy's stride
adaptation of evaluator/src/model/mod.rs::adapt_for_resolution (at <= 64 px the stem and the
first stride-2 block keep stride 1; timm pads these convs statically, so only the stride moves).
Reports the final feature map, whole-process peak RSS, and the peak above the RSS after imports
and model construction (the step alone). --what eval times batched inference instead (eval mode,
torch.inference_mode, one forward per repeat), the yardstick of `nas bench eval`.

Run:  VENV/bin/python bench/torch_train.py --model mixnet_s --batch 64 --res 32 --threads 2 --adapt
      VENV/bin/python bench/torch_train.py --what eval --batch 256 --res 32 --threads 2 --adapt
"""
import argparse, json, statistics, time
import torch, timm


def rss_mib(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) / 1024


def adapt(m):
    m.conv_stem.stride = (1, 1)
    for stage in m.blocks:
        for block in stage:
            convs = [c for c in block.modules() if isinstance(c, torch.nn.Conv2d) and c.stride == (2, 2)]
            if convs:
                for c in convs:
                    c.stride = (1, 1)
                return


p = argparse.ArgumentParser()
p.add_argument('--what', choices=['train', 'eval'], default='train')
p.add_argument('--model', default='mixnet_s')
p.add_argument('--batch', type=int, default=64)
p.add_argument('--res', type=int, default=32)
p.add_argument('--classes', type=int, default=10)
p.add_argument('--threads', type=int, default=2)
p.add_argument('--warmup', type=int, default=3)
p.add_argument('--repeats', type=int, default=10)
p.add_argument('--adapt', action='store_true')
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)

m = timm.create_model(a.model, num_classes=a.classes).train()
if a.adapt and a.res <= 64:
    adapt(m)
with torch.no_grad():
    final_map = m.eval().forward_features(torch.zeros(1, 3, a.res, a.res)).shape[-1]
x = torch.randn(a.batch, 3, a.res, a.res)
y = torch.randint(0, a.classes, (a.batch,))
if a.what == 'train':
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-5)

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
else:
    m.eval()

    def step():
        with torch.inference_mode():
            m(x)
rss_before = rss_mib('VmRSS')

for _ in range(a.warmup):
    step()
times = []
for _ in range(a.repeats):
    t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
med = statistics.median(times)
peak = rss_mib('VmHWM')
timing = {'step_ms': round(med * 1e3, 2)} if a.what == 'train' else {'ms': round(med * 1e3, 2)}
print(json.dumps({'what': a.what, 'model': a.model, 'batch': a.batch, 'res': a.res, 'threads': a.threads,
                  'adapted': bool(a.adapt and a.res <= 64), 'final_map': final_map,
                  **timing, 'images_per_s': round(a.batch / med, 1),
                  'peak_rss_mib': round(peak), 'step_peak_above_setup_mib': round(peak - rss_before),
                  'torch': torch.__version__, 'timm': timm.__version__}))
