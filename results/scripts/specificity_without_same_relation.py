"""Specificity of a run scored before the multilingual same-relation rule (stop 25), re-scored
without the questions that rule skips (other records asking the edited relation in some language).
A subset estimate: the rule's replacement questions were not asked in such a run.

    python3 results/scripts/specificity_without_same_relation.py RUN.state.jsonl DATA.jsonl
"""
import json,re,sys
from collections import defaultdict
state, data = sys.argv[1], sys.argv[2]
rows=[json.loads(l) for l in open(state).read().splitlines()[1:]]
n=max(int(r["record"]) for r in rows)+1
recs=[json.loads(l) for l in open(data)][:n]
def norm(t): return re.sub(r'\s+',' ',t).strip().lower()
def templ(rec, langs_all=True):
    out=set()
    for lang,e in rec.items():
        s=e["subject"].strip()
        for f in ("src","rephrase"):
            if s and s in e[f]: out.add((lang,norm(e[f].replace(s," "))))
    return out
def en_templ(rec):
    e=rec.get("en"); s=e["subject"].strip()
    return norm(e["src"].replace(s," "))
def old_spec(i,lang):
    e=recs[i][lang]; s=e["subject"].strip(); out=[]
    for j in list(range(i+1,len(recs)))+list(range(0,i)):
        if len(out)==2: break
        o=recs[j].get(lang)
        if not o: continue
        os_=o["subject"].strip()
        usable= os_ and os_ in o["src"] and o["alt"].strip()
        if not usable or s in o["src"] or en_templ(recs[j])==en_templ(recs[i]): continue
        out.append(j)
    return out
keep=defaultdict(list); newt=defaultdict(list); dropped=0; total=0
for r in rows:
    if r["method"]!="lu-lafns": continue
    i=int(r["record"])
    for lang,outs in r["langs"].items():
        spec=[o for o in outs if o["metric"]=="specificity"]
        js=old_spec(i,lang)
        assert len(js)==len(spec),(i,lang,len(js),len(spec))
        for j,o in zip(js,spec):
            total+=1
            if templ(recs[i]) & templ(recs[j]): dropped+=1; continue
            keep[lang].append(o["generated"]["score"]["em"]); newt[lang].append(float(bool(o["generated"].get("states_new_target"))))
avg=lambda d: sum(100*sum(v)/len(v) for v in d.values() if v)/len([v for v in d.values() if v])
print(f"dropped {dropped} of {total} specificity questions (same relation in some language)")
print(f"specificity EM {avg(keep):.1f}, states new target {avg(newt):.1f}%")
