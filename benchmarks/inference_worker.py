"""One inference configuration, run in its own process: prints one JSON line.

`python -m benchmarks.inference_worker FRAMEWORK PROTOTXT WEIGHTS INPUT --outputs NAME...`
FRAMEWORK: cyffe (`net.forward()` in the TEST phase, share_blobs=True), opencv (`cv2.dnn` from the same
prototxt and .caffemodel, `forward` of the output layers) or torch (the PyTorch twin of
benchmarks/torch_nets, with the blobs in `--blobs`). INPUT is a .npy file whose first axis
is the batch. The thread count comes from CYFFE_BENCH_THREADS, and OMP_NUM_THREADS and the
BLAS variables from the parent's environment, before anything is imported. Each framework
imports only itself (and NumPy), so the process's peak RSS is that framework's. The line
holds the seconds of each timed forward and the peak RSS; `--save` also writes the outputs
of the last forward to an .npz (arr_0, arr_1, ... in --outputs order).
"""
import argparse
import json
import os
import sys

import numpy as np

from .measure import peak_rss_mb, timed

FRAMEWORKS = ("cyffe", "opencv", "torch")


def run_cyffe(args, data, threads):
    import cyffe
    from .zoo import param_at_batch

    # share_blobs: the blobs nobody reads after forward share buffers, as OpenCV's do.
    net = cyffe.Net(param_at_batch(args.prototxt, len(data)), cyffe.TEST, weights=args.weights,
                    share_blobs=True, keep=args.outputs)
    net.blobs[net.inputs[0]].data[...] = data
    times = timed(net.forward, args.iterations, args.warmup, args.seconds)
    outputs = net.forward()
    return times, [outputs[name] for name in args.outputs]


def run_opencv(args, data, threads):
    import cv2

    cv2.setNumThreads(threads)
    net = cv2.dnn.readNetFromCaffe(args.prototxt, args.weights)
    net.setInput(data)
    times = timed(lambda: net.forward(args.outputs), args.iterations, args.warmup, args.seconds)
    return times, list(net.forward(args.outputs))


def run_torch(args, data, threads):
    import torch
    from .torch_nets import CaffeNet
    from .zoo import image_shape, param_at_batch

    torch.set_num_threads(threads)
    param = param_at_batch(args.prototxt, len(data))
    model = CaffeNet(param, image_shape(param)).eval()
    model.load_blobs(np.load(args.blobs))
    x = torch.from_numpy(data)

    def forward():
        with torch.inference_mode():
            return model(x)

    times = timed(forward, args.iterations, args.warmup, args.seconds)
    return times, [forward().numpy()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework", choices=FRAMEWORKS)
    parser.add_argument("prototxt")
    parser.add_argument("weights")
    parser.add_argument("input", help="a .npy file: the input blob, batch first")
    parser.add_argument("--outputs", nargs="+", required=True,
                        help="output blob names (cyffe) or the layers writing them (opencv)")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=None,
                        help="stop timing after this long (at least 3 iterations)")
    parser.add_argument("--blobs", help="torch: the learned blobs (.npz, '<layer>.<i>')")
    parser.add_argument("--save", help="write the outputs to this .npz")
    args = parser.parse_args(argv)
    threads = int(os.environ.get("CYFFE_BENCH_THREADS", "1"))
    data = np.load(args.input)
    run = {"cyffe": run_cyffe, "opencv": run_opencv, "torch": run_torch}[args.framework]
    times, outputs = run(args, data, threads)
    if args.save:
        np.savez(args.save, *[np.asarray(o) for o in outputs])
    json.dump({"times": times, "peak_rss_mb": peak_rss_mb()}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
