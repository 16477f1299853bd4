"""Replays a second scope gate on the edit's located neurons (LAFNs), from `examples/neuron_gate.rs`
output, beside the scope gate's own margin curve on the same questions.

A question fires when the scope gate lets it through and its LAFN activations (at its last token) are
closer (cosine) to the edit's own prompts in its language than to the language table's questions
about the subject's other relations, by MARGIN; the other-relation question most like the prompts is
left out (it may ask the edited relation). `center` first subtracts the mean of those questions.

    python3 results/scripts/neuron_gate.py neurons.jsonl
"""
import json
import sys

import numpy as np

rows = [json.loads(line) for line in open(sys.argv[1])]
keys = {r["record"]: r for r in rows if "keys" in r}
questions = [r for r in rows if "keys" not in r]


def unit(m):
    m = np.atleast_2d(np.asarray(m, dtype=float))
    return m / (np.linalg.norm(m, axis=1, keepdims=True) + 1e-9)


def neuron_lead(q, center):
    k = keys[q["record"]]
    own, others, a = (np.asarray(x, dtype=float) for x in (k["keys"][q["lang"]], k["negatives"][q["lang"]], q["activations"]))
    if center:
        mean = others.mean(0)
        own, others, a = own - mean, others - mean, a - mean
    own, others, a = unit(own), unit(others), unit(a)[0]
    others = np.delete(others, (others @ own.T).max(1).argmax(), 0)
    return (own @ a).max() - (others @ a).max()


def report(name, fires):
    per_lang = {}
    for q in questions:
        r = per_lang.setdefault(q["lang"], [0, 0, 0, 0])
        fired = fires(q)
        if q["kind"] == "specificity":
            r[2] += 1
            r[3] += not fired
        else:
            r[0] += 1
            r[1] += fired
    total = np.sum(list(per_lang.values()), axis=0)
    detail = " ".join(f"{lang} {r[1]}/{r[0]} {r[3]}/{r[2]}" for lang, r in per_lang.items())
    print(f"{name:28s} src+rephrasings fire {100 * total[1] / total[0]:5.1f}  other relations stopped "
          f"{100 * total[3] / total[2]:5.1f} | {detail}")


for margin in (0.0, 0.05, 0.075, 0.1):
    report(f"scope gate, margin {margin}",
           lambda q: q["scope"] >= 0.6 and (q["other"] is None or q["scope"] - q["other"] >= margin))
for center in (False, True):
    for margin in (-0.01, 0.0):
        report(f"+ LAFNs {'centred' if center else 'raw'}, margin {margin}",
               lambda q: q["in_scope"] and neuron_lead(q, center) >= margin)
