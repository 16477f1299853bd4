"""In-context replay: what answering in context (icl) instead of with update values would give for questions an entry
fires on with a scope score below a bound: generated EM/F1 per metric and the share of answers stating
the new object, lu-lafns as run against that policy, per question from two eval state files of the
same facts.

    python3 results/scripts/in_context_replay.py LU_LAFNS.state.jsonl ICL.state.jsonl
"""
import json, sys, collections
def load(p, method):
    out = {}
    for l in list(open(p))[1:]:
        x = json.loads(l)
        if x['method'] != method: continue
        for lang, ms in x['langs'].items():
            for k, m in enumerate(ms): out[(x['record'], lang, k, m['metric'])] = m
    return out
lu = load(sys.argv[1], 'lu-lafns'); icl = load(sys.argv[2], 'icl')
keys = sorted(set(lu) & set(icl))
print(len(keys), 'questions in both')
for hi in [0.6, 0.65, 0.7, 0.75, 0.8]:
    agg = collections.defaultdict(lambda: [0, 0.0, 0.0, 0.0, 0.0, 0, 0])
    for key in keys:
        a, b = lu[key], icl[key]
        if not a.get('generated') or not b.get('generated'): continue
        moved = a['fired'] and (a.get('scope_score') or 0) < hi
        pol = b if moved else a
        e = agg[key[3]]
        e[0] += 1; e[1] += a['generated']['score']['em']; e[2] += pol['generated']['score']['em']
        e[3] += a['generated']['score']['f1']; e[4] += pol['generated']['score']['f1']
        e[5] += bool(a['generated'].get('states_new_target')); e[6] += bool(pol['generated'].get('states_new_target'))
    print(f'in context below {hi}:')
    for met, e in sorted(agg.items()):
        print(f'   {met:20s} n={e[0]:4d} EM {e[1]/e[0]*100:5.1f} -> {e[2]/e[0]*100:5.1f}  F1 {e[3]/e[0]*100:5.1f} -> {e[4]/e[0]*100:5.1f}  new target {e[5]/e[0]*100:5.1f}% -> {e[6]/e[0]*100:5.1f}%')
