"""Steps: a layer's forward compiled for its current shapes and memory, and the loop that
runs a net's steps.

At batch 1 a small net's layers do a few microseconds of arithmetic each, and calling
them from Python (argument parsing, typed-memoryview conversion, reshaped views, arena
frames) cost more than that. Once a TEST net has settled (no blob changed shape or memory
since its last forward), the net asks each layer for a Step: an object holding the raw
pointers, sizes and scratch of its forward, whose run() is a C call. run_plan walks them;
a layer without a step runs through its Python forward in between.

A step that derived something from a layer's params (folded weights, Winograd's
transformed ones) watches the arrays it derived them from: their fingerprints are checked
before every run, and when one changed the step does not run and the net runs the layer
through Python instead (which derives them again) and asks it for a new step.
"""
from libc.stdlib cimport free, malloc

from .fingerprint cimport fingerprint_bytes


cdef class Step:
    """A forward that does nothing (Input, Split: the tops already hold the values); the
    base of the layers' steps."""

    def __cinit__(self):
        self.keep = []

    def __dealloc__(self):
        free(self.watch_data)
        free(self.watch_size)
        free(self.watch_key)

    cdef int run(self) except -1:
        """Compute the tops (the GIL held; kernels release it for their parallel loops)."""
        return 0

    @property
    def scratch_need(self):
        """Bytes of scratch one run needs."""
        return self.scratch_bytes

    def bind(self, block):
        """Run on this scratch (a C-contiguous byte array of at least scratch_need bytes)."""
        cdef unsigned char[::1] raw = block
        if raw.shape[0] < self.scratch_bytes:
            raise ValueError(f"Step.bind: {raw.shape[0]} bytes of scratch, {self.scratch_bytes} "
                             "needed")
        self.scratch = <char*>&raw[0] if raw.shape[0] else NULL
        self.keep.append(block)

    def watch(self, arrays):
        """Refuse to run once any of these arrays' bytes differ from what they are now."""
        cdef Py_ssize_t i, count = len(arrays)
        cdef const unsigned char[::1] raw
        free(self.watch_data)               # (a second watch replaces the first)
        free(self.watch_size)
        free(self.watch_key)
        self.watched = 0
        self.watch_data = <const unsigned char**>malloc(max(1, count) * sizeof(void*))
        self.watch_size = <Py_ssize_t*>malloc(max(1, count) * sizeof(Py_ssize_t))
        self.watch_key = <uint64_t*>malloc(max(1, count) * sizeof(uint64_t))
        if not (self.watch_data and self.watch_size and self.watch_key):
            raise MemoryError()
        for i in range(count):
            array = arrays[i]
            if not array.flags.c_contiguous:    # a copy would never change: watch the array
                raise ValueError("Step.watch: the arrays must be C-contiguous")
            self.keep.append(array)
            raw = memoryview(array).cast("B")
            self.watch_size[i] = raw.shape[0]
            self.watch_data[i] = &raw[0] if raw.shape[0] else NULL
            self.watch_key[i] = fingerprint_bytes(self.watch_data[i], self.watch_size[i])
        self.watched = <int>count
        return self

    cdef bint changed(self) noexcept:
        cdef int i
        for i in range(self.watched):
            if fingerprint_bytes(self.watch_data[i], self.watch_size[i]) != self.watch_key[i]:
                return True
        return False


def run_plan(list items, forward, refresh):
    """Run a net's plan: each item a Step, or a layer's run-order index for forward(index).

    A step whose watched arrays changed does not run: refresh(position) runs its layer
    another way and puts what to run from then on in its place. forward(index) or refresh
    returning True means blobs changed shape or memory, so the plan's pointers no longer
    hold: the walk stops there. Returns how many items ran.
    """
    cdef Py_ssize_t i, n = len(items)
    cdef object item
    for i in range(n):
        item = items[i]
        if type(item) is int:
            if forward(item):
                return i + 1
        elif (<Step>item).changed():
            if refresh(i):
                return i + 1
        else:
            (<Step>item).run()
    return n
