"""Speed and memory of poolswap's operators against torch's native pools and the pure-PyTorch reference
(`poolswap bench`).

For every case (input shape and 2-d pooling geometry) and every operator this measures, on one device and in
one process run:

* ``fwd_ms``: median wall time of the forward pass under ``torch.no_grad()`` (inference);
* ``fwd_bwd_ms``: median wall time of forward + ``backward`` of a fixed random upstream gradient, with every
  input requiring grad (x, and for adaPool/adaUnPool also β and z);
* ``peak_bytes``: peak extra memory of one forward + backward (see :data:`MEMORY_METHOD`);
* ratios to native ``F.max_pool2d`` of the same case (the baseline, always measured) and, for poolswap's
  operators, the speedup over their pure-PyTorch reference (``poolswap.ops._reference``) at the same shape.

Operators: ``max_pool2d`` and ``avg_pool2d`` (torch), ``empool``, ``edscwpool``, ``idwpool``, ``adapool``
(spatial β of the output size, β = 0.5) and ``adaunpool`` (``normalize="mean"``: upsamples z of the pooled
shape back to x's shape with the weights of x; its ratios are still taken to ``max_pool2d`` of the case).
The reference is slow and memory-hungry (it gathers every window tap): it runs at the true shape, with at most 3
repeats, fewer once a measurement has taken :data:`REFERENCE_BUDGET_S` seconds; every row records its run counts.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from . import __version__, _extension, ops
from .ops import _reference
from .ops._geometry import make_geometry

__all__ = ["Case", "DEFAULT_CASES", "make_cases", "OPS", "MEMORY_METHOD", "TIMING_METHOD", "run", "format_report"]

BASELINE = "max_pool2d"
NATIVE_OPS = ("max_pool2d", "avg_pool2d")
POOLSWAP_OPS = ("empool", "edscwpool", "idwpool", "adapool", "adaunpool")
OPS = NATIVE_OPS + POOLSWAP_OPS
MAX_REFERENCE_REPEAT = 3
REFERENCE_BUDGET_S = 2.0  # the reference stops repeating a measurement once it has taken this long
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

TIMING_METHOD = (
    "wall clock (time.perf_counter, CUDA synchronised before and after each run); median over the repeats "
    f"(reference: up to --reference-repeat runs, stopping once a measurement has taken {REFERENCE_BUDGET_S:g} s); "
    "warm-up per operator: one untimed forward (not for the slow reference), then the memory pass (one untimed "
    "forward+backward)"
)
MEMORY_METHOD = (
    "peak extra memory of one forward+backward, over what was allocated before it (inputs and the upstream "
    "gradient are allocated beforehand; outputs, saved tensors, temporaries and the input gradients count). "
    "CUDA: torch.cuda.max_memory_allocated() minus memory_allocated() before the pass (caching allocator, "
    "tensor bytes). CPU: torch.profiler with profile_memory=True records every allocation and free of the c10 CPU "
    "allocator; the peak of their running sum is reported (tensor storage only, like the CUDA figure; scratch "
    "memory a kernel takes outside the tensor allocator is not seen)"
)


@dataclass(frozen=True)
class Case:
    """One benchmark input: shape (N, C, H, W) and the 2-d pooling geometry (square kernel/stride/padding).
    Checked on construction: ValueError names the bad value."""

    shape: tuple[int, int, int, int]
    kernel: int
    stride: int
    padding: int

    def __post_init__(self) -> None:
        if len(self.shape) != 4 or any(not isinstance(d, int) or d < 1 for d in self.shape):
            raise ValueError(f"shape must be 4 positive ints N C H W, got {self.shape}")
        if any(o < 1 for o in self.output_shape[2:]):
            raise ValueError(
                f"kernel {self.kernel} with padding {self.padding} does not fit the input {self.shape[2:]}"
            )

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Pooled shape (N, C, H_out, W_out), torch.nn.MaxPool2d's."""
        geometry = make_geometry(2, self.kernel, self.stride, self.padding)
        return (*self.shape[:2], *geometry.output_size(self.shape[2:]))

    @property
    def label(self) -> str:
        dims = "x".join(map(str, self.shape))
        return f"{dims} k{self.kernel} s{self.stride} p{self.padding}"


# The ResNet stem's max pool at batch 32, and a small kernel-2 pool.
DEFAULT_CASES = (Case((32, 64, 112, 112), 3, 2, 1), Case((8, 64, 56, 56), 2, 2, 0))
DEFAULT_GEOMETRY = (3, 2, 1)  # kernel, stride, padding of user-given shapes: the ResNet stem's


def make_cases(
    shapes: Sequence[Sequence[int]] | None = None,
    kernel: int | None = None,
    stride: int | None = None,
    padding: int | None = None,
) -> list[Case]:
    """Cases for ``shapes`` (default: :data:`DEFAULT_CASES`). A geometry value left as None comes from the
    default case, or from :data:`DEFAULT_GEOMETRY` for given shapes; a given value applies to every case."""
    if shapes:
        base = [(tuple(shape), *DEFAULT_GEOMETRY) for shape in shapes]
    else:
        base = [(c.shape, c.kernel, c.stride, c.padding) for c in DEFAULT_CASES]
    return [
        Case(
            shape,
            k if kernel is None else kernel,
            s if stride is None else stride,
            p if padding is None else padding,
        )
        for shape, k, s, p in base
    ]


class _Inputs:
    """Inputs of one case, shared by all operators: x (N, C, H, W), z (pooled shape) and a spatial β = 0.5,
    all requiring grad, plus fixed random upstream gradients of the pooled and of the input shape."""

    def __init__(self, case: Case, dtype: torch.dtype, device: torch.device) -> None:
        gen = torch.Generator().manual_seed(0)
        out = case.output_shape

        def tensor(shape: Sequence[int], requires_grad: bool) -> torch.Tensor:
            t = torch.randn(shape, generator=gen).to(device=device, dtype=dtype)
            return t.requires_grad_(requires_grad)

        self.x = tensor(case.shape, True)
        self.z = tensor(out, True)
        self.beta = torch.full(out[2:], 0.5, dtype=dtype, device=device, requires_grad=True)
        self.grad_pooled = tensor(out, False)
        self.grad_input = tensor(case.shape, False)

    def clear_grads(self) -> None:
        self.x.grad = self.z.grad = self.beta.grad = None


def _calls(case: Case, t: _Inputs) -> dict[tuple[str, str], Callable[[], torch.Tensor]]:
    """(op, implementation) -> a closure running it on the case's inputs."""
    k, s, p = case.kernel, case.stride, case.padding
    g = make_geometry(2, k, s, p)
    x, z, beta = t.x, t.z, t.beta
    return {
        ("max_pool2d", "torch"): lambda: F.max_pool2d(x, k, s, p),
        ("avg_pool2d", "torch"): lambda: F.avg_pool2d(x, k, s, p),
        ("empool", "poolswap"): lambda: ops.empool(x, k, s, p),
        ("empool", "reference"): lambda: _reference.empool(x, *g),
        ("edscwpool", "poolswap"): lambda: ops.edscwpool(x, k, s, p),
        ("edscwpool", "reference"): lambda: _reference.edscwpool(x, *g),
        ("idwpool", "poolswap"): lambda: ops.idwpool(x, k, s, p),
        ("idwpool", "reference"): lambda: _reference.idwpool(x, *g),
        ("adapool", "poolswap"): lambda: ops.adapool(x, beta, k, s, p),
        ("adapool", "reference"): lambda: _reference.adapool(x, beta, *g),
        ("adaunpool", "poolswap"): lambda: ops.adaunpool(z, x, beta, k, s, p, normalize="mean"),
        ("adaunpool", "reference"): lambda: _reference.adaunpool(z, x, beta, *g, "mean"),
    }


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(
    run: Callable[[], object], repeat: int, budget_s: float, setup: Callable[[], None], device: torch.device
) -> tuple[float, int]:
    """Median time of up to ``repeat`` runs, stopping early once they have taken ``budget_s`` seconds in total;
    returns (milliseconds, number of runs)."""
    times: list[float] = []
    while len(times) < repeat and sum(times) < budget_s:
        setup()
        _synchronize(device)
        start = time.perf_counter()
        run()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, len(times)


@contextlib.contextmanager
def _quiet_stderr_fd() -> Iterator[None]:
    """Silences file descriptor 2 (Kineto prints start/stop banners there that Python cannot intercept)."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _peak_bytes(run: Callable[[], object], device: torch.device) -> int:
    """Peak extra memory of ``run()``, as :data:`MEMORY_METHOD` describes."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        run()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr_fd():
        prof.start()
    try:
        run()
    finally:
        with _quiet_stderr_fd():
            prof.stop()
    allocations = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for event in sorted(allocations, key=lambda e: e.start_ns()):
        live += event.nbytes()
        peak = max(peak, live)
    return peak


def _measure(
    op: str, impl: str, run_op: Callable[[], torch.Tensor], t: _Inputs, repeat: int, budget_s: float, device
) -> dict:
    """Warm-up, memory pass, then the timed forward and forward+backward runs of one (op, impl): its report row
    (without ratios)."""
    grad = t.grad_input if op == "adaunpool" else t.grad_pooled

    def forward() -> None:
        with torch.no_grad():
            run_op()

    def forward_backward() -> None:
        run_op().backward(grad)

    if impl != "reference":  # the reference is slow: its memory pass is its only warm-up
        forward()
    t.clear_grads()
    peak = _peak_bytes(forward_backward, device)  # also the forward+backward warm-up
    fwd_ms, fwd_runs = _median_ms(forward, repeat, budget_s, t.clear_grads, device)
    fwd_bwd_ms, fwd_bwd_runs = _median_ms(forward_backward, repeat, budget_s, t.clear_grads, device)
    return {
        "op": op,
        "impl": impl,
        "fwd_ms": fwd_ms,
        "fwd_runs": fwd_runs,
        "fwd_bwd_ms": fwd_bwd_ms,
        "fwd_bwd_runs": fwd_bwd_runs,
        "peak_bytes": peak,
    }


def _add_ratios(rows: list[dict]) -> None:
    """Ratios to max_pool2d (all rows) and speedups over the reference (poolswap rows that have one)."""
    base = next(r for r in rows if r["op"] == BASELINE)
    refs = {r["op"]: r for r in rows if r["impl"] == "reference"}
    for r in rows:
        r["fwd_vs_max"] = r["fwd_ms"] / base["fwd_ms"]
        r["fwd_bwd_vs_max"] = r["fwd_bwd_ms"] / base["fwd_bwd_ms"]
        if r["impl"] == "poolswap" and r["op"] in refs:
            r["speedup_fwd_vs_reference"] = refs[r["op"]]["fwd_ms"] / r["fwd_ms"]
            r["speedup_fwd_bwd_vs_reference"] = refs[r["op"]]["fwd_bwd_ms"] / r["fwd_bwd_ms"]


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _backend(device: torch.device) -> str:
    compiled = _extension.has_ops() and (device.type == "cpu" or _extension.has_cuda_kernels())
    if not compiled:
        return "pure-PyTorch fallback (compiled ops unavailable)"
    if device.type == "cpu" and not _extension.cpu_kernels_parallel():
        return "compiled, single-threaded CPU kernels (built without OpenMP)"
    return "compiled"


def run(
    cases: Sequence[Case] = DEFAULT_CASES,
    ops_to_run: Sequence[str] = OPS,
    *,
    device: str | torch.device = "cpu",
    dtype: str = "float32",
    repeat: int = 5,
    reference: bool = True,
    reference_repeat: int = MAX_REFERENCE_REPEAT,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Benchmarks ``ops_to_run`` (``max_pool2d`` is always added: it is the baseline) on every case.

    The reference of each poolswap op runs unless ``reference=False``, up to ``reference_repeat`` times (1 to 3)
    per measurement, fewer once that measurement has taken :data:`REFERENCE_BUDGET_S`.
    ``progress`` is called with a short message before each measurement. Returns a JSON-serialisable dict:
    ``{"meta": {...}, "cases": [{"shape", "kernel", "stride", "padding", "output_shape", "results": [row, ...]}]}``
    with one row per (op, impl): op, impl ("torch", "poolswap" or "reference"), fwd_ms, fwd_runs, fwd_bwd_ms,
    fwd_bwd_runs,
    peak_bytes, fwd_vs_max, fwd_bwd_vs_max and, for poolswap rows with a reference row,
    speedup_fwd_vs_reference and speedup_fwd_bwd_vs_reference (reference time / poolswap time).
    """
    unknown = sorted(set(ops_to_run) - set(OPS))
    if unknown:
        raise ValueError(f"unknown ops {unknown}; valid ops: {list(OPS)}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    if not 1 <= reference_repeat <= MAX_REFERENCE_REPEAT:
        raise ValueError(f"reference_repeat must be in [1, {MAX_REFERENCE_REPEAT}], got {reference_repeat}")
    device = torch.device(device)
    selected = [op for op in OPS if op == BASELINE or op in ops_to_run]
    unlimited = math.inf
    plan = [(op, "torch", repeat, unlimited) for op in selected if op in NATIVE_OPS]
    for op in selected:
        if op in POOLSWAP_OPS:
            plan.append((op, "poolswap", repeat, unlimited))
            if reference:
                plan.append((op, "reference", reference_repeat, REFERENCE_BUDGET_S))

    report_cases = []
    for case in cases:
        inputs = _Inputs(case, DTYPES[dtype], device)
        calls = _calls(case, inputs)
        rows = []
        for op, impl, n, budget_s in plan:
            if progress is not None:
                progress(f"{case.label}: {op} ({impl})")
            rows.append(_measure(op, impl, calls[op, impl], inputs, n, budget_s, device))
        _add_ratios(rows)
        report_cases.append(
            {
                "shape": list(case.shape),
                "kernel": case.kernel,
                "stride": case.stride,
                "padding": case.padding,
                "output_shape": list(case.output_shape),
                "results": rows,
            }
        )
        del inputs, calls
    meta = {
        "device": str(device),
        "device_name": _device_name(device),
        "torch": torch.__version__,
        "poolswap": __version__,
        "backend": _backend(device),
        "threads": torch.get_num_threads(),
        "dtype": dtype,
        "repeat": repeat,
        "reference_repeat": reference_repeat if reference else 0,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "timing_method": TIMING_METHOD,
        "memory_method": MEMORY_METHOD,
    }
    return {"meta": meta, "cases": report_cases}


_COLUMNS = (
    # header, row key, format
    ("op", "op", "{:<10}"),
    ("impl", "impl", "{:<9}"),
    ("fwd ms", "fwd_ms", "{:>9.1f}"),
    ("fwd+bwd ms", "fwd_bwd_ms", "{:>10.1f}"),
    ("runs", "runs", "{:>5}"),
    ("peak MiB", "peak_bytes", "{:>9.1f}"),
    ("fwd/max", "fwd_vs_max", "{:>7.2f}"),
    ("f+b/max", "fwd_bwd_vs_max", "{:>7.2f}"),
    ("ref/fwd", "speedup_fwd_vs_reference", "{:>7.1f}x"),
    ("ref/f+b", "speedup_fwd_bwd_vs_reference", "{:>7.1f}x"),
)


def _cell(row: dict, key: str, fmt: str) -> str:
    if key == "runs" and "fwd_runs" in row:
        return fmt.format(f"{row['fwd_runs']}/{row['fwd_bwd_runs']}")
    if key not in row:
        return " " * len(fmt.format(0.0))
    value = row[key] / 2**20 if key == "peak_bytes" else row[key]
    return fmt.format(value)


def format_report(report: dict) -> str:
    """The report as a readable text table (one block per case)."""
    meta = report["meta"]
    lines = [
        f"poolswap {meta['poolswap']} bench: {meta['device']} ({meta['device_name']}), torch {meta['torch']}, "
        f"{meta['threads']} threads, {meta['dtype']}, {meta['date']}",
        f"poolswap ops: {meta['backend']}. Repeats: {meta['repeat']} "
        + (
            f"(reference: at most {meta['reference_repeat']}, at the same shape; runs = fwd/fwd+bwd runs timed)"
            if meta["reference_repeat"]
            else "(no reference)"
        ),
        f"timing: {meta['timing_method']}.",
        f"memory: {meta['memory_method']}.",
        "fwd = torch.no_grad() forward; fwd+bwd = forward + backward; fwd/max, f+b/max = time / max_pool2d's "
        "time; ref/fwd, ref/f+b = reference time / poolswap time (speedup).",
    ]
    header = "  ".join(
        f"{h:{'<' if k in ('op', 'impl') else '>'}{len(_cell({k: 0.0}, k, f))}}" for h, k, f in _COLUMNS
    )
    for case in report["cases"]:
        shape_out = "x".join(map(str, case["output_shape"]))
        shape_in = "x".join(map(str, case["shape"]))
        lines += [
            "",
            f"{shape_in} k{case['kernel']} s{case['stride']} p{case['padding']} -> {shape_out}",
            header.rstrip(),
        ]
        for row in case["results"]:
            lines.append("  ".join(_cell(row, k, f) for _, k, f in _COLUMNS).rstrip())
    return "\n".join(lines)
