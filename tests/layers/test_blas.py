"""layers.blas.gemm: every transpose, both dtypes, strided views and the threaded split,
against NumPy's matmul (in float64 for the reference)."""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from cyffe.layers.blas import gemm

# (m, n, k): small (one call), wide and tall (split by columns / by rows across threads),
# and shapes that do not divide into the aligned blocks.
SHAPES = [(3, 5, 4), (32, 3000, 75), (700, 40, 300), (61, 1037, 129), (1, 1, 1)]


def operand(rng, rows, cols, transposed, dtype):
    """A matrix of shape (rows, cols) as gemm reads it: stored transposed when asked."""
    return rng.standard_normal((cols, rows) if transposed else (rows, cols)).astype(dtype)


def product(a, b, trans_a, trans_b):
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return (a.T if trans_a else a) @ (b.T if trans_b else b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m, n, k", SHAPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_matches_matmul(dtype, m, n, k, trans_a, trans_b):
    rng = np.random.default_rng(m * n + k)
    a = operand(rng, m, k, trans_a, dtype)
    b = operand(rng, k, n, trans_b, dtype)
    c = np.full((m, n), np.nan, dtype)
    gemm(a, b, c, trans_a, trans_b)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(c, product(a, b, trans_a, trans_b), rtol=tol, atol=tol * k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_alpha_beta_accumulate(dtype):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((40, 300)).astype(dtype)
    b = rng.standard_normal((300, 500)).astype(dtype)
    c0 = rng.standard_normal((40, 500)).astype(dtype)
    c = c0.copy()
    gemm(a, b, c, alpha=0.5, beta=2.0)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(c, 0.5 * product(a, b, False, False) + 2 * c0, rtol=tol,
                               atol=tol * 300)


def test_strided_views_in_and_out():
    """Column blocks of wider matrices, as a chunk of a column buffer is."""
    rng = np.random.default_rng(2)
    wide_b = rng.standard_normal((64, 900))
    wide_c = np.zeros((30, 900))
    a = rng.standard_normal((30, 64))
    gemm(a, wide_b[:, 100:700], wide_c[:, 200:800])
    np.testing.assert_allclose(wide_c[:, 200:800], a @ wide_b[:, 100:700], rtol=1e-12)
    assert not wide_c[:, :200].any() and not wide_c[:, 800:].any()


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_same_result_on_any_thread_count(threads):
    """One thread or several (the blocks taken in any order), the same product."""
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((32, 800)), rng.standard_normal((800, 2500))
    reference = np.empty((32, 2500))
    with threadpool_limits(1, "openmp"):
        gemm(a, b, reference)
    c = np.empty_like(reference)
    with threadpool_limits(threads, "openmp"):
        gemm(a, b, c)
    np.testing.assert_allclose(c, reference, rtol=1e-13)


def test_empty_inner_dimension_scales_c():
    c = np.ones((2, 3))
    gemm(np.empty((2, 0)), np.empty((0, 3)), c, beta=0.5)
    np.testing.assert_array_equal(c, np.full((2, 3), 0.5))
    gemm(np.empty((2, 0)), np.empty((0, 3)), c)
    np.testing.assert_array_equal(c, np.zeros((2, 3)))


def test_mismatched_shapes_name_them():
    with pytest.raises(ValueError, match=r"\(2, 3\) x \(4, 5\) -> \(2, 5\) do not fit"):
        gemm(np.ones((2, 3)), np.ones((4, 5)), np.empty((2, 5)))


def test_rows_must_be_contiguous():
    with pytest.raises(ValueError, match="rows of b must be contiguous"):
        gemm(np.ones((2, 3)), np.ones((3, 8))[:, ::2], np.empty((2, 4)))
