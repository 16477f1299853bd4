#!/usr/bin/env python3
"""Replays a scope gate with negatives over the scores of examples/scope_scores.rs: an entry fires
when the question's score against its keys reaches THRESHOLD and beats its score against the
other-relation template questions about the subject (the rows' `negatives`) by MARGIN. Prints, per
rule, the share of rephrasings (!= src) that fire and the share of same-subject other-relation
questions stopped, overall and per language.

    python3 results/scripts/scope_negatives_replay.py SCORES.jsonl [THRESHOLD]
"""
import json
import sys
from collections import defaultdict


def main(path, threshold=0.55):
    rephrasings, others = [], defaultdict(list)
    for line in open(path, encoding="utf-8"):
        row = json.loads(line)
        negatives = row["negatives"]
        rephrasings += zip(row["distinct-generality"], negatives["distinct-generality"])
        others[row["lang"]] += zip(row["specificity"], negatives["specificity"])
    langs = list(others)
    everything = [pair for lang in langs for pair in others[lang]]
    print("| rule | rephrasings fire | other relations stopped | " + " | ".join(langs) + " |")
    print("|---|---:|---:|" + "---:|" * len(langs))
    for margin in [None, 0.0, 0.02, 0.03, 0.05, 0.1]:
        def fires(pair):
            key, negative = pair
            return key >= threshold and (margin is None or negative is None or key - negative >= margin)

        def stopped(pairs):
            return 100 * sum(not fires(p) for p in pairs) / len(pairs)

        rule = f"score >= {threshold}" + ("" if margin is None else f", score - negatives >= {margin}")
        cells = [100 * sum(map(fires, rephrasings)) / len(rephrasings), stopped(everything)]
        cells += [stopped(others[lang]) for lang in langs]
        print(f"| {rule} | " + " | ".join(f"{c:.0f}" for c in cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1], *(float(a) for a in sys.argv[2:3]))
