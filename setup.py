"""Build of fastrnn's compiled kernels.

Environment switches (build time):
  FASTRNN_DEBUG=1   Cython bounds checks and wraparound on, -O1 -g, asserts kept (a debug build
                    that the whole test suite must pass; CI runs it once).
  FASTRNN_NATIVE=1  add -march=native (opt-in for local builds; wheels must not assume it: the
                    element-wise passes already pick AVX-512 / AVX2 / SSE2 at run time).
"""
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup


def _flag(name):
    return os.environ.get(name, "").strip() not in ("", "0")


DEBUG = _flag("FASTRNN_DEBUG")

# GCC or Clang (fastrnn/_kernels/_vmath.h uses their builtins and vector extensions).
if DEBUG:
    compile_args = ["-O1", "-g", "-UNDEBUG"]
else:
    # -O3 and never -ffast-math: NaN handling and agreement with the reference depend on IEEE
    # semantics (see fastrnn/_kernels/_vmath.h).
    compile_args = ["-O3"]
if _flag("FASTRNN_NATIVE"):
    compile_args.append("-march=native")

extensions = [
    Extension(
        "fastrnn._kernels._core",
        ["fastrnn/_kernels/_core.pyx"],
        include_dirs=[numpy.get_include(), "fastrnn/_kernels"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                       ("FASTRNN_DEBUG_BUILD", "1" if DEBUG else "0")],
        extra_compile_args=compile_args,
    ),
    Extension(
        "fastrnn._kernels._backward",
        ["fastrnn/_kernels/_backward.pyx"],
        include_dirs=[numpy.get_include(), "fastrnn/_kernels"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
    ),
]

setup(
    ext_modules=cythonize(
        extensions,
        # Always regenerate the C file: the directives differ between the optimised and the
        # debug build, and a stale _core.c from the other build must never be reused.
        force=True,
        compiler_directives={
            "language_level": 3,
            "boundscheck": DEBUG,
            "wraparound": DEBUG,
            "initializedcheck": DEBUG,
        },
    ),
)
