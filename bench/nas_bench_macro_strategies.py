#!/usr/bin/env python3
"""Strategies compared on a NAS-Bench-Macro landscape (issue 42, part 2).

Runs `nas search` over configs/space-nas-bench-macro.json with `--evaluator table:FILE[:FIELD]`
for random, reinforce, ppo and evolution, SEEDS seeds each, the hard reward at the median
predicted latency of the space's 6,561 codes (32 px, 1 thread). The landscape is any table file
the table evaluator reads: the dev half of the benchmark by default, or a complete one (a NASWOT
score for every code).

A code the table does not hold is a failed trial (reward 0; `nas search` goes on to its trial
count and exits 1). Failed trials are not budget here: every curve's x axis is trials with a
score (re-proposals of a scored network included: the strategy spent a proposal on them), each
run is extended with `nas search --resume --trials` until it has the largest k of them, and the
failed trials are counted and reported beside. On a complete landscape nothing fails.

Latency comes from a frozen copy of this machine's lookup table (OUT/latency-table.json, its
`machine.cpu` marked frozen so `nas` reads it as another device's table: predictions from its
stored nominal times, nothing timed or added while the benchmark runs), so the target, every
trial's latency and the ceiling are one set of numbers. Writes under OUT:

  machine.json      command, lscpu model and cores, date, commit, load, the table and target
  slices.jsonl      one line per invocation: start, end, load, runs finished
  latency.json      predicted latency (ms) of every code, and the median used as the target
  runs/S-N/         each search's run folder; once finished, trials.jsonl (the raw output),
                    strategy.json and started.jsonl are gzipped (gunzip them to resume it)
  curves.json       per run, per scored trial k: best score meeting the target, distinct networks
  summary.md        per strategy and k: mean and 95% interval, the paired difference from random,
                    trials to reach random's reference mean, distinct networks, failed trials;
                    with --judge, the judge table's value of each run's best code (on a NASWOT
                    landscape, the dev half's accuracy of what a search on the score finds)

Usage (from the repository root):
  bench/nas_bench_macro_strategies.py NAS_BINARY [--out DIR] [--table FILE[:FIELD]]
      [--judge FILE[:FIELD]] [--reward hard|soft] [--seeds 10] [--trials 100,300,1000] [--reach 300]
      [--max-seconds S]
With --max-seconds it stops starting searches after S seconds and exits 3 if runs are left; run
it again to continue (finished runs are kept, an interrupted one is resumed).
"""

import argparse
import datetime
import gzip
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SPACE = "configs/space-nas-bench-macro.json"
TRUTH = "../shared/benchmarks/nas-bench-macro/cifar10-dev.json"
STRATEGIES = ["random", "reinforce", "ppo", "evolution"]
# Together these three codes hold every searched layer's every option: predicting them fills
# any part this machine's table lacks before it is frozen.
EVERY_PART = ["00000000", "11111111", "22222222"]
# A run that fails this many proposals per wanted scored trial is given up (reported, not hidden).
MAX_PROPOSALS_PER_SCORED = 20


def codes():
    return ["".join(str(n // 3**i % 3) for i in reversed(range(8))) for n in range(3**8)]


def load():
    return [round(x, 2) for x in os.getloadavg()]


def machine(nas, out, extra=None):
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("Model name")), "?")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    info = {
        "command": " ".join(sys.argv),
        "cpu_model": model,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,
        "load_1_5_15": load(),
        "nas": nas,
        **(extra or {}),
    }
    (out / "machine.json").write_text(json.dumps(info, indent=2) + "\n")


def write_atomic(path, text):
    write_bytes_atomic(path, text.encode())


def write_bytes_atomic(path, data):
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def frozen_table(nas, out):
    """OUT/latency-table.json: this machine's 32 px, 1-thread table, completed for the space
    and frozen (see the module doc)."""
    path = out / "latency-table.json"
    if path.exists():
        return path
    source = None
    for code in EVERY_PART:
        args = ["latency", "--arch", f"nas-bench-macro:{code}", "--predict", "--resolution", "32", "--threads", "1"]
        source = json.loads(subprocess.run([nas, *args, "--json"], check=True, capture_output=True, text=True).stdout)
    table = json.loads(Path(source["predicted"]["table"]).read_text())
    table["machine"]["cpu"] += " (frozen copy)"
    write_atomic(path, json.dumps(table, indent=1) + "\n")
    return path


def latencies(nas, out, table=None):
    """Every code's predicted latency (ms) and their median; from `table` when given."""
    path = out / "latency.json"
    if path.exists():
        return json.loads(path.read_text())
    first, *rest = codes()
    extra = ["--table", str(table)] if table else []

    def predict(code):
        args = ["latency", "--arch", f"nas-bench-macro:{code}", "--predict", "--resolution", "32", "--threads", "1"]
        r = subprocess.run([nas, *args, *extra, "--json"], check=True, capture_output=True, text=True)
        return code, json.loads(r.stdout)["predicted"]["ms"]

    # One code first, so the parts a table lacks are measured and added before two run at once.
    ms = dict([predict(first)])
    with ThreadPoolExecutor(2) as pool:
        ms.update(pool.map(predict, rest))
    result = {"median_ms": statistics.median(ms.values()), "ms": ms}
    write_atomic(path, json.dumps(result, indent=1) + "\n")
    return result


def table_spec(spec):
    """FILE[:FIELD] split as `nas search --evaluator table:...` splits it."""
    file, _, field = spec.rpartition(":")
    if file and field and not any(c in field for c in "/."):
        return file, field
    return spec, "mean_acc"


def load_landscape(file, field):
    try:
        table = json.loads(Path(file).read_text())
    except (OSError, ValueError) as e:
        sys.exit(f"{file}: cannot read it as JSON ({e})")
    try:
        return {code: float(entry[field]) for code, entry in table.items()}
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        sys.exit(f"{file}: every entry needs a number in field {field!r} ({type(e).__name__}: {e})")


def read_trials(run):
    path, packed = run / "trials.jsonl", run / "trials.jsonl.gz"
    if packed.exists():
        text = gzip.decompress(packed.read_bytes()).decode()
    elif path.exists():
        text = path.read_text()
    else:
        return []
    return sorted((json.loads(l) for l in text.splitlines() if l.strip()), key=lambda t: t["id"])


# A finished run's bulky files, gzipped to be committed (the journal repeats each architecture;
# the controller checkpoint holds its weights and Adam moments). Unpacked to resume.
PACKED = ["trials.jsonl", "strategy.json", "started.jsonl"]


def pack(run):
    for name in PACKED:
        path = run / name
        if path.exists():
            write_bytes_atomic(run / (name + ".gz"), gzip.compress(path.read_bytes(), mtime=0))
            path.unlink()


def unpack(run):
    for name in PACKED:
        packed = run / (name + ".gz")
        if packed.exists():
            write_bytes_atomic(run / name, gzip.decompress(packed.read_bytes()))
            packed.unlink()


def scored(trial):
    """A trial with a score: evaluated, or a cached copy of an evaluated one."""
    return trial.get("evaluation") is not None


def round_up(n, m=8):
    return -(-n // m) * m


def search(nas, run, spec, strategy, seed, target, reward, wanted):
    """Runs (or resumes) one search until it holds `wanted` scored trials; False if it gave up."""
    base = ["search", "--space", SPACE, "--evaluator", f"table:{spec}", "--strategy", strategy,
            "--seed", str(seed), "--target-latency", f"{target}ms", "--reward", reward,
            "--latency-table", str(run.parent.parent / "latency-table.json"), "--workers", "1", "--quiet"]
    while True:
        trials = read_trials(run)
        have = sum(map(scored, trials))
        if have >= wanted or len(trials) >= MAX_PROPOSALS_PER_SCORED * wanted:
            pack(run)
            return have >= wanted
        unpack(run)
        # Proposals per scored trial so far; batches are 4 or 8 trials, and a run stopped at a
        # whole batch resumes exactly as an uninterrupted one would go on.
        rate = len(trials) / have if have else 2.0
        total = round_up(len(trials) + math.ceil((wanted - have) * rate * 1.05)) if trials else round_up(wanted)
        args = base + ["--trials", str(total)]
        args += ["--resume", str(run)] if (run / "config.json").exists() else ["--out", str(run)]
        rc = subprocess.run([nas, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # Exit 1 means some trials failed (codes the table does not hold); anything else is an error.
        if rc.returncode not in (0, 1):
            sys.exit(f"nas {' '.join(args)} exited {rc.returncode}: {rc.stderr[-1500:]}")


def curve(run, landscape, lat, target, wanted):
    """Per scored trial k = 1..wanted: the best landscape score among scored trials meeting the
    target (None before the first), distinct networks evaluated, failed trials so far."""
    best, out, distinct, failed = None, {"best": [], "best_code": [], "distinct": [], "failed": []}, 0, 0
    best_code = None
    mismatched = 0
    for t in read_trials(run):
        if len(out["best"]) == wanted:
            break
        if not scored(t):
            failed += 1
            continue
        code = t["arch"]["name"].split(":")[1]
        e = t["evaluation"]
        if abs(e.get("score", e.get("val_accuracy")) * 100 - landscape[code]) > 1e-9:
            sys.exit(f"{run}: trial {t['id']} scored {code} unlike the table; was the run made with another table?")
        mismatched += abs(e["latency_ms"] - lat["ms"][code]) > 1e-9
        distinct += t["status"] == "ok"
        if e["latency_ms"] <= target and (best is None or landscape[code] > best):
            best, best_code = landscape[code], code
        out["best"].append(best)
        out["best_code"].append(best_code)
        out["distinct"].append(distinct)
        out["failed"].append(failed)
    out["latency_mismatches"] = mismatched
    return out


def t_quantile(p, df):
    """Student's t quantile by bisection on its CDF (the regularised incomplete beta)."""

    def betacf(a, b, x):
        c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
        d = 1.0 / d
        h = d
        for m in range(1, 200):
            for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                        -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
                d = 1.0 / (1.0 + num * d)
                c = 1.0 + num / c
                h *= d * c
        return h

    def cdf(t):
        x = df / (df + t * t)
        lbeta = math.lgamma(df / 2) + math.lgamma(0.5) - math.lgamma(df / 2 + 0.5)
        tail = math.exp(df / 2 * math.log(x) + 0.5 * math.log(1 - x) - lbeta) * betacf(df / 2, 0.5, x) / (df / 2)
        return 1 - tail / 2 if t > 0 else tail / 2

    lo, hi = 0.0, 1000.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


def interval(values):
    """Mean and 95% t interval; None where fewer than two values."""
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return None
    mean = statistics.mean(values)
    half = t_quantile(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": len(values)}


def spread(values):
    """Mean, and the range as low and high (failed-trial counts: how far seeds differ)."""
    return {"mean": statistics.mean(values), "low": min(values), "high": max(values)} if values else None


def cell(i, signed=False, digits=2):
    if i is None:
        return "n/a"
    f = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    return f"{f.format(i['mean'])} [{f.format(i['low'])}, {f.format(i['high'])}]"


def first_reach(best, level):
    return next((k + 1 for k, b in enumerate(best) if b is not None and b >= level), None)


def figures(curves, strategies, ks, reach, judge=None):
    """Per strategy and k: the summary numbers (see the module doc); with `judge` (code to value),
    also the judge's value of each run's best code, where it holds one."""
    by = {s: {c["seed"]: c for c in curves.values() if c["strategy"] == s} for s in strategies}
    seeds = sorted(set.intersection(*(set(v) for v in by.values())))
    at = lambda s, k: [by[s][seed]["best"][k - 1] if len(by[s][seed]["best"]) >= k else None for seed in seeds]
    ref = interval(at("random", reach))
    table = {}
    for s in strategies:
        rows = {}
        for k in ks:
            mine, rand = at(s, k), at("random", k)
            diffs = [a - b if a is not None and b is not None else None for a, b in zip(mine, rand)]
            rows[k] = {
                "best": interval(mine),
                "diff_vs_random": interval(diffs) if s != "random" else None,
                "distinct": interval([by[s][seed]["distinct"][k - 1] for seed in seeds if len(by[s][seed]["distinct"]) >= k]),
                "failed": spread([by[s][seed]["failed"][k - 1] for seed in seeds if len(by[s][seed]["failed"]) >= k]),
                "no_trial_meeting_target": sum(v is None for v in mine),
            }
            if judge is not None:
                codes = [by[s][seed]["best_code"][k - 1] if len(by[s][seed]["best_code"]) >= k else None for seed in seeds]
                rows[k]["judged"] = interval([judge.get(c) for c in codes])
        reached = [first_reach(by[s][seed]["best"], ref["mean"]) if ref else None for seed in seeds]
        table[s] = {"k": rows, "reach": reached}
    return {"seeds": seeds, "reference": ref, "strategies": table}


def summary(out, figs, ceiling, meta, ks, reach):
    kmax, seeds = max(ks), figs["seeds"]
    lines = [
        f"# Strategies on {meta['table']} (field {meta['field']})",
        "",
        f"`{meta['command']}`; {meta['date']}, {meta['cpu_model']} ({meta['cores']} cores), commit {meta['commit'][:12]};"
        f" wall {meta['wall_seconds'] / 60:.1f} min over {meta['slices']} invocation(s) (slices.jsonl: load).",
        "",
        f"Reward {meta['reward']}, target {meta['target_ms']} ms: the median predicted latency of the 6,561 codes"
        " (32 px, 1 thread, frozen table latency-table.json).",
        f"Ceiling: the best {meta['field']} among the {ceiling['meeting']} codes of the table meeting the target is"
        f" **{ceiling['best']:.2f}** ({ceiling['best_code']}; their median {ceiling['median']:.2f});"
        f" the table holds {ceiling['held']} of 6,561 codes.",
        "",
        f"x axis: **trials with a score** (a code the table does not hold is a failed trial, reported in the last"
        f" table below and not counted). Seeds {seeds[0]}-{seeds[-1]} ({len(seeds)}); each cell is the mean and 95%"
        " t interval over seeds.",
        "",
        f"Best {meta['field']} among scored trials meeting the target after k scored trials:",
        "",
        "| strategy | " + " | ".join(f"k = {k}" for k in ks) + " |",
        "|---" * (len(ks) + 1) + "|",
    ]
    S = figs["strategies"]
    for s, f in S.items():
        lines.append(f"| {s} | " + " | ".join(cell(f["k"][k]["best"]) for k in ks) + " |")
    lines += ["", "Difference from random in the same benchmark run, paired by seed (strategy - random):", "",
              "| strategy | " + " | ".join(f"k = {k}" for k in ks) + " |", "|---" * (len(ks) + 1) + "|"]
    for s, f in S.items():
        if s != "random":
            lines.append(f"| {s} | " + " | ".join(cell(f["k"][k]["diff_vs_random"], signed=True) for k in ks) + " |")
    if meta.get("judge"):
        lines += ["", f"The best trials judged by {meta['judge']}: its value for the code of the best trial meeting the"
                  " target after k scored trials (over the seeds whose code it holds; n of them):", "",
                  "| strategy | " + " | ".join(f"k = {k}" for k in ks) + " |", "|---" * (len(ks) + 1) + "|"]
        for s, f in S.items():
            judged = [f["k"][k]["judged"] for k in ks]
            lines.append(f"| {s} | " + " | ".join(f"{cell(j)} (n = {j['n']})" if j else "n/a (under 2 judged)" for j in judged) + " |")
    ref = figs["reference"]
    lines += ["", f"Scored trials to reach random's {reach}-trial mean ({ref['mean']:.2f}), per seed"
              f" (- where not within {kmax}):", "", "| strategy | median | reached | per seed |", "|---|---|---|---|"]
    for s, f in S.items():
        got = [r for r in f["reach"] if r is not None]
        med = statistics.median([r if r is not None else math.inf for r in f["reach"]])
        med = f"{med:g}" if med != math.inf else f">{kmax}"
        per = " ".join(str(r) if r is not None else "-" for r in f["reach"])
        lines.append(f"| {s} | {med} | {len(got)} of {len(f['reach'])} | {per} |")
    lines += ["", "Distinct networks evaluated among the first k scored trials (the rest are re-proposals), and"
              " failed trials (proposals of codes the table lacks, repeats included) on the way, mean [min, max] over seeds:", "",
              "| strategy | " + " | ".join(f"distinct, k = {k}" for k in ks) + " | "
              + " | ".join(f"failed, k = {k}" for k in ks) + " |", "|---" * (2 * len(ks) + 1) + "|"]
    for s, f in S.items():
        lines.append(f"| {s} | " + " | ".join(cell(f["k"][k]["distinct"], digits=1) for k in ks) + " | "
                     + " | ".join(cell(f["k"][k]["failed"], digits=1) for k in ks) + " |")
    if any((f["k"][kmax]["failed"] or {}).get("high") for f in S.values()):
        lines += ["", "Failed trials are outside the budget here, but each strategy still observes them with reward 0"
                  " (the controller learns from them; evolution's population holds them), so on a partial table the"
                  " comparison still depends on which codes the table holds."]
    missing = {s: {k: f["k"][k]["no_trial_meeting_target"] for k in ks} for s, f in S.items()}
    if any(v for m in missing.values() for v in m.values()):
        lines += ["", f"Runs with no scored trial meeting the target yet (left out of the means): {missing}"]
    lines += ["", f"Trials whose journalled latency differs from latency.json: {meta['latency_mismatches']}."]
    write_atomic(out / "summary.md", "\n".join(lines) + "\n")
    return lines


def slice_record(out, started, t0, done, total):
    line = {"command": " ".join(sys.argv), "start": started, "end": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "wall_seconds": round(time.time() - t0, 1), "load_1_5_15_end": load(), "runs_done": done, "runs": total}
    with open(out / "slices.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")


def arguments():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("nas")
    p.add_argument("--out", default="results/nas-bench-macro-strategies")
    p.add_argument("--table", default=TRUTH, help="landscape as FILE[:FIELD] (default: the dev half, mean_acc)")
    p.add_argument("--judge", help="also judge each run's best code by this table, FILE[:FIELD] (e.g. the dev half on a NASWOT landscape)")
    p.add_argument("--reward", default="hard", choices=["hard", "soft"])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--trials", default="100,300,1000", help="checkpoints k in scored trials; one run reaches the largest")
    p.add_argument("--reach", type=int, default=300, help="random's mean at this k is the level in 'trials to reach'")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--max-seconds", type=float, default=None)
    a = p.parse_args()
    a.ks = sorted({int(k) for k in a.trials.split(",")})
    a.strategies = a.strategies.split(",")
    if a.ks[0] < 1 or a.reach not in a.ks or "random" not in a.strategies or a.seeds < 2:
        p.error("--trials: positive counts including --reach; --strategies must include random; --seeds at least 2")
    unknown = set(a.strategies) - set(STRATEGIES)
    if unknown:
        p.error(f"--strategies: unknown {sorted(unknown)}; allowed: {', '.join(STRATEGIES)}")
    return a


def main():
    a = arguments()
    t0, started = time.time(), datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    nas, out = os.path.abspath(a.nas), Path(a.out)
    file, field = table_spec(a.table)
    landscape = load_landscape(file, field)
    judge = load_landscape(*table_spec(a.judge)) if a.judge else None
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "machine.json").exists():
        machine(nas, out, {"table": file, "field": field, "reward": a.reward})
    lat = latencies(nas, out, frozen_table(nas, out))
    target = round(lat["median_ms"], 2)
    kmax, spec = max(a.ks), f"{os.path.abspath(file)}:{field}"
    runs = [(s, seed) for seed in range(a.seeds) for s in a.strategies]
    done, gave_up = 0, []
    for s, seed in runs:
        if a.max_seconds is not None and time.time() - t0 > a.max_seconds:
            break
        gave_up += [] if search(nas, out / "runs" / f"{s}-{seed}", spec, s, seed, target, a.reward, kmax) else [f"{s}-{seed}"]
        done += 1
        print(f"{s} seed {seed}: done ({time.time() - t0:.0f} s)", flush=True)
    slice_record(out, started, t0, done, len(runs))
    if done < len(runs):
        print(f"{len(runs) - done} runs left; run the same command again to continue", file=sys.stderr)
        sys.exit(3)
    curves = {f"{s}-{seed}": {"strategy": s, "seed": seed, **curve(out / "runs" / f"{s}-{seed}", landscape, lat, target, kmax)}
              for s, seed in runs}
    meeting = sorted(((v, c) for c, v in landscape.items() if lat["ms"][c] <= target), reverse=True)
    ceiling = {"best": meeting[0][0], "best_code": meeting[0][1], "median": statistics.median(v for v, _ in meeting),
               "meeting": len(meeting), "held": len(landscape)}
    figs = figures(curves, a.strategies, a.ks, a.reach, judge)
    write_atomic(out / "curves.json", json.dumps({"target_ms": target, "table": file, "field": field, "ks": a.ks,
                                                   "ceiling": ceiling, "gave_up": gave_up, "figures": figs,
                                                   "curves": curves}) + "\n")
    meta = json.loads((out / "machine.json").read_text())
    slices = [json.loads(l) for l in (out / "slices.jsonl").read_text().splitlines()]
    meta |= {"judge": a.judge, "target_ms": target, "wall_seconds": sum(s["wall_seconds"] for s in slices), "slices": len(slices),
             "latency_mismatches": sum(c["latency_mismatches"] for c in curves.values())}
    print("\n".join(summary(out, figs, ceiling, meta, a.ks, a.reach)))
    if gave_up:
        sys.exit(f"gave up on {gave_up}: over {MAX_PROPOSALS_PER_SCORED} proposals per wanted scored trial")


if __name__ == "__main__":
    main()
