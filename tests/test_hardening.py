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

def test_hdf5_output_with_0d_bottoms(tmp_path):
    net = (f'layer {{ name: "in" type: "Input" top: "a" top: "b" input_param {{ shape {{ }} '
           f'shape {{ }} }} }}\n'
           f'layer {{ name: "out" type: "HDF5Output" bottom: "a" bottom: "b" '
           f'hdf5_output_param {{ file_name: "{tmp_path / "o.h5"}" }} }}')
    with pytest.raises(ShapeError, match=r"layer 'out' \(HDF5Output\): .*no axes"):
        cyffe.Net(net, cyffe.TEST)


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
