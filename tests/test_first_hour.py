"""What a new user meets in the first hour: typo hints, the net summary, a net that cannot
train."""
import re
from pathlib import Path

import pytest

import cyffe

REPO = Path(__file__).resolve().parents[1]
NET = REPO / "examples" / "digits" / "lenet_train_test.prototxt"

INPUT = 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'


# -- did you mean ------------------------------------------------------------------------------

def test_a_misspelt_layer_type_gets_a_suggestion_not_the_whole_list():
    with pytest.raises(cyffe.NetError) as e:
        cyffe.Net(INPUT + 'layer { name: "c" type: "Convolutoin" bottom: "x" top: "c" }',
                  cyffe.TEST)
    assert "did you mean 'Convolution'?" in str(e.value)
    assert "InnerProduct" not in str(e.value)


def test_an_unknown_type_far_from_every_name_lists_them():
    with pytest.raises(cyffe.NetError, match="known types: .*InnerProduct"):
        cyffe.Net(INPUT + 'layer { name: "c" type: "Qqqqqqqq" bottom: "x" top: "c" }',
                  cyffe.TEST)


def test_a_misspelt_field_gets_a_suggestion():
    with pytest.raises(cyffe.ProtoError, match=r"3:\d+: .*num_ouput.*did you mean 'num_output'"):
        cyffe.Net(INPUT + 'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"\n'
                  '  inner_product_param { num_ouput: 3 } }', cyffe.TEST)


def test_a_misspelt_enum_value_gets_a_suggestion():
    with pytest.raises(cyffe.ProtoError, match="did you mean 'MAX'"):
        cyffe.Net(INPUT + 'layer { name: "p" type: "Pooling" bottom: "x" top: "p"\n'
                  '  pooling_param { pool: MAXX } }', cyffe.TEST)


def test_a_misspelt_bottom_gets_a_suggestion():
    with pytest.raises(cyffe.NetError, match="bottom blob 'X' .*did you mean 'x'"):
        cyffe.Net(INPUT + 'layer { name: "r" type: "ReLU" bottom: "X" top: "r" }', cyffe.TEST)


# -- the net summary --------------------------------------------------------------------------

def test_print_net_is_a_table_of_layers_shapes_params_and_memory():
    net = cyffe.Net(str(NET), cyffe.TEST)
    text = str(net)
    assert text == net.summary()
    lines = text.splitlines()
    assert lines[0] == "LeNet-digits (TEST)"
    batch = net.blobs["data"].shape[0]
    conv1 = next(line for line in lines if line.startswith("conv1 "))
    assert re.match(rf"conv1\s+Convolution\s+conv1 {batch}x20x8x8\s+200\s+[\d.]+ KiB$", conv1)
    total = sum(p.data.size for ps in net.params.values() for p in ps)
    assert lines[-1].startswith(f"{len(net.layers)} layers, {total:,} learnable params")
    assert repr(net) == f"<cyffe.Net 'LeNet-digits' TEST: {len(net.layers)} layers, {total:,} params>"


def test_summary_lists_every_top_of_a_layer_with_two():
    net = cyffe.Net('name: "two"\nlayer { name: "in" type: "Input" top: "a" top: "b"\n'
                    '  input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }', cyffe.TEST)
    lines = net.summary().splitlines()
    assert re.match(r"in\s+Input\s+a 2x3\s+\d+ B$", lines[2])
    assert re.match(r"\s+b 2$", lines[3])


# -- training a net -------------------------------------------------------------------------

def test_a_net_without_a_loss_does_not_train():
    with pytest.raises(cyffe.NetError, match="no loss to minimize"):
        cyffe.SGDSolver(f'net_param {{ {INPUT} layer {{ name: "ip" type: "InnerProduct" '
                        'bottom: "x" top: "ip" inner_product_param { num_output: 2 } } }\n'
                        'base_lr: 0.1\nmax_iter: 1\n', log=lambda line: None)
