"""Messages and file formats: Caffe's schema (cyffe.proto) and reading/writing it."""
from . import cyffe_pb2
from .errors import CyffeError, DataError, NetError, NonFiniteError, ProtoError, ShapeError
from .io import (array_to_blobproto, blobproto_to_array, read_net, read_net_weights,
                 read_solver, write_binary)

caffe_pb2 = cyffe_pb2
