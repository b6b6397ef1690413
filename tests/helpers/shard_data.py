"""ShardData: a Python data layer over a fixed toy set, with set_shard, for the MPI tests.

    layer { type: "Python" top: "data" top: "label"
            python_param { module: "shard_data" layer: "ShardData"
                           param_str: '{"batch": 4, "out": "/tmp/x"}' } }

Record i is (features[i], i % classes), the features drawn once from a fixed
seed, so every process sees the same set. After set_shard(rank, size) the
layer serves records rank, rank + size, rank + 2*size, ... (wrapping around),
as the real data layers do. param_str (JSON): batch, records (64), dim (5),
classes (3); "out": a path prefix where the layer writes `<out>.pid.<rank>`
at set-up and appends each batch's record numbers to `<out>.seen.<rank>`;
"fail_rank" and "fail_iter": raise on that rank at that batch.
"""
import json
import os

import numpy as np

import cyffe


class ShardData(cyffe.Layer):
    """Toy records, every size-th from rank after set_shard(rank, size)."""

    def setup(self, bottom, top):
        config = json.loads(self.param_str)
        self.batch = config["batch"]
        records, dim, classes = (config.get(k, d) for k, d in
                                 (("records", 64), ("dim", 5), ("classes", 3)))
        self.features = np.random.default_rng(0).standard_normal((records, dim))
        self.labels = np.arange(records) % classes
        self.out = config.get("out")
        self.fail_rank, self.fail_iter = config.get("fail_rank"), config.get("fail_iter", 0)
        self.set_shard(0, 1)

    def set_shard(self, rank, size):
        """Serve every size-th record starting at rank, from the beginning."""
        self.rank, self.size, self.batches = rank, size, 0
        if self.out:
            with open(f"{self.out}.pid.{rank}", "w") as f:
                f.write(str(os.getpid()))

    def reshape(self, bottom, top):
        top[0].reshape(self.batch, self.features.shape[1])
        top[1].reshape(self.batch)

    def forward(self, bottom, top):
        if self.rank == self.fail_rank and self.batches == self.fail_iter:
            raise cyffe.DataError(f"toy data: rank {self.rank} fails at batch {self.batches}")
        first = self.batches * self.batch
        records = [(self.rank + k * self.size) % len(self.labels)
                   for k in range(first, first + self.batch)]
        top[0].data[...] = self.features[records]
        top[1].data[...] = self.labels[records]
        self.batches += 1
        if self.out:
            with open(f"{self.out}.seen.{self.rank}", "a") as f:
                f.write(" ".join(map(str, records)) + "\n")

    def backward(self, top, propagate_down, bottom):
        pass
