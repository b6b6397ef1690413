"""Mutated files of every format cyffe reads end in a CyffeError or an OSError naming the path.

Seeded and bounded: each format takes a valid file, mutates it CASES times (bytes flipped,
runs cut out or repeated, the end cut off; text edited without making huge numbers) and
reads it back. A read may succeed (a mutation can keep a file valid); it may fail only with
a CyffeError, or an OSError whose message names the file. Anything else, a crash or a hang
fails the test (the case's seed is in the message).
"""
import gzip
import io
import os
import random
import struct

import h5py
import numpy as np
import pytest

import cyffe
from cyffe.layers.pipeline.databases import parse_datum
from cyffe.layers.pipeline.images import datum_to_array, decode_image
from cyffe.layers.pipeline.transformer import DataTransformer
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import CyffeError
from cyffe.proto.io import array_to_blobproto
from cyffe.proto.solverstate import read_solver_state, write_solver_state
from cyffe.tools.convert_mnist import read_idx

CASES = 40

NET = """name: "fuzz"
layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "x" top: "c"
        convolution_param { num_output: 4 kernel_size: 3 stride: 1 pad: 1 } }
layer { name: "pool" type: "Pooling" bottom: "c" top: "p" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "relu" type: "ReLU" bottom: "p" top: "p" }
layer { name: "ip" type: "InnerProduct" bottom: "p" top: "y" inner_product_param { num_output: 3 } }
layer { name: "prob" type: "Softmax" bottom: "y" top: "prob" }
"""


def mutate_bytes(data, rng):
    """data with one to three random edits: flipped bytes, a run cut or repeated, a cut end."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(4)
        at = rng.randrange(max(len(data), 1))
        if kind == 0:
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 1:
            del data[at:at + rng.randint(1, 64)]
        elif kind == 2:
            data[at:at] = data[at:at + rng.randint(1, 64)]
        else:
            del data[at:]
        if not data:
            break
    return bytes(data)


def mutate_text(text, rng):
    """text with a few edits that keep numbers small: characters dropped, swapped or added."""
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(chars))
        kind = rng.randrange(4)
        if kind == 0:
            del chars[at:at + rng.randint(1, 10)]
        elif kind == 1:
            chars[at] = rng.choice('{}:"# -_aZ\n')
        elif kind == 2:
            chars.insert(at, rng.choice('{}:" \nx'))
        elif chars[at].isdigit():
            chars[at] = "-"
        if not chars:
            break
    return "".join(chars)


def check(read, path, seed):
    """Run read(); a failure must be a CyffeError or an OSError naming path."""
    try:
        read()
    except CyffeError:
        pass
    except OSError as err:
        assert os.path.basename(str(path)) in str(err), f"seed {seed}: {err!r}"
    except Exception as err:            # the test's point: nothing else gets out
        pytest.fail(f"seed {seed}: {type(err).__name__}: {err}")


def fuzz_file(tmp_path, name, valid, read, seed, text=False):
    """Write CASES mutations of valid (bytes, or text) to tmp_path/name, reading each back."""
    rng = random.Random(seed)
    path = tmp_path / name
    for case in range(CASES):
        if text:
            path.write_text(mutate_text(valid, rng))
        else:
            path.write_bytes(mutate_bytes(valid, rng))
        check(lambda: read(str(path)), path, (seed, case))


@pytest.fixture(scope="module")
def net():
    cyffe.set_random_seed(0)
    return cyffe.Net(NET, cyffe.TEST)


def test_prototxt(tmp_path):
    fuzz_file(tmp_path, "net.prototxt", NET, lambda p: cyffe.Net(p, cyffe.TEST), 1, text=True)


def test_solver_prototxt(tmp_path):
    (tmp_path / "net.prototxt").write_text(NET)
    solver = ('net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "step"\nstepsize: 10\n'
              'gamma: 0.5\nmomentum: 0.9\nmax_iter: 5\nsnapshot_prefix: "s"\n')
    fuzz_file(tmp_path, "solver.prototxt", solver, lambda p: cyffe.SGDSolver(p), 2, text=True)


def test_caffemodel(tmp_path, net):
    path = tmp_path / "w.caffemodel"
    net.save(str(path))
    fuzz_file(tmp_path, "m.caffemodel", path.read_bytes(), net.copy_from, 3)


def test_caffemodel_h5(tmp_path, net):
    path = tmp_path / "w.caffemodel.h5"
    net.save(str(path))
    fuzz_file(tmp_path, "m.caffemodel.h5", path.read_bytes(), net.copy_from, 4)


@pytest.mark.parametrize("name", ["s.solverstate", "s.solverstate.h5"])
def test_solverstate(tmp_path, name):
    path = tmp_path / f"valid-{name}"
    history = [np.arange(12, dtype=np.float32).reshape(3, 4), np.ones(3, np.float32)]
    write_solver_state(str(path), 7, "w.caffemodel", 1, history)
    fuzz_file(tmp_path, name, path.read_bytes(), read_solver_state, 5)


def test_binaryproto_mean(tmp_path):
    valid = array_to_blobproto(np.ones((1, 3, 4, 4), np.float32)).SerializeToString()

    def read(path):
        param = pb.TransformationParameter(mean_file=path)
        DataTransformer(param, pb.TRAIN, where=path)

    fuzz_file(tmp_path, "mean.binaryproto", valid, read, 6)


def test_lmdb_datums():
    rng = random.Random(7)
    raw = pb.Datum(channels=3, height=4, width=5, data=bytes(60), label=1).SerializeToString()
    buffer = io.BytesIO()
    from PIL import Image
    Image.new("RGB", (5, 4), (10, 20, 30)).save(buffer, "PNG")
    encoded = pb.Datum(channels=3, height=4, width=5, data=buffer.getvalue(), encoded=True,
                       label=2).SerializeToString()
    floats = pb.Datum(channels=1, height=2, width=2, float_data=[1, 2, 3, 4]).SerializeToString()
    for valid in (raw, encoded, floats):
        for case in range(CASES):
            value = mutate_bytes(valid, rng)
            check(lambda: datum_to_array(parse_datum(value, "key 1"), where="key 1"),
                  "key 1", case)


def test_encoded_images():
    rng = random.Random(8)
    from PIL import Image
    for fmt in ("PNG", "JPEG", "BMP"):
        buffer = io.BytesIO()
        Image.new("RGB", (6, 5), (1, 2, 3)).save(buffer, fmt)
        for case in range(CASES):
            value = mutate_bytes(buffer.getvalue(), rng)
            check(lambda: decode_image(value, where="img"), "img", case)


def hdf5_data_net(source):
    return (f'layer {{ name: "h5" type: "HDF5Data" top: "data" top: "label" '
            f'hdf5_data_param {{ source: "{source}" batch_size: 3 }} }}')


def test_hdf5_data_files(tmp_path):
    valid = tmp_path / "valid.h5"
    with h5py.File(valid, "w") as f:
        f["data"] = np.arange(40, dtype=np.float32).reshape(5, 2, 4)
        f["label"] = np.arange(5, dtype=np.float32)
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'd.h5'}\n")

    def read(path):
        net = cyffe.Net(hdf5_data_net(tmp_path / "list.txt"), cyffe.TRAIN)
        net.forward()
        net.forward()

    fuzz_file(tmp_path, "d.h5", valid.read_bytes(), read, 9)


def test_hdf5_data_lists(tmp_path):
    for name in "ab":
        with h5py.File(tmp_path / f"{name}.h5", "w") as f:
            f["data"] = np.zeros((4, 3), np.float32)
            f["label"] = np.zeros(4, np.float32)
    valid = f"{tmp_path / 'a.h5'}\n{tmp_path / 'b.h5'}\n"
    fuzz_file(tmp_path, "list.txt", valid,
              lambda p: cyffe.Net(hdf5_data_net(p), cyffe.TRAIN).forward(), 10, text=True)


def test_image_lists(tmp_path):
    from PIL import Image
    for name in ("a", "b"):
        Image.new("RGB", (5, 4)).save(tmp_path / f"{name}.png")
    valid = "a.png 0\nb.png 1\n"

    def read(path):
        net = cyffe.Net(f'layer {{ name: "img" type: "ImageData" top: "x" top: "y" '
                        f'image_data_param {{ source: "{path}" root_folder: "{tmp_path}/" '
                        f'batch_size: 2 }} }}', cyffe.TRAIN)
        net.forward()
        net.layers[0].stop()

    fuzz_file(tmp_path, "images.txt", valid, read, 11, text=True)


@pytest.mark.parametrize("gz", [False, True])
def test_idx(tmp_path, gz):
    valid = struct.pack(">4i", 0x803, 3, 4, 4) + bytes(range(48))
    if gz:
        valid = gzip.compress(valid)
    fuzz_file(tmp_path, "images.idx" + (".gz" if gz else ""), valid,
              lambda p: read_idx(p, 0x803, 3), 12 + gz)
