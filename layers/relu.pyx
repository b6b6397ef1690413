"""ReLU: y = max(x, 0) + negative_slope * min(x, 0)  (Caffe's ReLU, leaky when slope != 0)."""
cimport cython
from cython.parallel import prange
from cython cimport floating

from .base import NeuronLayer, steppable
from .kernels.blas cimport max_threads
from .kernels.parallel cimport PARALLEL_WORK
from .kernels.step cimport Step


cdef inline void relu_span(const floating* x, floating* y, Py_ssize_t n,
                           double slope) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating v
    for i in range(n):
        v = x[i]
        y[i] = v if v > 0 else <floating>(v * slope)


cdef void relu_run(const floating* x, floating* y, Py_ssize_t n, double slope) noexcept nogil:
    """y = x where x > 0, slope * x elsewhere: on this thread below PARALLEL_WORK (not even a
    team of one), else in a span per thread."""
    cdef Py_ssize_t t, threads = max_threads(), span
    if n < PARALLEL_WORK or threads < 2:
        relu_span(x, y, n, slope)
        return
    span = (n + threads - 1) // threads
    for t in prange(threads, schedule="static"):
        if t * span < n:
            relu_span(x + t * span, y + t * span, min(span, n - t * span), slope)


@cython.boundscheck(False)
@cython.wraparound(False)
def relu_forward(const floating[::1] x, floating[::1] y, double slope):
    if y.shape[0] != x.shape[0]:
        raise ValueError("relu_forward: x and y differ in size")
    if x.shape[0]:
        with nogil:
            relu_run(&x[0], &y[0], x.shape[0], slope)


cdef class ForwardStep(Step):
    """A float32 ReLU as a net's step."""

    cdef const float* x
    cdef float* y
    cdef Py_ssize_t n
    cdef double slope

    def __init__(self, const float[::1] x, float[::1] y, double slope):
        if y.shape[0] != x.shape[0] or x.shape[0] == 0:
            raise ValueError("relu.ForwardStep: the arrays do not fit")
        self.keep += [x, y]
        self.x, self.y, self.n, self.slope = &x[0], &y[0], x.shape[0], slope

    cdef int run(self) except -1:
        with nogil:
            relu_run(self.x, self.y, self.n, self.slope)
        return 0


@cython.boundscheck(False)
@cython.wraparound(False)
def relu_backward(const floating[::1] x, const floating[::1] dy, floating[::1] dx, double slope):
    """dx = dy where x > 0, slope * dy elsewhere; x may be the output (same sign)."""
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            dx[i] = dy[i] if x[i] > 0 else <floating>(dy[i] * slope)


class ReLU(NeuronLayer):
    """Rectified linear unit; runs in place (the sign of the output is the input's)."""

    type = "ReLU"

    def setup(self, bottom, top):
        self.slope = self.param.relu_param.negative_slope

    def forward_kernel(self, x, y):
        relu_forward(x, y, self.slope)

    def step(self, bottom, top):
        """The float32 forward as a net's step (kernels/step.pyx); None otherwise."""
        x, y = bottom[0].data, top[0].data
        return ForwardStep(self.view(x), self.view(y), self.slope) if steppable(x, y) else None

    def backward_kernel(self, x, y, dy, dx):
        # In place, x is already the output; its sign is the input's whenever slope >= 0,
        # so the mask is the same.
        relu_backward(x, dy, dx, self.slope)

    def forward_array(self, xp, x):
        return x * ((x > 0) + (x <= 0) * self.slope)

    def backward_array(self, xp, x, y, dy):
        return dy * ((x > 0) + (x <= 0) * self.slope)
