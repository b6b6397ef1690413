"""layers.kernels.blas.gemm: every transpose, both dtypes, strided views and the threaded split,
against NumPy's matmul (in float64 for the reference)."""
import os
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from cyffe.layers.kernels.avx512 import available as avx512
from cyffe.layers.kernels.blas import gemm

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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strided_views_in_and_out(dtype):
    """Column blocks of wider matrices, as a chunk of a column buffer is."""
    rng = np.random.default_rng(2)
    wide_b = rng.standard_normal((64, 900)).astype(dtype)
    wide_c = np.zeros((30, 900), dtype)
    a = rng.standard_normal((30, 64)).astype(dtype)
    gemm(a, wide_b[:, 100:701], wide_c[:, 200:801])
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(wide_c[:, 200:801], product(a, wide_b[:, 100:701], False, False),
                               rtol=tol, atol=tol * 64)
    assert not wide_c[:, :200].any() and not wide_c[:, 801:].any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m", [1, 3, 7])
def test_few_rows_and_a_single_column_are_dot_products(dtype, m):
    """A few rows against a transposed b (an InnerProduct on a few images) and a matrix
    times one column go to dot_rows: strided rows, a k that is no multiple of its lanes."""
    rng = np.random.default_rng(m)
    x = rng.standard_normal((m, 1000)).astype(dtype)[:, 3:998]
    w = rng.standard_normal((301, 1000)).astype(dtype)[:, 3:998]
    c = np.full((m, 301), np.nan, dtype)
    gemm(x, w, c, trans_b=True)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(c, product(x, w, False, True), rtol=tol, atol=tol * 30)
    column = np.full((301, 1), np.nan, dtype)
    gemm(w, x[:1].T.copy(), column)
    np.testing.assert_allclose(column, product(w, x[:1].T, False, False), rtol=tol,
                               atol=tol * 30)


# The AVX-512 kernel works in tiles of 8 rows by 32 columns, panels of 256 rows of op(b)
# and blocks of 256 columns: every remainder of each, and more than one panel and block.
KERNEL_SHAPES = [(m, n, k) for m in (1, 7, 8, 9, 33)
                 for n in (1, 15, 16, 17, 31, 32, 33, 70, 300) for k in (1, 255, 257)]


@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True),
                                              (True, True)])
def test_float32_kernel_tiles_and_panels(trans_a, trans_b):
    rng = np.random.default_rng(4)
    for m, n, k in KERNEL_SHAPES:
        a = operand(rng, m, k, trans_a, np.float32)
        b = operand(rng, k, n, trans_b, np.float32)
        c0 = rng.standard_normal((m, n)).astype(np.float32)
        c = c0.copy()
        gemm(a, b, c, trans_a, trans_b, alpha=-0.5, beta=0.25)
        expected = -0.5 * product(a, b, trans_a, trans_b) + 0.25 * c0
        np.testing.assert_allclose(c, expected, rtol=1e-4, atol=1e-5 * k,
                                   err_msg=f"m={m} n={n} k={k}")


def test_the_kernel_is_taken_where_the_cpu_has_avx512():
    """On an AVX-512 CPU float32 goes to cyffe's kernels (the tests above test them);
    $CYFFE_AVX512=0 hands everything back to BLAS and the portable loops."""
    flags = open("/proc/cpuinfo").read() if sys.platform == "linux" else ""
    if "avx512f" in flags.split() and os.environ.get("CYFFE_AVX512") != "0":
        assert avx512()
    code = "from cyffe.layers.kernels.avx512 import available; print(available())"
    off = subprocess.run([sys.executable, "-c", code], env={**os.environ, "CYFFE_AVX512": "0"},
                         capture_output=True, text=True, check=True)
    assert off.stdout.strip() == "False"


def test_the_blas_path_gives_the_same_products():
    """With $CYFFE_AVX512=0, in a fresh process: the same products to float32 rounding."""
    code = """if True:
        import numpy as np, sys
        from cyffe.layers.kernels.blas import gemm
        rng = np.random.default_rng(5)
        a, b = rng.standard_normal((40, 300), np.float32), rng.standard_normal((300, 90), np.float32)
        c = np.empty((40, 90), np.float32)
        gemm(a, b, c)
        sys.stdout.buffer.write(c.tobytes())
    """
    # raw bytes: np.save on a pipe fails in some environments (it asks the file position)
    products = [np.frombuffer(subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "CYFFE_AVX512": flag},
        capture_output=True, check=True).stdout, np.float32).reshape(40, 90)
        for flag in ("0", "1")]
    np.testing.assert_allclose(products[0], products[1], rtol=1e-4, atol=1e-4)


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


def test_scipy_is_imported_only_for_a_product_that_takes_its_blas():
    """scipy.linalg costs about 27 MB: float32 nets on AVX-512 never import it; without it
    (here: made unimportable) products run in plain loops, with a warning."""
    code = """if True:
        import sys, warnings
        import numpy as np
        from cyffe.layers.kernels.blas import gemm
        assert "scipy" not in sys.modules
        sys.modules["scipy.linalg.cython_blas"] = None
        rng = np.random.default_rng(5)
        a, b = rng.standard_normal((9, 30)), rng.standard_normal((40, 30))
        c = np.ones((9, 40))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gemm(a, b, c, trans_b=True, alpha=2.0, beta=0.5)
        assert "plain loops" in str(caught[0].message), caught
        assert np.allclose(c, 2 * a @ b.T + 0.5), abs(c - 2 * a @ b.T - 0.5).max()
        print("ok")
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
