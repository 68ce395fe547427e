"""Build of fastrnn's compiled kernels.

Environment switches (build time):
  FASTRNN_DEBUG=1   Cython bounds checks and wraparound on, -O1 -g, asserts kept (a debug build
                    that the whole test suite must pass; CI runs it once).
  FASTRNN_NATIVE=1  add -march=native (opt-in for local builds; wheels must not assume it: the
                    element-wise passes already pick AVX-512 / AVX2 / SSE2 at run time).
"""
import glob
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup


def _flag(name):
    """A build switch from the environment, spelt as FASTRNN_CHECKED is (fastrnn/_checked.py):
    1/true/yes/on or 0/false/no/off/empty, any letter case; anything else stops the build
    (an "off" that switched the debug build on would go unnoticed)."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise SystemExit(f"setup.py: environment variable {name}={os.environ[name]!r} is neither "
                     f"on (1, true, yes, on) nor off (0, false, no, off, empty)")


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

def _extension(pyx):
    """The extension built from one .pyx: fastrnn/_kernels/_core.pyx -> fastrnn._kernels._core."""
    return Extension(
        os.path.splitext(pyx)[0].replace("/", "."),
        [pyx],
        include_dirs=[numpy.get_include(), os.path.dirname(pyx)],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                       ("FASTRNN_DEBUG_BUILD", "1" if DEBUG else "0")],
        extra_compile_args=compile_args,
    )


# Every .pyx under fastrnn/ is one compiled module (a new kernel file needs no entry here).
# Relative, '/'-separated paths: setup.py runs from its own directory.
extensions = [_extension(pyx) for pyx in sorted(glob.glob("fastrnn/**/*.pyx", recursive=True))]
if not extensions:
    raise SystemExit("setup.py: no fastrnn/**/*.pyx found (run from the source tree or an "
                     "unpacked sdist)")

setup(
    # The compiled modules build side by side (each is one large C file, several minutes of
    # CPU time in all, and the largest alone takes most of it).
    options={"build_ext": {"parallel": max(1, min(len(extensions), os.cpu_count() or 1))}},
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
