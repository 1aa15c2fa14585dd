#!/usr/bin/env python3
"""The default `nas search` on NAS-Bench-Macro's space and real CIFAR-10 (evaluator issue, item 6).

Runs `nas search --space configs/space-nas-bench-macro.json --data DATA --target-latency T` with
the evaluator of configs/search.json (no --evaluator flag), T the median predicted latency of
the space's 6,561 codes on this machine (32 px, 1 thread), for each reward (soft, hard, and hard
with beta -10) and SEEDS seeds, and looks each search's found network (best.json) up in the dev half
of the benchmark; the summary covers every finished run under OUT. Half of the codes are held out of this repository; a found code among them has
no truth here and is reported as such, never replaced. Writes under OUT:

  machine.json     command, lscpu model and cores, date and git commit of the last invocation
  latency.json     predicted latency (ms) of every code on this machine, and the median
  runs/R-S/        each search's run folder (run.txt: command, start, end, load)
  summary.json     per run: the found code, its truth, its rank among the dev codes meeting T
  summary.md       the table docs/fidelity.md quotes

Usage: bench/nas_bench_macro_search.py NAS_BINARY DATA [OUT] [TRIALS] [SEEDS] [REWARDS] (from the
repository root; DATA is a CIFAR-10 class-folder tree; REWARDS a comma list of soft, hard, strict).
"""

import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from nas_bench_macro_strategies import SPACE, TRUTH, latencies, machine


def load():
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# Reward settings: the soft default of MnasNet, the hard constraint (the default of
# configs/search.json), and a strict one whose beta makes 4% over the target cost a third.
REWARDS = {"soft": ["--reward", "soft"], "hard": ["--reward", "hard"], "strict": ["--reward", "hard", "--beta", "-10"]}


def search(nas, data, run, reward, seed, trials, target):
    if (run / "best.json").exists() and (run / "run.txt").exists():
        return
    args = ["search", "--space", SPACE, "--data", data, "--target-latency", f"{target}ms", *REWARDS[reward],
            "--seed", str(seed), "--trials", str(trials), "--quiet"]
    args += ["--resume", str(run)] if run.exists() else ["--out", str(run)]
    started, load0, t0 = datetime.datetime.now(datetime.timezone.utc), load(), time.time()
    r = subprocess.run([nas, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"nas {' '.join(args)} exited {r.returncode}: {r.stderr[-2000:]}")
    (run / "run.txt").write_text(
        f"command: nas {' '.join(args)}\nstarted: {started.isoformat(timespec='seconds')}, load {load0}\n"
        f"exit: 0; wall {time.time() - t0:.0f} s, load at end {load()}\n{r.stderr}"
    )


def found(run):
    best = json.loads((run / "best.json").read_text())
    return best["name"].split(":")[1]


def best_meeting_in_dev(run, truth, ms, target):
    """The best-reward trial that meets the target among those the dev half holds: the search's
    own ranking looked up where a truth exists (the split is random, so this estimates where the
    search's top lands; it is the best of about half its trials, not what best.json names)."""
    trials = [json.loads(l) for l in (run / "trials.jsonl").read_text().splitlines()]
    ok = [t for t in trials if t["status"] == "ok" and ms[t["arch"]["name"].split(":")[1]] <= target]
    ok.sort(key=lambda t: (-t["reward"], t["id"]))
    codes = [t["arch"]["name"].split(":")[1] for t in ok]
    return next((c for c in codes if c in truth), None), len(set(codes))


def main():
    nas, data = os.path.abspath(sys.argv[1]), sys.argv[2]
    out = Path(sys.argv[3] if len(sys.argv) > 3 else "results/nas-bench-macro-search")
    trials = int(sys.argv[4]) if len(sys.argv) > 4 else 300
    seeds = int(sys.argv[5]) if len(sys.argv) > 5 else 3
    rewards = sys.argv[6].split(",") if len(sys.argv) > 6 else list(REWARDS)
    out.mkdir(parents=True, exist_ok=True)
    machine(nas, out)
    lat = latencies(nas, out)
    target = round(lat["median_ms"], 2)
    truth = json.loads(Path(TRUTH).read_text())
    meeting = sorted((e["mean_acc"] for c, e in truth.items() if lat["ms"][c] <= target), reverse=True)
    for reward in rewards:
        for seed in range(seeds):
            search(nas, data, out / "runs" / f"{reward}-{seed}", reward, seed, trials, target)
    # Every finished run under OUT, also those an earlier invocation ran with other settings.
    finished = [r for r in (out / "runs").iterdir() if (r / "best.json").exists() and (r / "run.txt").exists()]
    order = {name: i for i, name in enumerate(REWARDS)}
    finished.sort(key=lambda r: (order[r.name.rsplit("-", 1)[0]], int(r.name.rsplit("-", 1)[1])))
    rows = []
    for run in finished:
        reward, seed = run.name.rsplit("-", 1)[0], int(run.name.rsplit("-", 1)[1])
        code = found(run)
        acc = truth.get(code, {}).get("mean_acc")
        rank = None if acc is None else sum(a > acc for a in meeting) + 1
        dev_code, visited = best_meeting_in_dev(run, truth, lat["ms"], target)
        dev_acc = truth[dev_code]["mean_acc"] if dev_code else None
        dev_rank = None if dev_acc is None else sum(a > dev_acc for a in meeting) + 1
        row = {"reward": reward, "seed": seed, "code": code, "latency_ms": lat["ms"][code],
               "meets_target": lat["ms"][code] <= target, "true_acc": acc, "rank_among_meeting": rank,
               "top_percent": None if rank is None else 100.0 * rank / len(meeting),
               "distinct_codes_meeting_target": visited, "best_meeting_dev_code": dev_code,
               "best_meeting_dev_acc": dev_acc, "best_meeting_dev_rank": dev_rank,
               "best_meeting_dev_top_percent": None if dev_rank is None else 100.0 * dev_rank / len(meeting)}
        rows.append(row)
        print(json.dumps(row))
    summary = {"target_ms": target, "meeting_dev_codes": len(meeting), "best_meeting": meeting[0],
               "median_meeting": statistics.median(meeting), "top5_threshold": meeting[len(meeting) // 20 - 1],
               "trials": trials, "runs": rows}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    lines = [
        f"Target {target} ms: median predicted latency of the 6,561 codes on this machine (32 px, 1 thread).",
        f"{len(meeting)} dev codes meet it: best {meeting[0]:.2f}%, top-5% threshold "
        f"{summary['top5_threshold']:.2f}%, median {summary['median_meeting']:.2f}% (a random feasible pick).",
        "",
        f"Found network (best.json) of each search, {trials} trials:",
        "",
        "| reward | seed | found code (best.json) | predicted latency (ms) | true accuracy (%) | rank among dev codes meeting the target | best-reward trial meeting the target, among dev codes: code, accuracy, rank |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        acc = "held-out half (no truth here)" if r["true_acc"] is None else f"{r['true_acc']:.2f}"
        rank = "-" if r["rank_among_meeting"] is None else f"{r['rank_among_meeting']} (top {r['top_percent']:.1f}%)"
        meets = "" if r["meets_target"] else " (over the target)"
        dev = "-" if r["best_meeting_dev_code"] is None else (
            f"{r['best_meeting_dev_code']}, {r['best_meeting_dev_acc']:.2f}, "
            f"{r['best_meeting_dev_rank']} (top {r['best_meeting_dev_top_percent']:.1f}%)")
        lines.append(f"| {r['reward']} | {r['seed']} | {r['code']} | {r['latency_ms']:.2f}{meets} | {acc} | {rank} | {dev} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
