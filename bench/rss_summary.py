"""Summarises bench/rss_watch.py files: per file the peak VmHWM, the RSS at the last sample, and
the highest RSS sampled in each minute, so growth across a run shows as a row of numbers.

Usage:  python3 bench/rss_summary.py results/bench/train-rss-*/default.jsonl ...
"""
import json, sys


def summary(path):
    with open(path) as f:
        lines = [json.loads(l) for l in f]
    samples = [l for l in lines if 'rss_mib' in l]
    if not samples:
        return f'{path}: no samples'
    per_minute = {}
    for s in samples:
        m = int(s['t_s'] // 60)
        per_minute[m] = max(per_minute.get(m, 0), s['rss_mib'])
    env = lines[0].get('env') or {'MIMALLOC_PURGE_DELAY': '(unset)'}
    row = ' '.join(f'{per_minute[m]:.0f}' for m in sorted(per_minute))
    return (f'{path}  env {env}  {samples[-1]["t_s"]:.0f} s  peak HWM {samples[-1]["hwm_mib"]:.0f} MiB  '
            f'RSS at end {samples[-1]["rss_mib"]:.0f} MiB\n  max RSS per minute (MiB): {row}')


if __name__ == '__main__':
    if len(sys.argv) < 2:
        sys.exit('usage: rss_summary.py FILE.jsonl ...')
    print('\n'.join(summary(p) for p in sys.argv[1:]))
