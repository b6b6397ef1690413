"""LSTMUnit: one LSTM step on precomputed gate inputs (Caffe's LSTMUnit).

Bottoms c_prev (1, N, H), x (1, N, 4H) holding the gate inputs [i', f', o', g'] in that
order along the last axis, cont (1, N); tops c and h, both (1, N, H):

    i = sigmoid(i'), f = sigmoid(f'), o = sigmoid(o'), g = tanh(g')
    c = cont * f * c_prev + i * g        (the forget term is 0 where cont == 0)
    h = o * tanh(c)

Gradients flow to c_prev and x, never to the sequence indicators cont. The kernels
here are also the cell of the LSTM layer (layers/lstm.pyx); `unit_forward` may write
the activations over its own input (acts is x).
"""
from cython.parallel import prange
from cython cimport floating
from libc.math cimport exp, expf

from .backend import array_module
from .base import Layer
from .kernels.parallel cimport PARALLEL_WORK, TRANSCENDENTAL


cdef inline floating exp_(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


# Both through exp, which libm computes about three times faster than tanh; at the
# extremes exp gives inf or 0, so the results saturate cleanly at 0 / -1 and 1.
cdef inline floating sigmoid(floating x) noexcept nogil:
    return 1 / (1 + exp_(-x))


cdef inline floating tanh_(floating x) noexcept nogil:
    return 2 / (1 + exp_(-2 * x)) - 1


def unit_forward(const floating[:, ::1] c_prev, const floating[:, ::1] x,
                 const floating[::1] cont, floating[:, ::1] acts, floating[:, ::1] c,
                 floating[:, ::1] h):
    """Gate activations [i, f, o, g] into acts (N, 4H), then c and h (N, H)."""
    cdef Py_ssize_t n, d, num = x.shape[0], dim = c.shape[1]
    cdef floating i, f, o, g, kept, cell
    with nogil:
        for n in prange(num, schedule="static",
                        use_threads_if=num * dim * TRANSCENDENTAL >= PARALLEL_WORK):
            for d in range(dim):
                i = sigmoid(x[n, d])
                f = sigmoid(x[n, dim + d])
                o = sigmoid(x[n, 2 * dim + d])
                g = tanh_(x[n, 3 * dim + d])
                acts[n, d] = i
                acts[n, dim + d] = f
                acts[n, 2 * dim + d] = o
                acts[n, 3 * dim + d] = g
                kept = 0 if cont[n] == 0 else cont[n] * f
                cell = kept * c_prev[n, d] + i * g
                c[n, d] = cell
                h[n, d] = o * tanh_(cell)


def unit_backward(const floating[:, ::1] c_prev, const floating[:, ::1] acts,
                  const floating[::1] cont, const floating[:, ::1] c,
                  const floating[:, ::1] dc, const floating[:, ::1] dh,
                  floating[:, ::1] dc_prev, floating[:, ::1] dx):
    """dc_prev (N, H) and the gate-input diffs dx (N, 4H); dc_prev may be dc (in place)."""
    cdef Py_ssize_t n, d, num = acts.shape[0], dim = c.shape[1]
    cdef floating i, f, o, g, t, kept, dcell
    with nogil:
        for n in prange(num, schedule="static", use_threads_if=num * dim >= PARALLEL_WORK):
            for d in range(dim):
                i = acts[n, d]
                f = acts[n, dim + d]
                o = acts[n, 2 * dim + d]
                g = acts[n, 3 * dim + d]
                t = tanh_(c[n, d])
                kept = 0 if cont[n] == 0 else cont[n] * f
                dcell = dc[n, d] + dh[n, d] * o * (1 - t * t)
                dc_prev[n, d] = dcell * kept
                dx[n, d] = dcell * g * i * (1 - i)
                dx[n, dim + d] = 0 if cont[n] == 0 else dcell * c_prev[n, d] * cont[n] * f * (1 - f)
                dx[n, 2 * dim + d] = dh[n, d] * t * o * (1 - o)
                dx[n, 3 * dim + d] = dcell * i * (1 - g * g)


def unit_forward_array(c_prev, x, cont, acts, c, h):
    """unit_forward in array-API operations (CuPy on a GPU; also runs on NumPy)."""
    xp = array_module(x)
    dim = c.shape[1]
    sig = 0.5 * xp.tanh(0.5 * x[:, :3 * dim]) + 0.5
    g = xp.tanh(x[:, 3 * dim:])
    acts[:, :3 * dim] = sig
    acts[:, 3 * dim:] = g
    i, f, o = sig[:, :dim], sig[:, dim:2 * dim], sig[:, 2 * dim:]
    cont = cont[:, None]
    kept = xp.where(cont == 0, 0, cont * f)
    c[...] = kept * c_prev + i * g
    h[...] = o * xp.tanh(c)


def unit_backward_array(c_prev, acts, cont, c, dc, dh, dc_prev, dx):
    """unit_backward in array-API operations."""
    xp = array_module(acts)
    dim = c.shape[1]
    i, f, o, g = (acts[:, k * dim:(k + 1) * dim] for k in range(4))
    cont = cont[:, None]
    t = xp.tanh(c)
    dcell = dc + dh * o * (1 - t * t)
    dx[:, :dim] = dcell * g * i * (1 - i)
    dx[:, dim:2 * dim] = xp.where(cont == 0, 0, dcell * c_prev * cont * f * (1 - f))
    dx[:, 2 * dim:3 * dim] = dh * t * o * (1 - o)
    dx[:, 3 * dim:] = dcell * i * (1 - g * g)
    dc_prev[...] = dcell * xp.where(cont == 0, 0, cont * f)


class LSTMUnit(Layer):
    """One LSTM step; bottoms c_prev, x (gate inputs), cont; tops c, h."""

    type = "LSTMUnit"
    bottoms = 3
    tops = 2

    def setup(self, bottom, top):
        self.acts = None            # gate activations from forward, kept for backward

    def allow_backward(self, bottom_index):
        return bottom_index != 2    # no gradient for the sequence indicators

    def reshape(self, bottom, top):
        c_prev, x, cont = (b.shape for b in bottom)
        if len(c_prev) != 3 or len(x) != 3 or len(cont) != 2:
            raise self.shape_error(f"bottoms must be c_prev (1, N, H), x (1, N, 4H) and "
                                   f"cont (1, N), got {c_prev}, {x} and {cont}")
        num = c_prev[1]
        if c_prev[0] != 1 or x[0] != 1 or cont[0] != 1 or x[1] != num or cont[1] != num:
            raise self.shape_error(f"bottoms must hold one timestep of the same N streams: "
                                   f"c_prev {c_prev}, x {x}, cont {cont}")
        if x[2] != 4 * c_prev[2]:
            raise self.shape_error(f"x {x} must hold 4 * H = {4 * c_prev[2]} gate inputs "
                                   f"for c_prev {c_prev}")
        top[0].reshape(c_prev)
        top[1].reshape(c_prev)

    def _views(self, bottom, top):
        _, num, dim = bottom[0].shape
        xp = array_module(bottom[1].data)
        if (self.acts is None or self.acts.shape != (num, 4 * dim)
                or array_module(self.acts) is not xp):
            self.acts = xp.empty((num, 4 * dim), self.dtype)
        return (bottom[0].data.reshape(num, dim), bottom[1].data.reshape(num, 4 * dim),
                bottom[2].data.reshape(num), top[0].data.reshape(num, dim),
                top[1].data.reshape(num, dim))

    def _forward(self, bottom, top, kernel):
        c_prev, x, cont, c, h = self._views(bottom, top)
        kernel(c_prev, x, cont, self.acts, c, h)

    def _backward(self, top, propagate_down, bottom, kernel):
        if not (propagate_down[0] or propagate_down[1]):
            return
        _, num, dim = bottom[0].shape
        xp = array_module(bottom[1].data)
        # A bottom that wants no gradient gets a scratch buffer instead of its diff.
        dc_prev = (bottom[0].diff if propagate_down[0] else xp.empty_like(bottom[0].data))
        dx = bottom[1].diff if propagate_down[1] else xp.empty_like(bottom[1].data)
        kernel(bottom[0].data.reshape(num, dim), self.acts, bottom[2].data.reshape(num),
               top[0].data.reshape(num, dim), top[0].diff.reshape(num, dim),
               top[1].diff.reshape(num, dim), dc_prev.reshape(num, dim),
               dx.reshape(num, 4 * dim))

    def forward_cpu(self, bottom, top):
        self._forward(bottom, top, unit_forward)

    def backward_cpu(self, top, propagate_down, bottom):
        self._backward(top, propagate_down, bottom, unit_backward)

    def forward_gpu(self, bottom, top):
        self._forward(bottom, top, unit_forward_array)

    def backward_gpu(self, top, propagate_down, bottom):
        self._backward(top, propagate_down, bottom, unit_backward_array)
