"""Caffe's log lines, in glog's format: what `caffe train 2>&1` shows and Caffe's log tools read.

  I1204 22:18:40.123456 12345 solver.py:253] Iteration 100 (53.2 iter/s, 1.88s/100 iters), loss = .3

Lines go through Python's logging, to the logger "cyffe" (the solver's to
"cyffe.solver", a net's setup to "cyffe.net"), which writes them to stderr with
glog's prefix: severity, date, time, thread id, file:line. By default the
solver's lines show and a net's setup lines ("Top shape: 64 1 28 28 (50176)")
do not; init_log() shows everything, as pycaffe's caffe.init_log and train_net
do. GLOG_minloglevel (0 INFO, 1 WARNING, 2 ERROR, 3 FATAL) silences below a
level, as it does Caffe's. To send cyffe's lines to your own logging setup
instead: logging.getLogger("cyffe").handlers.clear() and set propagate = True.
"""
import datetime
import logging
import os
import sys
import threading

logger = logging.getLogger("cyffe")
solver_logger = logging.getLogger("cyffe.solver")
net_logger = logging.getLogger("cyffe.net")

_LETTERS = {logging.DEBUG: "I", logging.INFO: "I", logging.WARNING: "W", logging.ERROR: "E",
            logging.CRITICAL: "F"}
_GLOG_LEVELS = (logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)


class GlogFormatter(logging.Formatter):
    """glog's line: `I1204 22:18:40.123456 12345 file:line] message`, or the bare message."""

    def __init__(self, prefix=True):
        super().__init__()
        self.prefix = prefix

    def format(self, record):
        message = record.getMessage()
        if not self.prefix:
            return message
        when = datetime.datetime.fromtimestamp(record.created)
        # The thread that logs formats too (a StreamHandler is synchronous): its id is glog's.
        return (f"{_LETTERS.get(record.levelno, 'I')}{when:%m%d %H:%M:%S.%f} "
                f"{threading.get_native_id():>5} {record.filename}:{record.lineno}] {message}")


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler on the sys.stderr of the moment (tests and tools swap it), or `stream`."""

    def __init__(self, stream=None):
        super().__init__(stream)
        self.fixed = stream

    @property
    def stream(self):
        return self.fixed if self.fixed is not None else sys.stderr

    @stream.setter
    def stream(self, value):
        self.fixed = value


_handler = _StderrHandler()


def _min_level(level):
    """The logging level of a glog minloglevel (0 INFO .. 3 FATAL)."""
    return _GLOG_LEVELS[min(max(int(level), 0), len(_GLOG_LEVELS) - 1)]


def _environment_level():
    try:
        return int(os.environ.get("GLOG_minloglevel", "0"))
    except ValueError:
        return 0


def init_log(level=None, stderr=True, prefix=True, stream=None):
    """Show cyffe's log lines, a net's setup included, as pycaffe's caffe.init_log([level, stderr]).

    level: glog's minloglevel (0 INFO, 1 WARNING, 2 ERROR, 3 FATAL; default
    $GLOG_minloglevel, else 0). prefix=False writes the bare lines, without
    glog's prefix. stream: where to write (default: sys.stderr when each line is
    written). stderr is pycaffe's; cyffe writes no log files, so it changes nothing.
    """
    _handler.setFormatter(GlogFormatter(prefix))
    _handler.stream = stream
    logger.setLevel(_min_level(_environment_level() if level is None else level))
    net_logger.setLevel(logging.NOTSET)


def log(message):
    """Write one INFO line, as pycaffe's caffe.log."""
    logger.info(message, stacklevel=2)


def solver_line(message):
    """The solver's default log: one INFO line on "cyffe.solver", from the solver's file:line."""
    solver_logger.info(message, stacklevel=2)


def shape_string(shape):
    """A blob's shape as Caffe logs it: `64 1 28 28 (50176)`; a scalar is `(1)`."""
    count = 1
    for d in shape:
        count *= d
    return "".join(f"{d} " for d in shape) + f"({count})"


def log_net_setup(net):
    """The lines Caffe's Net::Init logs, for a net just built (on "cyffe.net", at INFO)."""
    if not net_logger.isEnabledFor(logging.INFO):
        return
    info = net_logger.info
    loss_tops = {id(blob) for blob, _ in net._loss_tops}
    memory = 0
    for li, (name, layer) in enumerate(zip(net._layer_names, net.layers)):
        info(f"Creating Layer {name}")
        lp = layer.param
        for b in lp.bottom:
            info(f"{name} <- {b}")
        for t in lp.top:
            info(f"{name} -> {t}" + (" (in-place)" if t in lp.bottom else ""))
        info(f"Setting up {name}")
        for blob in net._top[li]:
            info(f"Top shape: {shape_string(blob.shape)}")
            if id(blob) in loss_tops:           # its diff holds its weight until a backward
                info(f"    with loss weight {float(blob.host_diff().ravel()[0]):g}")
            memory += blob.count
        info(f"Memory required for data: {memory * net.dtype.itemsize}")
    for name, needs in reversed(list(zip(net._layer_names, net._layer_needs_backward))):
        info(f"{name} {'needs' if needs else 'does not need'} backward computation.")
    for output in sorted(net.outputs):
        info(f"This network produces output {output}")
    info("Network initialization done.")


def reset_log():
    """Back to how cyffe logs in a fresh process: the solver's lines, glog's prefix, on stderr."""
    _handler.setFormatter(GlogFormatter())
    _handler.stream = None
    logger.setLevel(_min_level(_environment_level()))
    net_logger.setLevel(max(logging.WARNING, logger.level))


logger.addHandler(_handler)
logger.propagate = False
reset_log()
