"""Lower qcompile plugin GEMM nodes to standard ONNX that onnxruntime runs on the CPU.

The lowering decodes the very same packed initializers the kernel reads: the INT8-typed bytes
become uint8 (Cast to int32, BitwiseAnd 0xFF, Cast: defined for every value), unpacked with
BitShift / BitwiseAnd, interleave with Concat / Reshape (for int4_v2 and int4_sm90, one Transpose of
the nibble tiles back to [N, K]; for fp6_v2, a Gather of each lane's nibbles and bits into weight
order and one Transpose of the tiles back to [N, K]), Gather from a 2^bits float32 table of the
format's values, apply the scales (per channel, or per group through an
[N, G, g] view), Transpose to [K, N] and MatMul in float32. It mirrors the kernels' arithmetic:
- W6A16 / W4A16: the dequantized weight `decode(c) * scale` (minus the zero point) is rounded
  once to float16 (the tensor-core operand); fp16 x fp16 products are exact in float32.
- W4A8: the weight operand is the FP8 E4M3 value `decode(c) * 2^group_exp` (exact); the
  activation is rounded to E4M3 (round to nearest even, saturating at 448): per_tensor with
  QuantizeLinear(x, act_scale); per_token with the row scale `max(amax_row / 448, FLT_MIN)`
  computed in float32 from the float16 input, `x / scale` rounded the same way (the kernel must
  use this formula). The float32 accumulator is multiplied by `act_scale` (or the row scale)
  and then by `channel_scale[n]`.
- The output is rounded to float16, as the kernel writes it.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import onnx_ir.passes.common

from qcompile.errors import ModelError
from qcompile.formats import FORMATS, get_format

MIN_OPSET = 19  # BitwiseAnd (18), ReduceMax with axes as input (18), FP8 QuantizeLinear (19)
_EXP_OFFSET = 16  # 2^e for e in [-16, 15] by Gather, exact


def decode_table(fmt_name: str) -> np.ndarray:
    """float32 value of every code 0 .. 2^bits - 1 (INT4 read as two's complement)."""
    fmt = get_format(fmt_name)
    codes = np.arange(1 << fmt.bits, dtype=np.uint8)
    if fmt.kind == "int":
        return (
            (codes.view(np.int8) << (8 - fmt.bits) >> (8 - fmt.bits)).astype(np.float32)
            if fmt.signed
            else codes.astype(np.float32)
        )
    return fmt.decode(codes).astype(np.float32)


class _Builder:
    """Appends standard ONNX nodes named after the plugin node."""

    def __init__(self, graph: ir.Graph, prefix: str):
        self.graph, self.prefix, self.nodes, self.count = graph, prefix, [], 0

    def _name(self, what: str) -> str:
        self.count += 1
        return f"{self.prefix}_{what}_{self.count}"

    def const(self, array, what: str = "const") -> ir.Value:
        name = self._name(what)
        while name in self.graph.initializers:
            name = self._name(what)
        tensor = ir.tensor(np.asarray(array), name=name)
        value = ir.Value(
            name=name, const_value=tensor, shape=ir.Shape(tensor.shape), type=ir.TensorType(tensor.dtype)
        )
        self.graph.register_initializer(value)
        return value

    def op(self, op_type: str, inputs, dtype: ir.DataType, **attrs) -> ir.Value:
        node = ir.node(op_type, inputs, attrs or None, name=self._name(op_type))
        node.outputs[0].name, node.outputs[0].dtype = node.name + "_out", dtype
        self.nodes.append(node)
        return node.outputs[0]

    def reshape(self, x: ir.Value, shape, dtype: ir.DataType) -> ir.Value:
        return self.op("Reshape", [x, self.const(np.array(shape, np.int64), "shape")], dtype)

    def cast(self, x: ir.Value, dtype: ir.DataType) -> ir.Value:
        return self.op("Cast", [x], dtype, to=dtype)


U8, F32, F16, I32 = ir.DataType.UINT8, ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.INT32


def _as_uint8(b: _Builder, packed: ir.Value) -> ir.Value:
    """The same byte values as uint8 (models written before the INT8 typing hold uint8 already)."""
    if packed.dtype == U8:
        return packed
    return b.cast(b.op("BitwiseAnd", [b.cast(packed, I32), b.const(np.int32(0xFF))], I32), U8)


def _interleave(b: _Builder, parts: list[ir.Value], n: int, k: int) -> ir.Value:
    """parts[i][n, j] is element k = len(parts) * j + i: stack on a last axis and flatten."""
    cols = k // len(parts)
    stacked = b.op("Concat", [b.reshape(p, [n, cols, 1], U8) for p in parts], U8, axis=2)
    return b.reshape(stacked, [n, k], U8)


def _unpack_nibbles(b: _Builder, packed: ir.Value, n: int, k: int) -> ir.Value:
    packed = _as_uint8(b, packed)
    lo = b.op("BitwiseAnd", [packed, b.const(np.uint8(0x0F))], U8)
    hi = b.op("BitShift", [packed, b.const(np.uint8(4))], U8, direction="RIGHT")
    return _interleave(b, [lo, hi], n, k)


def _unpack_int4_v2(b: _Builder, packed: ir.Value, n: int, k: int) -> ir.Value:
    """qcompile.packing.unpack_int4_v2: the nibbles of each byte, then the inverse tile transpose."""
    from qcompile.packing import int4_v2_inverse_order, int4_v2_nibble_tiles

    tiles = b.reshape(_unpack_nibbles(b, packed, n, k), int4_v2_nibble_tiles(n, k), U8)
    return b.reshape(b.op("Transpose", [tiles], U8, perm=int4_v2_inverse_order()), [n, k], U8)


def _unpack_int4_sm90(b: _Builder, packed: ir.Value, n: int, k: int) -> ir.Value:
    """qcompile.packing_sm90.unpack_int4_sm90: the nibble stream, then the inverse atom transpose."""
    from qcompile.packing_sm90 import int4_sm90_inverse_order, int4_sm90_nibble_tiles

    tiles = b.reshape(_unpack_nibbles(b, packed, n, k), int4_sm90_nibble_tiles(n, k), U8)
    return b.reshape(b.op("Transpose", [tiles], U8, perm=int4_sm90_inverse_order()), [n, k], U8)


_W4A16_UNPACK = {1: _unpack_nibbles, 2: _unpack_int4_v2, 3: _unpack_int4_sm90}


def _unpack_fp6(b: _Builder, lo4: ir.Value, hi2: ir.Value, n: int, k: int) -> ir.Value:
    lo = _unpack_nibbles(b, lo4, n, k)
    hi2, three = _as_uint8(b, hi2), b.const(np.uint8(3))
    parts = [
        b.op(
            "BitwiseAnd",
            [b.op("BitShift", [hi2, b.const(np.uint8(2 * i))], U8, direction="RIGHT"), three],
            U8,
        )
        for i in range(4)
    ]
    hi = _interleave(b, parts, n, k)
    return b.op("BitwiseOr", [b.op("BitShift", [hi, b.const(np.uint8(4))], U8, direction="LEFT"), lo], U8)


def _bits(b: _Builder, packed: ir.Value, lanes: int, nbytes: int) -> ir.Value:
    """uint8 bytes -> their bits [lanes, 8 nbytes], bit j of byte i at 8 i + j (little-endian)."""
    packed = b.reshape(_as_uint8(b, packed), [lanes, nbytes, 1], U8)
    shifts = b.const(np.arange(8, dtype=np.uint8).reshape(1, 1, 8), "bit_shifts")
    bits = b.op("BitShift", [packed, shifts], U8, direction="RIGHT")
    return b.reshape(b.op("BitwiseAnd", [bits, b.const(np.uint8(1))], U8), [lanes, 8 * nbytes], U8)


def _unpack_fp6_v2(b: _Builder, lo4: ir.Value, hi2: ir.Value, n: int, k: int, fmt_name: str) -> ir.Value:
    """qcompile.packing.unpack_fp6_v2: each lane's 128 lo4 and 64 hi2 bits gathered into its weights'
    segments (fp6_v2_positions), joined into codes, the tiles transposed back to [N, K]."""
    from qcompile.packing import FP6_V2_ORDER, fp6_v2_positions

    lanes = n * k // 32
    lo_bits, hi_bits = fp6_v2_positions(fmt_name)

    def segment_bit(bits: ir.Value, at: np.ndarray, shift: int) -> ir.Value:
        bit = b.op("Gather", [bits, b.const(at, "bit_at")], U8, axis=1)  # [lanes, 32]
        return b.op("BitShift", [bit, b.const(np.uint8(shift))], U8, direction="LEFT") if shift else bit

    def join(parts: list[ir.Value]) -> ir.Value:
        out = parts[0]
        for p in parts[1:]:
            out = b.op("BitwiseOr", [out, p], U8)
        return out

    lo, hi = _bits(b, lo4, lanes, 16), _bits(b, hi2, lanes, 8)
    if fmt_name == "fp6_e3m2":  # code = two1 << 5 | two0 << 4 | four
        shifts = {"four": 0, "two0": 4, "two1": 5}
    else:  # E2M3: code = two1 << 5 | four << 1 | two0
        shifts = {"four": 1, "two0": 0, "two1": 5}
    parts = [segment_bit(lo, lo_bits[:, i], shifts["four"] + i) for i in range(4)]
    parts += [segment_bit(hi, hi_bits[:, 0], shifts["two0"]), segment_bit(hi, hi_bits[:, 1], shifts["two1"])]
    tiles = b.reshape(join(parts), [n // 16, k // 64, 8, 4, 2, 16], U8)
    order = [int(a) for a in np.argsort(FP6_V2_ORDER)]
    return b.reshape(b.op("Transpose", [tiles], U8, perm=order), [n, k], U8)


def _lookup(b: _Builder, codes: ir.Value, fmt_name: str) -> ir.Value:
    return b.op("Gather", [b.const(decode_table(fmt_name), "table"), b.cast(codes, I32)], F32, axis=0)


def _per_group(b: _Builder, values: ir.Value, factor: ir.Value, n: int, k: int, g: int, op: str) -> ir.Value:
    """values [N, K] (op) factor [N, K/g], through an [N, G, g] view."""
    groups = b.reshape(values, [n, k // g, g], F32)
    return b.reshape(b.op(op, [groups, b.reshape(factor, [n, k // g, 1], F32)], F32), [n, k], F32)


def _round_fp16(b: _Builder, x: ir.Value) -> ir.Value:
    return b.cast(b.cast(x, F16), F32)


def _weight_w6a16(b, inputs, attrs):
    n, k, fmt = attrs["N"], attrs["K"], attrs["format"]
    if attrs.get("layout_version", 1) == 2:
        codes = _unpack_fp6_v2(b, inputs[1], inputs[2], n, k, fmt)
    else:
        codes = _unpack_fp6(b, inputs[1], inputs[2], n, k)
    values = _lookup(b, codes, fmt)
    scales = b.reshape(b.cast(inputs[3], F32), [n, 1], F32)
    return _round_fp16(b, b.op("Mul", [values, scales], F32))


def _weight_w4a16(b, inputs, attrs):
    n, k, g = attrs["N"], attrs["K"], attrs["group_size"]
    unpack = _W4A16_UNPACK[attrs.get("layout_version", 1)]
    values = _lookup(b, unpack(b, inputs[1], n, k), attrs["format"])
    if attrs.get("has_zeros", 0):
        values = _per_group(b, values, b.cast(inputs[3], F32), n, k, g, "Sub")
    return _round_fp16(b, _per_group(b, values, b.cast(inputs[2], F32), n, k, g, "Mul"))


def _weight_w4a8(b, inputs, attrs):
    """The FP8 operand decode(c) * 2^group_exp, exact in float32."""
    n, k, g = attrs["N"], attrs["K"], attrs["group_size"]
    values = _lookup(b, _unpack_nibbles(b, inputs[1], n, k), attrs["format"])
    pow2 = np.exp2(np.arange(-_EXP_OFFSET, _EXP_OFFSET, dtype=np.float64)).astype(np.float32)
    index = b.op("Add", [b.cast(inputs[2], I32), b.const(np.int32(_EXP_OFFSET))], I32)
    factor = b.op("Gather", [b.const(pow2, "pow2"), index], F32, axis=0)
    return _per_group(b, values, factor, n, k, g, "Mul")


def _fp8_round(b: _Builder, x: ir.Value, scale: ir.Value) -> ir.Value:
    """E4M3 value of x / scale (RNE, saturating), as float32."""
    zero = b.const(np.zeros((), FORMATS["fp8_e4m3fn"].ml_dtype), "fp8_zero")
    q = b.op("QuantizeLinear", [x, scale, zero], ir.DataType.FLOAT8E4M3FN, saturate=1)
    return b.op("DequantizeLinear", [q, b.const(np.float32(1.0), "one"), zero], F32)


def _lower(graph: ir.Graph, node: ir.Node, attrs: dict) -> list[ir.Node]:
    b = _Builder(graph, node.name or node.op_type)
    inputs = list(node.inputs)
    x = b.cast(inputs[0], F32)
    if node.op_type == "QcW4A8Gemm":
        weight = _weight_w4a8(b, inputs, attrs)
        if attrs["act_quant"] == "per_token":
            amax = b.op(
                "ReduceMax",
                [b.op("Abs", [x], F32), b.const(np.array([-1], np.int64), "axes")],
                F32,
                keepdims=1,
            )
            row = b.op(
                "Max",
                [
                    b.op("Div", [amax, b.const(np.float32(448.0))], F32),
                    b.const(np.float32(np.finfo(np.float32).tiny)),
                ],
                F32,
            )
            x8 = _fp8_round(b, b.op("Div", [x, row], F32), b.const(np.float32(1.0), "one"))
            post = [row]
        else:
            act_scale = b.reshape(inputs[4], [], F32)
            x8 = _fp8_round(b, x, act_scale)
            post = [act_scale]
        acc = b.op("MatMul", [x8, b.op("Transpose", [weight], F32, perm=[1, 0])], F32)
        for factor in post + [inputs[3]]:
            acc = b.op("Mul", [acc, factor], F32)
    else:
        weight = (_weight_w6a16 if node.op_type == "QcW6A16Gemm" else _weight_w4a16)(b, inputs, attrs)
        acc = b.op("MatMul", [x, b.op("Transpose", [weight], F32, perm=[1, 0])], F32)
    b.cast(acc, F16)
    return b.nodes


class LowerPluginNodes(ir.passes.InPlacePass):
    """Every qcompile plugin node -> standard ONNX decoding the same packed bytes."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        from qcompile.plugin_specs import load_specs

        specs = load_specs()
        graph = model.graph
        plugins = [n for n in graph if n.domain == specs.namespace and n.op_type in specs.plugins]
        if not plugins:
            return ir.passes.PassResult(model, modified=False)
        opset = model.opset_imports.get("", model.opset_imports.get("ai.onnx", 1))
        if opset < MIN_OPSET:
            raise ModelError(
                f"lowering plugin nodes needs default-domain opset >= {MIN_OPSET}, the model has {opset}"
            )
        for node in plugins:
            spec = specs.get(node.op_type)
            attrs = {
                name: node.attributes[name].value if name in node.attributes else a.default
                for name, a in spec.attributes.items()
            }
            nodes = _lower(graph, node, attrs)
            ir.convenience.replace_nodes_and_values(
                graph, node, [node], nodes, [node.outputs[0]], [nodes[-1].outputs[0]]
            )
        onnx_ir.passes.common.RemoveUnusedNodesPass()(model)
        onnx_ir.passes.common.RemoveUnusedOpsetsPass()(model)
        return ir.passes.PassResult(model, modified=True)
