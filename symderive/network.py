"""Layer stacks declared under a question's ``network:`` key.

    network:
      input: [128, 128, 3]          # optional: the input's shape
      layout: HWC                   # how to read it: letters N C H W L (default by rank: C, CL, CHW, NCHW)
      layers:
        - conv: Conv2d(3, 10, kernel_size=3, stride=1, padding=0)
        - pool: MaxPool2d(2, stride=2)

Each layer is a call with PyTorch's class name and argument names. Calls are
read through a whitelist over Python's ``ast`` (never executed): numbers and
declared sizes (via ``expressions.Reader``), ``True``/``False`` for ``bias``,
names of declared tensors (``Linear(W1)``, for numeric networks), and layers
nested in ``Residual(...)``. Sizes may be symbols: counts and shapes are then
formulas.

A network answers structural questions: parameters per layer (with and without
biases), the shape after each layer, and the receptive field of one unit.
Numeric forward and backward passes (``numeric_network``) use the same syntax.
What each kind does (its arguments, shape, parameters, receptive field, torch.nn
module) is registered by the kind's module under ``symderive/layers/``; this
module reads calls and stacks.
"""
import ast
from dataclasses import dataclass

from .declarations import check_name
from .errors import ExpressionError, ShapeError, SymderiveError
from .expressions import MAX_DEPTH, Reader, parse, read_choice, syntax_tree
from .layers import MODULES
from .layers.stack import FeatureShape, NetLayer, auto_name, in_file
from .yaml_positions import Located, LocatedDict, key_position, locate, position

NETWORK_KEYS = {"input", "layout", "layers", "convention", "loss"}
CONVENTIONS = ("pytorch", "bias_node")
DEFAULT_LAYOUTS = {1: "C", 2: "CL", 3: "CHW", 4: "NCHW"}
#: Parameter-count modes: every weight layer with a bias, none, or as each layer declares.
BIAS_MODES = ("both", "with", "without", "declared")


def located_error(message, where, error=ExpressionError):
    """An error at the position of a YAML value (or of the mapping key that holds it)."""
    return error(message, *position(where))


# --------------------------------------------------------------------------------------
# Shapes


def read_layout(text, rank, where):
    if text is None:
        if rank not in DEFAULT_LAYOUTS:
            raise located_error(f"an input of rank {rank} needs a 'layout' such as NCHW", where)
        return DEFAULT_LAYOUTS[rank]
    layout = str(text).strip()
    letters = set(layout)
    spatial = letters - {"N", "C"}
    if (not layout or not letters <= set("NCHWL") or len(letters) != len(layout) or "C" not in letters
            or spatial not in (set(), {"L"}, {"H", "W"})):
        raise located_error(f"layout {layout!r}: use the letters N (batch), C (channels), H and W, or L "
                            f"(length), each once, with C, e.g. NHWC, CHW or NC", text)
    if len(layout) != rank:
        raise located_error(f"layout {layout} has {len(layout)} letters but the input has rank {rank}", text)
    return layout


def read_size(value, scope, what, where):
    """A positive integer size: a number, a declared size name or an expression in them."""
    at = value if isinstance(value, str) else where
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise located_error(f"{what}: {value!r} is not a size (a whole number or a size name)", at)
    try:
        size = parse(value, scope)
    except SymderiveError as exc:
        raise (locate(exc, value) if isinstance(value, str)
               else exc.located(line=position(where)[0], column=position(where)[1])) from None
    if not size.is_integer or (size.is_number and size < 1):
        raise located_error(f"{what}: {size} is not a positive whole number", at, ShapeError)
    return size


def input_shape(spec, scope, where):
    """The FeatureShape of ``input: [..]`` read with ``layout`` (``where``: the network mapping)."""
    at = _at(key_position(where, "input"))
    if not isinstance(spec, list) or not spec:
        raise located_error("'input' is a list of sizes, e.g. [128, 128, 3] (or a tensor name for a "
                            "numeric network)", at)
    sizes = [read_size(v, scope, "input", at) for v in spec]
    layout = read_layout(where.get("layout"), len(sizes), key_position_value(where, "layout"))
    values = dict(zip(layout, sizes))
    spatial = tuple(values[k] for k in ("H", "W") if k in values) or tuple(values[k] for k in "L" if k in values)
    return FeatureShape(values.get("N"), values["C"], spatial, layout)


def key_position_value(mapping, key):
    """The value under ``key`` when it carries a position, else a stand-in located at the key."""
    value = mapping.get(key)
    return value if isinstance(value, (Located, LocatedDict)) else _at(key_position(mapping, key))


def _at(pos):
    marker = Located("")
    marker.line, marker.column = pos
    return marker


# --------------------------------------------------------------------------------------
# Reading layer calls: each kind's Signature is registered by its module in symderive/layers/


#: Arguments that are sizes (positive), hyper-parameters (stride ≥ 1, padding ≥ 0) or flags.
FLAGS = {"bias", "affine", "ceil_mode", "count_include_pad"}
PER_AXIS = {"kernel_size", "stride", "padding", "output_padding", "dilation", "output_size"}
IGNORED = {"eps", "momentum"}


class CallReader:
    """Reads one layer call (and the calls nested in it) from a located string."""

    def __init__(self, text, scope, convention="pytorch"):
        self.text, self.scope, self.convention = text, scope, convention
        self.reader = Reader(str(text).strip(), scope, None)

    def fail(self, node, message, error=ExpressionError):
        raise error(message, line=getattr(node, "lineno", None), column=getattr(node, "col_offset", -1) + 1)

    def read(self, name):
        return self.layer(syntax_tree(str(self.text).strip(), "layer").body, name, 0)

    def layer(self, node, name, depth):
        if depth > MAX_DEPTH:
            self.fail(node, f"layer is nested deeper than {MAX_DEPTH} levels")
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            self.fail(node, f"a layer is a call such as Conv2d(3, 10, kernel_size=3); one of: "
                            f"{', '.join(sorted(MODULES))}")
        kind = node.func.id
        if kind not in MODULES:
            self.fail(node.func, f"unknown layer '{kind}' (one of: {', '.join(sorted(MODULES))})")
        call = ast.get_source_segment(str(self.text).strip(), node) or kind
        call = call if len(call) <= 80 else call[:77] + "..."
        signature = MODULES[kind].signature
        if signature.read is not None:
            return signature.read(self, node, name, call, depth)
        return signature.build(name, call, self.text, node, **self.bind(node, kind, signature))

    def bind(self, node, kind, signature):
        """Match arguments to names as Python would; values checked by what they name."""
        names = signature.positional
        if len(node.args) > len(names):
            self.fail(node.args[len(names)] if len(node.args) > len(names) else node,
                      f"{kind}() takes at most {len(names)} positional argument(s)"
                      + (f": {', '.join(names)}" if names else ""))
        given = dict(zip(names, node.args))
        allowed = set(names) | set(signature.defaults)
        for kw in node.keywords:
            if kw.arg is None or kw.arg not in allowed:
                self.fail(kw.value if kw.arg is None else kw.value,
                          f"{kind}() has no argument '{kw.arg}' (arguments: {', '.join(sorted(allowed)) or 'none'})")
            if kw.arg in given:
                self.fail(kw.value, f"{kind}(): '{kw.arg}' is given twice")
            given[kw.arg] = kw.value
        missing = [n for n in names[:signature.required] if n not in given]
        if missing:
            self.fail(node, f"{kind}() needs {', '.join(missing)}")
        options = {}
        for arg, value_node in given.items():
            if arg in IGNORED:
                continue
            if arg in FLAGS:
                options[arg] = self.flag(value_node, kind, arg)
            elif arg in signature.numbers:
                options[arg] = self.real(value_node, kind, arg)
            elif arg in signature.choices:
                options[arg] = read_choice(self, value_node, kind, arg, signature.choices[arg])
            else:
                options[arg] = self.hyper(value_node, kind, arg)
        return options

    def flag(self, node, kind, arg):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, bool)):
            self.fail(node, f"{kind}(): {arg} is True or False")
        return node.value

    def hyper(self, node, kind, arg):
        value = self.number(node)
        if value is None:            # stride=None: the default
            return None
        if isinstance(value, tuple) and arg not in PER_AXIS:
            self.fail(node, f"{kind}(): {arg} is one number, not a tuple")
        least = 0 if arg in ("padding", "output_padding") else 1
        for v in value if isinstance(value, tuple) else (value,):
            if not v.is_integer or (v.is_number and v < least):
                self.fail(node, f"{kind}(): {arg} must be a{' non-negative' if least == 0 else ' positive'} "
                                f"whole number or a declared size, got {v}", ShapeError)
        return value

    def real(self, node, kind, arg):
        """A real number such as a slope (0.01, 1/5 or a declared size), kept exact."""
        value = self.number(node)
        if value is None or isinstance(value, tuple) or not (value.is_real and value.is_number):
            self.fail(node, f"{kind}(): {arg} must be a number, got {value}")
        return value

    def number(self, node):
        if isinstance(node, ast.Constant) and node.value is None:
            return None
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            self.fail(node, f"{node.value} is not a number")
        if isinstance(node, ast.Name) and node.id not in self.scope.sizes and self.scope.tensor(node.id):
            self.fail(node, f"'{node.id}' is a tensor; a size is expected here")
        return self.reader.read(node, 1)

    def tensor(self, node):
        if isinstance(node, ast.Name) and node.id not in self.scope.sizes:
            found = self.scope.tensor(node.id)
            if found is not None:
                return found
        return None


# --------------------------------------------------------------------------------------
# The network


@dataclass
class Row:
    """One layer with the shapes around it."""
    layer: NetLayer
    shape_in: FeatureShape
    shape_out: FeatureShape


class Network:
    def __init__(self, layers, shape=None, convention="pytorch", spec=None, input_tensor=None):
        self.layers, self.shape, self.convention = layers, shape, convention
        self.spec, self.input_tensor = spec, input_tensor

    def rows(self):
        """Each top-level layer with its input and output shape (channels checked even without input)."""
        shape = self.shape or FeatureShape(None, None, None, "C")
        out = []
        for layer in self.layers:
            after = layer.output(shape)
            out.append(Row(layer, shape, after))
            shape = after
        return out

    def find(self, name, where):
        for row in self.rows():
            if row.layer.name == name:
                return row
        raise located_error(f"no layer '{name}' in the network (layers: "
                            f"{', '.join(layer.name for layer in self.layers)})", where)


def question_network(ctx, key="network", numeric=False, spec=None):
    """The network under a question's ``key`` (or the given ``spec``, e.g. one of ``networks``)."""
    spec = ctx.require(key) if spec is None else spec
    return read_network(spec, ctx.decls.scope(), _at(key_position(ctx.question.spec, key)), numeric=numeric)


def read_network(spec, scope, where, *, numeric=False):
    """A ``network:`` value: a list of layers, or a mapping with input, layout, layers (and, for numeric
    networks, convention and loss). ``where`` locates errors about the key itself."""
    if isinstance(spec, list):
        spec_map, layers_spec = LocatedDict(), spec
        spec_map.line, spec_map.column = position(where)
    elif isinstance(spec, dict):
        unknown = [k for k in spec if k not in NETWORK_KEYS]
        if unknown:
            raise located_error(f"network: unknown key '{unknown[0]}' (allowed: "
                                f"{', '.join(sorted(NETWORK_KEYS))})", unknown[0])
        spec_map, layers_spec = spec, spec.get("layers")
        if not isinstance(layers_spec, list) or not layers_spec:
            raise located_error("network: 'layers' is a non-empty list of layers, e.g. "
                                "[conv: 'Conv2d(3, 10, kernel_size=3)']", key_position_value(spec, "layers"))
    else:
        raise located_error("'network' is a list of layers, or a mapping with input, layout and layers",
                            spec if isinstance(spec, str) else where)
    convention = spec_map.get("convention", "pytorch")
    if convention not in CONVENTIONS:
        raise located_error(f"network: convention is one of {', '.join(CONVENTIONS)}",
                            key_position_value(spec_map, "convention"))
    if not numeric:
        for key in ("convention", "loss"):
            if key in spec_map:
                raise located_error(f"network: '{key}' is only for numeric forward and backward passes",
                                    _at(key_position(spec_map, key)))
    shape, input_tensor = None, None
    if "input" in spec_map:
        value = spec_map["input"]
        if isinstance(value, str):
            input_tensor = scope.tensor(value.strip())
            if input_tensor is None:
                raise located_error(f"network: input '{value}' is not a declared tensor", value)
            if input_tensor.rank not in (1, 2):
                raise located_error(f"network: input '{value}' must be a vector, or a batch of vectors (a matrix, "
                                    f"one sample per row)", value, ShapeError)
            shape = FeatureShape(None, input_tensor.shape[0], (), "C") if input_tensor.rank == 1 else \
                FeatureShape(input_tensor.shape[0], input_tensor.shape[1], (), "NC")
        else:
            shape = input_shape(value, scope, spec_map)
    elif "layout" in spec_map:
        raise located_error("network: 'layout' describes the 'input' shape; give the input too",
                            _at(key_position(spec_map, "layout")))
    layers, names, counts = [], set(), {}
    for item in layers_spec:
        if isinstance(item, dict):
            if len(item) != 1:
                raise located_error("a layer is one 'name: Call(...)' or just 'Call(...)'", item)
            (name, text), = item.items()
            check_name(name, "layer")
        elif isinstance(item, str):
            name, text = None, item
        else:
            raise located_error("a layer is 'name: Call(...)' or 'Call(...)'", where if not isinstance(
                item, (Located, LocatedDict)) else item)
        if not isinstance(text, str):
            raise located_error(f"layer '{name}' must be a call such as Conv2d(3, 10, 3)", name)
        if name is None:
            name = auto_name(str(text).strip().split("(")[0].strip(), counts)
        if name in names:
            raise located_error(f"duplicate layer name '{name}'", name if isinstance(name, Located) else text)
        names.add(str(name))
        try:
            layers.append(CallReader(text, scope, convention).read(str(name)))
        except SymderiveError as exc:
            raise in_file(exc, text) from None
    network = Network(layers, shape, convention, spec_map, input_tensor)
    network.rows()          # shape and channel checks happen while reading, with the layer's position
    return network
