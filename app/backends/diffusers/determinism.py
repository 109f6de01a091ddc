"""Deterministic execution and the environment fingerprint that goes with every output.

Bit-identical outputs need the same torch build, thread count, dtype and CPU ISA (or
GPU compute capability). `configure` pins what a process can pin; `fingerprint` records
the rest, so a verifier knows whether an exact pixel hash can be expected.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
from dataclasses import dataclass
from functools import lru_cache

log = logging.getLogger(__name__)

# cuBLAS needs a fixed workspace to be deterministic; it must be set before CUDA starts.
CUBLAS_WORKSPACE = ":4096:8"


@dataclass(frozen=True)
class Runtime:
    device: str  # "cpu" or "cuda:N"
    dtype: str  # "float32" or "float16"
    threads: int


def resolve_device(requested: str) -> str:
    """'auto' means CUDA when present, else CPU. Never called in a forking parent."""
    import torch

    if requested == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} was asked for but CUDA is not available; set SEEDGRID_DEVICE=cpu")
    return requested


def resolve_dtype(requested: str, device: str) -> str:
    """fp32 on CPU (fp16 kernels there are slow and differ), fp16 on CUDA unless pinned."""
    if requested == "auto":
        return "float16" if device.startswith("cuda") else "float32"
    if requested not in ("float32", "float16", "bfloat16"):
        raise ValueError(f"dtype must be auto, float32, float16 or bfloat16, got {requested!r}")
    return requested


def configure(device: str, dtype: str, threads: int) -> Runtime:
    """Pin threads and deterministic algorithms for this process; return the runtime."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    import torch

    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    torch.set_num_threads(threads)
    # warn_only: an op without a deterministic kernel logs instead of failing the job;
    # the exact-hash check is what catches any resulting drift.
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return Runtime(device=device, dtype=dtype, threads=threads)


@lru_cache(maxsize=1)
def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fingerprint(runtime: Runtime) -> dict[str, object]:
    """What an output depends on beyond the request: published with every output."""
    import diffusers
    import torch

    env: dict[str, object] = {
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "device": runtime.device,
        "dtype": runtime.dtype,
        "threads": runtime.threads,
    }
    if runtime.device.startswith("cuda"):
        index = torch.device(runtime.device).index or 0
        major, minor = torch.cuda.get_device_capability(index)
        env["device_name"] = torch.cuda.get_device_name(index)
        env["compute_capability"] = f"{major}.{minor}"
        env["cuda"] = torch.version.cuda
    else:
        env["device_name"] = _cpu_name()
        env["isa"] = torch.backends.cpu.get_cpu_capability()
    env["class"] = environment_class(env)
    return env


def environment_class(env: dict[str, object]) -> str:
    """Outputs from two environments of one class are expected to be bit-identical."""
    keys = ("torch", "diffusers", "dtype", "threads", "isa", "compute_capability", "cuda")
    ident = {k: env.get(k) for k in keys}
    ident["device_kind"] = str(env.get("device", "")).split(":")[0]
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]

