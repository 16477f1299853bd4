#!/usr/bin/env python3
"""Edited facts asked in languages the edit was not trained in, as a user asks them in chat.

    lafn edit --group FILE --langs en,de --all --cache-dir CACHE
    python3 results/scripts/untrained_languages.py FILE en,de CACHE [LAFN] [--no-cache] [--written-otherwise] [--out ROWS.json]

For every record of FILE (BMIKE-53 layout: one object per language) and every language of the record
outside the trained ones whose `src` names the English subject as written (`--written-otherwise`: whose
`src` does not: another script or a translation, found by retrieval or not), asks `src` through one
`lafn chat --cache-dir CACHE` process (LAFN, default `target/release/lafn`; `--no-cache`: the unedited
model) and reads the answer chat prints. Per language and overall: questions, share that fired, share
answered right (the language's own target or a trained language's, as a run of words of the answer,
case and marks aside) and share answered with the language's own target.
"""
import collections
import json
import subprocess
import sys
import unicodedata


def words(text):
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in text if c.isalnum() or c.isspace()).split()


def contains(answer, target):
    a, t = words(answer), words(target)
    return bool(t) and any(a[k:k + len(t)] == t for k in range(len(a) - len(t) + 1))


def main():
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    out = None
    if "--out" in sys.argv:
        out = sys.argv[sys.argv.index("--out") + 1]
        args.remove(out)
    data_path, trained, cache = args[:3]
    lafn = args[3] if len(args) > 3 else "target/release/lafn"
    trained = trained.split(",")
    records = [json.loads(line) for line in open(data_path, encoding="utf-8")]
    questions = []
    for i, record in enumerate(records):
        subject = record["en"]["subject"]
        for lang, fields in sorted(record.items()):
            as_written = subject in fields["src"] if isinstance(fields, dict) else False
            if lang not in trained and isinstance(fields, dict) and as_written != ("--written-otherwise" in flags):
                questions.append((i, lang, " ".join(fields["src"].split())))
    command = [lafn, "chat", "--cache-dir", cache] + (["--no-cache"] if "--no-cache" in flags else [])
    printed = subprocess.run(command, input="".join(q + "\n" for _, _, q in questions),
                             capture_output=True, text=True, check=True).stdout
    # Each answer is a line, then "[fired: ...]" and notes in brackets; the first line names the cache.
    answers, current = [], None
    for line in printed.splitlines()[1:]:
        if line.startswith("[fired:"):
            answers.append((current or "", line != "[fired: none]"))
            current = None
        elif not line.startswith("[") and current is None:
            current = line
    if len(answers) != len(questions):
        sys.exit(f"read {len(answers)} answers to {len(questions)} questions")
    tally = collections.defaultdict(collections.Counter)
    rows = []
    for (i, lang, question), (answer, fired) in zip(questions, answers):
        record = records[i]
        native = contains(answer, record[lang]["alt"])
        right = native or any(contains(answer, record[t]["alt"]) for t in trained)
        for key in ("all", lang):
            tally[key].update(n=1, fired=fired, right=right, native=native)
        rows.append(dict(record=i, lang=lang, question=question, answer=answer, fired=fired, right=right,
                         native=native))
    if out:
        json.dump(rows, open(out, "w", encoding="utf-8"), ensure_ascii=False, indent=0)
    print("| lang | questions | fired % | right % | own target % |")
    print("|---|---:|---:|---:|---:|")
    for key in ["all"] + sorted(k for k in tally if k != "all"):
        t = tally[key]
        print(f"| {key} | {t['n']} | {100 * t['fired'] / t['n']:.0f} | {100 * t['right'] / t['n']:.0f} | "
              f"{100 * t['native'] / t['n']:.0f} |")


if __name__ == "__main__":
    main()
