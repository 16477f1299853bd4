"""Fits a model's scope relation projection (src/method/scope.rs, RelationProjection) from the labelled
question vectors of examples/scope_vectors.rs, and writes it as the safetensors file lafn ships.

    python3 results/scripts/fit_scope_projection.py PREFIX[,PREFIX...] LAYER OUT.safetensors [DIMENSIONS] [RIDGE] [--calibrate]

Linear discriminant analysis: a class is the fact a question asks (a record's prompts, paraphrases,
src and rephrasings in every language; a specificity question belongs to the record it was made from,
the relation it asks; a record's portability questions, in every language, are a class of their own); the projection keeps the DIMENSIONS directions along which class means differ
most relative to the within-class spread, regularised by RIDGE x the mean within-class variance, and
each class's mean question in that space (the known relations).
Several PREFIXes (runs of scope_vectors on different files, same model) are fitted together; a class
is then a record of one file. Files whose record N is the same fact (MzsRE and BMIKE-53 dev share
their 300 facts, in other languages) are marked with one group, PREFIX@GROUP: their records N are one
class. Needs numpy.

--calibrate also stores the model's `calibration`: the score at which 85% of rephrasings reach their
fact's prompts when the projection did not see them (5-fold cross-validation over facts; score = best
cosine with the fact's prompts in every language, as the gate scores). lafn maps that score to its
default threshold, so one threshold means one operating point on every model. 85% is where Qwen2.5's
shipped space has the default threshold (0.60); a space whose cosines run lower (SmolLM2) gets a
lower one.
"""
import json
import sys

import numpy as np

from scope_fit import lda, unit, write_safetensors

calibrate = "--calibrate" in sys.argv
args = [a for a in sys.argv[1:] if a != "--calibrate"]
prefix, layer, out = args[0], int(args[1]), args[2]
dimensions = int(args[3]) if len(args) > 3 else 32
ridge = float(args[4]) if len(args) > 4 else 0.1
CALIBRATED_RECALL = 0.85
PORTABILITY = 500_000  # offset of the portability classes within a file's classes

vectors, classes, labels = [], [], []
for n, part in enumerate(prefix.split(",")):
    part, _, group = part.partition("@")
    n = int(group) if group else n + 1000
    part_labels = [json.loads(line) for line in open(part + ".jsonl")]
    center = np.fromfile(part + ".center.f32", dtype="<f4")
    hidden = len(center)
    rows = np.fromfile(part + ".f32", dtype="<f4").reshape(-1, hidden)
    assert len(rows) == len(part_labels), f"{part}: vectors and labels differ in number"
    # Classes of different files never coincide: record numbers are offset by the file.
    # The language table's other-relation questions ("other") ask relations no record is labelled with.
    # A portability question asks another fact than its record's (about the new object, through the
    # subject): a class of its own, one per record, in every language.
    record = np.array(
        [l["from"] if l["kind"] == "spec" else l["record"] + PORTABILITY * (l["kind"] == "portability") for l in part_labels],
        dtype=float,
    )
    keep = ~np.isnan(record) & np.array([l["kind"] != "other" for l in part_labels])
    vectors.append(rows[keep].astype(np.float64))
    classes.append(record[keep] + n * 1_000_000)
    labels += [dict(l, subject=l["record"] + n * 1_000_000) for l, k in zip(part_labels, keep) if k]
vectors, classes = np.concatenate(vectors), np.concatenate(classes)


def fit(vectors, classes):
    """The LDA projection (hidden, dimensions) and the class means it was fitted on."""
    return lda(vectors, classes, dimensions, ridge)


def held_out_rephrasing_scores():
    """Each rephrasing's best cosine with its fact's prompts, in a projection fitted without that fact
    (nor any question about its subject)."""
    kind = np.array([l["kind"] for l in labels])
    subject = np.array([l["subject"] for l in labels])
    facts = np.unique(subject)
    np.random.default_rng(0).shuffle(facts)
    scores = []
    for fold in np.array_split(facts, 5):
        held_out = np.isin(subject, fold) | np.isin(classes, fold)
        projection, _ = fit(vectors[~held_out], classes[~held_out])
        for fact in fold:
            prompts = vectors[(subject == fact) & (kind == "prompt")]
            rephrasings = vectors[(subject == fact) & (kind == "rephrase")]
            if len(prompts) and len(rephrasings):
                scores += list((unit(rephrasings @ projection) @ unit(prompts @ projection).T).max(1))
    return np.array(scores)


projection, means = fit(vectors, classes)

# The known relations: each class's mean question in the relation space (as lafn compares them: rows
# projected, then unit length), for widening an entry's questions (scope.known_relation_similarity).
# Portability questions' classes are not relations an entry could be widened by.
projected = unit(vectors @ projection)
relation_classes = [c for c in means if c % 1_000_000 < PORTABILITY]
relations = unit(np.stack([projected[classes == c].mean(0) for c in relation_classes])).astype("<f4")

tensors = {
    "center": center.astype("<f4"),
    "projection": np.ascontiguousarray(projection),
    "relations": np.ascontiguousarray(relations),
    "layer": np.array([layer], dtype="<f4"),
}
if calibrate:
    scores = held_out_rephrasing_scores()
    tensors["calibration"] = np.array([np.quantile(scores, 1 - CALIBRATED_RECALL)], dtype="<f4")
    print(f"calibration: {len(scores)} held-out rephrasings, {CALIBRATED_RECALL:.0%} score >= {tensors['calibration'][0]:.3f}")
write_safetensors(out, tensors)
print(f"{len(vectors)} vectors, {len(means)} classes -> {out} ({hidden} x {dimensions}, layer {layer})")
