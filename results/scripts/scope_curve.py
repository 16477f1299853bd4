#!/usr/bin/env python3
"""Generality vs Specificity of the scope gate at every threshold, from one `lafn eval` state file.

The run must have the gate off (`{"scope": {"threshold": null}}`) and include `unedited`: each
lu-lafns outcome then carries the scope score of the entry its question names, and a gate at
threshold t would have answered it as lu-lafns did (score >= t) or as the unedited model (below t).
Prints, per threshold, generated-answer EM (x100, mean over languages) of Reliability, Generality,
Generality on rephrasings != src, Specificity and the share of specificity answers that state the new target.

    python3 results/scripts/scope_curve.py RUN.state.jsonl [SCORES.jsonl] [--at THRESHOLD] [--margin M] [--teacher-forced] [--method NAME]

--method replays another cached method of the run (default lu-lafns; random-neurons is gated the same way).

With --teacher-forced, the same for teacher-forced EM (the run must have scored both ways).

With --at, also prints the same columns per language at that threshold. With --margin, a question
also needs to score at least M above its score against the other-relation negatives (the SCORES rows'
`negatives`, written by examples/scope_scores.rs), as the gate's `scope.negatives_margin` asks.

SCORES.jsonl (optional) replaces the run's scope scores by another gate's: one line per record and
language, `{"record": 0, "lang": "en", "<metric>": [score of each question of that metric, in order]}`.
"""
import json
import sys
from collections import defaultdict

METRICS = ["reliability", "generality", "distinct-generality", "specificity"]


def main(path, scores_path=None, at=None, margin=None, teacher_forced=False, method="lu-lafns"):
    other_scores = {}
    if scores_path:
        for line in open(scores_path, encoding="utf-8"):
            row = json.loads(line)
            other_scores[(row["record"], row["lang"])] = row
    lines = open(path, encoding="utf-8").read().splitlines()
    runs = defaultdict(dict)
    for line in lines[1:]:
        result = json.loads(line)
        runs[result["method"]][result["record"]] = result["langs"]
    ours, unedited = runs[method], runs["unedited"]
    thresholds = [None] + [round(0.05 * i, 2) for i in range(4, 19)]
    per_language = {}
    print("| threshold | " + " | ".join(METRICS) + " | spec. states new target |")
    print("|---|" + "---:|" * (len(METRICS) + 1))
    for t in thresholds:
        sums = defaultdict(lambda: defaultdict(list))
        for record, langs in ours.items():
            for lang, outcomes in langs.items():
                before = unedited[record][lang]
                seen = defaultdict(int)
                for mine, theirs in zip(outcomes, before):
                    assert mine["metric"] == theirs["metric"]
                    score, negative = mine.get("scope_score"), None
                    if other_scores:
                        row = other_scores[(int(record), lang)]
                        nth = seen[mine["metric"]]
                        keys = row.get(mine["metric"], [])
                        score = keys[nth] if nth < len(keys) else score
                        negatives = row.get("negatives", {}).get(mine["metric"], [])
                        negative = negatives[nth] if nth < len(negatives) else None
                        seen[mine["metric"]] += 1
                    beats_negatives = margin is None or negative is None or score - negative >= margin
                    fires = t is None or (score is not None and score >= t and beats_negatives)
                    chosen = mine if fires else theirs
                    generated = chosen["generated"]
                    scored = chosen["teacher_forced"] if teacher_forced else generated["score"]
                    # An unedited answer agrees with itself on Specificity.
                    em = 1.0 if (not fires and mine["metric"] == "specificity") else scored["em"]
                    sums[mine["metric"]][lang].append(em)
                    if mine["metric"] == "specificity" and not teacher_forced:
                        sums["new-target"][lang].append(float(fires and generated["states_new_target"]))
        cells = []
        for metric in METRICS + ["new-target"]:
            per_lang = [100 * sum(v) / len(v) for v in sums[metric].values() if v]
            cells.append(f"{sum(per_lang) / len(per_lang):.1f}" if per_lang else "-")
        print(f"| {'off' if t is None else t} | " + " | ".join(cells) + " |")
        if at is not None and t == at:
            per_language = sums
    if per_language:
        print(f"\nAt threshold {at}:\n")
        print("| lang | " + " | ".join(METRICS) + " | spec. states new target |")
        print("|---|" + "---:|" * (len(METRICS) + 1))
        for lang in sorted(per_language["reliability"]):
            cells = [per_language[m][lang] for m in METRICS + ["new-target"]]
            print(f"| {lang} | " + " | ".join(f"{100 * sum(v) / len(v):.1f}" if v else "-" for v in cells) + " |")


if __name__ == "__main__":
    args = sys.argv[1:]
    options = {}
    if "--teacher-forced" in args:
        args.remove("--teacher-forced")
        options["teacher_forced"] = True
    if "--method" in args:
        i = args.index("--method")
        options["method"] = args[i + 1]
        del args[i : i + 2]
    for flag in ["--at", "--margin"]:
        if flag in args:
            i = args.index(flag)
            options[flag[2:]] = float(args[i + 1])
            del args[i : i + 2]
    main(*args[:2], **options)
