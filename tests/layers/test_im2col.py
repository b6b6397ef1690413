import numpy as np
import pytest

from cyffe.layers.kernels.im2col import col2im, col2im_xp, im2col, im2col_xp
from cyffe.layers.kernels.window import Geometry

# (kh, kw, ph, pw, sh, sw, dh, dw) on a 2x3x7x6 input
GEOMETRIES = [
    (3, 3, 1, 1, 1, 1, 1, 1),
    (3, 3, 0, 0, 2, 2, 1, 1),
    (3, 2, 1, 0, 2, 1, 1, 1),
    (3, 3, 2, 1, 1, 2, 2, 2),
    (1, 1, 0, 0, 1, 1, 1, 1),
    (2, 4, 1, 3, 3, 1, 1, 2),
]


def window(shape, kh, kw, ph, pw, sh, sw, dh, dw):
    """The Geometry of images of shape (N, C, H, W) for one entry of GEOMETRIES."""
    return Geometry(shape[2:], (kh, kw), (sh, sw), (dh, dw), (ph, pw), (ph, pw))


def out_size(size, k, p, s, d):
    return (size + 2 * p - (d * (k - 1) + 1)) // s + 1


def reference_im2col(x, kh, kw, ph, pw, sh, sw, dh, dw):
    """The definition, one entry at a time."""
    n, c, h, w = x.shape
    ho, wo = out_size(h, kh, ph, sh, dh), out_size(w, kw, pw, sw, dw)
    col = np.zeros((c * kh * kw, n * ho * wo), x.dtype)
    for b in range(n):
        for ch in range(c):
            for i in range(kh):
                for j in range(kw):
                    for y in range(ho):
                        for xo in range(wo):
                            hin, win = y * sh - ph + i * dh, xo * sw - pw + j * dw
                            if 0 <= hin < h and 0 <= win < w:
                                col[(ch * kh + i) * kw + j, (b * ho + y) * wo + xo] = \
                                    x[b, ch, hin, win]
    return col, ho, wo


# A narrow input, and one whose rows take a vector and a half of the AVX-512 kernels
# (float32, stride 1 along the rows), with a tail.
INPUTS = [(2, 3, 7, 6), (1, 2, 5, 37)]


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", INPUTS)
def test_im2col_matches_reference(geometry, dtype, shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    expected, ho, wo = reference_im2col(x, *geometry)
    col = np.full(expected.shape, np.nan, dtype)
    im2col(window(x.shape, *geometry), x, col)
    np.testing.assert_array_equal(col, expected)
    np.testing.assert_array_equal(im2col_xp(np, window(x.shape, *geometry), x), expected)


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", INPUTS)
def test_col2im_is_the_adjoint(geometry, dtype, shape):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    _, ho, wo = reference_im2col(x, *geometry)
    c = rng.standard_normal((shape[1] * geometry[0] * geometry[1], shape[0] * ho * wo))
    c = c.astype(dtype)
    col = np.empty_like(c)
    im2col(window(x.shape, *geometry), x, col)
    back = np.full_like(x, np.nan)
    col2im(window(back.shape, *geometry), c, back)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(np.vdot(col.astype(np.float64), c), np.vdot(x, back), rtol=tol)
    np.testing.assert_allclose(col2im_xp(np, window(x.shape, *geometry), c, *x.shape[:2]), back, rtol=tol,
                               atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, geometry", [((1, 2, 5, 4), (3, 2, 1, 1, 2, 1, 1, 1)),
                                               ((1, 2, 4, 35), (3, 5, 1, 2, 1, 1, 1, 2))])
def test_col2im_matches_reference(dtype, x_shape, geometry):
    # col2im of a one-hot column is the pixel that column entry was read from.
    probe = np.arange(np.prod(x_shape), dtype=np.float64).reshape(x_shape) + 1
    source, ho, wo = reference_im2col(probe, *geometry)
    rng = np.random.default_rng(2)
    c = rng.standard_normal(source.shape).astype(dtype)
    expected = np.zeros(x_shape)
    for (row, column), value in np.ndenumerate(c):
        if source[row, column]:
            expected.reshape(-1)[int(source[row, column]) - 1] += value
    back = np.empty(x_shape, dtype)
    col2im(window(back.shape, *geometry), c, back)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(back, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("width", [1024, 1040])
def test_rows_past_the_kernels_mask_table(width):
    """Rows of more than 1024 outputs (the AVX-512 kernels work their last masks out on
    the fly), against the NumPy formulation."""
    geometry = (3, 3, 1, 1, 1, 1, 1, 1)
    x = np.random.default_rng(3).standard_normal((1, 2, 3, width)).astype(np.float32)
    col = np.full((2 * 9, 3 * width), np.nan, np.float32)
    im2col(window(x.shape, *geometry), x, col)
    np.testing.assert_array_equal(col, im2col_xp(np, window(x.shape, *geometry), x))
    back = np.full_like(x, np.nan)
    col2im(window(x.shape, *geometry), col, back)
    np.testing.assert_allclose(back, col2im_xp(np, window(x.shape, *geometry), col, *x.shape[:2]),
                               rtol=1e-5, atol=1e-5)


def test_wrong_col_shape_is_an_error():
    x = np.zeros((1, 2, 4, 4))
    with pytest.raises(ValueError, match="expected"):
        im2col(window(x.shape, 3, 3, 0, 0, 1, 1, 1, 1), x, np.zeros((17, 4)))
    with pytest.raises(ValueError, match="expected"):
        col2im(window(x.shape, 3, 3, 0, 0, 1, 1, 1, 1), np.zeros((17, 4)), x)
