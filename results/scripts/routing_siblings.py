#!/usr/bin/env python3
"""Who answers a question when records share a subject (`examples/routing.rs` output).

    python3 results/scripts/routing_siblings.py ROUTING.jsonl DATA.jsonl [LANG]

For each metric: the share of questions on which the record's own entry acts, a sibling's (another
record with the same subject in LANG, default en; stored after the record = newer, before = older),
another subject's entry, or none. Records are stored in file order, as `lafn eval --sequential` does.
"""
import collections
import json
import sys


def main():
    routing_file, data_file = sys.argv[1], sys.argv[2]
    lang = sys.argv[3] if len(sys.argv) > 3 else "en"
    records = [json.loads(line) for line in open(data_file, encoding="utf-8")]
    subject = [r.get(lang, {}).get("subject", "").strip() for r in records]
    rows = [json.loads(line) for line in open(routing_file, encoding="utf-8")]
    count = max(r["record"] for r in rows) + 1
    by_subject = collections.defaultdict(list)
    for i in range(count):
        by_subject[subject[i]].append(i)
    shared = {i for ids in by_subject.values() if len(ids) > 1 for i in ids}
    print(f"{count} records, {len(shared)} of them share their subject with another record\n")
    kinds = ["own", "sibling, newer", "sibling, older", "other subject", "none"]
    for group_name, keep in [("records sharing a subject", lambda i: i in shared),
                             ("records with a subject of their own", lambda i: i not in shared)]:
        tally = collections.defaultdict(collections.Counter)
        for row in rows:
            i = row["record"]
            if not keep(i):
                continue
            acting = [a["record"] for a in row["acting"]]
            if i in acting:
                kind = "own"
            elif any(subject[a] == subject[i] and a > i for a in acting):
                kind = "sibling, newer"
            elif any(subject[a] == subject[i] for a in acting):
                kind = "sibling, older"
            elif acting:
                kind = "other subject"
            else:
                kind = "none"
            tally[row["metric"]][kind] += 1
        print(f"{group_name}:\n")
        print("| metric | questions | " + " | ".join(kinds) + " |")
        print("|---|---:|" + "---:|" * len(kinds))
        for metric, counter in sorted(tally.items()):
            n = sum(counter.values())
            print(f"| {metric} | {n} | " + " | ".join(f"{100 * counter[k] / n:.1f}" for k in kinds) + " |")
        print()


if __name__ == "__main__":
    main()
