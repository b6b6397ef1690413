"""Running an exported ONNX model in ONNX Runtime and measuring how far it is from cyffe."""
import numpy as np

# Outputs agree when max |onnx - cyffe| <= TOLERANCE * max |cyffe| (the bar).
TOLERANCE = 1e-4


def run_onnx(model, feed):
    """{output name: array}, in the graph's order, of the model run in ONNX Runtime (CPU)."""
    import onnxruntime
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed)))


def relative_error(mine, reference):
    """max |mine - reference| over the largest |reference| (over 1 when that is 0)."""
    reference = np.asarray(reference, np.float64)
    scale = float(np.abs(reference).max()) if reference.size else 0.0
    return float(np.abs(np.asarray(mine, np.float64) - reference).max(initial=0)) / (scale or 1)
