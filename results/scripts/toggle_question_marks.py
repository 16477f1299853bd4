#!/usr/bin/env python3
"""MzsRE records whose `rephrase` is their `src` with the question mark toggled: removed where `src`
ends with one, added where it does not (`？` in Chinese). Measures whether an edit answers its own
question typed with or without the mark.

    python3 results/scripts/toggle_question_marks.py IN.jsonl N > OUT.jsonl
"""
import json
import sys


def main(path, count):
    for i, line in enumerate(open(path, encoding="utf-8")):
        if i >= count:
            break
        record = json.loads(line)
        for lang, entry in record.items():
            src = entry["src"].rstrip()
            marked = src.endswith(("?", "？"))
            entry["rephrase"] = src[:-1].rstrip() if marked else src + ("？" if lang == "zh" else "?")
        print(json.dumps(record, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
