"""im2col / col2im: the patch <-> column rearrangement behind Caffe's convolution.

For a chunk of images x (N, C, H, W), kernel (kh, kw), pad (ph, pw), stride (sh, sw),
dilation (dh, dw) and output size (ho, wo), with L = ho * wo:

    col[(c*kh + i)*kw + j, n*L + y*wo + x] = x[n, c, y*sh - ph + i*dh, x*sw - pw + j*dw]

(0 where the source pixel lies in the padding). The whole chunk sits side by side in
the columns, so one GEMM per group covers every image. col2im is the adjoint: it sums
every column entry back onto the pixel it came from (padding entries are dropped).
Rows of channel c are contiguous, so group g owns a contiguous block of rows.
"""
from cython.parallel import prange
from cython cimport floating


def im2col(const floating[:, :, :, ::1] x, floating[:, ::1] col,
           int kh, int kw, int ph, int pw, int sh, int sw, int dh, int dw,
           int ho, int wo):
    """Fill col (C*kh*kw, N*ho*wo) with the patches of x (N, C, H, W)."""
    cdef Py_ssize_t num = x.shape[0], channels = x.shape[1]
    cdef Py_ssize_t height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t plane, n, c, i, j, y, xo, row, start, hin, win, length = ho * wo
    if col.shape[0] != channels * kh * kw or col.shape[1] != num * length:
        raise ValueError(f"im2col: col has shape ({col.shape[0]}, {col.shape[1]}), expected "
                         f"({channels * kh * kw}, {num * length})")
    with nogil:
        for plane in prange(num * channels, schedule="static"):
            n = plane // channels
            c = plane % channels
            for i in range(kh):
                for j in range(kw):
                    row = (c * kh + i) * kw + j
                    for y in range(ho):
                        start = n * length + y * wo
                        hin = y * sh - ph + i * dh
                        if hin < 0 or hin >= height:
                            for xo in range(wo):
                                col[row, start + xo] = 0
                        else:
                            for xo in range(wo):
                                win = xo * sw - pw + j * dw
                                if 0 <= win < width:
                                    col[row, start + xo] = x[n, c, hin, win]
                                else:
                                    col[row, start + xo] = 0


def col2im(const floating[:, ::1] col, floating[:, :, :, ::1] x,
           int kh, int kw, int ph, int pw, int sh, int sw, int dh, int dw,
           int ho, int wo):
    """Write into x (N, C, H, W) the sum of the col entries taken from each pixel."""
    cdef Py_ssize_t num = x.shape[0], channels = x.shape[1]
    cdef Py_ssize_t height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t plane, n, c, i, j, y, xo, row, start, hin, win, length = ho * wo
    if col.shape[0] != channels * kh * kw or col.shape[1] != num * length:
        raise ValueError(f"col2im: col has shape ({col.shape[0]}, {col.shape[1]}), expected "
                         f"({channels * kh * kw}, {num * length})")
    with nogil:
        # Each (image, channel) plane gathers from its own rows and columns: no races.
        for plane in prange(num * channels, schedule="static"):
            n = plane // channels
            c = plane % channels
            for hin in range(height):
                for win in range(width):
                    x[n, c, hin, win] = 0
            for i in range(kh):
                for j in range(kw):
                    row = (c * kh + i) * kw + j
                    for y in range(ho):
                        hin = y * sh - ph + i * dh
                        if hin < 0 or hin >= height:
                            continue
                        start = n * length + y * wo
                        for xo in range(wo):
                            win = xo * sw - pw + j * dw
                            if 0 <= win < width:
                                x[n, c, hin, win] += col[row, start + xo]


def im2col_xp(xp, x, kh, kw, ph, pw, sh, sw, dh, dw, ho, wo):
    """im2col in array-API code (the GPU path; runs on numpy too): returns col."""
    num, channels = x.shape[:2]
    padded = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    col = xp.empty((channels, kh, kw, num, ho, wo), x.dtype)
    for i in range(kh):
        for j in range(kw):
            patch = padded[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh,
                           j * dw:j * dw + sw * (wo - 1) + 1:sw]
            col[:, i, j] = patch.transpose(1, 0, 2, 3)
    return col.reshape(channels * kh * kw, num * ho * wo)


def col2im_xp(xp, col, shape, kh, kw, ph, pw, sh, sw, dh, dw, ho, wo):
    """col2im in array-API code: returns the image-shaped sum of col's entries."""
    num, channels, height, width = shape
    col = col.reshape(channels, kh, kw, num, ho, wo)
    padded = xp.zeros((num, channels, height + 2 * ph, width + 2 * pw), col.dtype)
    for i in range(kh):
        for j in range(kw):
            padded[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh,
                   j * dw:j * dw + sw * (wo - 1) + 1:sw] += col[:, i, j].transpose(1, 0, 2, 3)
    return padded[:, :, ph:ph + height, pw:pw + width]
