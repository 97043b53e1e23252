"""PTX text for the inline-assembly blocks of the Triton kernels, built here in plain Python so
that it can be read and checked without a GPU or Triton (tests/engine/test_gptoss_ptx.py runs
it through a small interpreter of the instructions it uses)."""

from __future__ import annotations


def group_dot_asm() -> str:
    """PTX for one 32-value group: each word's 8 codes become e4m3 bytes (even and odd nibbles,
    7 instructions), the hardware converts byte pairs to fp16x2 (4), 16 chained
    ``fma.rn.f16x2`` take the activation pairs, the two halves are summed in float32.

    Operands: ``$0`` the float32 result, the sum of value * activation * ``2 ** -6``; ``$1``..
    ``$4`` the group's 4 words (value ``q`` of a word in bits ``4q .. 4q + 3``); ``$5 + 4 * w +
    p`` word ``w``'s activation pair ``p`` as fp16x2 (low half first), the pairs being its
    values (0, 2), (4, 6), (1, 3), (5, 7): the order the conversion yields them in."""
    lines = [
        "{", ".reg .b32 t, e, o, f0, f1, f2, f3, h;", ".reg .b16 e0, e1, o0, o1, lo, hi;",
        ".reg .f32 a, b;", "mov.b32 h, 0;",
    ]  # fmt: skip
    for word in range(4):
        w = f"${1 + word}"
        x = [f"${5 + 4 * word + p}" for p in range(4)]
        lines += [
            # code s e e m -> e4m3 bits s 0 0 e e m 0 0 (the value times 2 ** -6): low nibbles
            # of the 4 bytes (values 0, 2, 4, 6) in e, high nibbles (1, 3, 5, 7) in o.
            f"shl.b32 t, {w}, 2; and.b32 e, t, 0x1C1C1C1C; shl.b32 t, {w}, 4; and.b32 t, t, 0x80808080;",
            "or.b32 e, e, t;",
            f"shr.u32 t, {w}, 2; and.b32 o, t, 0x1C1C1C1C; and.b32 t, {w}, 0x80808080; or.b32 o, o, t;",
            "mov.b32 {e0, e1}, e; mov.b32 {o0, o1}, o;",
            "cvt.rn.f16x2.e4m3x2 f0, e0; cvt.rn.f16x2.e4m3x2 f1, e1;",
            "cvt.rn.f16x2.e4m3x2 f2, o0; cvt.rn.f16x2.e4m3x2 f3, o1;",
            f"fma.rn.f16x2 h, f0, {x[0]}, h; fma.rn.f16x2 h, f1, {x[1]}, h;",
            f"fma.rn.f16x2 h, f2, {x[2]}, h; fma.rn.f16x2 h, f3, {x[3]}, h;",
        ]
    lines += ["mov.b32 {lo, hi}, h;", "cvt.f32.f16 a, lo;", "cvt.f32.f16 b, hi;", "add.f32 $0, a, b;", "}"]
    return "\n".join(lines)
