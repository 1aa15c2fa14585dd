"""Training-step speed of `nas bench train` (or, with --what eval, batched inference of `nas
bench eval`) against bench/torch_train.py, alternating runs.

Training: three shapes of MixNet-S, 2 threads: 32 px batch 64 with timm's strides (1x1 final
map), 32 px batch 64 stride-adapted (what `nas train` and the proxy train), 96 px batch 32.
Eval: 32 px batch 256 stride-adapted (validation and candidate scoring) and 224 px batch 32.
Each round runs every shape on both sides, alternating which goes first; prints per-round JSON
lines (with the load average when each started), then medians and the median of paired ratios.

Usage:  python3 bench/compare_train.py --python VENV/bin/python --rounds 3 [--what eval] [--json out.jsonl]
"""
import argparse, json, os, statistics, subprocess, sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
SHAPES = {'train': [('32px-timm-strides', 32, 64, False), ('32px-adapted', 32, 64, True), ('96px', 96, 32, False)],
          'eval': [('32px-adapted-b256', 32, 256, True), ('224px-b32', 224, 32, False)]}


def run(cmd):
    load = os.getloadavg()[0]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    line = json.loads(out)
    line['load1'] = round(load, 2)
    return line


def commands(what, nas, py, res, batch, adapt, warmup, repeats):
    common = ['--batch', str(batch), '--res', str(res), '--threads', '2', '--warmup', str(warmup), '--repeats', str(repeats)]
    ours = [nas, 'bench', what, '--arch', 'mixnet-s'] + common + ([] if adapt else ['--no-adapt'])
    theirs = [py, os.path.join(ROOT, 'bench', 'torch_train.py'), '--what', what, '--model', 'mixnet_s'] + common
    theirs += ['--adapt'] if adapt else []
    return ours, theirs


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--python', required=True)
    p.add_argument('--what', choices=['train', 'eval'], default='train')
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--repeats', type=int, default=10)
    p.add_argument('--json')
    a = p.parse_args()
    nas = os.path.join(ROOT, 'target', 'release', 'nas')
    rows = []
    for r in range(a.rounds):
        for name, res, batch, adapt in SHAPES[a.what]:
            ours, theirs = commands(a.what, nas, a.python, res, batch, adapt, a.warmup, a.repeats)
            order = [('mixnas', ours), ('pytorch', theirs)]
            for side, cmd in (order if r % 2 == 0 else order[::-1]):
                row = {'round': r, 'shape': name, 'side': side, **run(cmd)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    if a.json:
        with open(a.json, 'w') as f:
            f.writelines(json.dumps(x) + '\n' for x in rows)
    for name, *_ in SHAPES[a.what]:
        get = lambda side, k: [x[k] for x in rows if x['shape'] == name and x['side'] == side]
        ours, theirs = get('mixnas', 'images_per_s'), get('pytorch', 'images_per_s')
        paired = statistics.median(o / t for o, t in zip(ours, theirs))
        print(f'{name:<18} mixnas {statistics.median(ours):7.1f} img/s  pytorch {statistics.median(theirs):7.1f} img/s'
              f'  paired ratio {paired:.2f}x  peak RSS MiB {statistics.median(get("mixnas", "peak_rss_mib")):.0f}'
              f' vs {statistics.median(get("pytorch", "peak_rss_mib")):.0f} (torch step alone'
              f' {statistics.median(get("pytorch", "step_peak_above_setup_mib")):.0f})')


if __name__ == '__main__':
    sys.exit(main())
