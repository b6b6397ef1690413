"""Filter: y_k = the items (first axis) of x_k whose selector is non-zero; dx_k = dy_k
scattered back to those items, 0 elsewhere  (Caffe's Filter).

The last bottom is the selector: one value per item (shape (N,) or (N, 1, ...)).
The tops' first axis is the number of selected items, found in reshape; the
very first reshape (at setup, before any data) keeps all N items, as Caffe does.
Gathers and scatters of whole items are memory speed in NumPy/CuPy indexing.
The selector takes no gradient.
"""
from ..proto.errors import NetError
from .backend import array_module
from .base import Layer


class Filter(Layer):
    """Pass on the items whose selector is non-zero."""

    type = "Filter"
    bottoms = (2, None)
    tops = (1, None)
    reshape_by_shapes = False       # the tops' length is the selector's count of non-zeros

    def setup(self, bottom, top):
        if len(top) != len(bottom) - 1:
            raise NetError(f"layer '{self.name}' (Filter) needs one top per filtered bottom "
                           f"({len(bottom) - 1}: every bottom but the last, the selector), "
                           f"got {len(top)}")
        if any(t is b for t in top for b in bottom):
            raise NetError(f"layer '{self.name}' (Filter) cannot run in place")
        self.selector_index = len(bottom) - 1
        self.first_reshape = True

    def allow_backward(self, bottom_index):
        return bottom_index != self.selector_index

    def reshape(self, bottom, top):
        selector = bottom[self.selector_index]
        shape = selector.shape
        if not shape or any(d != 1 for d in shape[1:]):
            raise self.shape_error(f"the selector (last bottom) must hold one value per item, "
                                   f"shape (N,) or (N, 1, ...), got {shape}")
        for b in bottom[:self.selector_index]:
            if not b.shape or b.shape[0] != shape[0]:
                raise self.shape_error(f"every bottom must have the selector's {shape[0]} "
                                       f"items on its first axis, got {b.shape} for "
                                       f"selector shape {shape}")
        xp = array_module(selector.data)
        self.index = xp.nonzero(selector.data.reshape(-1))[0]
        kept = shape[0] if self.first_reshape else int(self.index.shape[0])
        self.first_reshape = False
        for t, b in zip(top, bottom):
            t.reshape((kept,) + b.shape[1:])

    def forward_cpu(self, bottom, top):
        if top[0].shape[0] != self.index.shape[0]:
            raise self.shape_error(f"the tops hold {top[0].shape[0]} items but the selector "
                                   f"picks {int(self.index.shape[0])}: reshape must run "
                                   "before forward")
        for t, b in zip(top, bottom):
            t.data[...] = b.data[self.index]

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[self.selector_index]:
            raise NetError(f"layer '{self.name}' (Filter) cannot backpropagate to its "
                           "selector (the last bottom)")
        for t, b, down in zip(top, bottom, propagate_down):
            if down:
                b.diff[...] = 0
                b.diff[self.index] = t.diff

    forward_gpu = forward_cpu
    backward_gpu = backward_cpu
