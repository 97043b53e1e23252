"""MXFP4 (OCP microscaling FP4) as gpt-oss stores its expert weights.

A weight row of ``n`` values is cut into ``n / 32`` blocks. Each block holds 16 bytes of FP4
``e2m1`` codes (two per byte, the *low* nibble is the earlier value) and shares one ``e8m0``
scale byte: the value is ``E2M1[code] * 2 ** (scale - 127)``. Shapes on disk:
``blocks [..., n / 32, 16]`` (uint8) and ``scales [..., n / 32]`` (uint8).

In memory the engine keeps each byte's 8 bits in another order, its *engine layout*
(:func:`to_engine_layout`, applied once as the weights load): with a byte's low code ``s e e m``
and high code ``S E E M``, the bits (7 .. 0) are ``s E E M e e m S``. Each code's ``e e m`` then
sits where an fp16's exponent ends and its mantissa begins, and ``s`` on a sign bit, so that the
decode GEMV turns a 32-bit word into fp16 operands with 5 bit operations and 4 byte moves, where
the checkpoint's order took 7 and 4 conversions (e5m2 bytes, whose fp16 is the byte itself
placed high: see kernels/ptx.py). The engine's decode loop measured 4.9% faster at batch 8 and
1.2% at batch 1 (results_engine_gpu.txt, run 144).
Nothing leaves the engine in this layout: checkpoints stay as they are on disk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

Layout = Literal["checkpoint", "engine"]

BLOCK_SIZE = 32  # values that share one scale
BYTES_PER_BLOCK = BLOCK_SIZE // 2
SCALE_BIAS = 127  # e8m0: 2 ** (byte - 127); 0xFF is NaN in the OCP spec

# e2m1: sign bit, 2 exponent bits, 1 mantissa bit. Codes 8..15 are the negatives of 0..7.
E2M1_VALUES: tuple[float, ...] = (
    +0.0, +0.5, +1.0, +1.5, +2.0, +3.0, +4.0, +6.0,
    -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0,
)  # fmt: skip

_E2M1_MIDPOINTS = tuple((a + b) / 2 for a, b in zip(E2M1_VALUES[:7], E2M1_VALUES[1:8], strict=True))

_PAIR_LUT: dict[tuple[torch.device, Layout], torch.Tensor] = {}
_CHUNK = 1 << 24  # bytes re-laid at a time: the temporaries stay small next to the weights


def _engine_bytes(b: torch.Tensor) -> torch.Tensor:
    """Checkpoint bytes -> engine bytes (any integer dtype holding 0..255)."""
    return ((b & 0x07) << 1) | ((b & 0x08) << 4) | (b & 0x70) | ((b >> 7) & 0x01)


def _checkpoint_bytes(b: torch.Tensor) -> torch.Tensor:
    """Engine bytes -> checkpoint bytes: :func:`_engine_bytes` undone."""
    return ((b >> 1) & 0x07) | ((b >> 4) & 0x08) | (b & 0x70) | ((b & 0x01) << 7)


def _relaid(blocks: torch.Tensor, bytes_fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    if blocks.dtype != torch.uint8:
        raise ValueError(f"MXFP4 blocks are uint8, got {blocks.dtype}")
    out = torch.empty_like(blocks, memory_format=torch.contiguous_format)
    src, dst = blocks.reshape(-1), out.view(-1)
    for start in range(0, src.numel(), _CHUNK):
        dst[start : start + _CHUNK] = bytes_fn(src[start : start + _CHUNK])
    return out


def to_engine_layout(blocks: torch.Tensor) -> torch.Tensor:
    """Checkpoint-layout ``blocks`` (uint8, any shape) in the engine's layout (module docstring)."""
    return _relaid(blocks, _engine_bytes)


def to_checkpoint_layout(blocks: torch.Tensor) -> torch.Tensor:
    """Engine-layout ``blocks`` back in the checkpoint's layout."""
    return _relaid(blocks, _checkpoint_bytes)


def _pair_lut(device: torch.device, layout: Layout) -> torch.Tensor:
    """``[256, 2]`` float32: a byte's two values, low code first; one gather per byte."""
    lut = _PAIR_LUT.get((device, layout))
    if lut is None:
        values = torch.tensor(E2M1_VALUES, dtype=torch.float32)
        codes = torch.arange(256)
        if layout == "engine":  # entry b holds what the checkpoint byte behind b holds
            codes = _checkpoint_bytes(codes)
        lut = torch.stack((values[codes & 0x0F], values[codes >> 4]), dim=-1).to(device)
        _PAIR_LUT[(device, layout)] = lut
    return lut


_SCALE_LUT: dict[torch.device, torch.Tensor] = {}


def _scale_lut(device: torch.device) -> torch.Tensor:
    """``[256]`` float32: ``2 ** (byte - 127)`` exactly (ldexp), NaN for 0xFF."""
    lut = _SCALE_LUT.get(device)
    if lut is None:
        exps = torch.arange(256, dtype=torch.float32) - SCALE_BIAS
        lut = torch.ldexp(torch.ones(256), exps)
        lut[0xFF] = torch.nan
        lut = lut.to(device)
        _SCALE_LUT[device] = lut
    return lut


def dequantize(
    blocks: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype = torch.float32, *,
    layout: Layout = "checkpoint",
) -> torch.Tensor:
    """Decode MXFP4 ``blocks [..., G, 16]`` (their bytes in ``layout``) with ``scales [..., G]``
    into ``[..., G * 32]``.

    Decoding happens in float32 (every e2m1 value times a power of two is exact there, down to
    2 ** -127 subnormals; beyond float32's range it overflows to inf) and is cast to ``dtype``.

    Raises:
        ValueError: the shapes or dtypes are not MXFP4's.
    """
    if blocks.dtype != torch.uint8 or scales.dtype != torch.uint8:
        raise ValueError(f"MXFP4 wants uint8 blocks and scales, got {blocks.dtype}/{scales.dtype}")
    if blocks.shape[-1] != BYTES_PER_BLOCK or blocks.shape[:-1] != scales.shape:
        raise ValueError(
            f"MXFP4 blocks {tuple(blocks.shape)} do not match scales {tuple(scales.shape)}"
        )
    values = _pair_lut(blocks.device, layout)[blocks.long()]  # [..., G, 16, 2] before scaling
    factor = _scale_lut(blocks.device)[scales.long()]  # [..., G]
    values = values.flatten(-2) * factor.unsqueeze(-1)  # [..., G, 32]
    return values.flatten(-2).to(dtype)


def quantize(weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode ``weights [..., n]`` as MXFP4 ``(blocks [..., n/32, 16], scales [..., n/32])``.

    Round-to-nearest with a per-block scale chosen so the block's largest magnitude fits 6.0.
    Used by the random-checkpoint writer and tests, not on the inference path.
    """
    if weights.shape[-1] % BLOCK_SIZE:
        raise ValueError(f"last dim {weights.shape[-1]} is not a multiple of {BLOCK_SIZE}")
    w = weights.float().reshape(*weights.shape[:-1], -1, BLOCK_SIZE)  # [..., G, 32]
    amax = w.abs().amax(dim=-1).clamp_min(2.0**-127)
    exp = torch.ceil(torch.log2(amax / 6.0)).clamp(-127, 127)  # smallest scale with |w|/s <= 6
    scaled = w / torch.exp2(exp).unsqueeze(-1)
    # The nearest of the 8 magnitudes, ties to the smaller one: a search among the midpoints.
    midpoints = torch.tensor(_E2M1_MIDPOINTS, dtype=torch.float32, device=w.device)
    codes = torch.bucketize(scaled.abs(), midpoints).to(torch.uint8)
    codes = codes | ((scaled < 0).to(torch.uint8) << 3)
    pairs = codes.reshape(*codes.shape[:-1], BYTES_PER_BLOCK, 2)
    blocks = pairs[..., 0] | (pairs[..., 1] << 4)
    scales = (exp + SCALE_BIAS).to(torch.uint8)
    return blocks.contiguous(), scales.contiguous()
