"""Training quality of `nas train` against timm's mixnet_s in PyTorch (bench/torch_train_cifar.py),
same data, recipe and strides, several seeds per side, alternating which side runs first.

The recipe: the stride-adapted MixNet-S on the CIFAR-10 JPEG folders, `--subset` images per
class, 3 epochs, batch 64, SGD-Nesterov one-cycle to 0.1, weight decay 5e-4, label smoothing 0.1,
crop + flip (both sides' defaults; torch_train_cifar.py's docstring lists what is shared bit for
bit and what is not). Prints one JSON line per run, then per side the mean and sample standard
deviation of the test accuracy and the check the project asks for: mixnas's mean >= PyTorch's
mean - one PyTorch standard deviation.

Usage:  python3 bench/compare_train_quality.py --python VENV/bin/python \
            --data target/testdata/cifar10-jpg --seeds 0 1 2 --out results/train-quality/DATE
"""
import argparse, json, os, statistics, subprocess, time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')


def ours(nas, data, subset, epochs, seed, out):
    run_dir = os.path.join(out, f'nas-seed{seed}')
    cmd = [nas, 'train', '--arch', 'mixnet-s', '--data', data, '--subset', str(subset), '--epochs', str(epochs),
           '--batch', '64', '--threads', '2', '--seed', str(seed), '--out', run_dir]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=open(run_dir + '.log', 'w'))
    with open(os.path.join(run_dir, 'metrics.json')) as f:
        m = json.load(f)
    return cmd, m['test_accuracy'], [e.get('train_loss') for e in m['epochs']]


def theirs(py, data, subset, epochs, seed, out):
    report = os.path.join(out, f'torch-seed{seed}.json')
    cmd = [py, os.path.join(ROOT, 'bench', 'torch_train_cifar.py'), '--data', data, '--subset', str(subset),
           '--epochs', str(epochs), '--batch', '64', '--threads', '2', '--seed', str(seed), '--json', report]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=open(report[:-5] + '.log', 'w'))
    with open(report) as f:
        m = json.load(f)
    return cmd, m['test_accuracy'], [e['train_loss'] for e in m['epochs']]


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--python', required=True)
    p.add_argument('--data', required=True)
    p.add_argument('--subset', type=int, default=1000)
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--out', required=True)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    nas = os.path.join(ROOT, 'target', 'release', 'nas')
    sides = [('mixnas', lambda s: ours(nas, a.data, a.subset, a.epochs, s, a.out)),
             ('pytorch', lambda s: theirs(a.python, a.data, a.subset, a.epochs, s, a.out))]
    rows = []
    for i, seed in enumerate(a.seeds):
        for side, run in (sides if i % 2 == 0 else sides[::-1]):
            load, start = os.getloadavg()[0], time.time()
            cmd, acc, losses = run(seed)
            row = {'side': side, 'seed': seed, 'test_accuracy': acc, 'train_loss_per_epoch': losses,
                   'wall_s': round(time.time() - start, 1), 'load1_at_start': round(load, 2), 'command': cmd}
            rows.append(row)
            print(json.dumps(row), flush=True)
            with open(os.path.join(a.out, 'runs.jsonl'), 'a') as f:
                f.write(json.dumps(row) + '\n')
    acc = {side: [r['test_accuracy'] for r in rows if r['side'] == side] for side, _ in sides}
    for side, xs in acc.items():
        sd = statistics.stdev(xs) if len(xs) > 1 else float('nan')
        print(f'{side:<8} test accuracy mean {100 * statistics.mean(xs):.2f}%  sd {100 * sd:.2f}  '
              f'runs {", ".join(f"{100 * x:.2f}" for x in xs)}')
    bar = statistics.mean(acc['pytorch']) - statistics.stdev(acc['pytorch'])
    verdict = 'met' if statistics.mean(acc['mixnas']) >= bar else 'NOT met'
    print(f'check: mixnas mean {100 * statistics.mean(acc["mixnas"]):.2f}% >= PyTorch mean - sd '
          f'{100 * bar:.2f}%: {verdict}')


if __name__ == '__main__':
    main()
