"""Kendall tau-a of the supernet's validation loss (lower first) against the truth, from the
committed rows of results/fidelity/supernet-*/ (nas fidelity ranks by accuracy, the score; this
reads the same rows' details.val_loss). Run: python3 results/fidelity/supernet_loss_tau.py"""
import glob
import json
from itertools import combinations


def tau_a(a, b):
    c = d = 0
    for i, j in combinations(range(len(a)), 2):
        p = (a[i] - a[j]) * (b[i] - b[j])
        c += p > 0
        d += p < 0
    return (c - d) / (len(a) * (len(a) - 1) / 2)


for path in sorted(glob.glob("results/fidelity/supernet-*/results.json")):
    rows = json.load(open(path))["rows"]
    truth = [r["truth"] for r in rows]
    acc = tau_a([r["score"] for r in rows], truth)
    loss = tau_a([-r["details"]["val_loss"] for r in rows], truth)
    macs = tau_a([r["macs"] for r in rows], truth)
    print(f"{path}: n={len(rows)} tau-a accuracy {acc:.3f}, validation loss {loss:.3f}, MACs {macs:.3f}")
