"""Build cyffe: the repository root is the package `cyffe`; each .pyx under layers/ is one
extension, named for its path (layers/kernels/blas.pyx -> cyffe.layers.kernels.blas)."""
import glob
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py

ROOT = os.path.dirname(os.path.abspath(__file__))
TOP_PACKAGES = ["layers", "net", "proto", "tools"]


class BuildPy(build_py):
    """Leave this build script out of the installed package."""

    def find_package_modules(self, package, package_dir):
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if not (package == "cyffe" and m[1] == "setup")]


def packages():
    """cyffe and every folder under the top-level packages that holds an __init__.py."""
    found = ["cyffe"]
    for top in TOP_PACKAGES:
        for folder, _, files in sorted(os.walk(top)):
            if "__init__.py" in files:
                found.append("cyffe." + folder.replace(os.sep, "."))
    return found


def cimport_path():
    """A folder holding a `cyffe` link to the root, so `cimport cyffe.layers.kernels...` finds
    the .pxd files whatever the checkout's folder is called."""
    folder = os.path.join(ROOT, "build", "cython-include")
    link = os.path.join(folder, "cyffe")
    os.makedirs(folder, exist_ok=True)
    if os.path.realpath(link) != ROOT:
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(ROOT, link)
    return folder


def extensions():
    openmp = os.environ.get("CYFFE_OPENMP", "1") != "0"
    # -fno-trapping-math: nothing reads the floating-point exception flags, and without
    # it GCC may not evaluate both arms of `x if x > 0 else x * slope` for every element,
    # which keeps such loops scalar and branchy (ReLU on random signs: 20x slower).
    # -fno-math-errno: nothing reads errno either, and without it sqrt() keeps a call for
    # the error path in every loop that takes a root. Results are unchanged: this is not
    # -ffast-math.
    flags = ["-O3", "-fno-trapping-math", "-fno-math-errno"] + (["-fopenmp"] if openmp else [])
    return [
        Extension(
            "cyffe." + os.path.splitext(path)[0].replace(os.sep, "."),
            [path],
            include_dirs=[numpy.get_include()],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=flags,
            extra_link_args=["-fopenmp"] if openmp else [],
        )
        for path in sorted(glob.glob(os.path.join("layers", "**", "*.pyx"), recursive=True))
    ]


setup(
    package_dir={"cyffe": "."},
    packages=packages(),
    package_data={"cyffe.proto": ["*.proto"]},
    ext_modules=cythonize(
        extensions(),
        include_path=[cimport_path()],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
    cmdclass={"build_py": BuildPy},
)
