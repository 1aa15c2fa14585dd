"""Resident memory of a command over time: samples VmRSS and VmHWM of the process from
/proc/PID/status every --interval seconds until it exits or --limit seconds pass (then it is
stopped with SIGTERM). Writes one JSON line per sample to --out, after a first line with the
command, the MIMALLOC_* environment, the CPU model, the date and the load average; the
command's stderr (its per-epoch lines) goes to --log with the second at which each line came.

Usage:  python3 bench/rss_watch.py --out rss.jsonl --log train.log --limit 480 -- nas train ...
"""
import argparse, datetime, json, os, platform, signal, subprocess, sys, threading, time


def status_kib(pid):
    """VmRSS and VmHWM in KiB, or None once the process is gone."""
    try:
        with open(f'/proc/{pid}/status') as f:
            fields = dict(line.split(':', 1) for line in f if line.startswith(('VmRSS', 'VmHWM')))
    except (FileNotFoundError, ProcessLookupError):
        return None
    return {k: int(v.split()[0]) for k, v in fields.items()} if len(fields) == 2 else None


def cpu_model():
    out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
    return next((l.split(':', 1)[1].strip() for l in out.splitlines() if l.startswith('Model name')), platform.machine())


def copy_stderr(pipe, log, start):
    for line in pipe:
        log.write(f'{time.monotonic() - start:8.1f}s {line}')
        log.flush()


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--out', required=True)
    p.add_argument('--log', required=True)
    p.add_argument('--interval', type=float, default=10.0)
    p.add_argument('--limit', type=float, default=480.0)
    p.add_argument('cmd', nargs=argparse.REMAINDER)
    a = p.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ['--'] else a.cmd
    if not cmd:
        sys.exit('rss_watch.py: no command given after --')
    header = {'command': cmd, 'env': {k: v for k, v in os.environ.items() if k.startswith('MIMALLOC_')},
              'cpu': cpu_model(), 'nproc': os.cpu_count(), 'date': datetime.datetime.now(datetime.timezone.utc).isoformat(),
              'load1_5_15': os.getloadavg(), 'interval_s': a.interval, 'limit_s': a.limit}
    start = time.monotonic()
    with open(a.out, 'w') as out, open(a.log, 'w') as log:
        out.write(json.dumps(header) + '\n')
        child = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        reader = threading.Thread(target=copy_stderr, args=(child.stderr, log, start), daemon=True)
        reader.start()
        stopped = False
        while child.poll() is None:
            elapsed = time.monotonic() - start
            kib = status_kib(child.pid)
            if kib:
                out.write(json.dumps({'t_s': round(elapsed, 1), 'rss_mib': round(kib['VmRSS'] / 1024, 1),
                                      'hwm_mib': round(kib['VmHWM'] / 1024, 1), 'load1': os.getloadavg()[0]}) + '\n')
                out.flush()
            if elapsed >= a.limit and not stopped:
                child.send_signal(signal.SIGTERM)
                stopped = True
            try:
                child.wait(timeout=a.interval)
            except subprocess.TimeoutExpired:
                pass
        reader.join(timeout=5)
        out.write(json.dumps({'exit': child.returncode, 'stopped_at_limit': stopped,
                              't_s': round(time.monotonic() - start, 1)}) + '\n')


if __name__ == '__main__':
    main()
