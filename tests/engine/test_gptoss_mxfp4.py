"""MXFP4 decoding against the e2m1 table and e8m0 scales, written out by hand."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from agent.engine.gptoss import mxfp4  # noqa: E402

E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]


def reference_decode(blocks: list[list[int]], scales: list[int]) -> list[float]:
    """Byte by byte: low nibble first, then high; times 2 ** (scale - 127)."""
    out = []
    for block, scale in zip(blocks, scales, strict=True):
        for byte in block:
            for code in (byte & 0x0F, byte >> 4):
                out.append(math.nan if scale == 255 else math.ldexp(E2M1[code], scale - 127))
    return out


def test_every_code_and_nibble_order() -> None:
    # Byte 0x10*hi + lo for all 16x16 pairs: each code appears in both halves of a byte.
    codes = torch.arange(256, dtype=torch.uint8).view(16, 16)  # 16 blocks of 16 bytes
    scales = torch.full((16,), 127, dtype=torch.uint8)
    got = mxfp4.dequantize(codes, scales).view(-1).tolist()
    assert got == reference_decode(codes.tolist(), scales.tolist())
    assert got[:4] == [0.0, 0.0, 0.5, 0.0]  # byte 0x00 -> 0, 0; byte 0x01 -> low=0.5, high=0
    assert got[2 * 0xE8 : 2 * 0xE8 + 2] == [-0.0, -4.0]  # 0xE8: low nibble 8 (-0), high E (-4)
    negatives = [v for v in got if math.copysign(1, v) < 0 and v != 0]
    assert sorted(set(negatives)) == [-6.0, -4.0, -3.0, -2.0, -1.5, -1.0, -0.5]


@pytest.mark.parametrize("scale", [0, 1, 100, 126, 127, 128, 200, 253, 254])
def test_extreme_exponents_are_exact(scale: int) -> None:
    blocks = torch.tensor([[0x71, 0xF9, 0x2A, 0x00] * 4], dtype=torch.uint8)  # one block
    scales = torch.tensor([scale], dtype=torch.uint8)
    got = mxfp4.dequantize(blocks, scales).tolist()
    # Exact wherever float32 can hold the value: 2**-127 (a subnormal) is kept, and only
    # |e2m1| * 2**127 > 3.4e38 overflows to inf, as it does in any float32/bf16 decoder.
    want = torch.tensor(reference_decode(blocks.tolist(), scales.tolist()), dtype=torch.float32)
    assert got == want.tolist()
    assert got[0] == math.ldexp(0.5, scale - 127)
    if scale == 254:
        assert got[3] == -math.inf and got[0] == 2.0**126


def test_scale_255_is_nan_per_the_ocp_spec() -> None:
    blocks = torch.full((1, 16), 0x22, dtype=torch.uint8)
    out = mxfp4.dequantize(blocks, torch.tensor([255], dtype=torch.uint8))
    assert torch.isnan(out).all()


def test_bf16_output_and_leading_dims() -> None:
    gen = torch.Generator().manual_seed(0)
    blocks = torch.randint(0, 256, (3, 5, 2, 16), dtype=torch.uint8, generator=gen)
    scales = torch.randint(110, 140, (3, 5, 2), dtype=torch.uint8, generator=gen)
    out = mxfp4.dequantize(blocks, scales, torch.bfloat16)
    assert out.shape == (3, 5, 64) and out.dtype == torch.bfloat16
    want = reference_decode(blocks.view(-1, 16).tolist(), scales.view(-1).tolist())
    assert out.float().view(-1).tolist() == want  # e2m1 * 2**k fits bf16's 8-bit mantissa


def test_quantize_round_trip() -> None:
    w = torch.randn(4, 96, generator=torch.Generator().manual_seed(1))
    blocks, scales = mxfp4.quantize(w)
    assert blocks.shape == (4, 3, 16) and scales.shape == (4, 3)
    back = mxfp4.dequantize(blocks, scales)
    # FP4 keeps ~1 mantissa bit: error is at most half a step at the block's scale.
    step = torch.exp2(scales.float() - 127).repeat_interleave(32, dim=-1)
    assert ((back - w).abs() <= step + 1e-6).all()
    assert torch.equal(mxfp4.dequantize(*mxfp4.quantize(back)), back)  # a fixed point


def test_rejects_bad_shapes_and_dtypes() -> None:
    with pytest.raises(ValueError, match="uint8"):
        mxfp4.dequantize(torch.zeros(1, 16), torch.zeros(1, dtype=torch.uint8))
    with pytest.raises(ValueError, match="do not match"):
        mxfp4.dequantize(torch.zeros(2, 16, dtype=torch.uint8), torch.zeros(3, dtype=torch.uint8))


def test_engine_layout_moves_each_bit_where_the_docstring_says() -> None:
    """Low code s e e m, high code S E E M -> bits s E E M e e m S, for all 256 bytes; the two
    layouts are each other's inverse and decode to the same values."""
    every = torch.arange(256, dtype=torch.uint8)
    got = mxfp4.to_engine_layout(every).tolist()
    for byte, engine in enumerate(got):
        lo, hi = byte & 0xF, byte >> 4
        want = (lo >> 3) << 7 | (hi & 0x7) << 4 | (lo & 0x7) << 1 | hi >> 3
        assert engine == want, (byte, engine, want)
    assert sorted(got) == list(range(256))
    assert torch.equal(mxfp4.to_checkpoint_layout(mxfp4.to_engine_layout(every)), every)
    blocks = every.view(16, 16)
    scales = torch.arange(120, 136, dtype=torch.uint8)
    engine = mxfp4.to_engine_layout(blocks)
    assert engine.shape == blocks.shape and engine.dtype == torch.uint8
    assert torch.equal(mxfp4.dequantize(engine, scales, layout="engine"), mxfp4.dequantize(blocks, scales))


def test_layout_change_works_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Large tensors are re-laid a chunk at a time (small temporaries): the result is the same."""
    blocks = torch.randint(0, 256, (3, 7, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    whole = mxfp4.to_engine_layout(blocks)
    monkeypatch.setattr(mxfp4, "_CHUNK", 5)
    assert torch.equal(mxfp4.to_engine_layout(blocks), whole)
    assert torch.equal(mxfp4.to_checkpoint_layout(whole), blocks)
    with pytest.raises(ValueError, match="uint8"):
        mxfp4.to_engine_layout(blocks.int())
