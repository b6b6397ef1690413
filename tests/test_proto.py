"""The schema and file formats: Caffe's files parse, binary protos round-trip, errors locate."""
import numpy as np
import pytest

import cyffe
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.io import (array_to_blobproto, blobproto_to_array, read_net, read_net_weights,
                            read_solver, write_binary)
from helpers.shared import shared_path


def prototxts(folder):
    return sorted(shared_path("data", folder).rglob("*.prototxt"))


def test_every_mnist_example_parses():
    files = prototxts("caffe-prototxt/examples/mnist")
    assert len(files) == 7
    for path in files:
        if "solver" in path.name:
            param, source = read_solver(str(path))
            assert param.base_lr > 0 and source == str(path)
        else:
            param, _ = read_net(str(path))
            assert param.layer


def test_every_shared_net_parses():
    for folder in ("caffe-prototxt", "caffe-prototxt-input", "caffe-models"):
        for path in prototxts(folder):
            text = path.read_text()
            if path.name.endswith("solver.prototxt"):
                read_solver(text)
            elif "layer" in text:
                read_net(text)


def test_caffes_lenet_caffemodel_reads():
    net = read_net_weights(str(shared_path("data", "caffe-models", "lenet",
                                           "lenet_iter_10000.caffemodel")))
    conv1 = next(l for l in net.layer if l.name == "conv1")
    assert blobproto_to_array(conv1.blobs[0]).shape == (20, 1, 5, 5)


def test_syntax_error_has_file_line_and_column(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text('name: "x"\nlayer {\n  name: "a" type: "ReLU"\n  bottom: 3 {\n}\n')
    with pytest.raises(cyffe.ProtoError, match=r"net.prototxt:4:\d+: "):
        read_net(str(path))


def test_string_input_errors_say_string():
    with pytest.raises(cyffe.ProtoError, match=r"<string>:1:\d+"):
        read_net('layer { nme: "a" }\n')


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(cyffe.DataError, match="nope.prototxt"):
        read_net(str(tmp_path / "nope.prototxt"))


def test_corrupt_caffemodel_names_the_file(tmp_path):
    path = tmp_path / "bad.caffemodel"
    path.write_bytes(b"\xff\xff\xff\xff garbage")
    with pytest.raises(cyffe.DataError, match="bad.caffemodel"):
        read_net_weights(str(path))


def test_blobproto_round_trip_and_legacy_shape():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(blobproto_to_array(array_to_blobproto(a)), a)
    d = np.linspace(0, 1, 6).reshape(2, 3)
    back = blobproto_to_array(array_to_blobproto(d))
    assert back.dtype == np.float64
    np.testing.assert_array_equal(back, d)
    legacy = pb.BlobProto(num=1, channels=2, height=1, width=3, data=list(range(6)))
    assert blobproto_to_array(legacy).shape == (1, 2, 1, 3)
    with pytest.raises(cyffe.DataError, match="holds 5 values"):
        blobproto_to_array(pb.BlobProto(num=1, channels=2, height=1, width=3, data=list(range(5))))


def test_write_binary_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "out.caffemodel"
    write_binary(pb.NetParameter(name="first"), str(path))

    class Boom(Exception):
        pass

    def explode(self):
        raise Boom()

    monkeypatch.setattr(pb.NetParameter, "SerializeToString", explode)
    with pytest.raises(Boom):
        write_binary(pb.NetParameter(name="second"), str(path))
    monkeypatch.undo()
    assert read_net_weights(str(path)).name == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["out.caffemodel"]


def test_caffe_names_are_available_as_caffe_pb2():
    from cyffe.proto import caffe_pb2
    assert caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name["convolution_param"].number == 106
    assert caffe_pb2.NetParameter.DESCRIPTOR.fields_by_name["layer"].number == 100
