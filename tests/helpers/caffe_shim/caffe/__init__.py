"""`import caffe` answered by cyffe: how the tests run Caffe's own client code unchanged.

With the folder holding this package first on PYTHONPATH, `import caffe` gives
cyffe, and every cyffe module is also caffe's: caffe.io, caffe.draw,
caffe.coord_map, caffe.proto.caffe_pb2, caffe.layers, caffe.params, ...
"""
import sys

import cyffe

for _name, _module in list(sys.modules.items()):
    if _name.startswith("cyffe."):
        sys.modules.setdefault("caffe." + _name[len("cyffe."):], _module)
sys.modules["caffe"] = cyffe
