#!/usr/bin/env python3
"""One correction to the scope gate, and what it does to an entry's other questions.

    lafn edit --group FILE --langs en,sq,la --all --cache-dir CACHE
    python3 results/scripts/teach_gate.py FILE CACHE LAFN sq,la [--out ROWS.json]

For every record of FILE (BMIKE-53 layout) and language: up to four specificity questions S1..S4 (as
`lafn eval` makes them: the next records' `src` in that language, their subject replaced by this
record's, skipping records that ask the same relation), the record's `rephrase` R and `src` Q, asked
through `lafn chat --cache-dir CACHE`. Where S1 fired, a fresh copy of the cache is taught `/not` on it
and S2.., R, Q are asked again, chat run with `scope.taught_margin` 0, then the record's `src` and
`rephrase` in the other languages listed. Prints, per language and in all, how many fire before and
after at margins 0, 0.05, 0.1 and 0.15, the larger ones from the scores chat prints (a larger margin
only stops more).
"""
import json
import re
import shutil
import subprocess
import sys
import tempfile
import unicodedata

SPECIFICITY = 4


def norm(text):
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join("".join(c if c.isalnum() else " " for c in text).split())


def templates(record):
    out = set()
    for lang, entry in record.items():
        if not isinstance(entry, dict):
            continue
        subject = entry.get("subject", "").strip()
        for question in (entry.get("src", ""), entry.get("rephrase", "")):
            if subject and subject in question:
                out.add((lang, norm(question.replace(subject, " "))))
    return out


def specificity(records, i, lang):
    subject, own, out = records[i][lang]["subject"].strip(), templates(records[i]), []
    for j in list(range(i + 1, len(records))) + list(range(0, i)):
        other = records[j].get(lang)
        if not other or len(out) == SPECIFICITY:
            continue
        other_subject = other["subject"].strip()
        if not other_subject or other_subject not in other["src"] or not other.get("alt", "").strip():
            continue
        if subject in other["src"] or own & templates(records[j]):
            continue
        out.append(other["src"].replace(other_subject, subject, 1))
    return out


def chat(lafn, cache, lines):
    """Per answer: whether an entry fired, its scope score and taught-not-asked score."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as settings:
        json.dump({"scope": {"taught_margin": 0.0}}, settings)
        settings.flush()
        command = [lafn, "chat", "--cache-dir", cache, "--settings", settings.name]
        printed = subprocess.run(command, input="".join(l + "\n" for l in lines),
                                 capture_output=True, text=True, check=True).stdout
    answers = []
    for line in printed.splitlines():
        if line.startswith("[fired:"):
            answers.append({"fired": line != "[fired: none]", "text": line})
        elif line.startswith("[named") and answers:
            answers[-1]["text"] += line
    for answer in answers:
        text = answer.pop("text")
        scope, taught = re.search(r"scope (-?[0-9.]+)", text), re.search(r"taught not asked (-?[0-9.]+)", text)
        answer["scope"] = float(scope.group(1)) if scope else None
        answer["taught"] = float(taught.group(1)) if taught else None
    return answers


def fires(answer, margin):
    if answer["taught"] is None or answer["scope"] is None:
        return answer["fired"]
    return answer["fired"] and answer["scope"] - answer["taught"] > margin


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    out = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else None
    if out:
        args.remove(out)
    data, cache, lafn, langs = args[0], args[1], args[2], args[3].split(",")
    records = [json.loads(line) for line in open(data, encoding="utf-8")]
    rows = []
    for lang in langs:
        items = [(i, specificity(records, i, lang), records[i][lang]) for i in range(len(records)) if lang in records[i]]
        items = [(i, s, e) for i, s, e in items if len(s) >= 2]
        before = chat(lafn, cache, [q for _, s, e in items for q in s + [e["rephrase"], e["src"]]])
        elsewhere = lambda i: [records[i][l][k] for l in langs if l != lang and l in records[i] for k in ("src", "rephrase")]
        at, taught, lines = 0, [], []
        for i, s, e in items:
            asked = before[at:at + len(s) + 2]
            at += len(s) + 2
            if asked[0]["fired"]:
                taught.append((i, asked, len(s)))
                lines += [s[0], "/not"] + s[1:] + [e["rephrase"], e["src"]] + elsewhere(i)
        before_elsewhere = chat(lafn, cache, [q for i, _, _ in taught for q in elsewhere(i)])
        scratch = tempfile.mkdtemp()
        try:
            shutil.copytree(cache, scratch + "/cache")
            after = chat(lafn, scratch + "/cache", lines)
        finally:
            shutil.rmtree(scratch)
        at = at_elsewhere = 0
        for i, asked, n in taught:
            # S1 as taught, S1 asked again, S2.., R, Q, then the other languages' questions.
            k = len(elsewhere(i))
            rows.append({"lang": lang, "record": i, "before": asked, "after": after[at + 1:at + n + 3],
                         "elsewhere_before": before_elsewhere[at_elsewhere:at_elsewhere + k],
                         "elsewhere_after": after[at + n + 3:at + n + 3 + k]})
            at += n + 3 + k
            at_elsewhere += k
    if out:
        json.dump(rows, open(out, "w"), indent=1)
    for margin in (0.0, 0.05, 0.1, 0.15):
        print(f"margin {margin}")
        for lang in langs + ["all"]:
            chosen = [r for r in rows if lang in ("all", r["lang"])]
            count = lambda pick, side, m=0.0: sum(fires(x, m) for r in chosen for x in pick(r[side]))
            others = lambda answers: answers[1:-2]
            print(f"  {lang}: taught {len(chosen)}, taught question fires after {count(lambda a: a[:1], 'after', margin)}, "
                  f"other questions firing {count(others, 'before')} -> {count(others, 'after', margin)} "
                  f"of {sum(len(r['before']) - 3 for r in chosen)}, rephrase {count(lambda a: a[-2:-1], 'before')} -> "
                  f"{count(lambda a: a[-2:-1], 'after', margin)}, src {count(lambda a: a[-1:], 'before')} -> "
                  f"{count(lambda a: a[-1:], 'after', margin)}, other languages' src and rephrase "
                  f"{count(lambda a: a, 'elsewhere_before')} -> {count(lambda a: a, 'elsewhere_after', margin)} "
                  f"of {sum(len(r['elsewhere_before']) for r in chosen)}")


if __name__ == "__main__":
    main()
