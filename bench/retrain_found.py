#!/usr/bin/env python3
"""Re-train a search's found network beside MixNet-S and a random pick, same recipe, same budget.

Every network runs `nas train --arch ARCH --data DATA --subset N --epochs E --seed S` with the
rest of `nas train`'s defaults (stride-adapted at 32 px, batch 64, SGD-Nesterov one-cycle to 0.1,
weight decay 5e-4, label smoothing 0.1, crop + flip), 2 threads, one run at a time; the order of
the networks rotates from seed to seed so that load drift does not always favour the same one.
A run already in OUT/runs.jsonl is not repeated and a killed one continues (`nas train --resume`).

Writes under OUT: NAME.arch.json (the architecture trained), NAME-seedS/ (the `nas train` run
folder) and NAME-seedS.log, runs.jsonl (one line per run: test accuracy, per-epoch training loss
and validation accuracy, wall seconds, 1-minute load at the start, the command) and prints per
network the mean, sample standard deviation and every seed's test accuracy.

Usage: bench/retrain_found.py --out results/search/DIR/retrain --seeds 0 1 \
           --arch found=results/search/DIR/best.json --arch mixnet-s=mixnet-s --arch random=FILE
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')


def train(nas, a, name, arch, seed):
    run_dir = os.path.join(a.out, f'{name}-seed{seed}')
    cmd = [nas, 'train', '--arch', arch, '--data', a.data, '--subset', str(a.subset), '--epochs', str(a.epochs),
           '--threads', '2', '--seed', str(seed), '--out', run_dir]
    load = os.getloadavg()[0]
    resuming = os.path.exists(os.path.join(run_dir, 'checkpoint.json'))
    with open(run_dir + '.log', 'a' if resuming else 'w') as log:
        run = [nas, 'train', '--resume', run_dir] if resuming else cmd
        subprocess.run(run, check=True, stdout=subprocess.DEVNULL, stderr=log)
    with open(os.path.join(run_dir, 'metrics.json')) as f:
        m = json.load(f)
    return {'network': name, 'seed': seed, 'test_accuracy': m['test_accuracy'],
            'train_loss_per_epoch': [e['train_loss'] for e in m['epochs']],
            'val_accuracy_per_epoch': [e['val_accuracy'] for e in m['epochs']],
            'wall_s': round(m['wall_seconds'], 1), 'load1_at_start': round(load, 2), 'command': cmd}


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--nas', default=os.path.join(ROOT, 'target', 'release', 'nas'))
    p.add_argument('--data', default='target/testdata/cifar10-jpg')
    p.add_argument('--subset', type=int, default=1000)
    p.add_argument('--epochs', type=int, default=5)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    p.add_argument('--arch', action='append', required=True, help='NAME=FILE|PRESET')
    p.add_argument('--out', required=True)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    nets = []
    for spec in a.arch:
        name, arch = spec.split('=', 1)
        if os.path.exists(arch):
            shutil.copyfile(arch, os.path.join(a.out, f'{name}.arch.json'))
        nets.append((name, arch))
    journal = os.path.join(a.out, 'runs.jsonl')
    done = {}
    if os.path.exists(journal):
        with open(journal) as f:
            done = {(r['network'], r['seed']): r for r in map(json.loads, f)}
    rows = []
    for i, seed in enumerate(a.seeds):
        k = i % len(nets)
        for name, arch in nets[k:] + nets[:k]:
            row = done.get((name, seed))
            if row is None:
                row = train(a.nas, a, name, arch, seed)
                with open(journal, 'a') as f:
                    f.write(json.dumps(row) + '\n')
            rows.append(row)
            print(json.dumps(row), flush=True)
    for name, _ in nets:
        xs = [r['test_accuracy'] for r in rows if r['network'] == name]
        sd = statistics.stdev(xs) if len(xs) > 1 else float('nan')
        print(f'{name:<10} test accuracy mean {100 * statistics.mean(xs):.2f}%  sd {100 * sd:.2f}  '
              f'seeds {", ".join(f"{100 * x:.2f}" for x in xs)}')


if __name__ == '__main__':
    main()
