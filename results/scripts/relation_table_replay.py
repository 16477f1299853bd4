"""Replays `scope.relation_table_margin` offline on `examples/scope_scores` output made with
TABLE_LIKENESS=1 and the table off (`{"scope": {"relation_table_margin": null}}`): for each margin, the
share of rephrasings (written otherwise than `src`) and of same-subject other-relation questions that
fire. As `QuestionEncoder::prepare` decides: the relation the entry's own questions resemble most counts
as theirs when it reaches the threshold (0.6), the relations `margin` or more below it count against.

    python3 results/scripts/relation_table_replay.py SCORES.jsonl [...] [--per-language MARGIN]
"""
import collections
import json
import sys

THRESHOLD = 0.6
MARGINS = [None, 0.1, 0.15, 0.2, 0.25, 0.3]


def fires(row, kind, margin):
    """Per question of `kind` in `row`, whether it fires with the table read at `margin` (None: off)."""
    own = row['table']['own']
    top = max(own)
    asked = [margin is not None and like >= top and like >= THRESHOLD for like in own]
    against = [margin is not None and like <= top - margin for like in own]
    for edited, others, table in zip(row[kind], row['negatives'][kind], row['table'][kind]):
        edited = max([edited] + [t for t, a in zip(table, asked) if a])
        competing = [t for t, a in zip(table, against) if a] + ([] if others is None else [others])
        yield edited >= THRESHOLD and all(edited >= c for c in competing)


def main():
    args = sys.argv[1:]
    per_language = None
    if '--per-language' in args:
        i = args.index('--per-language')
        per_language = float(args[i + 1])
        del args[i:i + 2]
    rows = [json.loads(line) for path in args for line in open(path)]
    counts = collections.defaultdict(collections.Counter)
    for margin in MARGINS:
        for row in rows:
            for kind in ('distinct-generality', 'specificity'):
                for fired in fires(row, kind, margin):
                    for key in ((margin, 'all'), (margin, row['lang'])):
                        counts[key][kind] += fired
                        counts[key][kind + ' n'] += 1

    def share(c, kind):
        return f"{100 * c[kind] / max(1, c[kind + ' n']):5.1f}% ({c[kind]}/{c[kind + ' n']})"

    print('margin | rephrasings that fire | other-relation questions that fire')
    for margin in MARGINS:
        c = counts[(margin, 'all')]
        print(f"{'off' if margin is None else margin} | {share(c, 'distinct-generality')} | {share(c, 'specificity')}")
    if per_language is not None:
        print(f'\nlanguage | rephrasings, off -> {per_language} | other-relation questions, off -> {per_language}')
        for lang in sorted({row['lang'] for row in rows}):
            a, b = counts[(None, lang)], counts[(per_language, lang)]
            print(f"{lang} | {share(a, 'distinct-generality')} -> {share(b, 'distinct-generality')} | "
                  f"{share(a, 'specificity')} -> {share(b, 'specificity')}")


if __name__ == '__main__':
    main()
