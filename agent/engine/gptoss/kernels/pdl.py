"""Programmatic dependent launch (PDL, Hopper and newer) for the decode step's kernels.

A batch-1 decode step is ~280 short kernels back to back. Launched plainly, each one is
scheduled only after the grid before it has drained. Launched with PDL, its programs may be
scheduled while the previous kernel is still running; they wait (``griddepcontrol.wait``)
before touching anything that kernel may write, then let the next kernel be scheduled
(``griddepcontrol.launch_dependents``). With ``early``, what a kernel can read before the wait
it reads there: weights (the linear layers' and mlp2's first block, norm scales, biases,
sinks), the step's metadata (attention's lengths, positions and first slots; the cache slot
and RoPE angles of the qkv epilogue), the keys and values earlier steps wrote (attention's
first block), the router's input where its linear layer runs apart (written by the norm two
launches back) and mlp2's expert ids or the logits it picks them from (the router's, two back).

Why waiting first keeps every dependency, not only the previous kernel's: the wait returns
once the previous grid has *completed* and its writes are visible, and no PDL kernel lets the
next one launch before its own wait returned, so every earlier kernel has completed too. A
kernel launched plainly (cuBLAS, a torch op) waits for everything before it, as always. So what
a kernel reads before its wait must be written by nobody in the step (weights), or at least
two launches back; nothing is written before the wait.

Measured on the H200, 20b shape (``benchmarks/results_engine_gpu.txt``): a graph-captured
chain of tiny kernels 1.16 -> 0.75 us a kernel; the whole decode step at batch 1 1.966 ->
1.817 ms (-7.6%; -5% of it without ``early``), at batch 8 4.224 -> 4.059 (run 41). L2
prefetches of the next weights, issued by a small kernel running beside the one before, made
the step 0.1-1.4 ms *slower* (run 35; not kept).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

try:
    from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait
except ImportError:  # an older Triton without grid dependency control: plain launches
    gdc_launch_dependents = gdc_wait = None


@dataclass(slots=True)
class PdlTuning:
    """What the decode step launches with PDL; the benchmark may swap in others (``TUNING``)."""

    enabled: bool = True  # ``OSS_AGENT_PDL=0`` also turns it off
    early: bool = True  # kernels read what is already settled (see above) before the wait


TUNING = PdlTuning()


def on(device: torch.device) -> bool:
    return TUNING.enabled and os.environ.get("OSS_AGENT_PDL", "1") != "0" and _supported(device)


def launch(device: torch.device, early: bool | None = None) -> dict[str, bool]:
    """Launch keywords for a kernel that calls :func:`begin`: its ``PDL`` argument and, given
    ``early`` (may this launch read settled inputs before its wait?), its ``EARLY`` argument,
    true only with PDL and ``PdlTuning.early``."""
    pdl = on(device)
    keywords = {"PDL": True, "launch_pdl": True} if pdl else {"PDL": False}
    if early is not None:
        keywords["EARLY"] = early and pdl and TUNING.early
    return keywords


@functools.cache
def _supported(device: torch.device) -> bool:
    if device.type != "cuda" or os.environ.get("TRITON_INTERPRET") == "1" or gdc_wait is None:
        return False
    return torch.cuda.get_device_capability(device) >= (9, 0)


@triton.jit
def begin(PDL: tl.constexpr):
    """Wait for the previous kernel, then let the next one launch (no-ops without PDL)."""
    if PDL:
        gdc_wait()
        gdc_launch_dependents()


@triton.jit
def begin_if(WHEN: tl.constexpr, PDL: tl.constexpr):
    """:func:`begin` at the place where ``WHEN`` holds (a kernel with two possible places)."""
    if WHEN:
        begin(PDL)
