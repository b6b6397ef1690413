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
