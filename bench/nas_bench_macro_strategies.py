#!/usr/bin/env python3
"""Strategies compared on NAS-Bench-Macro's real accuracies (issue 20, part 4).

Runs `nas search` over configs/space-nas-bench-macro.json with the table evaluator on the dev
half of the benchmark, for random, reinforce, ppo and evolution, SEEDS seeds x TRIALS trials
each, with a latency target at the median predicted latency of the space's 6,561 codes (lookup
table at 32 px, 1 thread, this machine). A code the dev half does not hold is a failed
trial with reward 0 (docs/spaces.md says why). Writes under OUT:

  machine.json      command, lscpu model and cores, date, nas version (git commit)
  latency.json      predicted latency (ms) of every code, and the median used as the target
  runs/S-N/         each search's run folder (trials.jsonl is the raw output)
  curves.json       per (strategy, seed): true accuracy of the best-reward trial after k trials
  summary.md        mean and spread over seeds at k = 10, 25, 50, 100, and the ceiling

Usage: bench/nas_bench_macro_strategies.py NAS_BINARY [OUT] (from the repository root).
"""

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SPACE = "configs/space-nas-bench-macro.json"
TRUTH = "../shared/benchmarks/nas-bench-macro/cifar10-dev.json"
STRATEGIES = ["random", "reinforce", "ppo", "evolution"]
SEEDS = 10
TRIALS = 100
KS = [10, 25, 50, 100]


def codes():
    return ["".join(str(n // 3**i % 3) for i in reversed(range(8))) for n in range(3**8)]


def machine(nas, out):
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
        "nas": nas,
    }
    (out / "machine.json").write_text(json.dumps(info, indent=2) + "\n")


def latencies(nas, out):
    path = out / "latency.json"
    if path.exists():
        return json.loads(path.read_text())
    # One code first, so the parts the table lacks are measured and added before two run at once.
    first, *rest = codes()

    def predict(code):
        args = ["latency", "--arch", f"nas-bench-macro:{code}", "--predict", "--resolution", "32", "--threads", "1"]
        r = subprocess.run([nas, *args, "--json"], check=True, capture_output=True, text=True)
        return code, json.loads(r.stdout)["predicted"]["ms"]

    ms = dict([predict(first)])
    with ThreadPoolExecutor(2) as pool:
        ms.update(pool.map(predict, rest))
    result = {"median_ms": statistics.median(ms.values()), "ms": ms}
    path.write_text(json.dumps(result, indent=1) + "\n")
    return result


def search(nas, out, strategy, seed, target):
    run = out / "runs" / f"{strategy}-{seed}"
    if (run / "trials.jsonl").exists() and len((run / "trials.jsonl").read_text().splitlines()) >= TRIALS:
        return run
    args = ["search", "--space", SPACE, "--evaluator", f"table:{TRUTH}", "--strategy", strategy,
            "--seed", str(seed), "--trials", str(TRIALS), "--target-latency", f"{target}ms",
            "--workers", "1", "--quiet"]
    args += ["--resume", str(run)] if run.exists() else ["--out", str(run)]
    # Exit 1 means some trials failed (codes outside the dev half); anything else is an error.
    rc = subprocess.run([nas, *args], stdout=subprocess.DEVNULL).returncode
    if rc not in (0, 1):
        sys.exit(f"nas search {strategy} seed {seed} exited {rc}")
    return run


def curve(run, truth):
    """True accuracy of the best-reward trial among trials 1..k, for k = 1..TRIALS."""
    trials = sorted((json.loads(l) for l in (run / "trials.jsonl").read_text().splitlines()), key=lambda t: t["id"])
    best, out, failed = None, [], 0
    for t in trials[:TRIALS]:
        if t["status"] == "ok" and (best is None or t["reward"] > best["reward"]):
            best = t
        failed += t.get("evaluation") is None  # a failed trial, or a cached copy of one
        code = best and best["arch"]["name"].split(":")[1]
        out.append(truth[code]["mean_acc"] if best else None)
    return out, failed


def spread(values):
    values = [v for v in values if v is not None]
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f} [{min(values):.2f}, {max(values):.2f}]"


def main():
    nas = os.path.abspath(sys.argv[1])
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "results/nas-bench-macro")
    out.mkdir(parents=True, exist_ok=True)
    machine(nas, out)
    lat = latencies(nas, out)
    target = round(lat["median_ms"], 2)
    truth = json.loads(Path(TRUTH).read_text())
    curves = {}
    for strategy in STRATEGIES:
        for seed in range(SEEDS):
            run = search(nas, out, strategy, seed, target)
            acc, failed = curve(run, truth)
            curves[f"{strategy}-{seed}"] = {"strategy": strategy, "seed": seed, "failed": failed, "best_acc": acc}
            print(f"{strategy} seed {seed}: best-reward trial's accuracy {acc[-1]} ({failed} codes not in dev)")
    (out / "curves.json").write_text(json.dumps({"target_ms": target, "curves": curves}, indent=1) + "\n")
    meeting = [e["mean_acc"] for c, e in truth.items() if lat["ms"][c] <= target]
    lines = [
        f"Target {target} ms (median predicted latency of the 6,561 codes at 32 px, 1 thread).",
        f"Ceiling: best dev accuracy among the {len(meeting)} dev codes meeting it: {max(meeting):.2f}%"
        f" (median of them {statistics.median(meeting):.2f}%).",
        "",
        "True accuracy (%) of the best-reward trial after k trials, mean ± sd [min, max] over "
        f"{SEEDS} seeds:",
        "",
        "| strategy | " + " | ".join(f"k = {k}" for k in KS) + " | trials not in dev (mean) |",
        "|---" * (len(KS) + 2) + "|",
    ]
    for strategy in STRATEGIES:
        runs = [c for c in curves.values() if c["strategy"] == strategy]
        cells = [spread([r["best_acc"][k - 1] for r in runs]) for k in KS]
        wasted = statistics.mean(r["failed"] for r in runs)
        lines.append(f"| {strategy} | " + " | ".join(cells) + f" | {wasted:.1f} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
