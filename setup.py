"""Build cyffe: the repository root is the package `cyffe`; each layers/*.pyx is one extension."""
import glob
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py

PACKAGES = ["layers", "net", "proto", "tools"]


class BuildPy(build_py):
    """Leave this build script out of the installed package."""

    def find_package_modules(self, package, package_dir):
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if not (package == "cyffe" and m[1] == "setup")]


def extensions():
    openmp = os.environ.get("CYFFE_OPENMP", "1") != "0"
    # -fno-trapping-math: nothing reads the floating-point exception flags, and without
    # it GCC may not evaluate both arms of `x if x > 0 else x * slope` for every element,
    # which keeps such loops scalar and branchy (ReLU on random signs: 20x slower).
    # Results are unchanged: this is not -ffast-math.
    flags = ["-O3", "-fno-trapping-math"] + (["-fopenmp"] if openmp else [])
    return [
        Extension(
            "cyffe.layers." + os.path.splitext(os.path.basename(path))[0],
            [path],
            include_dirs=[numpy.get_include()],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=flags,
            extra_link_args=["-fopenmp"] if openmp else [],
        )
        for path in sorted(glob.glob("layers/*.pyx"))
    ]


setup(
    package_dir={"cyffe": "."},
    packages=["cyffe"] + ["cyffe." + p for p in PACKAGES],
    package_data={"cyffe.proto": ["*.proto"]},
    ext_modules=cythonize(
        extensions(),
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
