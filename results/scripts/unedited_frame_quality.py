"""The unedited model's chat answers to BMIKE-53 dev `loc` questions (real questions with known answers)
in one frame: per language and in all, the share whose answer contains the expected answer (where the
question does not), and the share that write the question again or nothing. Writes frame_FRAME.json.

    python3 results/scripts/unedited_frame_quality.py LAFN DEV.jsonl LANGS N FRAME
"""
import json, subprocess, sys, unicodedata
lafn, data, langs, n, frame = sys.argv[1], sys.argv[2], sys.argv[3].split(','), int(sys.argv[4]), sys.argv[5]
def norm(t):
    t = unicodedata.normalize('NFKC', t).casefold()
    return ' '.join(''.join(c if c.isalnum() else ' ' for c in t).split())
recs = [json.loads(l) for l in open(data, encoding='utf-8')][:n]
qs = []
for lang in langs:
    for r in recs:
        e = r.get(lang)
        if e and e['loc'].strip() and e['loc_ans'].strip():
            qs.append((lang, e['loc'].replace('\n', ' ').strip(), e['loc_ans']))
out = subprocess.run([lafn, 'chat', '--no-cache', '--frame', frame], input='\n'.join(q for _, q, _ in qs) + '\n',
                     capture_output=True, text=True).stdout
answers, cur = [], []
for line in out.splitlines():
    if line.startswith('[fired'):
        answers.append(' '.join(cur).strip()); cur = []
    elif not line.startswith('[named') and 'cached edits' not in line:
        cur.append(line)
assert len(answers) == len(qs), (len(answers), len(qs))
per = {}
for (lang, q, a), ans in zip(qs, answers):
    s = per.setdefault(lang, [0, 0, 0])
    s[0] += 1
    s[1] += bool(norm(a)) and norm(a) not in norm(q) and norm(a) in norm(ans)
    s[2] += (not norm(ans)) or norm(q) in norm(ans)
tot = [sum(v[i] for v in per.values()) for i in range(3)]
print(frame, ' '.join(f"{l} {100*v[1]/v[0]:.0f}/{100*v[2]/v[0]:.0f}" for l, v in per.items()), f"| all: contains {100*tot[1]/tot[0]:.1f}%, echo/empty {100*tot[2]/tot[0]:.1f}% of {tot[0]}")
json.dump([dict(lang=l, q=q, expected=a, answer=x) for (l, q, a), x in zip(qs, answers)], open(f'frame_{frame}.json', 'w'), ensure_ascii=False, indent=0)
