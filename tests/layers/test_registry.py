"""The registry finds a layer type's module by its name, so a net imports only the layer
modules it uses."""
import subprocess
import sys

import cyffe
from cyffe.layers import registry


def test_every_type_is_found_by_its_modules_name():
    for name in cyffe.layer_type_list():
        package, module = registry.layer_class(name).__module__.rsplit(".", 1)
        if package == "cyffe.layers":                   # not a test's own layer
            assert module in registry.module_names(name), name


def test_a_net_imports_only_the_layer_modules_it_uses():
    script = """
import sys
import cyffe
net = cyffe.Net('''
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 2 kernel_size: 3 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
''', cyffe.TEST)
print(sorted(m.rsplit(".", 1)[1] for m in sys.modules
             if m.startswith("cyffe.layers.") and m.count(".") == 2))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    loaded = eval(out)
    assert {"conv", "relu", "input"} <= set(loaded)
    assert not {"lstm", "lrn", "hdf5_data", "softmax_loss"} & set(loaded), loaded


def test_an_unknown_type_still_lists_every_known_one():
    try:
        registry.layer_class("Convolutoin")
    except cyffe.NetError as err:
        assert "Convolution" in str(err)
    else:
        raise AssertionError("no error for an unknown type")
