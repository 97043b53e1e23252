"""PTX text for the inline-assembly blocks of the Triton kernels, built here in plain Python so
that it can be read and checked without a GPU or Triton (tests/engine/test_gptoss_ptx.py runs
it through a small interpreter of the instructions it uses)."""

from __future__ import annotations


def group_dot_asm() -> str:
    """PTX for one 32-value group: each word's 8 codes become e5m2 bytes (the low codes by one
    mask, the high ones by two shifts and two masks: 5 instructions), each byte pair becomes an
    fp16x2 by placing the bytes high (4 ``prmt``: an e5m2 byte is the top half of the fp16 of
    the same value), 16 chained ``fma.rn.f16x2`` take the activation pairs, the two halves are
    summed in float32.

    Operands: ``$0`` the float32 result, the sum of value * activation * ``2 ** -14``; ``$1``..
    ``$4`` the group's 4 words (byte ``k`` holds values ``2k`` and ``2k + 1`` in the engine's
    layout, ``s E E M e e m S``: mxfp4.py); ``$5 + 4 * w + p`` word ``w``'s activation pair
    ``p`` as fp16x2 (low half first), the pairs being its values (0, 2), (4, 6), (1, 3), (5, 7):
    the order the bytes yield them in."""
    lines = ["{", ".reg .b32 t, e, o, f0, f1, f2, f3, h;", ".reg .b16 lo, hi;", ".reg .f32 a, b;", "mov.b32 h, 0;"]
    for word in range(4):
        w = f"${1 + word}"
        x = [f"${5 + 4 * word + p}" for p in range(4)]
        lines += [
            # e5m2 bits s 0 0 0 e e m 0 (the value times 2 ** -14): the low codes (values 0, 2,
            # 4, 6) are in place; the high codes' e e m sit 3 bits up, their sign 7 bits down.
            f"and.b32 e, {w}, 0x8E8E8E8E;",
            f"shr.u32 t, {w}, 3; and.b32 o, t, 0x0E0E0E0E; shl.b32 t, {w}, 7; and.b32 t, t, 0x80808080;",
            "or.b32 o, o, t;",
            # fp16 pairs: bytes (0, 1) of a register placed high in the halves, then bytes (2, 3).
            "prmt.b32 f0, e, 0, 0x1404; prmt.b32 f1, e, 0, 0x3424;",
            "prmt.b32 f2, o, 0, 0x1404; prmt.b32 f3, o, 0, 0x3424;",
            f"fma.rn.f16x2 h, f0, {x[0]}, h; fma.rn.f16x2 h, f1, {x[1]}, h;",
            f"fma.rn.f16x2 h, f2, {x[2]}, h; fma.rn.f16x2 h, f3, {x[3]}, h;",
        ]
    lines += ["mov.b32 {lo, hi}, h;", "cvt.f32.f16 a, lo;", "cvt.f32.f16 b, hi;", "add.f32 $0, a, b;", "}"]
    return "\n".join(lines)
