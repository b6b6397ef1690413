"""cyffe: a small Cython CNN framework with Caffe's layers, files and semantics."""
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
from cyffe.proto.errors import CyffeError, DataError, NetError, NonFiniteError, ProtoError, ShapeError

TRAIN = pb.TRAIN
TEST = pb.TEST

from cyffe.net.glog import init_log, log
from cyffe.net.graph import Net, PhaseWarning
from cyffe.net.solver import SGDSolver, get_solver
from cyffe.net.adaptive import (AdaDeltaSolver, AdaGradSolver, AdamSolver, NesterovSolver,
                                RMSPropSolver)
from cyffe.proto.netspec import NetSpec, params, to_proto
from cyffe.net.pycaffe.classifier import Classifier
from cyffe.net.pycaffe import io
from cyffe import layers

# pycaffe's module names: `from cyffe.io import Transformer`, `import cyffe.params`.
sys.modules.setdefault("cyffe.io", io)
sys.modules.setdefault("cyffe.params", params)
