"""HDF5Output: every forward appends its bottoms to datasets data and label."""
import h5py
import numpy as np
import pytest

import cyffe
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import DataError


def test_batches_are_appended_and_readable_after_each_forward(tmp_path):
    out = tmp_path / "out.h5"
    net = cyffe.Net(
        "layer { name: 'm' type: 'MemoryData' top: 'data' top: 'label' "
        "memory_data_param { batch_size: 2 channels: 1 height: 1 width: 3 } } "
        f"layer {{ name: 'o' type: 'HDF5Output' bottom: 'data' bottom: 'label' "
        f"hdf5_output_param {{ file_name: '{out}' }} }}", pb.TEST)
    data = np.arange(12, dtype=np.float32).reshape(4, 1, 1, 3)
    net.set_input_arrays(data, np.arange(4))
    net.forward()
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["data"][()], data[:2])
    net.forward()
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["data"][()], data)
        np.testing.assert_array_equal(f["label"][()], [0, 1, 2, 3])
    net.layer_dict["o"].close()


def test_unwritable_file_names_it(tmp_path):
    with pytest.raises(DataError, match="cannot create.*nodir"):
        cyffe.Net(
            "layer { name: 'm' type: 'MemoryData' top: 'data' top: 'label' "
            "memory_data_param { batch_size: 1 channels: 1 height: 1 width: 1 } } "
            f"layer {{ name: 'o' type: 'HDF5Output' bottom: 'data' bottom: 'label' "
            f"hdf5_output_param {{ file_name: '{tmp_path}/nodir/out.h5' }} }}", pb.TEST)
