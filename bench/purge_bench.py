"""Training-step speed of `nas bench train` under several mimalloc purge delays, alternating:
each round runs every setting once, rotating which goes first, so a change in machine load
falls on all of them. Prints one JSON line per run (with the load average when it started),
then the median img/s and peak RSS per setting.

Usage:  python3 bench/purge_bench.py --nas target/release/nas --delays unset,-1,0,1000 --rounds 5 [--json out.jsonl]
"""
import argparse, json, os, statistics, subprocess


def run(nas, delay, warmup, repeats):
    env = dict(os.environ)
    env.pop('MIMALLOC_PURGE_DELAY', None)
    if delay != 'unset':
        env['MIMALLOC_PURGE_DELAY'] = delay
    cmd = [nas, 'bench', 'train', '--arch', 'mixnet-s', '--batch', '64', '--res', '32', '--threads', '2',
           '--warmup', str(warmup), '--repeats', str(repeats)]
    load = os.getloadavg()[0]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    line = json.loads(out)
    line.update(purge_delay=delay, load1=round(load, 2))
    return line


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--nas', required=True)
    p.add_argument('--delays', default='unset,0,1000', help="comma-separated; 'unset' leaves the variable out")
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--repeats', type=int, default=8)
    p.add_argument('--json')
    a = p.parse_args()
    delays = a.delays.split(',')
    results = {d: [] for d in delays}
    sink = open(a.json, 'w') if a.json else None
    for r in range(a.rounds):
        for d in delays[r % len(delays):] + delays[:r % len(delays)]:
            line = run(a.nas, d, a.warmup, a.repeats)
            line['round'] = r
            results[d].append(line)
            text = json.dumps(line)
            print(text, flush=True)
            if sink:
                sink.write(text + '\n')
    if sink:
        sink.close()
    for d, lines in results.items():
        ips = statistics.median(l['images_per_s'] for l in lines)
        rss = statistics.median(l['peak_rss_mib'] for l in lines)
        print(f'MIMALLOC_PURGE_DELAY={d:<6} median {ips:6.1f} img/s over {len(lines)} runs '
              f'(min {min(l["images_per_s"] for l in lines):.1f}, max {max(l["images_per_s"] for l in lines):.1f}); '
              f'median peak RSS {rss:.0f} MiB')


if __name__ == '__main__':
    main()
