"""Declarations of a problem file (sizes, tensors, layers) as a lexical scope.

Layers are built lazily, the first time a name is used, so that a broken
layer fails only the questions that use it and the rest of the file still
solves. A question's own declarations extend (and may shadow) the file's.
"""
import re

import sympy as sp

from .assumptions import TENSOR_FACTS, read_tensor_facts
from .display_names import parse_tex
from .errors import ExpressionError, ShapeError, SymderiveError
from .expressions import Scope, infer_index_ranges, parse
from .functions import KNOWN_FUNCTIONS
from .indices import INDEX_LETTERS, indices_for, make_index, names_in, rename_bound_apart
from .layers import Layer
from .layers.base import taken_by
from .tensors import Tensor, size_symbol
from .yaml_positions import locate, position

NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
CUSTOM_LAYER = re.compile(r"\s*([A-Za-z][A-Za-z0-9_]*)\s*\[([^\]]*)\]\s*\Z")
RESERVED = {"Sum", "diff"} | set(KNOWN_FUNCTIONS)


def check_name(name, what):
    if not isinstance(name, str) or not NAME.match(name):
        raise ExpressionError(f"{what} name {name!r} must start with a letter and use letters, "
                              f"digits and _", line=position(name)[0], column=position(name)[1])
    if name in RESERVED:
        raise ExpressionError(f"{what} name '{name}' is reserved for a function or constant",
                              line=position(name)[0], column=position(name)[1])


class Declarations:
    """One level of declarations: sizes, tensors and lazily built layers."""

    def __init__(self, spec, parent=None, base=0):
        self.parent, self.base = parent, base
        self.sizes = dict(parent.sizes) if parent else {}
        self.tensors = {}
        self.layer_specs = {}
        self.building = set()
        self.tex = {}                     # declared display names: {identifier: LaTeX}
        spec = spec or {}
        sizes = spec.get("sizes") or []
        if isinstance(sizes, dict):
            raise ExpressionError("sizes is a list of names, e.g. [C, H, W]", *_pos(spec, "sizes"))
        if not isinstance(sizes, list):
            raise ExpressionError("sizes must be a list of names", *_pos(spec, "sizes"))
        for name in sizes:
            if isinstance(name, dict) and len(name) == 1:     # - K: {tex: "K"}
                (name, options), = name.items()
                self._display_name(name, options, "size")
            check_name(name, "size")
            self.sizes[str(name)] = size_symbol(str(name))
        tensors = spec.get("tensors") or {}
        layers = spec.get("layers") or {}
        for section, value in (("tensors", tensors), ("layers", layers)):
            if not isinstance(value, dict):
                raise ExpressionError(f"{section} must be a mapping of names", *_pos(spec, section))
        for name, shape_spec in tensors.items():
            check_name(name, "tensor")
            if isinstance(shape_spec, dict):
                self._display_name(name, shape_spec, "tensor",
                                   allowed=("shape", "value", "symmetric", "tex") + tuple(TENSOR_FACTS))
            self.tensors[str(name)] = self._tensor(name, shape_spec)
        for key, expr in layers.items():
            match = CUSTOM_LAYER.match(str(key))
            name = match.group(1) if match else key
            check_name(name, "layer")
            if isinstance(expr, dict):                        # y: {expr: conv2d(x, W), tex: \hat{y}}
                self._display_name(name, expr, "layer", allowed=("expr", "tex"))
                if "expr" not in expr:
                    raise ExpressionError(f"layer '{name}': a layer given as a mapping needs 'expr'", *position(key))
                expr = expr["expr"]
            self.layer_specs[str(name)] = (key, expr, match)

    def _display_name(self, name, options, what, allowed=("tex",)):
        """Read the optional ``tex:`` display name of a declaration (untrusted: see display_names)."""
        if not isinstance(options, dict):
            raise ExpressionError(f"{what} '{name}': write the options as a mapping, e.g. {{tex: W_x}}",
                                  *position(name))
        for key in options:
            if key not in allowed:
                raise ExpressionError(f"{what} '{name}': unknown key '{key}' (allowed: {', '.join(allowed)})",
                                      *position(key))
        if "tex" in options:
            value = options["tex"]
            try:
                self.tex[str(name)] = parse_tex(value)
            except SymderiveError as exc:
                exc.message = f"{what} '{name}': tex: {exc.message}"
                if isinstance(value, str):
                    raise locate(exc, value) from None
                line, column = position(name)
                raise exc.located(line=line, column=column) from None

    def display_names(self):
        """The declared display names this scope sees: {identifier: LaTeX}, its own over its parent's."""
        inherited = self.parent.display_names() if self.parent else {}
        hidden = set(self.sizes) - set(self.parent.sizes if self.parent else ()) | set(self.tensors) \
            | set(self.layer_specs)
        return {**{k: v for k, v in inherited.items() if k not in hidden}, **self.tex}

    def visible_names(self):
        """Every size, tensor and layer name this scope sees."""
        own = set(self.sizes) | set(self.tensors) | set(self.layer_specs)
        return own | (self.parent.visible_names() if self.parent else set())

    def scope(self):
        return Scope(self.sizes, {}, {}, self.lookup, self.base)

    def names(self):
        """Every size, tensor and layer name visible here (this level and the outer ones): the
        names an answer's indices must not take, used in the question or not."""
        own = set(self.sizes) | set(self.tensors) | set(self.layer_specs)
        return own | (self.parent.names() if self.parent else set())

    def lookup(self, name):
        if name in self.tensors:
            return self.tensors[name]
        if name in self.layer_specs:
            if name in self.building:
                key = self.layer_specs[name][0]
                raise ExpressionError(f"layer '{name}' is defined in terms of itself", *position(key))
            self.building.add(name)
            try:
                self.tensors[name] = self._layer(name, *self.layer_specs[name])
                self.tensors[name].latex_name = self.tex.get(name, name)
            finally:
                self.building.discard(name)
            return self.tensors[name]
        return self.parent.lookup(name) if self.parent else None

    # -------------------------------------------------------------------------
    def _tensor(self, name, spec):
        shape = spec.get("shape", []) if isinstance(spec, dict) else spec
        if shape is None:
            shape = []
        if not isinstance(shape, list):
            where = spec if isinstance(spec, str) else shape
            raise ExpressionError(f"tensor '{name}': the shape is a list of sizes, e.g. [2, 5] or [C, L]",
                                  *position(where))
        dims = []
        for size in shape:
            if isinstance(size, bool):
                raise ExpressionError(f"tensor '{name}': size {size} is not a number", *position(name))
            try:
                value = parse(size, self.scope()) if isinstance(size, str) else sp.Integer(size)
            except SymderiveError as exc:
                raise locate(exc, size) from None
            except (TypeError, ValueError):
                raise ExpressionError(f"tensor '{name}': size {size!r} is not a number or size name",
                                      *position(name)) from None
            if value.is_number and (not value.is_Integer or value < 1):
                raise ShapeError(f"tensor '{name}': size {value} must be a positive integer",
                                 *(position(size) if isinstance(size, str) else position(name)))
            dims.append(value)
        tensor = Tensor(str(name), dims, latex_name=self.tex.get(str(name)))
        tensor.value_spec = spec.get("value") if isinstance(spec, dict) else None
        symmetric = spec.get("symmetric", False) if isinstance(spec, dict) else False
        if not isinstance(symmetric, bool):
            raise ExpressionError(f"tensor '{name}': symmetric is true or false", *position(name))
        if symmetric and (len(dims) != 2 or sp.simplify(dims[0] - dims[1]) != 0):
            raise ShapeError(f"tensor '{name}': only a square matrix can be symmetric "
                             f"(shape {' × '.join(map(str, dims)) or 'scalar'})", *position(name))
        tensor.symmetric = symmetric
        if isinstance(spec, dict):
            tensor.facts = read_tensor_facts(name, spec, dims, lambda: position(name))
            if "positive" in tensor.facts:
                tensor.declare_positive()          # SymPy simplifies with it: |σ| = σ, √(σ²) = σ
            if "labels" in tensor.facts and isinstance(tensor.facts["labels"], str):
                try:
                    tensor.facts["labels"] = parse(tensor.facts["labels"], self.scope())
                except SymderiveError as exc:
                    raise locate(exc, tensor.facts["labels"]) from None
        return tensor

    def _layer(self, name, key, expr, custom):
        if not isinstance(expr, str):
            raise ExpressionError(f"layer '{name}' must be an expression string", *position(key))
        try:
            if custom is None:
                layer = parse(expr, self.scope(), layer_name=name)
                if isinstance(layer, Layer):
                    return layer
                # A plain expression is a scalar layer, e.g. E: -Sum(p[i]*log(q[i]), (i, 1, N)).
                inputs = [t for t in (self.lookup(n) for n in sorted(_named(layer))) if t is not None]
                return ElementLayer(name, (), layer, inputs)
            return self._element_layer(name, key, expr, custom)
        except SymderiveError as exc:
            raise locate(exc, expr) from None


    def _element_layer(self, name, key, expr, match):
        specs = [s.strip() for s in match.group(2).split(",") if s.strip()]
        index_names = [spec.split(":")[0].strip() for spec in specs]
        for idx_name in index_names:
            check_name(idx_name, "index")
        sizes = infer_index_ranges(expr, index_names, self.scope())
        for spec, idx_name in zip(specs, index_names):   # an explicit range: "w[t:K]" (t takes K values)
            if ":" in spec:
                sizes[idx_name] = parse(spec.split(":", 1)[1].strip(), self.scope())
        missing = [n for n in index_names if n not in sizes]
        if missing:
            raise ExpressionError(f"cannot tell the range of index {', '.join(missing)}: use it alone as "
                                  f"a subscript of a declared tensor, e.g. x[{missing[0]}]", line=1, column=1)
        idx = tuple(make_index(n, sizes[n]) for n in index_names)
        value = parse(expr, self.scope().child(**dict(zip(index_names, idx))))
        inputs = [t for t in (self.lookup(n) for n in sorted(_named(value))) if t is not None]
        return ElementLayer(name, idx, value, inputs)


def _named(value):
    """The names a layer's value uses, X among them when it holds (X⁻¹)_ij (named X^{-1})."""
    from .matrix_functions import inverted_names
    return names_in(value) | inverted_names(value)


def _pos(spec, key):
    for k in spec:
        if k == key:
            return position(k)
    return (None, None)


class ElementLayer(Layer):
    """A layer written directly as an index expression, e.g. ``z[i]: Sum(W[i, j]*x[j], (j, 0, n-1))``."""

    kind = "element formula"

    def __init__(self, name, idx, expr, inputs):
        self.idx, self.expr = idx, expr
        super().__init__(name, inputs, tuple(i.upper + 1 for i in idx))

    def free_indices(self, avoid=()):
        """The index names the formula was written with (t, i, ...), unless taken."""
        preferred = tuple(i.name for i in self.idx)
        return indices_for(self.shape, set(avoid) | self.reserved_names(), preferred + tuple(n for n in INDEX_LETTERS
                                                                     if n not in preferred))

    def definition(self, idx, avoid=()):
        # Summation indices that would capture the caller's names are renamed apart first.
        expr = rename_bound_apart(self.expr, taken_by(avoid, idx) | {i.name for i in self.idx})
        return expr.xreplace(dict(zip(self.idx, idx)))
