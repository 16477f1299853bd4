#!/usr/bin/env python3
"""Replays a scope gate with negatives over the scores of examples/scope_negatives.rs: an entry fires
when the question's score against its keys reaches THRESHOLD and beats its best score against the
other-relation template questions by MARGIN. Prints, per rule, the share of rephrasings (!= src) that
fire and the share of same-subject other-relation questions stopped, overall and per language.

    python3 results/scripts/scope_negatives_replay.py SCORES.jsonl [THRESHOLD]
"""
import json
import sys
from collections import defaultdict


def main(path, threshold=0.55):
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    rephrasings = [r for r in rows if r["kind"] == "rephrase"]
    others = [r for r in rows if r["kind"] == "spec"]
    langs = list(dict.fromkeys(r["lang"] for r in rows))
    print("| rule | rephrasings fire | other relations stopped | " + " | ".join(langs) + " |")
    print("|---|---:|---:|" + "---:|" * len(langs))
    for margin in [None, 0.0, 0.05, 0.1]:
        def fires(r):
            return r["key"] >= threshold and (margin is None or r["key"] - r["neg"] >= margin)

        stopped = defaultdict(list)
        for r in others:
            stopped[r["lang"]].append(not fires(r))
        rule = f"score >= {threshold}" + ("" if margin is None else f", score - negatives >= {margin}")
        cells = [100 * sum(map(fires, rephrasings)) / len(rephrasings), 100 * sum(not fires(r) for r in others) / len(others)]
        cells += [100 * sum(stopped[l]) / len(stopped[l]) for l in langs]
        print(f"| {rule} | " + " | ".join(f"{c:.0f}" for c in cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1], *(float(a) for a in sys.argv[2:3]))
