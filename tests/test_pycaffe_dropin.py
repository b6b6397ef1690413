"""What makes cyffe a drop-in for pycaffe beyond the Net basics: feeding only real inputs,
the phase, TEST-net errors, HDF5 weights by method, the runtime names, errors of builtin types."""
import warnings

import numpy as np
import pytest

import cyffe
from cyffe import layers as L

DATA_NET = """
name: "fed"
layer { name: "data" type: "DummyData" top: "data"
        dummy_data_param { shape { dim: 2 dim: 3 } data_filler { type: "constant" value: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 2 weight_filler { type: "constant" value: 1 } } }
"""

PHASED_NET = """
name: "phased"
layer { name: "train_data" type: "DummyData" top: "data" include { phase: TRAIN }
        dummy_data_param { shape { dim: 2 dim: 3 } } }
layer { name: "drop" type: "Dropout" bottom: "data" top: "drop"
        dropout_param { dropout_ratio: 0.5 } }
"""


def test_feeding_a_blob_a_data_layer_writes_raises():
    # pycaffe refuses it; before, the DummyData layer overwrote what was fed and x was ignored.
    net = cyffe.Net(DATA_NET, cyffe.TEST)
    x = np.full((2, 3), 5, np.float32)
    message = (r"forward\(data=...\): 'data' is not a net input: "
               r"layer 'data' \(DummyData\) writes it")
    with pytest.raises(cyffe.NetError, match=message):
        net.forward(data=x)
    with pytest.raises(cyffe.NetError, match=message):
        net.forward_all(data=np.concatenate([x, x]))
    # From a later layer on, the blob is the caller's to set, as pycaffe's forward(start=...).
    out = net.forward(start="ip", data=x)
    np.testing.assert_array_equal(out["ip"], np.full((2, 2), 15.0))


def test_an_input_blob_is_fed():
    n = cyffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 3]))
    n.ip = L.InnerProduct(n.data, num_output=1, weight_filler=dict(type="constant", value=2))
    net = cyffe.Net(n.to_proto(), cyffe.TEST)
    np.testing.assert_array_equal(net.forward(data=np.ones((2, 3)))["ip"], np.full((2, 1), 6.0))


def test_a_net_without_a_phase_warns_that_it_is_the_train_net(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(PHASED_NET)
    with pytest.warns(cyffe.PhaseWarning, match="without a phase: this is the TRAIN net"):
        net = cyffe.Net(str(path))
    assert net.phase == cyffe.TRAIN and "train_data" in net.layer_dict
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cyffe.Net(str(path), cyffe.TRAIN)
        weights = tmp_path / "w.caffemodel"
        net.save(str(weights))
        # pycaffe's older order, Net(model, weights, phase), gives the phase too.
        assert cyffe.Net(str(path), str(weights), cyffe.TRAIN).phase == cyffe.TRAIN


def test_a_test_net_error_says_it_is_the_test_net(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(PHASED_NET)
    with pytest.raises(cyffe.NetError) as caught:
        cyffe.Net(str(path), cyffe.TEST)
    message = str(caught.value)
    assert message.startswith(f"{path} (TEST net): layer 'drop'")
    assert ("bottom blob 'data' is not produced by any layer of the TEST net (layer "
            "'train_data' makes it, but not in TEST)") in message


def test_save_hdf5_and_load_hdf5_whatever_the_name(tmp_path):
    net = cyffe.Net(DATA_NET, cyffe.TEST)
    net.params["ip"][0].data[...] = np.arange(6).reshape(2, 3)
    path = str(tmp_path / "weights.bin")                   # no .h5: the method says HDF5
    net.save_hdf5(path)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89HDF\r\n\x1a\n"
    other = cyffe.Net(DATA_NET, cyffe.TEST)
    other.load_hdf5(path)
    np.testing.assert_array_equal(other.params["ip"][0].data, net.params["ip"][0].data)


def test_the_runtime_names_of_a_cpu_pycaffe():
    assert cyffe.has_nccl() is False
    with pytest.raises(cyffe.NetError, match="no pycaffe NCCL.*mpiexec -n N train_net"):
        cyffe.NCCL(None, b"")
    with pytest.raises(cyffe.NetError, match="no pycaffe NCCL"):
        cyffe.NCCL.new_uid()
    try:
        cyffe.set_solver_count(4)
        cyffe.set_solver_rank(2)
        cyffe.set_multiprocess(True)
        assert (cyffe.solver_count(), cyffe.solver_rank()) == (4, 2)
    finally:
        cyffe.set_solver_count(1)
        cyffe.set_solver_rank(0)
        cyffe.set_multiprocess(False)
    assert (cyffe.solver_count(), cyffe.solver_rank()) == (1, 0)


def test_timer_measures_between_start_and_stop(monkeypatch):
    from cyffe.net.pycaffe import runtime
    clock = iter([10.0, 10.25, 20.0, 20.5])
    monkeypatch.setattr(runtime.time, "perf_counter", lambda: next(clock))
    timer = cyffe.Timer()
    timer.start()
    timer.stop()
    assert timer.ms == pytest.approx(250.0)
    timer.start()
    assert timer.ms == pytest.approx(500.0)                 # read while running: stops first
    assert timer.ms == pytest.approx(500.0)


def test_errors_are_the_builtin_types_pycaffe_raises():
    assert issubclass(cyffe.NetError, RuntimeError) and issubclass(cyffe.NetError, ValueError)
    with pytest.raises(TypeError,
                       match=r"^Silence input 0 is not a Top \(type is <class 'tuple'>\)$"):
        L.Silence(L.DummyData(ntop=2), ntop=0)
    with pytest.raises(ValueError):
        cyffe.io.blobproto_to_array(cyffe.proto.caffe_pb2.BlobProto(data=[0] * 4))


def test_pycaffe_module_names_import():
    import cyffe.coord_map
    import cyffe.draw
    import cyffe.net_spec
    from cyffe.proto import caffe_pb2
    assert caffe_pb2.NetParameter is cyffe.proto.cyffe_pb2.NetParameter
    assert cyffe.net_spec.NetSpec is cyffe.NetSpec
    assert callable(cyffe.draw.draw_net_to_file) and callable(cyffe.coord_map.crop)
