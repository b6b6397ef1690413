"""cyffe: a small Cython CNN framework with Caffe's layers, files and semantics."""
__version__ = "0.1.0"       # pyproject.toml's version: tests/test_cli.py holds them together

# Absolute imports: test runners may import this file under another name.
import os
import sys

# Our OpenMP loops alternate with NumPy's BLAS threads; OpenMP threads that
# spin-wait between loops starve BLAS on small machines (24x slower LeNet
# steps on 2 cores). libgomp reads this when the first layer module loads it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from cyffe.layers.backend import set_device, set_mode_cpu, set_mode_gpu, set_random_seed
from cyffe.layers.base import Layer
from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_types as layer_type_list
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import (CyffeError, DataError, LayerError, NetError, NonFiniteError,
                                ProtoError, ShapeError)

TRAIN = pb.TRAIN
TEST = pb.TEST

from cyffe.net.glog import init_log, log
from cyffe.net.graph import Net, PhaseWarning
from cyffe.net.solver import SGDSolver, get_solver
from cyffe.net.adaptive import (AdaDeltaSolver, AdaGradSolver, AdamSolver, NesterovSolver,
                                RMSPropSolver)
from cyffe.proto import netspec as net_spec
from cyffe.proto.netspec import NetSpec, params, to_proto
from cyffe.net.pycaffe.classifier import Classifier
from cyffe.net.onnx_export import export_onnx
from cyffe.net.pycaffe.detector import Detector
from cyffe.net.pycaffe.runtime import (NCCL, Timer, has_nccl, set_multiprocess,
                                       set_solver_count, set_solver_rank, solver_count,
                                       solver_rank)
from cyffe.net.pycaffe import coord_map, draw, io
from cyffe import layers

# pycaffe's module names: `from cyffe.io import Transformer`, `import cyffe.params`,
# `import cyffe.draw`, `from cyffe.coord_map import crop`, `from cyffe.proto import caffe_pb2`.
for _name, _module in (("io", io), ("params", params), ("draw", draw), ("coord_map", coord_map),
                       ("net_spec", net_spec), ("proto.caffe_pb2", pb)):
    sys.modules.setdefault(f"cyffe.{_name}", _module)
