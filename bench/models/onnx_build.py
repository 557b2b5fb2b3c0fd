"""Small helpers to write transformer graphs with onnx.helper: a graph builder, transformer
layer pieces (linear, LayerNorm, erf GELU, multi-head attention), and a writer that streams
weights into one external-data file so that multi-GB models never sit in memory whole."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

OPSET = 21
IR_VERSION = 10
EXTERNAL_MIN_BYTES = 1024  # smaller tensors stay inside the .onnx file
_ALIGN = 4096  # page-aligned offsets let runtimes mmap each tensor


class ExternalDataWriter:
    """Appends tensors to one `.data` file and returns TensorProtos that reference it."""

    def __init__(self, data_path: Path):
        self.data_path = Path(data_path)
        self._file = open(self.data_path, "wb")
        self.bytes_written = 0

    def tensor(self, name: str, array: np.ndarray):
        return self.tensor_from_chunks(name, array.shape, array.dtype, [array])

    def tensor_from_chunks(self, name: str, shape: tuple[int, ...], dtype, chunks: Iterable[np.ndarray]):
        """Write a tensor given as consecutive row blocks (C order), one block in memory at a time."""
        import onnx

        dtype = np.dtype(dtype)
        offset = -(-self.bytes_written // _ALIGN) * _ALIGN
        self._file.write(b"\0" * (offset - self.bytes_written))
        length = 0
        for chunk in chunks:
            chunk = np.ascontiguousarray(chunk, dtype=dtype.newbyteorder("<"))
            self._file.write(memoryview(chunk).cast("B"))
            length += chunk.nbytes
        if length != int(np.prod(shape)) * dtype.itemsize:
            expected = int(np.prod(shape)) * dtype.itemsize
            raise ValueError(f"{name}: chunks hold {length} bytes, shape {shape} needs {expected}")
        self.bytes_written = offset + length
        proto = onnx.TensorProto(
            name=name, dims=list(shape), data_type=onnx.helper.np_dtype_to_tensor_dtype(dtype)
        )
        proto.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (
            ("location", self.data_path.name),
            ("offset", str(offset)),
            ("length", str(length)),
        ):
            proto.external_data.add(key=key, value=value)
        return proto

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class GraphBuilder:
    """Collects nodes and initializers; names every node and value after a scope hint.

    With an ExternalDataWriter, weights of EXTERNAL_MIN_BYTES or more go straight to its file
    and only their references are kept.
    """

    def __init__(self, external: ExternalDataWriter | None = None):
        self.external = external
        self.nodes, self.inputs, self.outputs, self.initializers = [], [], [], []
        self._names: set[str] = set()
        self.n_params = 0

    def _unique(self, hint: str) -> str:
        name, i = hint, 1
        while name in self._names:
            name, i = f"{hint}_{i}", i + 1
        self._names.add(name)
        return name

    def input(self, name: str, elem_type: int, shape: list) -> str:
        import onnx

        self.inputs.append(onnx.helper.make_tensor_value_info(self._unique(name), elem_type, shape))
        return name

    def output(self, value: str, name: str, elem_type: int, shape: list) -> str:
        import onnx

        self.op("Identity", [value], name, outputs=[self._unique(name)])
        self.outputs.append(onnx.helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def weight(self, name: str, array: np.ndarray) -> str:
        """A learned parameter (counted in n_params)."""
        self.n_params += int(array.size)
        return self.const(array, name)

    def streamed_weight(self, name: str, shape: tuple[int, ...], chunks: Iterable[np.ndarray]) -> str:
        """A float32 parameter written block by block to external data (needs an external writer)."""
        name = self._unique(name)
        self.initializers.append(self.external.tensor_from_chunks(name, shape, np.float32, chunks))
        self.n_params += int(np.prod(shape))
        return name

    def const(self, array, name: str) -> str:
        import onnx

        array = np.asarray(array)
        name = self._unique(name)
        if self.external is not None and array.nbytes >= EXTERNAL_MIN_BYTES:
            self.initializers.append(self.external.tensor(name, array))
        else:
            self.initializers.append(onnx.numpy_helper.from_array(array, name))
        return name

    def op(
        self,
        op_type: str,
        inputs: list[str],
        name: str,
        outputs: list[str] | None = None,
        n_out: int = 1,
        **attrs,
    ):
        """Add a node named `name`; returns its output name (a list when n_out > 1)."""
        import onnx

        node_name = self._unique(name)
        if outputs is None:
            outputs = [self._unique(f"{node_name}_output_{i}") for i in range(n_out)]
        self.nodes.append(onnx.helper.make_node(op_type, inputs, outputs, node_name, **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    def model(self, graph_name: str, opset: int = OPSET):
        import onnx

        graph = onnx.helper.make_graph(self.nodes, graph_name, self.inputs, self.outputs, self.initializers)
        model = onnx.helper.make_model(
            graph, opset_imports=[onnx.helper.make_opsetid("", opset)], producer_name="qcompile-bench"
        )
        model.ir_version = IR_VERSION
        return model


def linear(
    g: GraphBuilder,
    x: str,
    w_kn: np.ndarray,
    b: np.ndarray | None,
    scope: str,
    w_name: str,
    b_name: str | None = None,
) -> str:
    """x @ W (+ b) with W stored [K, N] as a MatMul initializer."""
    y = g.op("MatMul", [x, g.weight(w_name, w_kn.astype(np.float32))], f"{scope}/MatMul")
    if b is None:
        return y
    return g.op("Add", [y, g.weight(b_name, b.astype(np.float32))], f"{scope}/Add")


def layer_norm(
    g: GraphBuilder, x: str, gamma: np.ndarray, beta: np.ndarray, eps: float, scope: str, prefix: str
) -> str:
    return g.op(
        "LayerNormalization",
        [
            x,
            g.weight(f"{prefix}.weight", gamma.astype(np.float32)),
            g.weight(f"{prefix}.bias", beta.astype(np.float32)),
        ],
        f"{scope}/LayerNormalization",
        axis=-1,
        epsilon=float(eps),
    )


def gelu_erf(g: GraphBuilder, x: str, scope: str) -> str:
    """0.5 * x * (1 + erf(x / sqrt 2)), the pattern exporters emit for exact GELU."""
    t = g.op("Div", [x, g.const(np.float32(np.sqrt(2.0)), f"{scope}/sqrt2")], f"{scope}/Div")
    t = g.op("Erf", [t], f"{scope}/Erf")
    t = g.op("Add", [t, g.const(np.float32(1.0), f"{scope}/one")], f"{scope}/Add")
    t = g.op("Mul", [x, t], f"{scope}/Mul")
    return g.op("Mul", [t, g.const(np.float32(0.5), f"{scope}/half")], f"{scope}/Mul_1")


def split_heads(g: GraphBuilder, x: str, n_heads: int, head_dim: int, scope: str) -> str:
    """[b, s, n*d] -> [b, n, s, d]."""
    shape = g.const(np.array([0, 0, n_heads, head_dim], np.int64), f"{scope}/shape")
    x = g.op("Reshape", [x, shape], f"{scope}/Reshape")
    return g.op("Transpose", [x], f"{scope}/Transpose", perm=[0, 2, 1, 3])


def merge_heads(g: GraphBuilder, x: str, hidden: int, scope: str) -> str:
    """[b, n, s, d] -> [b, s, n*d]."""
    x = g.op("Transpose", [x], f"{scope}/Transpose", perm=[0, 2, 1, 3])
    shape = g.const(np.array([0, 0, hidden], np.int64), f"{scope}/shape")
    return g.op("Reshape", [x, shape], f"{scope}/Reshape")


def attention_core(
    g: GraphBuilder, q: str, k: str, v: str, mask: str | None, head_dim: int, scope: str
) -> str:
    """softmax(q k^T / sqrt(d) + mask) v on [b, n, s, d] tensors; mask is additive."""
    kt = g.op("Transpose", [k], f"{scope}/Transpose_k", perm=[0, 1, 3, 2])
    scores = g.op("MatMul", [q, kt], f"{scope}/MatMul_qk")
    scale = g.const(np.float32(1.0 / np.sqrt(head_dim)), f"{scope}/scale")
    scores = g.op("Mul", [scores, scale], f"{scope}/Mul_scale")
    if mask is not None:
        scores = g.op("Add", [scores, mask], f"{scope}/Add_mask")
    probs = g.op("Softmax", [scores], f"{scope}/Softmax", axis=-1)
    return g.op("MatMul", [probs, v], f"{scope}/MatMul_pv")


def positions(g: GraphBuilder, table: str, input_ids: str, scope: str) -> str:
    """Rows [0, seq) of `table`, seq read from input_ids' second dimension."""
    seq = g.op("Shape", [input_ids], f"{scope}/Shape", start=1, end=2)
    zero = g.const(np.array([0], np.int64), f"{scope}/zero")
    axis = g.const(np.array([0], np.int64), f"{scope}/axis")
    return g.op("Slice", [table, zero, seq, axis], f"{scope}/Slice")


def save_model(model, out_path: Path) -> Path:
    """Write a ModelProto whose big tensors already live in external data, as it is."""
    out_path = Path(out_path)
    out_path.write_bytes(model.SerializeToString())
    return out_path
