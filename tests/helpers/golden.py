"""Run one layer of a Caffe golden case (../shared/golden/caffe/<case>.npz) and compare.

Each case is an Input layer feeding one layer named "layer"; we build that layer
straight from the registry (no Net), feed Caffe's inputs and params, and hold
tops, bottom diffs and param diffs to Caffe's within the README's tolerance.
"""
import json

import numpy as np
from google.protobuf import text_format

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb

from .shared import SHARED, shared_path

GOLDEN_DIR = SHARED / "golden" / "caffe"
RTOL, ATOL = 1e-4, 1e-5


def case_names():
    """Every single-layer case in the golden folder (empty when it is absent)."""
    if not GOLDEN_DIR.is_dir():
        return []
    return sorted(p.stem for p in GOLDEN_DIR.glob("*.npz") if not p.stem.startswith("net_"))


def load_case(name):
    """(npz, meta, layer_param) of one case."""
    z = np.load(shared_path("golden", "caffe", f"{name}.npz"))
    meta = json.loads(z["meta"].item())
    net = text_format.Parse(z["prototxt"].item(), pb.NetParameter())
    layer_param = next(l for l in net.layer if l.name == "layer")
    return z, meta, layer_param


def run_case(name, dtype=np.float32):
    """Run the case's layer forward and backward and assert agreement with Caffe."""
    z, meta, param = load_case(name)
    phase = pb.TRAIN if meta["phase"] == "TRAIN" else pb.TEST
    layer = layer_class(param.type)(param, phase, dtype)

    blobs = {}
    bottom = []
    for i, bname in enumerate(meta["bottom_names"]):
        values = z[f"bottom{i}_data"]
        blob = Blob(values.shape, dtype)
        blob.data[...] = values
        blobs[bname] = blob
        bottom.append(blob)
    top = [blobs.get(t) or blobs.setdefault(t, Blob((), dtype)) for t in meta["top_names"]]

    layer.check_blob_counts(bottom, top)
    layer.setup(bottom, top)
    layer.reshape(bottom, top)
    assert len(layer.blobs) == meta["num_params"], f"{name}: number of params"
    for i, blob in enumerate(layer.blobs):
        expected = z[f"param{i}_data"]
        assert blob.shape == expected.shape, f"{name}: param {i} shape"
        blob.data[...] = expected

    layer.forward(bottom, top)
    for i, blob in enumerate(top):
        np.testing.assert_allclose(blob.data, z[f"top{i}_data"], RTOL, ATOL,
                                   err_msg=f"{name}: top {i}")
        if blob.data.dtype.kind == "f" and meta["layer_type"] in ("ArgMax", "Accuracy"):
            np.testing.assert_array_equal(blob.data, z[f"top{i}_data"])
    for i, blob in enumerate(layer.blobs):
        key = f"param{i}_data_after_forward"
        if key in z:
            np.testing.assert_allclose(blob.data, z[key], RTOL, ATOL,
                                       err_msg=f"{name}: param {i} after forward")

    if not meta["has_backward"]:
        return
    for i, blob in enumerate(top):
        blob.diff[...] = z[f"top{i}_diff"]
    for blob in layer.blobs:
        blob.diff[...] = 0
    layer.backward(top, list(meta["bottom_has_diff"]), bottom)
    for i, blob in enumerate(bottom):
        if meta["bottom_has_diff"][i]:
            np.testing.assert_allclose(blob.diff, z[f"bottom{i}_diff"], RTOL, ATOL,
                                       err_msg=f"{name}: bottom {i} diff")
    for i, blob in enumerate(layer.blobs):
        key = f"param{i}_diff"
        if key in z:
            np.testing.assert_allclose(blob.diff, z[key], RTOL, ATOL,
                                       err_msg=f"{name}: param {i} diff")
