"""Scoring a net over several batches, as `caffe test`: each output averaged over the batches."""
import numpy as np

from ...proto.errors import NetError


def loss_weights(net):
    """{output name: its loss weight} (0 for outputs that are not weighed into the loss)."""
    weighed = {id(blob) for blob, _ in net._loss_tops}
    return {name: float(np.ravel(net.blobs[name].diff)[0]) if id(net.blobs[name]) in weighed
            else 0.0 for name in net.outputs}


def batches_per_pass(net, unknown=50):
    """Batches for one pass over a net's data, when its data layer knows its size; else `unknown`."""
    for layer in net.layers:
        rows = getattr(layer, "num_rows", None) or getattr(layer, "num_records", None)
        batch = getattr(layer, "batch_size", None)
        if rows and batch:
            return -(-rows // batch)
    return unknown


def evaluate(net, iterations, outputs=None, on_batch=None):
    """Run `iterations` forward passes; returns ({output: mean value array}, mean loss).

    outputs: the output names to score (default: all the net's outputs).
    on_batch(k, {output: value array}, loss) is called after each pass.
    """
    available = net.outputs
    if not available:
        raise NetError(f"{net.where}: the net has no outputs (every blob is consumed by a layer)")
    outputs = list(outputs or available)
    missing = [name for name in outputs if name not in available]
    if missing:
        raise NetError(f"{net.where}: no output named '{missing[0]}'; the net's outputs are "
                       f"{', '.join(available)}")
    if iterations < 1:
        raise NetError(f"iterations must be at least 1, got {iterations}")
    sums = {name: 0.0 for name in outputs}
    total_loss = 0.0
    for k in range(iterations):
        loss = net.forward_pass()
        total_loss += loss
        values = {name: np.array(net.blobs[name].data, np.float64) for name in outputs}
        for name, value in values.items():
            sums[name] = sums[name] + value
        if on_batch is not None:
            on_batch(k, values, loss)
    return {name: total / iterations for name, total in sums.items()}, total_loss / iterations
