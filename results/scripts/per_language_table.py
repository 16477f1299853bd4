"""One row per language from `lafn eval` reports of runs over different language groups (BMIKE-53's
34 dev languages in groups of 12, each with English): EM x100 of one method, teacher forced (TF) and
generated (gen). A language in several runs (English) is averaged over them.

    python3 results/scripts/per_language_table.py [--method lu-lafns] R1.json R2.json ...
"""
import json
import sys
from collections import defaultdict

args = sys.argv[1:]
method = "lu-lafns"
if args[:1] == ["--method"]:
    method, args = args[1], args[2:]

COLUMNS = [  # (header, scoring, metric)
    ("Rel. TF", "teacher_forced", "reliability"),
    ("Gen. TF", "teacher_forced", "generality"),
    ("Loc. TF", "teacher_forced", "locality"),
    ("Spec. TF", "teacher_forced", "specificity"),
    ("Rel. gen", "generated", "reliability"),
    ("Gen. gen", "generated", "generality"),
    ("Gen. ≠src gen", "generated", "distinct-generality"),
    ("Loc. gen", "generated", "locality"),
    ("Spec. gen", "generated", "specificity"),
    ("new target", "generated", "specificity-new-target"),
]
values = defaultdict(lambda: defaultdict(list))
records = set()
for path in args:
    report = json.load(open(path))
    records.add(report["records"])
    (found,) = [m for m in report["methods"] if m["method"] == method]
    for header, scoring, metric in COLUMNS:
        for lang, metrics in found[scoring]["per_lang"].items():
            if metric in metrics:
                values[lang][header].append(metrics[metric]["em"])
    for lang, share in found["in_script"].items():
        if lang != "avg":
            values[lang]["in script"].append(share)

headers = [c[0] for c in COLUMNS] + ["in script"]
print(f"{method}, {' / '.join(map(str, sorted(records)))} records per run; EM x100")
print()
print("| lang | " + " | ".join(headers) + " |")
print("|---|" + "---:|" * len(headers))
means = defaultdict(list)
for lang in sorted(values, key=lambda l: (l != "en", l)):
    cells = []
    for h in headers:
        v = values[lang].get(h)
        cells.append("-" if not v else f"{sum(v) / len(v):.0f}")
        if v:
            means[h].append(sum(v) / len(v))
    print(f"| {lang} | " + " | ".join(cells) + " |")
print(f"| **mean of {len(values)}** | " + " | ".join(f"{sum(means[h]) / len(means[h]):.1f}" if means[h] else "-" for h in headers) + " |")
