"""share_blobs: the intermediate blobs of an inference net share buffers by liveness.

Every blob lives from the layer that writes it to the last layer that reads it, in run
order. Blobs that nobody asked for (not an input or a data layer's top, not an output, not
a loss, not named in keep) and whose lives do not overlap use the same bytes of one block.
OpenCV's DNN reuses whole buffers; here the blobs, largest first, each take the lowest
offset where they overlap no blob placed that lives at the same time ("greedy by size", as
TensorFlow Lite's planner): on GoogLeNet the block is the most bytes alive at once. Blobs that already share memory count as one: an in-place layer's top, Split's
tops, Flatten's and Reshape's.

A Concat along an axis with nothing before it but size-1 axes (channels at batch 1) is done
in place for the bottoms it reads last: each is the slice of the top's memory it would be
copied to, the top living from the first of them on, and the Concat copies only the others
(SqueezeNet's and GoogLeNet's blocks copy nothing).

The plan follows the blobs' shapes: when an input changed, Net.forward reshapes every layer
first, and if that gave a pooled blob memory of its own (a new input size), the pool is
planned again before any layer runs. A change of backend mode plans it again too. In
GPU mode every blob keeps memory of its own: the host and device copies of blobs that
shared a buffer would sync over each other.
"""
import numpy as np

from ..layers.backend import gpu_mode, mode
from ..proto.errors import NetError

ALIGN = 64                            # bytes: where each blob starts in the block


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
        self.written_at = {}
        self.mode = mode()
        shared = not gpu_mode()
        slices = self._concat_slices(lives, kept) if shared else {}
        for key, (top, _) in slices.items():      # the top lives from its first bottom on
            life = lives[id(top._data)]
            life[0] = min(life[0], lives[key][0])
        places = []                   # [first layer, last layer, blobs, offset in the block]
        for key, (first, last, blobs) in lives.items():
            if key not in kept:
                self.written_at.update((id(b), first) for b in blobs)
                if key not in slices:
                    places.append([first, last, blobs, 0])
        size, placed = 0, []
        for place in sorted(places, key=lambda p: -_nbytes(p[2])):
            first, last, blobs, _ = place
            need = _padded(_nbytes(blobs))
            offset = 0
            for other in sorted((p for p in placed if p[0] <= last and first <= p[1]),
                                key=lambda p: p[3]):
                if other[3] - offset >= need:
                    break
                offset = max(offset, other[3] + _padded(_nbytes(other[2])))
            place[3] = offset
            placed.append(place)
            size = max(size, offset + need)
        self.buffers, self.bindings = [], []
        if shared:
            block = np.empty(size + ALIGN, np.uint8)
            start = -block.ctypes.data % ALIGN
            self.buffers = [block[start:start + size]]
        for first, last, blobs, offset in places:
            root = blobs[0]
            dtype = root._data.dtype
            if shared:
                memory = self.buffers[0][offset:offset + root.count * dtype.itemsize]
                root.data = memory.view(dtype).reshape(root.shape)
            else:
                root.data = np.empty(root.shape, dtype)
            self._bind(blobs, root)
        for key, (top, offset) in slices.items():
            blobs = lives[key][2]
            root = blobs[0]
            root.data = top.data.reshape(-1)[offset:offset + root.count].reshape(root.shape)
            self._bind(blobs, root)
        pooled = {id(b) for _, _, blobs, _ in places for b in blobs}
        pooled.update(id(b) for key in slices for b in lives[key][2])
        self.pooled = {name for name, blob in net.blobs.items() if id(blob) in pooled}

    def _bind(self, blobs, root):
        """The blobs of one memory take root's, and the plan remembers it."""
        for blob in blobs[1:]:
            blob.share_data(root)
        self.bindings += [(blob, root._data) for blob in blobs]

    def _concat_slices(self, lives, kept):
        """{key of a bottom's memory: (the top, element offset)} for the Concats that can
        run in place (see the module docstring). Keys are ids of memory, as in lives:
        {key: [first layer, last layer, blobs]}."""
        net, slices, tops = self.net, {}, set()
        for li, layer in enumerate(net.layers):
            if layer.type != "Concat":
                continue
            top, bottoms = net._top[li][0], net._bottom[li]
            keys = [id(b._data) for b in bottoms]
            axis = getattr(layer, "axis", None)
            if axis is None or any(d != 1 for d in top.shape[:axis]) or id(top._data) in keys:
                continue
            offset = 0
            for key, bottom in zip(keys, bottoms):
                # a bottom read after the Concat, or twice in it, or kept, is copied
                if (keys.count(key) == 1 and key not in kept and key not in slices and
                        key not in tops and lives[key][1] == li and lives[key][0] < li and
                        bottom._data.dtype == top._data.dtype):
                    slices[key] = (top, offset)
                    tops.add(id(top._data))
                offset += bottom.count
        return slices

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
        if first == 0:                  # a forward from the start reads nothing written before
            return
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


def _nbytes(blobs):
    return max(b.count for b in blobs) * blobs[0]._data.dtype.itemsize


def _padded(nbytes):
    return -(-nbytes // ALIGN) * ALIGN


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
