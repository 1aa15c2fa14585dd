#!/usr/bin/env python3
"""Run mixnas's benchmarks and the PyTorch / ONNX Runtime yardsticks alternately; print medians and ratios.

The machine is shared and noisy, so each round runs every contender once, one after the
other, and the report is the median over rounds of each contender's own median; "paired" is
the median over rounds of the ratio within a round, robust to the machine's drift.

Needs a release build (`cargo build --release --bin nas`) and the yardstick venv described in
../shared/bench/torch_reference.py (default ~/torchref; override with --python).

  python3 bench/compare.py --rounds 5 [--json out.json]
  python3 bench/compare.py --only latency --rounds 7 --base /tmp/nas-base

`--only latency` skips the training benchmark, `--no-pytorch` PyTorch's latency runs; `--base BINARY` adds another mixnas build
(`mixnas-base`, e.g. main's) to the latency rounds, so a change is timed before and after
against the same ONNX Runtime runs.
"""
import argparse, json, os, platform, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.join(ROOT, '..', 'shared', 'bench')


def run_json(cmd):
    """The command's last JSON line, with `peak_rss_mib` set to the process's own peak RSS
    (from wait4, so every contender is measured the same way)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    lines = [l for l in out.splitlines() if l.startswith('{')]
    result = json.loads(lines[-1])
    result['peak_rss_mib'] = usage.ru_maxrss / 1024  # KiB on Linux
    return result


def contenders(a):
    nas = os.path.join(ROOT, 'target', 'release', 'nas')
    py = os.path.expanduser(a.python)
    torch_py = os.path.join(SHARED, 'torch_reference.py')
    ort_py = os.path.join(SHARED, 'ort_reference.py')
    # torch_reference.py trains timm's strides (a 1x1 final map at 32 px), so ours runs --no-adapt:
    # the same network, not the stride-adapted one `nas train` trains.
    c = {}
    if a.only in (None, 'train'):
        c[('train', 'mixnas')] = ([nas, 'bench', 'train', '--arch', 'mixnet-s', '--no-adapt', '--batch', '64', '--res',
                                   '32', '--threads', '2'], 'images_per_s')
        c[('train', 'pytorch')] = ([py, torch_py, '--model', 'mixnet_s', '--what', 'train', '--batch', '64',
                                    '--res', '32', '--threads', '2'], 'images_per_s')
    if a.only == 'train':
        return c
    # Every contender's latency with ONNX Runtime's protocol: 10 warm-up runs, median of 30.
    protocol = ['--threads', '1', '--warmup', '10', '--repeats', '30']
    for m in a.models:
        c[('latency ' + m, 'mixnas')] = ([nas, 'bench', 'latency', '--arch', m.replace('_', '-')] + protocol, 'ms')
        if a.base:
            c[('latency ' + m, 'mixnas-base')] = ([a.base, 'bench', 'latency', '--arch', m.replace('_', '-')] + protocol,
                                                  'ms')
        if not a.no_pytorch:
            c[('latency ' + m, 'pytorch')] = ([py, torch_py, '--model', m, '--what', 'latency'] + protocol, 'ms')
        c[('latency ' + m, 'onnxruntime')] = ([py, ort_py, '--model', m] + protocol, 'ms')
    return c


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--python', default='~/torchref/bin/python')
    p.add_argument('--models', nargs='+', default=['mixnet_s', 'mixnet_m', 'mixnet_l'])
    p.add_argument('--json', help='also write the raw figures here')
    p.add_argument('--only', choices=['train', 'latency'], help='run only these benchmarks')
    p.add_argument('--no-pytorch', action='store_true', help='leave PyTorch out of the latency rounds')
    p.add_argument('--base', help='another mixnas binary timed as the contender mixnas-base (latency only)')
    a = p.parse_args()
    c = contenders(a)
    raw = {k: [] for k in c}
    rss = {k: [] for k in c}
    loads = {k: [] for k in c}
    for r in range(a.rounds):
        for k, (cmd, field) in c.items():
            loads[k].append(os.getloadavg()[0])
            result = run_json(cmd)
            raw[k].append(result[field])
            rss[k].append(result['peak_rss_mib'])
            print(f'round {r + 1}/{a.rounds} {k[0]:<18} {k[1]:<12} {raw[k][-1]}', file=sys.stderr)
    med = {k: statistics.median(v) for k, v in raw.items()}
    med_rss = {k: statistics.median(v) for k, v in rss.items()}

    def paired(a, b):
        """Median over rounds of a/b within each round: the two ran back to back, so the
        machine's drift between rounds (often 20-40% here) cancels."""
        return statistics.median(x / y for x, y in zip(raw[a], raw[b]))

    with open('/proc/loadavg') as f:
        load = f.read().split()[:3]
    print(f'# {time.strftime("%Y-%m-%d")} {cpu_name()} ({os.cpu_count()} cpus), {a.rounds} alternating rounds, '
          f'load {" ".join(load)}')
    print(f'{"benchmark":<20} {"mixnas":>10} {"pytorch":>10} {"onnxrt":>10}  ratio')
    ratios = {}
    if ('train', 'mixnas') in c:
        t_ours, t_torch = med[('train', 'mixnas')], med[('train', 'pytorch')]
        ratios['train mixnas/pytorch'] = paired(('train', 'mixnas'), ('train', 'pytorch'))
        print(f'{"train img/s":<20} {t_ours:>10.1f} {t_torch:>10.1f} {"":>10}  mixnas/pytorch = {t_ours / t_torch:.2f}x'
              f' (paired {ratios["train mixnas/pytorch"]:.2f}x)')
        r_ours, r_torch = med_rss[('train', 'mixnas')], med_rss[('train', 'pytorch')]
        print(f'{"train peak RSS MiB":<20} {r_ours:>10.0f} {r_torch:>10.0f} {"":>10}  mixnas/pytorch = '
              f'{r_ours / r_torch:.2f}  (whole process, lower is better)')
    for m in a.models if a.only != 'train' else []:
        k = 'latency ' + m
        ours = [who for who in ('mixnas', 'mixnas-base') if (k, who) in c]
        for who in ours:
            o, x = med[(k, who)], med[(k, 'onnxruntime')]
            ratios[f'{k} {who}/onnxruntime'] = paired((k, who), (k, 'onnxruntime'))
            t = med.get((k, 'pytorch'))
            vs_torch = ''
            if t is not None:
                ratios[f'{k} {who}/pytorch'] = paired((k, who), (k, 'pytorch'))
                vs_torch = f'{who}/pytorch = {o / t:.2f}, '
            print(f'{k + " ms":<20} {o:>10.2f} {t if t is not None else float("nan"):>10.2f} {x:>10.2f}  '
                  f'{vs_torch}{who}/onnxrt = {o / x:.2f} (paired {ratios[f"{k} {who}/onnxruntime"]:.2f})'
                  '  (lower is better)')
        if len(ours) == 2:
            ratios[f'{k} mixnas/mixnas-base'] = paired((k, 'mixnas'), (k, 'mixnas-base'))
            print(f'{k + " new/base":<20} paired {ratios[f"{k} mixnas/mixnas-base"]:.2f}')
    if a.json:
        with open(a.json, 'w') as f:
            json.dump({'date': time.strftime('%Y-%m-%d'), 'cpu': cpu_name(), 'rounds': a.rounds,
                       'raw': {' / '.join(k): v for k, v in raw.items()},
                       'median': {' / '.join(k): v for k, v in med.items()},
                       'peak_rss_mib': {' / '.join(k): v for k, v in med_rss.items()},
                       'load1_at_start': {' / '.join(k): v for k, v in loads.items()},
                       'paired': ratios,
                       'commands': {' / '.join(k): cmd for k, (cmd, _) in c.items()}}, f, indent=1)


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == '__main__':
    main()
