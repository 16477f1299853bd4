"""What the scope projection's fitting scripts share: linear discriminant analysis, unit rows and
reading and writing safetensors files of f32 tensors. Needs numpy."""
import json
import struct

import numpy as np


def lda(vectors, classes, dimensions, ridge):
    """The DIMENSIONS directions (columns of a (features, dimensions) matrix) along which the class
    means of `vectors` (rows labelled by `classes`) differ most relative to the within-class spread,
    regularised by RIDGE x the mean within-class variance; and the class means."""
    features = vectors.shape[1]
    means = {c: vectors[classes == c].mean(0) for c in np.unique(classes)}
    within = vectors - np.stack([means[c] for c in classes])
    sw = within.T @ within / len(within)
    sw += ridge * np.trace(sw) / features * np.eye(features)
    spread = np.stack(list(means.values())) - vectors.mean(0)
    sb = spread.T @ spread / len(spread)
    w, v = np.linalg.eigh(sw)
    whiten = v @ np.diag(w**-0.5) @ v.T
    _, u = np.linalg.eigh(whiten @ sb @ whiten)
    return (whiten @ u[:, ::-1][:, :dimensions]).astype("<f4"), means


def unit(rows):
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-6)


def read_safetensors(path):
    """{name: array} of a safetensors file of F32 tensors."""
    data = open(path, "rb").read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", f"{path}: {name} is {info['dtype']}"
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(data[8 + length + start : 8 + length + end], dtype="<f4").reshape(info["shape"])
    return tensors


def write_safetensors(path, tensors):
    """Writes {name: array} of F32 tensors as a safetensors file."""
    tensors = {name: np.ascontiguousarray(array, dtype="<f4") for name, array in tensors.items()}
    header, offset = {}, 0
    for name, array in tensors.items():
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded)
        for array in tensors.values():
            f.write(array.tobytes())
