"""The plugin nodes' contract, read from `plugin_specs.json` (also read by the C++ plugin cores).

`node_attributes` makes the ONNX attributes of a plugin node (validated, defaults filled, plus
`plugin_version` / `plugin_namespace` for TensorRT's ONNX parser); `check_plugin_node` lists the
reasons an existing node does not match its spec.
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources

from qcompile.errors import LayoutError, RecipeError

# Attributes consumed by TensorRT's ONNX parser (FallbackPluginImporter), not plugin fields.
PARSER_ATTRIBUTES = ("plugin_version", "plugin_namespace")
_ONNX_DTYPES = {"float16": "FLOAT16", "float32": "FLOAT", "uint8": "UINT8", "int8": "INT8"}


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy name: float16, float32, uint8, int8
    shape: tuple[str | int, ...]  # "..." = any leading dims; symbols N, K, K/2, K/group_size
    constant: bool = False
    optional: bool = False


@dataclasses.dataclass(frozen=True)
class AttributeSpec:
    name: str
    type: str  # "int" or "string"
    values: tuple | None = None
    default: int | str | None = None

    def check(self, value) -> str:
        """Why `value` is not valid for this attribute ("" when it is)."""
        if self.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            return f"attribute {self.name!r} must be an int, got {value!r}"
        if self.type == "string" and not isinstance(value, str):
            return f"attribute {self.name!r} must be a string, got {value!r}"
        if self.values is not None and value not in self.values:
            return f"attribute {self.name!r} is {value!r}, expected one of {list(self.values)}"
        return ""


@dataclasses.dataclass(frozen=True)
class PluginSpec:
    op_type: str
    version: str
    kernel: str
    doc: str
    namespace: str
    layout_version: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    attributes: dict[str, AttributeSpec]
    shape_rules: dict[str, int | str]
    # layout_version -> extra rules of that layout: "K_multiple", "N_multiple", "format" and
    # "group_size" (allowed lists)
    layout_rules: dict[int, dict] = dataclasses.field(default_factory=dict)

    def multiple(self, rule: str, attrs: dict) -> int | None:
        """The value of a shape rule ("K_multiple"): a number or the name of an attribute."""
        value = self.shape_rules.get(rule)
        return attrs.get(value) if isinstance(value, str) else value

    def layout_versions(self) -> tuple[int, ...]:
        """The layout versions a node may carry: the attribute's values list, else the spec's one."""
        attr = self.attributes.get("layout_version")
        return tuple(attr.values) if attr is not None and attr.values else (self.layout_version,)

    def shape_problems(self, attrs: dict) -> list[str]:
        problems = []
        for dim in ("K", "N"):
            multiple, size = self.multiple(f"{dim}_multiple", attrs), attrs.get(dim)
            if isinstance(multiple, int) and isinstance(size, int) and (size <= 0 or size % multiple):
                problems.append(f"{dim}={size} is not a positive multiple of {multiple}")
        version = attrs.get("layout_version")
        rules = self.layout_rules.get(version, {})
        for dim in ("K", "N"):
            multiple, size = rules.get(f"{dim}_multiple"), attrs.get(dim)
            if multiple and isinstance(size, int) and size % multiple:
                problems.append(f"{dim}={size} is not a multiple of {multiple} (layout_version {version})")
        if "format" in rules and attrs.get("format") not in rules["format"]:
            problems.append(f"format {attrs.get('format')!r} has no layout_version {version}")
        if "group_size" in rules and attrs.get("group_size") not in rules["group_size"]:
            problems.append(f"group_size {attrs.get('group_size')!r} has no layout_version {version}")
        return problems


@dataclasses.dataclass(frozen=True)
class PluginSpecs:
    namespace: str
    layout_version: int
    plugins: dict[str, PluginSpec]

    def get(self, op_type: str) -> PluginSpec:
        if op_type not in self.plugins:
            raise RecipeError(f"unknown plugin {op_type!r}; known plugins: {', '.join(self.plugins)}")
        return self.plugins[op_type]


def _tensor(entry: dict) -> TensorSpec:
    return TensorSpec(
        entry["name"],
        entry["dtype"],
        tuple(entry["shape"]),
        entry.get("constant", False),
        entry.get("optional", False),
    )


def parse_specs(data: dict) -> PluginSpecs:
    plugins = {}
    for op_type, entry in data["plugins"].items():
        attrs = {
            name: AttributeSpec(
                name, a["type"], tuple(a["values"]) if "values" in a else None, a.get("default")
            )
            for name, a in entry["attributes"].items()
        }
        plugins[op_type] = PluginSpec(
            op_type,
            entry["version"],
            entry["kernel"],
            entry.get("doc", ""),
            data["namespace"],
            data["layout_version"],
            tuple(map(_tensor, entry["inputs"])),
            tuple(map(_tensor, entry["outputs"])),
            attrs,
            dict(entry.get("shape_rules", {})),
            {int(v): dict(r) for v, r in entry.get("layout_rules", {}).items()},
        )
    return PluginSpecs(data["namespace"], data["layout_version"], plugins)


def load_specs() -> PluginSpecs:
    """The specs shipped with qcompile (compiler/plugin_specs.json)."""
    text = resources.files("qcompile").joinpath("plugin_specs.json").read_text(encoding="utf-8")
    return parse_specs(json.loads(text))


def node_attributes(op_type: str, specs: PluginSpecs | None = None, **values) -> dict[str, int | str]:
    """ONNX attributes of a plugin node: every spec attribute (defaults filled) + parser attributes.

    Raises RecipeError for an unknown, missing or invalid attribute, LayoutError for a
    layout_version the plugin does not list or N/K (or the format) violating the shape and layout
    rules.
    """
    spec = (specs or load_specs()).get(op_type)
    unknown = sorted(set(values) - set(spec.attributes))
    if unknown:
        raise RecipeError(f"{op_type}: unknown attribute(s) {unknown}; known: {list(spec.attributes)}")
    attrs: dict[str, int | str] = {}
    for name, attr in spec.attributes.items():
        value = values.get(name, attr.default)
        if value is None:
            raise RecipeError(f"{op_type}: attribute {name!r} is required")
        problem = attr.check(value)
        if problem:
            raise RecipeError(f"{op_type}: {problem}")
        attrs[name] = value
    if attrs.get("layout_version", spec.layout_version) not in spec.layout_versions():
        raise LayoutError(
            f"{op_type}: attribute 'layout_version' is {attrs['layout_version']}, "
            f"this qcompile writes layout version {spec.layout_version}"
        )
    problems = spec.shape_problems(attrs)
    if problems:
        raise LayoutError(f"{op_type}: {'; '.join(problems)}")
    attrs["plugin_version"] = spec.version
    attrs["plugin_namespace"] = spec.namespace
    return attrs


def resolve_dim(expr: str | int, attrs: dict) -> int | None:
    """Size of a spec dimension ("K/2", "N", 1) from the attributes; None if unknown or inexact."""
    if isinstance(expr, int):
        return expr
    num, _, den = expr.partition("/")
    a = int(num) if num.isdigit() else attrs.get(num)
    b = (int(den) if den.isdigit() else attrs.get(den)) if den else 1
    if not isinstance(a, int) or not isinstance(b, int) or b <= 0 or a % b:
        return None
    return a // b


def _node_attrs(node, spec: PluginSpec) -> tuple[dict, list[str]]:
    attrs, problems = {}, []
    for name, attr in spec.attributes.items():
        if name not in node.attributes:
            if attr.default is None:
                problems.append(f"attribute {name!r} is missing")
            else:
                attrs[name] = attr.default
            continue
        value = node.attributes[name].value
        problem = attr.check(value)
        if problem:
            problems.append(problem)
        else:
            attrs[name] = value
    for name, want in (("plugin_version", spec.version), ("plugin_namespace", spec.namespace)):
        if name in node.attributes and node.attributes[name].value != want:
            problems.append(f"attribute {name!r} is {node.attributes[name].value!r}, expected {want!r}")
    extra = sorted(set(node.attributes) - set(spec.attributes) - set(PARSER_ATTRIBUTES))
    if extra:
        problems.append(f"unknown attribute(s) {extra}")
    if attrs.get("layout_version", spec.layout_version) not in spec.layout_versions():
        problems.append(f"layout_version {attrs['layout_version']} != {spec.layout_version}")
    return attrs, problems + spec.shape_problems(attrs)


def _tensor_problems(value, tensor: TensorSpec, attrs: dict, role: str) -> list[str]:
    import onnx_ir as ir

    problems = []
    const = value.const_value
    dtype = value.dtype or (const.dtype if const is not None else None)
    shape = value.shape or (const.shape if const is not None else None)
    want = getattr(ir.DataType, _ONNX_DTYPES[tensor.dtype])
    if dtype is not None and dtype != want:
        why = " (TensorRT 10.0/10.1's parser widens UINT8 to INT32)" if dtype == ir.DataType.UINT8 else ""
        problems.append(f"{role} {tensor.name!r} is {dtype.name}, expected {want.name}{why}")
    producer = value.producer()
    if tensor.constant and const is None and (producer is None or producer.op_type != "Constant"):
        problems.append(f"{role} {tensor.name!r} must be a constant (initializer)")
    if shape is None:
        return problems
    dims = list(shape)
    spec_dims = list(tensor.shape)
    if spec_dims[:1] == ["..."]:
        spec_dims = spec_dims[1:]
        if len(dims) < len(spec_dims) + 1:
            return problems + [
                f"{role} {tensor.name!r} has rank {len(dims)}, expected at least {len(spec_dims) + 1}"
            ]
        dims = dims[len(dims) - len(spec_dims) :]
    elif len(dims) != len(spec_dims):
        return problems + [f"{role} {tensor.name!r} has rank {len(dims)}, expected {len(spec_dims)}"]
    for axis, (got, expr) in enumerate(zip(dims, spec_dims)):
        size = resolve_dim(expr, attrs)
        if isinstance(got, int) and size is not None and got != size:
            problems.append(f"{role} {tensor.name!r} dim {axis} is {got}, expected {expr}={size}")
    return problems


def check_plugin_node(node, specs: PluginSpecs | None = None) -> list[str]:
    """Reasons why an onnx_ir node does not match its plugin spec (empty list: it matches)."""
    specs = specs or load_specs()
    if node.op_type not in specs.plugins:
        return [f"{node.op_type!r} is not a qcompile plugin"]
    spec = specs.plugins[node.op_type]
    problems = (
        [] if node.domain == spec.namespace else [f"domain is {node.domain!r}, expected {spec.namespace!r}"]
    )
    attrs, attr_problems = _node_attrs(node, spec)
    problems += attr_problems
    inputs = list(node.inputs)
    while inputs and inputs[-1] is None:
        inputs.pop()
    required = sum(not t.optional for t in spec.inputs)
    if not required <= len(inputs) <= len(spec.inputs):
        problems.append(f"has {len(inputs)} inputs, expected {required}..{len(spec.inputs)}")
    if "has_zeros" in attrs and len(inputs) > required and attrs["has_zeros"] != 1:
        problems.append("has a zeros input but has_zeros=0")
    if attrs.get("has_zeros") == 1 and len(inputs) <= required:
        problems.append("has_zeros=1 but the zeros input is absent")
    for value, tensor in zip(inputs, spec.inputs):
        if value is None:
            if not tensor.optional:
                problems.append(f"input {tensor.name!r} is absent")
            continue
        problems += _tensor_problems(value, tensor, attrs, "input")
    if len(node.outputs) != len(spec.outputs):
        problems.append(f"has {len(node.outputs)} outputs, expected {len(spec.outputs)}")
    for value, tensor in zip(node.outputs, spec.outputs):
        problems += _tensor_problems(value, tensor, attrs, "output")
    return problems
