"""share_blobs: the intermediate blobs of an inference net share buffers by liveness.

Every blob lives from the layer that writes it to the last layer that reads it, in run
order. Blobs that nobody asked for (not an input or a data layer's top, not an output, not
a loss, not named in keep) and whose lives do not overlap take turns in the buffers of one
pool, as OpenCV's DNN does: a blob gets, at the layer that writes it, the smallest free
buffer it fits in (else the largest free one, grown), and gives it back after its last
reader. Blobs that already share memory count as one: an in-place layer's top, Split's
tops, Flatten's and Reshape's.

The plan follows the blobs' shapes: when an input changed, Net.forward reshapes every layer
first, and if that gave a pooled blob memory of its own (a new input size), the pool is
planned again before any layer runs. A change of backend mode plans it again too. In
GPU mode every blob keeps memory of its own: the host and device copies of blobs that
shared a buffer would sync over each other.
"""
import heapq

import numpy as np

from ..layers.backend import gpu_mode, mode
from ..proto.errors import NetError


class BlobSharing:
    """The buffer pool of one net."""

    def __init__(self, net, keep):
        keep = [keep] if isinstance(keep, str) else list(keep)
        missing = [name for name in keep if name not in net.blobs]
        if missing:
            raise NetError(f"{net.where}: keep names blobs the net does not have: "
                           f"{', '.join(missing)}")
        self.net = net
        sources = [t for layer, tops in zip(net.layers, net._top) if not layer.param.bottom
                   for t in tops]
        self.kept = (sources + [net.blobs[name] for name in list(keep) + net.outputs]
                     + [blob for blob, _ in net._loss_tops])
        self.buffers = []
        self.bindings = []            # (blob, the memory the plan gave it)
        self.pooled = set()           # the names of the blobs in the pool
        self.written_at = {}          # id(pooled blob) -> the run-order index of its writer
        self.mode = None              # the backend mode of the plan
        self.plan()

    def plan(self):
        """Give every poolable blob its place in a new pool (its own memory in GPU mode)."""
        net = self.net
        lives = {}                    # id(memory) -> [first layer, last layer, blobs]
        for li, blobs in enumerate(net._blobs_of):
            for blob in blobs:
                life = lives.setdefault(id(blob._data), [li, li, []])
                life[1] = li
                if not any(b is blob for b in life[2]):
                    life[2].append(blob)
        kept = {id(blob._data) for blob in self.kept}
        sizes, places = [], []
        self.written_at = {}
        self.mode = mode()
        free, busy = [], []           # buffer indices; a heap of (last reader, buffer)
        for key, (first, last, blobs) in lives.items():
            if key in kept:
                continue
            while busy and busy[0][0] < first:
                free.append(heapq.heappop(busy)[1])
            need = max(b.count for b in blobs) * blobs[0]._data.dtype.itemsize
            fits = [i for i in free if sizes[i] >= need]
            if fits:
                place = min(fits, key=sizes.__getitem__)
            elif free:
                place = max(free, key=sizes.__getitem__)
                sizes[place] = need
            else:
                place = len(sizes)
                sizes.append(need)
            if place in free:
                free.remove(place)
            heapq.heappush(busy, (last, place))
            places.append((blobs, place))
            self.written_at.update((id(b), first) for b in blobs)
        self.buffers = [np.empty(size, np.uint8) for size in sizes]
        self.bindings = []
        shared = not gpu_mode()
        for blobs, place in places:
            root = blobs[0]
            dtype = root._data.dtype
            if shared:
                memory = self.buffers[place][:root.count * dtype.itemsize].view(dtype)
                root.data = memory.reshape(root.shape)
            else:
                root.data = np.empty(root.shape, dtype)
            for blob in blobs[1:]:
                blob.share_data(root)
            self.bindings += [(blob, root._data) for blob in blobs]
        if not shared:
            self.buffers = []
        pooled = {id(b) for blobs, _ in places for b in blobs}
        self.pooled = {name for name, blob in net.blobs.items() if id(blob) in pooled}

    def follow(self):
        """Plan again if a reshape gave a pooled blob memory of its own, or the backend mode
        changed."""
        if self.mode != mode() or any(blob._data is not memory
                                      for blob, memory in self.bindings):
            self.plan()

    def check_readable(self, asked, last_tops):
        """A NetError if forward is asked for pooled blobs other than the tops of its last
        layer (those hold their values when it returns)."""
        pooled = [name for name in asked if name in self.pooled and name not in last_tops]
        if pooled:
            raise NetError(f"{self.net.where}: blob(s) {', '.join(pooled)} share memory with "
                           "others (share_blobs=True): name them in keep= to read them after "
                           "forward")

    def check_start(self, first, last):
        """A NetError if the layers first..last read pooled blobs written before first: the
        runs since may have written over them."""
        net = self.net
        stale = dict.fromkeys(name for li in range(first, last + 1)
                              for name, b in zip(net.layers[li].param.bottom, net._bottom[li])
                              if self.written_at.get(id(b), first) < first)
        if stale:
            raise NetError(f"{net.where}: forward from layer '{net._layer_names[first]}' reads "
                           f"{', '.join(stale)}, which share memory with other blobs "
                           "(share_blobs=True): name them in keep= to start there")

    @property
    def nbytes(self):
        """The bytes the pool holds."""
        return sum(b.nbytes for b in self.buffers)


def data_nbytes(net):
    """The bytes of host memory the data of net's blobs takes, memory shared by several blobs
    counted once (blobs not yet given memory count nothing)."""
    roots = {}
    for blobs in net._blobs_of:
        for blob in blobs:
            array = blob._data.host
            while isinstance(array, np.ndarray) and isinstance(array.base, np.ndarray):
                array = array.base
            if array is not None:
                roots[id(array)] = array.nbytes
    return sum(roots.values())
