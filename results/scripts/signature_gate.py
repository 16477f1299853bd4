"""How often the scope gate fires on rephrasings and on same-subject other-relation questions, per
language, alone and when the unedited model's next-token distribution after the question must also
resemble the one after the edit's prompt (Bhattacharyya coefficient at least T).

    python3 results/scripts/signature_gate.py SCORES.jsonl SIGNATURES.jsonl [THRESHOLD]

SCORES from `examples/scope_scores.rs`, SIGNATURES from `examples/answer_signature.rs`, both over the
same file, languages and records. The gate's rule: score >= THRESHOLD (0.6) and not below the entry's
other-relation questions.
"""
import collections
import json
import sys

scores = {(r["record"], r["lang"]): r for r in map(json.loads, open(sys.argv[1]))}
signatures = {(r["record"], r["lang"]): r for r in map(json.loads, open(sys.argv[2]))}
threshold = float(sys.argv[3]) if len(sys.argv) > 3 else 0.6
likeness = (0.85, 0.9, 0.93, 0.96)


def fires(score, negative):
    return score >= threshold and (negative is None or score >= negative)


stats = collections.defaultdict(collections.Counter)
for key, s in scores.items():
    g = signatures.get(key)
    if g is None:
        continue
    c = stats[key[1]]
    rephrasings = zip(s["distinct-generality"], s["negatives"]["distinct-generality"], [g["rephrase"]] if g["rephrase"] else [])
    others = zip(s["specificity"], s["negatives"]["specificity"], g["others"])
    for kind, rows in (("reph", rephrasings), ("other", others)):
        for score, negative, (bc, _) in rows:
            fired = fires(score, negative)
            c[kind] += 1
            c[kind + " fired"] += fired
            for t in likeness:
                c[f"{kind} fired {t}"] += fired and bc >= t

total = collections.Counter()
for c in stats.values():
    total.update(c)
print("lang | rephrasings fire / other relations fire: gate alone | " + " | ".join(f"and BC >= {t}" for t in likeness))
for lang, c in list(stats.items()) + [("all", total)]:
    pct = lambda k, n: 100 * c[k] / max(1, c[n])
    cells = [f"{pct('reph fired', 'reph'):.1f} / {pct('other fired', 'other'):.1f}"]
    cells += [f"{pct(f'reph fired {t}', 'reph'):.1f} / {pct(f'other fired {t}', 'other'):.1f}" for t in likeness]
    print(f"{lang} | " + " | ".join(cells))
