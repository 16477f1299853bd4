#!/usr/bin/env python3
"""Adds to a model's scope projection the directions along which the relation table's relations
differ most relative to how each is worded (`relation-directions`, see RelationProjection in
src/method/scope.rs), from the table's vectors written by examples/relation_table_vectors.rs.

    python3 results/scripts/refine_scope_projection.py PROJECTION.safetensors TABLE_PREFIX OUT.safetensors [DIMENSIONS] [RIDGE]

Linear discriminant analysis in the projection's relation space: a class is a relation of
assets/scope/relations.toml, its members its wordings (rows projected, then unit length, as lafn
compares them); DIMENSIONS directions (default 32), ridge RIDGE x the mean within-class variance
(default 1.0: the table has a few wordings per relation). Every other tensor is copied as it is.
Needs numpy.
"""
import json
import sys

import numpy as np

from scope_fit import lda, read_safetensors, unit, write_safetensors

SAME_MODEL_CENTER_COSINE = 0.99  # as src/method/scope.rs

projection_path, table, out = sys.argv[1:4]
dimensions = int(sys.argv[4]) if len(sys.argv) > 4 else 32
ridge = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0

tensors = read_safetensors(projection_path)
tensors.pop("relation-directions", None)
center = np.fromfile(table + ".center.f32", dtype="<f4").astype(np.float64)
fitted_center = tensors["center"].astype(np.float64)
cosine = center @ fitted_center / np.linalg.norm(center) / np.linalg.norm(fitted_center)
assert cosine >= SAME_MODEL_CENTER_COSINE, f"the table was read by another model than {projection_path}'s ({cosine:.3f})"
labels = [json.loads(line)["relation"] for line in open(table + ".jsonl")]
rows = np.fromfile(table + ".f32", dtype="<f4").reshape(len(labels), len(center)).astype(np.float64)
names = sorted(set(labels))
classes = np.array([names.index(label) for label in labels])
projected = unit(rows @ tensors["projection"].astype(np.float64))
directions, _ = lda(projected, classes, dimensions, ridge)
tensors["relation-directions"] = directions
write_safetensors(out, tensors)
print(f"{len(rows)} wordings of {len(names)} relations -> {out} (relation directions {directions.shape})")
