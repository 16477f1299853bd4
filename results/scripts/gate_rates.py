#!/usr/bin/env python3
"""The scope gate's decisions on `examples/scope_scores.rs` output, as the gate takes them.

    python3 results/scripts/gate_rates.py SCORES.jsonl [THRESHOLD] [MARGIN]

A question passes when its score reaches THRESHOLD (default 0.6) and beats its likeness to the
entry's other-relation questions by more than MARGIN (default 0.0; no such likeness: it passes on the
score alone). Prints, overall and per language, the share of rephrasings that differ from `src`
passing (Generality's questions), of `src` passing, and of same-subject other-relation questions
(Specificity's) stopped.
"""
import collections
import json
import sys


def passes(score, negative, threshold, margin):
    return score >= threshold and (negative is None or score > negative + margin)


def main():
    path = sys.argv[1]
    threshold = float(sys.argv[2]) if len(sys.argv) > 2 else 0.6
    margin = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    tally = collections.defaultdict(lambda: collections.Counter())
    for line in open(path, encoding="utf-8"):
        row = json.loads(line)
        negatives = row.get("negatives", {})
        for metric, wanted in [("distinct-generality", True), ("reliability", True), ("specificity", False)]:
            for i, score in enumerate(row.get(metric, [])):
                negative = (negatives.get(metric) or [None] * (i + 1))[i]
                ok = passes(score, negative, threshold, margin) == wanted
                for key in ("all", row["lang"]):
                    tally[key][metric] += 1
                    tally[key][metric + " ok"] += ok
    print("| lang | rephrasings (!= src) firing | src firing | other relations stopped |")
    print("|---|---:|---:|---:|")
    for key in ["all"] + sorted(k for k in tally if k != "all"):
        t = tally[key]
        cell = lambda m: f"{100 * t[m + ' ok'] / t[m]:.1f} ({t[m]})" if t[m] else "-"
        print(f"| {key} | {cell('distinct-generality')} | {cell('reliability')} | {cell('specificity')} |")


if __name__ == "__main__":
    main()
