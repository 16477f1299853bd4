"""Fits a model's scope relation projection (src/method/scope.rs, RelationProjection) from the labelled
question vectors of examples/scope_vectors.rs, and writes it as the safetensors file lafn ships.

    python3 results/scripts/fit_scope_projection.py PREFIX[,PREFIX...] LAYER OUT.safetensors [DIMENSIONS] [RIDGE]

Linear discriminant analysis: a class is the fact a question asks (a record's prompts, paraphrases,
src and rephrasings in every language; a specificity question belongs to the record it was made from,
the relation it asks); the projection keeps the DIMENSIONS directions along which class means differ
most relative to the within-class spread, regularised by RIDGE x the mean within-class variance, and
each class's mean question in that space (the known relations).
Several PREFIXes (runs of scope_vectors on different files, same model) are fitted together; a class
is then a record of one file. Needs numpy.
"""
import json
import struct
import sys

import numpy as np

prefix, layer, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
dimensions = int(sys.argv[4]) if len(sys.argv) > 4 else 32
ridge = float(sys.argv[5]) if len(sys.argv) > 5 else 0.1

vectors, classes = [], []
for n, part in enumerate(prefix.split(",")):
    labels = [json.loads(line) for line in open(part + ".jsonl")]
    center = np.fromfile(part + ".center.f32", dtype="<f4")
    hidden = len(center)
    rows = np.fromfile(part + ".f32", dtype="<f4").reshape(-1, hidden)
    assert len(rows) == len(labels), f"{part}: vectors and labels differ in number"
    # Classes of different files never coincide: record numbers are offset by the file.
    # The language table's other-relation questions ("other") ask relations no record is labelled with.
    record = np.array([l["from"] if l["kind"] == "spec" else l["record"] for l in labels], dtype=float)
    keep = ~np.isnan(record) & np.array([l["kind"] != "other" for l in labels])
    vectors.append(rows[keep].astype(np.float64))
    classes.append(record[keep] + n * 1_000_000)
vectors, classes = np.concatenate(vectors), np.concatenate(classes)

means = {c: vectors[classes == c].mean(0) for c in np.unique(classes)}
within = vectors - np.stack([means[c] for c in classes])
sw = within.T @ within / len(within)
sw += ridge * np.trace(sw) / hidden * np.eye(hidden)
spread = np.stack(list(means.values())) - vectors.mean(0)
sb = spread.T @ spread / len(spread)
w, v = np.linalg.eigh(sw)
whiten = v @ np.diag(w**-0.5) @ v.T
_, u = np.linalg.eigh(whiten @ sb @ whiten)
projection = (whiten @ u[:, ::-1][:, :dimensions]).astype("<f4")

# The known relations: each class's mean question in the relation space (as lafn compares them: rows
# projected, then unit length), for widening an entry's questions (scope.known_relation_similarity).
def unit(rows):
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-6)
projected = unit(vectors @ projection)
relations = unit(np.stack([projected[classes == c].mean(0) for c in means])).astype("<f4")

tensors = {
    "center": center.astype("<f4"),
    "projection": np.ascontiguousarray(projection),
    "relations": np.ascontiguousarray(relations),
    "layer": np.array([layer], dtype="<f4"),
}
header, offset = {}, 0
for name, array in tensors.items():
    header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
    offset += array.nbytes
encoded = json.dumps(header).encode()
encoded += b" " * (-len(encoded) % 8)
with open(out, "wb") as f:
    f.write(struct.pack("<Q", len(encoded)) + encoded)
    for array in tensors.values():
        f.write(array.tobytes())
print(f"{len(vectors)} vectors, {len(means)} classes -> {out} ({hidden} x {dimensions}, layer {layer})")
