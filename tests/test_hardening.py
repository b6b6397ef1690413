"""Bad files, absurd sizes and faults end in one clear error (issue 15's defects, one by one)."""
import gzip
import io
import os
import struct

import h5py
import numpy as np
import pytest

import cyffe
from cyffe.layers.blob import Blob
from cyffe.layers.pipeline.databases import write_lmdb
from cyffe.layers.pipeline.images import datum_to_array, decode_image, read_image
from cyffe.layers.registry import layer_class
from cyffe.net.solver import learning_rate
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto import hdf5_format, solverstate
from cyffe.proto.errors import (CyffeError, DataError, LayerError, NetError, ShapeError)
from cyffe.proto.io import blobproto_to_array
from cyffe.tools.convert_mnist import read_idx

NET = """
name: "tiny"
layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 3 dim: 4 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 2 } }
"""


def h5_list(tmp_path, **datasets):
    with h5py.File(tmp_path / "d.h5", "w") as f:
        for name, value in datasets.items():
            f[name] = value
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'd.h5'}\n")
    return tmp_path / "list.txt"


def hdf5_data_net(source, batch=2, tops=("data",)):
    tops_text = " ".join(f'top: "{t}"' for t in tops)
    return (f'layer {{ name: "h5" type: "HDF5Data" {tops_text} '
            f'hdf5_data_param {{ source: "{source}" batch_size: {batch} }} }}')


# -- 1. no segfaults from unchecked indexing in the layers' Python code ------------------------

def test_hdf5_data_with_a_scalar_dataset(tmp_path):
    with pytest.raises(DataError, match=r"layer 'h5' \(HDF5Data\): .*'data'.* no rows"):
        cyffe.Net(hdf5_data_net(h5_list(tmp_path, data=np.float32(3))), cyffe.TRAIN)


def test_hdf5_output_with_0d_bottoms(tmp_path):
    net = (f'layer {{ name: "in" type: "Input" top: "a" top: "b" input_param {{ shape {{ }} '
           f'shape {{ }} }} }}\n'
           f'layer {{ name: "out" type: "HDF5Output" bottom: "a" bottom: "b" '
           f'hdf5_output_param {{ file_name: "{tmp_path / "o.h5"}" }} }}')
    with pytest.raises(ShapeError, match=r"layer 'out' \(HDF5Output\): .*no axes"):
        cyffe.Net(net, cyffe.TEST)


# -- 2, 9. full disks and failed writes ---------------------------------------------------------

def test_hdf5_weights_are_written_in_one_write(tmp_path, monkeypatch):
    """HDF5 never writes the file itself, so a full disk fails in Python's write."""
    net = cyffe.Net(NET, cyffe.TEST)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hdf5_format, "write_bytes", lambda path, data: full())
    with pytest.raises(OSError, match="No space left"):
        net.save(str(tmp_path / "w.caffemodel.h5"))
    assert os.listdir(tmp_path) == []


def test_lmdb_write_failure_is_a_data_error_and_leaves_nothing(tmp_path):
    records = ((b"%08d" % i, bytes(4096)) for i in range(1000))    # 4 MB into a 1 MB map
    with pytest.raises(DataError, match=r"db: cannot write LMDB: .*MDB_MAP_FULL"):
        write_lmdb(tmp_path / "db", records, map_size=1 << 20)
    assert os.listdir(tmp_path) == []


# -- 3. restoring HDF5Data is arithmetic ------------------------------------------------------

def test_hdf5_data_skip_to_a_far_iteration_reads_one_file(tmp_path, monkeypatch):
    names = []
    for k, rows in enumerate((3, 5, 4)):
        with h5py.File(tmp_path / f"{k}.h5", "w") as f:
            f["data"] = np.arange(rows, dtype=np.float32)[:, None] + 10 * k
        names.append(f"{k}.h5")
    (tmp_path / "list.txt").write_text("\n".join(names) + "\n")
    param = pb.LayerParameter(name="h5", type="HDF5Data", top=["data"])
    param.hdf5_data_param.source = str(tmp_path / "list.txt")
    param.hdf5_data_param.batch_size = 5
    param.hdf5_data_param.shuffle = True

    def started():
        cyffe.set_random_seed(3)
        layer = layer_class("HDF5Data")(param, pb.TRAIN)
        top = [Blob()]
        layer.setup([], top)
        return layer, top

    far = 2 ** 31 // 5 + 7                      # an iteration near 2^31
    straight, top = started()
    loads = []
    original = type(straight)._load
    monkeypatch.setattr(type(straight), "_load", lambda self, p: (loads.append(p),
                                                                  original(self, p))[1])
    straight.skip(far)
    assert len(loads) <= 1
    # The position is the same as one reached by forwards (a small case checked row by row).
    want = []
    walked, top = started()
    for _ in range(9):
        walked.forward([], top)
        want.append(top[0].data.copy())
    jumped, top = started()
    jumped.skip(7)
    for w in want[7:]:
        jumped.forward([], top)
        np.testing.assert_array_equal(top[0].data, w)


# -- 4. HDF5 weights and solver states are checked before they are read -----------------------

@pytest.mark.parametrize("build, message", [
    (lambda f: f.create_dataset("data", data=np.zeros(3)), "/data: not a group"),
    (lambda f: f.create_dataset("data/ip1", data=np.zeros(3)), "layer 'ip1': not a group"),
    (lambda f: f.__setitem__("data/ip1/0", h5py.SoftLink("/nowhere")), "dangling"),
    (lambda f: f.create_dataset("data/ip1/0", data=np.bytes_("text")), "not numbers"),
    (lambda f: f.create_dataset("data/ip1/0", shape=(2 ** 20, 2 ** 20), dtype="f4",
                                chunks=(1, 16)), "more than a blob holds"),
])
def test_malformed_hdf5_weights(tmp_path, build, message):
    path = tmp_path / "w.caffemodel.h5"
    with h5py.File(path, "w") as f:
        build(f)
    with pytest.raises(DataError, match=message):
        cyffe.Net(NET, cyffe.TEST).copy_from(str(path))


def test_corrupt_hdf5_bytes(tmp_path):
    path = tmp_path / "w.caffemodel.h5"
    cyffe.Net(NET, cyffe.TEST).save(str(path))
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2:] = bytes(len(raw) - len(raw) // 2)
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="w.caffemodel.h5"):
        cyffe.Net(NET, cyffe.TEST).copy_from(str(path))


@pytest.mark.parametrize("iteration", [np.bytes_("7"), np.array([-3], np.int32)])
def test_bad_iter_in_hdf5_solver_state(tmp_path, iteration):
    path = tmp_path / "s.solverstate.h5"
    with h5py.File(path, "w") as f:
        f["iter"] = iteration
        f.create_group("history")
    with pytest.raises(DataError, match="'iter'"):
        solverstate.read_solver_state(str(path))


def test_negative_iter_in_binary_solver_state(tmp_path):
    path = tmp_path / "s.solverstate"
    path.write_bytes(pb.SolverState(iter=-5).SerializeToString())
    with pytest.raises(DataError, match="negative"):
        solverstate.read_solver_state(str(path))


# -- 5. HDF5 weights of another net, or of none ----------------------------------------------

def test_hdf5_weights_of_another_net(tmp_path):
    path = tmp_path / "other.caffemodel.h5"
    with h5py.File(path, "w") as f:
        f["data/conv9/0"] = np.zeros((2, 4), np.float32)
    with pytest.raises(DataError, match="weights for another net: none of its layers "
                                        r"\('conv9'\)"):
        cyffe.Net(NET, cyffe.TEST).copy_from(str(path))


def test_hdf5_weights_without_layers(tmp_path):
    path = tmp_path / "none.caffemodel.h5"
    with h5py.File(path, "w") as f:
        f.create_group("data/ip1")
    with pytest.raises(DataError, match="holds no learned weights"):
        cyffe.Net(NET, cyffe.TEST).copy_from(str(path))


# -- 6. negative dimensions --------------------------------------------------------------------

def test_negative_legacy_blob_dimensions_do_not_cancel():
    blob = pb.BlobProto(num=-1, channels=-2, height=1, width=1, data=[1, 2])
    with pytest.raises(DataError, match="negative dimension"):
        blobproto_to_array(blob)


def test_negative_datum_dimensions():
    datum = pb.Datum(channels=-1, height=-2, width=1, data=b"ab")
    with pytest.raises(DataError, match="negative dimension"):
        datum_to_array(datum)


def test_negative_idx_dimensions(tmp_path):
    path = tmp_path / "images.idx"
    path.write_bytes(struct.pack(">4i", 0x803, -1, -2, 1) + b"ab")
    with pytest.raises(DataError, match="negative size"):
        read_idx(str(path), 0x803, 3)


# -- 7, 8. corrupt gz, decompression bombs ---------------------------------------------------

def test_corrupt_gz_idx(tmp_path):
    raw = bytearray(gzip.compress(struct.pack(">2i", 0x801, 3) + b"abc" * 100))
    raw[20:30] = b"\xff" * 10
    path = tmp_path / "labels.gz"
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="labels.gz: cannot read"):
        read_idx(str(path), 0x801, 1)


def test_decompression_bombs_are_refused_naming_the_file(tmp_path, monkeypatch):
    from PIL import Image
    buffer = io.BytesIO()
    Image.new("L", (40, 40)).save(buffer, "PNG")
    (tmp_path / "bomb.png").write_bytes(buffer.getvalue())
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)     # 1600 pixels: over twice that
    with pytest.raises(DataError, match="bomb.png"):
        read_image(str(tmp_path / "bomb.png"))
    with pytest.raises(DataError, match="datum 7"):
        decode_image(buffer.getvalue(), where="datum 7")


def test_absurd_resize_is_refused_before_reading(tmp_path):
    with pytest.raises(DataError, match="more than a blob holds"):
        read_image(str(tmp_path / "any.png"), 100000, 100000)


# -- 10. absurd sizes ----------------------------------------------------------------------------

@pytest.mark.parametrize("net, layer", [
    ('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1000000000 '
     'dim: 3 dim: 224 dim: 224 } } }', "in"),
    ('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'
     'layer { name: "huge" type: "InnerProduct" bottom: "x" top: "y" '
     'inner_product_param { num_output: 4000000000 } }', "huge"),
    ('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'
     'layer { name: "t" type: "Tile" bottom: "x" top: "y" tile_param { axis: 1 '
     'tiles: 2000000000 } }', "t"),
    ('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 dim: 4 '
     'dim: 4 } } }\n'
     'layer { name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param { '
     'num_output: 2 kernel_size: 3 pad: 2000000000 } }', "c"),
    ('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 } } }\n'
     'layer { name: "e" type: "Embed" bottom: "x" top: "y" embed_param { '
     'num_output: 4000000000 input_dim: 10 } }', "e"),
])
def test_absurd_sizes_name_the_layer_before_allocating(net, layer):
    with pytest.raises(ShapeError, match=f"layer '{layer}'.*more than a blob holds"):
        cyffe.Net(net, cyffe.TEST)


def test_negative_blob_shape_is_a_shape_error():
    with pytest.raises(ShapeError, match="negative dimension"):
        Blob((2,)).reshape(-1, -3)


# -- 11. errors inside layers name the layer ---------------------------------------------------

class Fails(cyffe.Layer):
    """A Python layer whose forward raises a ValueError of its own."""

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        raise ValueError("my own mistake")

    def backward(self, top, propagate_down, bottom):
        pass


def test_an_exception_inside_a_layer_names_it_and_keeps_its_class(tmp_path, monkeypatch):
    (tmp_path / "failing_layer.py").write_text(
        "from test_hardening import Fails\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    net = cyffe.Net(
        'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 } } }\n'
        'layer { name: "boom" type: "Python" bottom: "x" top: "y" '
        'python_param { module: "failing_layer" layer: "Fails" } }', cyffe.TEST)
    with pytest.raises(LayerError, match=r"layer 'boom' \(Python\): ValueError: my own "
                                         "mistake") as info:
        net.forward()
    assert isinstance(info.value, ValueError) and isinstance(info.value, CyffeError)
    assert isinstance(info.value.__cause__, ValueError)
    assert str(info.value.__cause__) == "my own mistake"


def test_0d_bottoms_into_a_loss_name_the_layer():
    net = ('layer { name: "in" type: "Input" top: "x" top: "t" input_param { shape { } '
           'shape { } } }\n'
           'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "t" top: "l" }')
    with pytest.raises(CyffeError, match=r"layer 'loss' \(SoftmaxWithLoss\)"):
        cyffe.Net(net, cyffe.TRAIN)


# -- 12. lr policies and absurd solver fields are checked at construction -----------------------

SOLVER = 'net_param {{ {net} }} base_lr: 0.1 {extra}'


@pytest.mark.parametrize("extra, message", [
    ('lr_policy: "poly" power: -1 max_iter: 10', "power >= 0"),
    ('lr_policy: "inv" gamma: -0.5 power: 1', "gamma >= 0"),
    ("max_iter: -5", "max_iter must not be negative"),
    ("momentum: -0.9", "momentum must be"),
    ("test_iter: -1 test_interval: 5", "test_iter must not be negative"),
    ("clip_gradients: nan", "clip_gradients is NaN"),
])
def test_bad_solver_fields_are_refused_at_construction(extra, message):
    with pytest.raises(NetError, match=message):
        cyffe.SGDSolver(SOLVER.format(net=NET.replace("\n", " "), extra=extra))


def test_sigmoid_policy_does_not_overflow():
    param = pb.SolverParameter(lr_policy="sigmoid", base_lr=0.1, gamma=-1e6, stepsize=10)
    assert learning_rate(param, 100000) == 0.0
    param.gamma = 1e6
    assert learning_rate(param, 100000) == pytest.approx(0.1)


# -- 13. ImageData with one of new_height / new_width ---------------------------------------

def test_image_data_with_only_new_height(tmp_path):
    from PIL import Image
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    (tmp_path / "list.txt").write_text("a.png 0\n")
    net = (f'layer {{ name: "img" type: "ImageData" top: "x" top: "y" image_data_param {{ '
           f'source: "{tmp_path / "list.txt"}" root_folder: "{tmp_path}/" batch_size: 1 '
           f'new_height: 8 }} }}')
    with pytest.raises(NetError, match="new_height and new_width must both be set"):
        cyffe.Net(net, cyffe.TRAIN)


# -- 14. written files get the umask's mode ----------------------------------------------------

def test_written_files_get_the_umasks_mode(tmp_path):
    old = os.umask(0o022)
    try:
        net = cyffe.Net(NET, cyffe.TEST)
        net.save(str(tmp_path / "w.caffemodel"))
        net.save(str(tmp_path / "w.caffemodel.h5"))
        write_lmdb(tmp_path / "db", [(b"k", b"v")], map_size=1 << 20)
    finally:
        os.umask(old)
    for name in ("w.caffemodel", "w.caffemodel.h5", "db/data.mdb"):
        assert oct(os.stat(tmp_path / name).st_mode & 0o777) == oct(0o644), name
    assert oct(os.stat(tmp_path / "db").st_mode & 0o777) == oct(0o755)


def test_snapshot_prefix_under_a_file_is_refused_at_construction(tmp_path):
    (tmp_path / "file").write_text("")
    solver = SOLVER.format(net=NET.replace("\n", " "),
                           extra=f'max_iter: 1 snapshot_prefix: "{tmp_path}/file/sub/snap"')
    with pytest.raises(NetError, match="which is a file, not a folder"):
        cyffe.SGDSolver(solver)


# -- smaller: BLAS threads ------------------------------------------------------------------------

def test_overlapping_one_blas_thread_contexts_give_back_the_original_limit():
    import threading
    from threadpoolctl import threadpool_info
    from cyffe.layers.backend import one_blas_thread

    def blas_threads():
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before = blas_threads()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def first():
        with one_blas_thread():
            a_in.set()
            b_in.wait(10)
        a_out.set()

    def second():
        a_in.wait(10)
        with one_blas_thread():
            b_in.set()
            a_out.wait(10)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert blas_threads() == before
