"""One benchmark configuration, run in its own process: prints one JSON line.

`python -m benchmarks.worker FRAMEWORK NET MODE --iterations N --warmup W [--profile]`
FRAMEWORK: cyffe, torch (eager NCHW), torch_cl (channels_last) or numpy; MODE: train
(forward + backward + SGD update) or infer (forward only). Thread counts come from the
environment the parent sets (OMP_NUM_THREADS, CYFFE_BENCH_THREADS) before anything is
imported. The line holds the seconds of each timed iteration and the process's peak RSS.
"""
import argparse
import json
import os
import sys

import numpy as np

from . import nets
from .measure import peak_rss_mb, timed

SOLVER = "base_lr: 0.01 momentum: 0.9 weight_decay: 0.0005 lr_policy: 'fixed' display: 0"


def _inputs(name, seed=0):
    rng = np.random.default_rng(seed)
    batch = nets.batch_size(name)
    data = rng.standard_normal((batch,) + nets.image_shape(name)).astype(np.float32)
    label = rng.integers(0, 10, batch)
    return data, label


def framework_overhead(net, iterations):
    """Share of a forward+backward spent outside the layers' own forward_cpu/backward_cpu.

    The graph walk (reshape, dispatch, the BLAS-thread contexts, the loss sum) is timed
    with every layer's forward_cpu/backward_cpu swapped for a no-op, against the bare
    loop that makes those calls; the difference, over a real net.forward_backward(), is
    the share. Subtracting two timings of the real layers instead buries a 0.1 ms
    overhead in a shared VM's noise. Returns (forward_backward_ms, layers_ms, share).
    """
    layers, bottoms, tops = net.layers, net._bottom, net._top
    needs, down = net._layer_needs_backward, net._bottom_needs_backward
    order = range(len(layers))

    def bare():
        for li in order:
            layers[li].forward_cpu(bottoms[li], tops[li])
        for li in reversed(order):
            if needs[li]:
                layers[li].backward_cpu(tops[li], down[li], bottoms[li])

    def nothing(*args):
        pass

    real = float(np.median(timed(net.forward_backward, iterations, 1))) * 1e3
    for layer in layers:
        layer.forward_cpu = layer.backward_cpu = nothing
    try:
        # many more repetitions: each takes microseconds
        walk = float(np.median(timed(net.forward_backward, 50 * iterations, 10))) * 1e3
        calls = float(np.median(timed(bare, 50 * iterations, 10))) * 1e3
    finally:
        for layer in layers:
            del layer.forward_cpu, layer.backward_cpu
    extra = max(0.0, walk - calls)
    return real, real - extra, extra / real


def run_cyffe(name, mode, iterations, warmup, profile):
    from cyffe.net.graph import Net
    from cyffe.net.solver import SGDSolver
    from cyffe.net.analysis.timing import time_layers
    from cyffe.proto import cyffe_pb2 as pb
    from cyffe.proto.io import read_solver

    data, label = _inputs(name)
    result = {}
    if mode == "train":
        param, _ = read_solver(SOLVER)
        param.net_param.CopyFrom(nets.train_param(name))
        solver = SGDSolver(param, log=lambda line: None)
        net = solver.net
        net.blobs["data"].data[...] = data
        net.blobs["label"].data[...] = label
        result["times"] = timed(lambda: solver.step(1), iterations, warmup)
        if profile:
            result["layers"] = [t._asdict() for t in time_layers(net, max(3, iterations))]
            g, d, share = framework_overhead(net, max(5, iterations))
            result["overhead"] = {"forward_backward_ms": g, "layers_only_ms": d, "share": share}
    else:
        net = Net(nets.deploy_param(name), pb.TEST)
        net.blobs["data"].data[...] = data
        result["times"] = timed(net.forward_pass, iterations, warmup)
    return result


def run_torch(name, mode, iterations, warmup, channels_last):
    import torch
    from .torch_nets import CaffeNet

    torch.set_num_threads(int(os.environ.get("CYFFE_BENCH_THREADS", "1")))
    torch.manual_seed(0)
    data, label = _inputs(name)
    x, y = torch.from_numpy(data), torch.from_numpy(label)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = x.contiguous(memory_format=fmt)
    if mode == "train":
        model = CaffeNet(nets.train_param(name), nets.image_shape(name)).to(memory_format=fmt)
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            model(x, y).backward()
            opt.step()
    else:
        model = CaffeNet(nets.deploy_param(name), nets.image_shape(name)).to(memory_format=fmt)
        model.eval()

        def step():
            with torch.inference_mode():
                model(x)
    return {"times": timed(step, iterations, warmup)}


def run_numpy(name, mode, iterations, warmup):
    from .numpy_ref import NumpyNet

    data, label = _inputs(name)
    model = NumpyNet(nets.train_param(name), nets.image_shape(name), np.random.default_rng(0))
    step = (lambda: model.sgd_step(data, label)) if mode == "train" else \
        (lambda: model.forward(data))
    return {"times": timed(step, iterations, warmup)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework", choices=["cyffe", "torch", "torch_cl", "numpy"])
    parser.add_argument("net", choices=sorted(nets.NETS))
    parser.add_argument("mode", choices=["train", "infer"])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--profile", action="store_true",
                        help="cyffe train: add the per-layer profile and the framework overhead")
    args = parser.parse_args(argv)
    if args.framework == "cyffe":
        result = run_cyffe(args.net, args.mode, args.iterations, args.warmup, args.profile)
    elif args.framework == "numpy":
        result = run_numpy(args.net, args.mode, args.iterations, args.warmup)
    else:
        result = run_torch(args.net, args.mode, args.iterations, args.warmup,
                           args.framework == "torch_cl")
    result["peak_rss_mb"] = peak_rss_mb()
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
