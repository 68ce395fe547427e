"""The run's environment: CPU, SIMD level, BLAS kernel and threads, env vars, versions."""
import datetime
import os
import platform
import subprocess

import numpy as np

import fastrnn


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _load_average():
    """The 1-minute load average (other processes competing for the cores), or None."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _git_revision():
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        rev = subprocess.run(["git", "-C", here, "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return rev.stdout.strip() or None if rev.returncode == 0 else None


def _torch_backend(torch):
    """PyTorch's BLAS and CPU capability (its MKL is linked in: threadpoolctl cannot see
    it)."""
    try:
        config = torch.__config__.show()
    except Exception:   # noqa: BLE001 - informational only
        return None
    blas = next((part.split("=", 1)[1] for part in config.replace(",", " ").split()
                 if part.startswith("BLAS_INFO=")), "?")
    cap = next((line.split(":", 1)[1].strip() for line in config.splitlines()
                if "CPU capability usage" in line), "?")
    onednn = getattr(getattr(torch.backends, "mkldnn", None), "is_available", lambda: False)()
    return f"BLAS {blas}, CPU capability {cap}, oneDNN {'on' if onednn else 'off'}"


def blas_info():
    """``threadpoolctl.threadpool_info()``, trimmed to what a report needs."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("user_api", "internal_api", "version", "architecture", "num_threads",
            "threading_layer", "prefix", "filepath")
    libs = [{k: d.get(k) for k in keep} for d in threadpool_info()]
    # a stable order: fastrnn's BLAS (scipy's) first, then numpy's, then the rest
    rank = {"scipy": 0, "numpy": 1}
    return sorted(libs, key=lambda d: rank.get(_blas_package(d), 2))


# Environment variables that change what runs: fastrnn's switches, BLAS and OpenMP threads
# and kernels, PyTorch's CPU dispatch; every other OPENBLAS_* variable set is added.
ENV_VARS = ("FASTRNN_SIMD", "FASTRNN_CHECKED", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
            "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "ATEN_CPU_CAPABILITY",
            "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def env_vars():
    """The values of :data:`ENV_VARS` ("unset" when unset) and of any other OPENBLAS_*."""
    names = list(ENV_VARS) + sorted(k for k in os.environ
                                    if k.startswith("OPENBLAS_") and k not in ENV_VARS)
    return {k: os.environ.get(k, "unset") for k in names}


def environment(torch=None, threads=1, ort=None):
    """The run's environment: date, CPU, SIMD level, BLAS (threadpoolctl), env vars,
    versions.  Call it with BLAS already pinned, so ``num_threads`` shows the pinned count.

    ``torch``: the torch module when PyTorch is a peer; ``ort``: ``(onnx, onnxruntime)``
    when ONNX Runtime is."""
    import scipy
    import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS so threadpoolctl sees it)

    from fastrnn._kernels import _core

    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average": _load_average(),
        "platform": platform.platform(),
        "simd_level": _core.simd_level(),
        "tile_cols": _core.tile_cols() if _core.simd() == "avx512" else None,
        "blas": blas_info(),
        "env": env_vars(),
        "python": platform.python_version(),
        "fastrnn": fastrnn.__version__,
        "fastrnn_git": _git_revision(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "torch": None if torch is None else torch.__version__,
        "torch_threads": None if torch is None else torch.get_num_threads(),
        "torch_backend": None if torch is None else _torch_backend(torch),
        "onnx": None if ort is None else ort[0].__version__,
        "onnxruntime": None if ort is None else ort[1].__version__,
        "threads": threads,
        "small_batch_max_m": getattr(fastrnn._api, "SMALL_BATCH_MAX_M", None),
        "panel_gemm": getattr(_core, "panel_gemm_enabled", lambda: None)(),
    }


def _blas_package(lib):
    path = (lib.get("filepath") or "").replace("\\", "/")
    for pkg in ("scipy", "numpy", "torch"):
        if f"/{pkg}.libs/" in path or f"/{pkg}/" in path:
            return pkg
    return None


def _blas_user(lib):
    pkg = _blas_package(lib)
    if pkg is None:
        return os.path.basename(lib.get("filepath") or "") or "?"
    return {"scipy": "scipy, fastrnn kernels", "numpy": "numpy, the reference",
            "torch": "torch"}[pkg]


def format_environment(env):
    lines = [
        f"fastrnn benchmark   {env['date']}   fastrnn {env['fastrnn']}"
        + (f" (git {env['fastrnn_git']})" if env.get("fastrnn_git") else ""),
        f"CPU          {env['cpu']} ({env['cpu_count']} logical CPUs), {env['platform']}"
        + (f", load average {env['load_average']} at start"
           if env.get("load_average") is not None else ""),
        f"SIMD         {env['simd_level']} (fastrnn's kernels; FASTRNN_SIMD="
        f"{env['env'].get('FASTRNN_SIMD', 'unset')}"
        + (f"; panel tiles of up to {env['tile_cols']} examples" if env.get("tile_cols") else "")
        + ")",
    ]
    for k, lib in enumerate(env["blas"]):
        arch = lib.get("architecture") or "-"
        lines.append(
            f"{'BLAS' if k == 0 else '':<12} {lib['internal_api']} {lib.get('version') or ''}"
            f"  kernel {arch}  num_threads {lib['num_threads']}  [{_blas_user(lib)}]")
    lines.append("env          " + "  ".join(f"{k}={v}" for k, v in env["env"].items()))
    torch_txt = (f"torch {env['torch']} (set_num_threads {env['torch_threads']}; "
                 f"{env.get('torch_backend')})" if env.get("torch") else "torch not used")
    ort_txt = (f"onnxruntime {env['onnxruntime']} (onnx {env['onnx']})"
               if env.get("onnxruntime") else "onnxruntime not used")
    lines.append(f"versions     python {env['python']}, numpy {env['numpy']}, "
                 f"scipy {env['scipy']}, {ort_txt}")
    lines.append(f"             {torch_txt}")
    lines.append(f"threads      {env['threads']} (threadpoolctl.threadpool_limits"
                 + (", torch.set_num_threads" if env.get("torch") else "")
                 + (", onnxruntime intra_op_num_threads" if env.get("onnxruntime") else "")
                 + ")")
    return "\n".join(lines)
