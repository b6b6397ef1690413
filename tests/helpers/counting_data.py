"""CountingData: a Python data layer whose batch k is a pure function of k, for the snapshot tests.

    layer { type: "Python" top: "x" top: "t"
            python_param { module: "counting_data" layer: "CountingData" param_str: "0.02" } }

Batch k is 4 inputs drawn from a generator seeded with k, and targets 2 linear functions of
them; `skip(batches)` moves past batches, so a resumed run is exact only when the solver
skips the data too. param_str (optional): seconds to pause after each batch, so that a
signal surely lands during training.
"""
import time

import numpy as np

import cyffe


class CountingData(cyffe.Layer):
    """Regression batches that count: batch k depends on k alone."""

    def setup(self, bottom, top):
        self.cursor = 0
        self.pause = float(self.param_str or 0)

    def reshape(self, bottom, top):
        top[0].reshape(4, 3)
        top[1].reshape(4, 2)

    def forward(self, bottom, top):
        x = np.random.default_rng(self.cursor).normal(size=(4, 3))
        top[0].data[...] = x
        top[1].data[...] = x[:, :2] * [1.5, -2.0] + 0.5
        self.cursor += 1
        if self.pause:
            time.sleep(self.pause)

    def backward(self, top, propagate_down, bottom):
        pass

    def skip(self, batches):
        self.cursor += batches
