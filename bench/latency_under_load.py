#!/usr/bin/env python3
"""A latency table begun under load, checked idle (issue 39): does `nas latency` hold against a stopwatch?

1. A busy loop holds one core (pinned with taskset) while `nas latency --build-table` begins a
   fresh table; the table file's first saved version (the nominal it was begun with) is kept.
2. The busy loop stops. For each preset, `nas latency --predict` (nominal and now), right after
   `nas latency --measure` (the stopwatch: the raw median of timed forwards), and then a second
   `--measure`: how often two stopwatch readings a second apart agree within +-10% bounds what
   any prediction can do on this machine. The presets are gone through `--rounds` times.
3. `nas latency --validate` on N sampled networks, idle.

"Before" (main's behaviour: every table time at the speed the reference read when the table was
begun) is computed from the same run: main's table is this table with every time scaled by
begun / nominal (the same timings, adjusted to another reference time), so its prediction of any
network is this run's nominal prediction times begun / nominal. `begun` is main's nominal: the 25th
percentile (nearest rank) of the reference's first readings, read from the table's first saved
version.

Usage: bench/latency_under_load.py --nas target/release/nas --out results/latency/under-load-DATE
Writes OUT.txt (every command, the machine, load and figures) and OUT.json (raw outputs).
Run it under the shared CPU lock: it is a measurement.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time

PRESETS = ["mixnet-s", "mixnet-m", "mixnet-l", "mobilenetv2", "mnasnet-a1"]


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().strip()


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def nearest_rank(xs, q):
    xs = sorted(xs)
    return xs[min(max(math.ceil(q * len(xs)), 1), len(xs)) - 1]


def accuracy(pairs):
    errors = [abs(p - m) / m for p, m in pairs]
    n = len(errors)
    return {
        "within_10": sum(e <= 0.10 for e in errors) / n,
        "within_5": sum(e <= 0.05 for e in errors) / n,
        "mape": 100.0 * sum(errors) / n,
    }


def fmt_acc(a):
    return f"within 10%: {100 * a['within_10']:5.1f}%  within 5%: {100 * a['within_5']:5.1f}%  MAPE {a['mape']:.1f}%"


class Log:
    def __init__(self):
        self.lines = []

    def __call__(self, line=""):
        print(line, flush=True)
        self.lines.append(line)


def run(log, args, what):
    """Runs `nas ARGS`, logs the command, load and wall time, returns parsed JSON stdout."""
    log(f"$ {' '.join(args)}")
    t = time.time()
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        log(f"# FAILED ({what}): {out.stderr.strip()}")
        sys.exit(1)
    log(f"# {time.time() - t:.1f}s, load after: {loadavg()}")
    return json.loads(out.stdout)


def presets_round(log, nas, res, table, repeats):
    """Each preset predicted, then timed twice (the stopwatch and its repeat)."""
    out = {}
    for p in PRESETS:
        pr = run(log, [nas, "latency", "--arch", p, "--predict", "--resolution", res, "--table", table, "--json"], p)
        measure = [nas, "latency", "--arch", p, "--measure", "--resolution", res, "--repeats", str(repeats), "--json"]
        me, again = run(log, measure, p), run(log, measure, p)
        out[p] = {"predict": pr, "measure": me, "measure_again": again}
    return out


def keep_first_version(path, stop, found):
    """Polls the table file until it first holds a nominal; keeps that version."""
    while not stop.is_set():
        try:
            with open(path) as f:
                table = json.load(f)
            if table.get("reference_ms"):
                found.append(table)
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)


def build_under_load(log, nas, table, res):
    busy = subprocess.Popen(["taskset", "-c", "0", "python3", "-c", "while True: pass"])
    log(f"# busy loop pid {busy.pid} pinned to core 0 (taskset -c 0 python3 -c 'while True: pass')")
    time.sleep(2)
    log(f"# load with the busy loop: {loadavg()}")
    stop, found = threading.Event(), []
    poll = threading.Thread(target=keep_first_version, args=(table, stop, found))
    poll.start()
    try:
        build = run(log, [nas, "latency", "--build-table", "--resolution", str(res), "--table", table, "--json"], "build")
    finally:
        stop.set()
        poll.join()
        busy.kill()
        busy.wait()
    log("# busy loop stopped")
    if not found:
        log("# FAILED: never saw the table's first version")
        sys.exit(1)
    return build, found[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nas", required=True, help="the nas binary (a release build)")
    ap.add_argument("--out", required=True, help="output path without extension")
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--settle", type=float, default=10.0, help="seconds idle before checking")
    ap.add_argument("--rounds", type=int, default=3, help="passes over the presets")
    ap.add_argument("--repeats", type=int, default=15, help="timed forwards per --measure (nas latency --repeats)")
    a = ap.parse_args()
    nas, res = os.path.abspath(a.nas), str(a.resolution)
    log = Log()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    log(f"# bench/latency_under_load.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}")
    log(f"# machine: {cpu_model()}, {os.cpu_count()} cores, {os.uname().sysname} {os.uname().release}")
    log(f"# settings: {a.resolution} px, batch 1, 1 thread, {a.samples} validation samples (seed {a.seed}), "
        f"{a.rounds} rounds over the presets, --measure --repeats {a.repeats}")
    log(f"# load before: {loadavg()}")
    raw = {"commit": commit, "cpu": cpu_model(), "resolution": a.resolution}
    with tempfile.TemporaryDirectory() as tmp:
        table = os.path.join(tmp, "table.json")
        raw["build"], first = build_under_load(log, nas, table, a.resolution)
        readings = first["reference_readings"]["fastest"]
        begun = nearest_rank(readings, 0.25)
        log(f"# table begun at reference {begun:.3f} ms (q25 of its first {len(readings)} readings: main's nominal)")
        raw["begun_reference_ms"], raw["first_readings"] = begun, readings
        time.sleep(a.settle)
        log(f"# idle for {a.settle:.0f}s; load: {loadavg()}")
        raw["repeats"] = a.repeats
        raw["rounds"] = [presets_round(log, nas, res, table, a.repeats) for _ in range(a.rounds)]
        v = run(log, [nas, "latency", "--validate", "--resolution", res, "--samples", str(a.samples),
                      "--seed", str(a.seed), "--table", table, "--json"], "validate")
        raw["validate"] = v
        with open(table) as f:
            raw["table_nominal"] = {"reference_ms": json.load(f)["reference_ms"]}
    log(f"# load after: {loadavg()}")
    report(log, raw, begun)
    with open(a.out + ".json", "w") as f:
        json.dump(raw, f, indent=1)
    with open(a.out + ".txt", "w") as f:
        f.write("\n".join(log.lines) + "\n")


def preset_errors(r, begun):
    """Relative errors against the first stopwatch median: now, main's prediction, the repeat."""
    p, m = r["predict"]["predicted"], r["measure"]["measured"]["median_ms"]
    before = p["nominal_ms"] * begun / p["speed"]["reference_nominal_ms"]
    return p["now_ms"] / m - 1, before / m - 1, r["measure_again"]["measured"]["median_ms"] / m - 1


def presets_hits(presets, begun):
    """How many presets each of (now, before, repeat) put within +-10%."""
    errs = [preset_errors(r, begun) for r in presets.values()]
    return [sum(abs(e[i]) <= 0.10 for e in errs) for i in range(3)]


def report_presets(log, presets, begun, title):
    log()
    log(f"== presets, {title}: --predict, then a --measure median, then --measure again ==")
    log(f"{'preset':<12} {'measured':>9} {'now':>8} {'err':>7} {'nominal':>8} {'before':>8} {'err':>7} {'again':>8} {'err':>7} factor")
    for name, r in presets.items():
        p, m = r["predict"]["predicted"], r["measure"]["measured"]["median_ms"]
        e_now, e_before, e_again = preset_errors(r, begun)
        before = p["nominal_ms"] * begun / p["speed"]["reference_nominal_ms"]
        again = r["measure_again"]["measured"]["median_ms"]
        log(f"{name:<12} {m:9.2f} {p['now_ms']:8.2f} {100 * e_now:+6.1f}% {p['nominal_ms']:8.2f} {before:8.2f} "
            f"{100 * e_before:+6.1f}% {again:8.2f} {100 * e_again:+6.1f}% {p['speed']['factor']:.2f}")
    h = presets_hits(presets, begun)
    log(f"within +-10% of the measured median: now {h[0]} of {len(presets)} (goal >= 4), before (main) {h[1]}, "
        f"the repeated --measure {h[2]}")


def report(log, raw, begun):
    log()
    for i, presets in enumerate(raw["rounds"], 1):
        report_presets(log, presets, begun, f"round {i} of {len(raw['rounds'])}")
    hits = [presets_hits(r, begun) for r in raw["rounds"]]
    counts = [len(r) for r in raw["rounds"]]
    log()
    log("== presets over all rounds: within +-10% of the first --measure median, per round ==")
    for name, col in [("now", 0), ("before (main)", 1), ("the repeated --measure", 2)]:
        per = [h[col] for h in hits]
        log(f"{name:<24} {' '.join(f'{h}/{n}' for h, n in zip(per, counts))}  total {sum(per)} of {sum(counts)}")
    v = raw["validate"]
    s = v["samples"]
    before = [x["predicted_ms"] * begun / v["nominal_reference_ms"] for x in s]
    log()
    log(f"== --validate, {len(s)} networks, load {v['load_before']} -> {v['load_after']} ==")
    log(f"nominal reference {v['nominal_reference_ms']:.3f} ms from {v['nominal_readings']} readings; begun at {begun:.3f} ms")
    log("against the raw median:")
    log(f"  after: table now      {fmt_acc(v['now_vs_raw_median'])}")
    log(f"  before (main): table  {fmt_acc(accuracy(zip(before, [x['raw_median_ms'] for x in s])))}")
    log(f"  MACs baseline         {fmt_acc(v['macs_baseline_vs_raw_median'])}")
    log(f"  table nominal         {fmt_acc(v['table_vs_raw_median'])}")
    log("against the raw minimum:")
    log(f"  after: table nominal  {fmt_acc(v['nominal_vs_raw_min'])}")
    log(f"  before (main): table  {fmt_acc(accuracy(zip(before, [x['raw_min_ms'] for x in s])))}")
    log(f"  MACs baseline         {fmt_acc(v['macs_baseline_vs_raw_min'])}")
    log("against the speed-adjusted 25th percentile (the same before and after: a unit change):")
    log(f"  table                 {fmt_acc(v['table'])}")
    log(f"  MACs baseline         {fmt_acc(v['macs_baseline'])}")


if __name__ == "__main__":
    main()
