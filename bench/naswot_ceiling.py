#!/usr/bin/env python3
"""The NASWOT ceiling on NAS-Bench-Macro (issue 42, part 1): what a perfect optimiser of the
default score would find under the latency target.

Reads a landscape table written by `nas score --all` (per code: `score`, the search's score in
percent; `naswot`, the raw log-determinant; `latency_ms`, the latency the search predicts) and
the dev half of the benchmark's truth. The target is the median predicted latency of the 6,561
codes, rounded to 0.01 ms as bench/nas_bench_macro_strategies.py rounds it; a code meets it at
latency <= target. The codes meeting it are ranked by score (ties by raw NASWOT, then code), and
the top 1, 5 and 10 are looked up in the truth: their true accuracy and their rank among the dev
codes meeting the target (1 = the most accurate). A code the dev half does not hold is listed
as such, never replaced; the same top-k among dev codes only is given beside it.

Usage: bench/naswot_ceiling.py TABLE [TRUTH] [OUT_PREFIX] [--latency=LATENCY_JSON]
  TABLE        results/nas-bench-macro/naswot-landscape/table.json
  TRUTH        ../shared/benchmarks/nas-bench-macro/cifar10-dev.json (default)
  OUT_PREFIX   writes OUT_PREFIX.json and OUT_PREFIX.md (default: stdout only)
  --latency    a latency.json ({"ms": {code: ms}}) instead of the table's latency_ms, which a
               table still being filled must be given (the target needs every code)
"""

import json
import statistics
import sys
from pathlib import Path

CODES = 3**8
TOPS = [1, 5, 10]


def spearman(xs, ys):
    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2 + 1
            i = j + 1
        return r

    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.mean(rx), statistics.mean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    return cov / (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5


def ceiling(table, truth, ms):
    if len(ms) != CODES:
        sys.exit(f"latency: {len(ms)} of {CODES} codes; the target needs all (give --latency FILE)")
    target = round(statistics.median(ms.values()), 2)
    meeting = [c for c in ms if ms[c] <= target]
    dev = sorted((truth[c]["mean_acc"] for c in meeting if c in truth), reverse=True)
    rank = lambda acc: 1 + sum(1 for a in dev if a > acc)
    key = lambda c: (-table[c]["score"], -(table[c].get("naswot") or float("-inf")), c)
    scored = sorted((c for c in meeting if c in table), key=key)

    def entry(c, place):
        e = {"place": place, "code": c, "score": table[c]["score"], "naswot": table[c].get("naswot"), "latency_ms": ms[c]}
        if c in truth:
            e |= {"mean_acc": truth[c]["mean_acc"], "rank": rank(truth[c]["mean_acc"]), "of": len(dev)}
        return e

    def tops(codes):
        out = {}
        for k in TOPS:
            top = [entry(c, i + 1) for i, c in enumerate(codes[:k])]
            known = [e for e in top if "mean_acc" in e]
            out[k] = {
                "codes": top,
                "with_truth": len(known),
                "best_true": max((e["mean_acc"] for e in known), default=None),
                "best_rank": min((e["rank"] for e in known), default=None),
                "mean_true": statistics.mean(e["mean_acc"] for e in known) if known else None,
                "first_true": known[0]["mean_acc"] if known else None,
            }
        return out

    both = [c for c in scored if c in truth]
    return {
        "target_ms": target,
        "codes_scored": len(table),
        "meeting_target": len(meeting),
        "meeting_target_scored": len(scored),
        "dev_meeting_target": len(dev),
        "dev_best": dev[0],
        "dev_median": statistics.median(dev),
        "dev_top5pct_threshold": dev[max(0, round(0.05 * len(dev)) - 1)],
        "spearman_dev_meeting_target": spearman([table[c]["score"] for c in both], [truth[c]["mean_acc"] for c in both]),
        "top_all": tops(scored),
        "top_dev_only": tops(both),
    }


def line(e):
    lat = f"{e['latency_ms']:.2f}"
    naswot = "singular" if e["naswot"] is None else f"{e['naswot']:.2f}"
    truth = "held-out half (no truth here)" if "mean_acc" not in e else f"{e['mean_acc']:.2f}"
    rank = "-" if "rank" not in e else f"{e['rank']} of {e['of']} (top {100 * e['rank'] / e['of']:.1f}%)"
    return f"| {e['place']} | {e['code']} | {e['score']:.3f} | {naswot} | {lat} | {truth} | {rank} |"


def markdown(r, table_path):
    out = [
        f"NASWOT ceiling from {table_path} ({r['codes_scored']} of {CODES} codes scored).",
        f"Target {r['target_ms']} ms: median predicted latency of the {CODES} codes (32 px, 1 thread); "
        f"{r['meeting_target']} codes meet it, {r['meeting_target_scored']} of them scored; "
        f"{r['dev_meeting_target']} dev-half codes meet it: best {r['dev_best']:.2f}%, "
        f"top-5% threshold {r['dev_top5pct_threshold']:.2f}%, median {r['dev_median']:.2f}%.",
        f"Spearman of the score and the true accuracy over the scored dev codes "
        f"meeting the target: {r['spearman_dev_meeting_target']:.3f}.",
        "",
    ]
    for title, key in [("all codes meeting the target", "top_all"), ("dev-half codes meeting the target only", "top_dev_only")]:
        out += [f"Top 10 by NASWOT score among {title}:", ""]
        out += ["| place | code | score (%) | raw NASWOT | latency (ms) | true accuracy (%) | rank in truth among dev codes meeting the target |"]
        out += ["|---|---|---|---|---|---|---|"]
        out += [line(e) for e in r[key][10]["codes"]]
        out += [""]
        for k in TOPS:
            t = r[key][k]
            if t["with_truth"] == 0:
                out.append(f"- top {k}: no code with truth here")
                continue
            out.append(
                f"- top {k}: {t['with_truth']} of {k} have dev truth; best {t['best_true']:.2f}% "
                f"(rank {t['best_rank']} of {r['dev_meeting_target']}), mean {t['mean_true']:.2f}%"
            )
        out.append("")
    return "\n".join(out)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--latency")]
    latency = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--latency=")), None)
    if not args:
        sys.exit(__doc__)
    table = json.loads(Path(args[0]).read_text())
    truth = json.loads(Path(args[1] if len(args) > 1 else "../shared/benchmarks/nas-bench-macro/cifar10-dev.json").read_text())
    ms = json.loads(Path(latency).read_text())["ms"] if latency else {c: e["latency_ms"] for c, e in table.items()}
    r = ceiling(table, truth, ms)
    text = markdown(r, args[0])
    print(text)
    if len(args) > 2:
        Path(args[2] + ".json").write_text(json.dumps(r, indent=1) + "\n")
        Path(args[2] + ".md").write_text(text + "\n")


if __name__ == "__main__":
    main()
