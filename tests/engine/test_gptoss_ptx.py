"""The MoE GEMV's inline PTX (kernels/ptx.py), run here through a small interpreter of the
instructions it uses, so its bit tricks and operand order are checked without a GPU: exact on
inputs whose sums fp16 holds exactly, within fp16 rounding on random ones."""

from __future__ import annotations

import random
import re
import struct

import pytest

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")

from agent.engine.gptoss.kernels.ptx import group_dot_asm  # noqa: E402
from agent.engine.gptoss.mxfp4 import to_engine_layout  # noqa: E402

E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]
PAIRS = [(0, 2), (4, 6), (1, 3), (5, 7)]  # a word's activation pairs, as the operands order them


def f16_bits(x: float) -> int:
    return int(np.array(x, dtype=np.float16).view(np.uint16))


def f16(bits: int) -> float:
    return float(np.array(bits & 0xFFFF, dtype=np.uint16).view(np.float16))


def _prmt(a: int, b: int, sel: int) -> int:
    """Byte permute (default mode): result byte i is byte ``sel``'s nibble i of ``b:a``, or with
    the nibble's bit 3 that byte's sign bit copied 8 times."""
    pool = (b << 32 | a).to_bytes(8, "little")
    out = 0
    for i in range(4):
        nib = sel >> 4 * i & 0xF
        byte = pool[nib & 7]
        out |= (0xFF if byte & 0x80 else 0) << 8 * i if nib & 8 else byte << 8 * i
    return out


def _fma_f16x2(x: int, y: int, z: int) -> int:  # per half: one rounding of the exact x * y + z
    halves = [float(np.float16(f16(x >> s) * f16(y >> s) + f16(z >> s))) for s in (0, 16)]
    return f16_bits(halves[0]) | f16_bits(halves[1]) << 16


BIT_OPS = {
    "mov.b32": lambda a: a,
    "shl.b32": lambda a, n: (a << n) & 0xFFFFFFFF,
    "shr.u32": lambda a, n: a >> n,
    "and.b32": lambda a, b: a & b,
    "or.b32": lambda a, b: a | b,
    "prmt.b32": _prmt,
    "fma.rn.f16x2": _fma_f16x2,
}


def run_ptx(text: str, inputs: list[int]) -> float:
    """Execute ``text`` (the subset of PTX the group block uses) with ``$1..`` bound to the
    32-bit ``inputs``; returns ``$0`` as float32."""
    regs: dict[str, int | float] = {f"${i + 1}": v for i, v in enumerate(inputs)}

    def val(tok: str) -> int:
        if tok in regs:
            return int(regs[tok])
        return int(tok, 16) if tok.startswith("0x") else int(tok)

    for ins in (s.strip("{} \n") for s in text.split(";")):
        if not ins or ins.startswith(".reg"):
            continue
        op, args = ins.split(None, 1)
        if m := re.fullmatch(r"\{(\w+), (\w+)\}, (\w+)", args):  # split into 16-bit halves
            lo, hi, src = m.groups()
            regs[lo], regs[hi] = val(src) & 0xFFFF, val(src) >> 16
            continue
        dst, *srcs = (x.strip() for x in args.split(","))
        if op in BIT_OPS:
            regs[dst] = BIT_OPS[op](*(val(x) for x in srcs))
        elif op == "cvt.f32.f16":
            regs[dst] = f16(val(srcs[0]))
        elif op == "add.f32":
            regs[dst] = float(np.float32(float(regs[srcs[0]]) + float(regs[srcs[1]])))
        else:
            raise AssertionError(f"instruction the interpreter lacks: {ins!r}")
    return float(regs["$0"])


def group_inputs(codes: list[int], x: list[float]) -> list[int]:
    """32 codes and 32 activations (natural order) -> the block's 20 operands (the codes packed
    as a checkpoint packs them, then in the engine's byte layout)."""
    packed = [codes[2 * i] | codes[2 * i + 1] << 4 for i in range(16)]
    engine = to_engine_layout(torch.tensor(packed, dtype=torch.uint8)).tolist()
    words = [int.from_bytes(bytes(engine[4 * w : 4 * w + 4]), "little") for w in range(4)]
    pairs = [f16_bits(x[8 * w + a]) | f16_bits(x[8 * w + b]) << 16 for w in range(4) for a, b in PAIRS]
    return words + pairs


def reference(codes: list[int], x: list[float]) -> float:
    return sum(E2M1[c] * v for c, v in zip(codes, x, strict=True)) * 2.0**-14


def test_every_code_in_every_position_exactly() -> None:
    """Small integer activations: every partial sum is exact in fp16, so the block must give
    the exact dot product; each of the 16 codes visits each of the 32 positions."""
    text = group_dot_asm()
    rng = random.Random(0)
    for shift in range(16):
        codes = [(i + shift) % 16 for i in range(32)]
        x = [float(rng.randint(-3, 3)) for _ in range(32)]
        x[shift] = 1.0  # every position weighs in with a nonzero activation somewhere
        assert run_ptx(text, group_inputs(codes, x)) == reference(codes, x), f"shift {shift}"


def test_random_groups_within_fp16_rounding() -> None:
    """Random codes and activations of the size the router writes (largest in [2 ** 14, 2 **
    15)): within the rounding of 16 chained fp16 sums per lane."""
    text = group_dot_asm()
    rng = random.Random(1)
    for _ in range(50):
        codes = [rng.randrange(16) for _ in range(32)]
        x = [float(np.float16(rng.uniform(-(2.0**15) + 1, 2.0**15 - 1))) for _ in range(32)]
        got, want = run_ptx(text, group_inputs(codes, x)), reference(codes, x)
        scale = sum(abs(E2M1[c] * v) for c, v in zip(codes, x, strict=True)) * 2.0**-14
        assert abs(got - want) <= 16 * 2.0**-11 * scale, (got, want)


def test_interpreter_catches_a_swapped_pair() -> None:
    """The exact check is sensitive to the operand order: the pairs (1, 3) and (0, 2) swapped
    give a different sum."""
    codes = list(range(16)) * 2
    x = [float(i % 5 - 2) for i in range(32)]
    ops = group_inputs(codes, x)
    ops[4], ops[6] = ops[6], ops[4]  # word 0's pairs (0, 2) and (1, 3)
    assert run_ptx(group_dot_asm(), ops) != reference(codes, x)


def test_interpreter_number_helpers() -> None:
    assert struct.unpack("<e", struct.pack("<H", f16_bits(1.5)))[0] == 1.5
    assert _prmt(0x44332211, 0x88776655, 0x1404) == 0x22551155
    assert _prmt(0x44332211, 0x000000F0, 0x3424) == 0x44F033F0
    assert _prmt(0x0000807F, 0, 0x0098) == 0x7F7FFF00  # sign copies of byte 0 (0x7F), byte 1 (0x80)
