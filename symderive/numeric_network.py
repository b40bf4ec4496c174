"""Exact forward and backward passes through a small fully connected network with given weights.

The network is a ``network:`` (see ``network``) whose layers are ``Linear(W)`` / ``Linear(W, B)``
with declared weight tensors that carry values, and activations (``Tanh()``, ``Sigmoid()``,
``ReLU()``, ``Identity()``, ``Softmax()``); its ``input`` names a vector with a value and
``loss`` is an expression in the last layer's output and declared tensors:

    network:
      input: x
      convention: bias_node        # or pytorch (default): Linear(W, B) computes W x + B
      layers:
        - s1: Linear(W1)
        - x1: Tanh()
      loss: {e: "(x1[1] - y)**2"}

Every value is exact (decimals in the file are rationals, tanh(7/10) stays tanh(7/10));
decimals are printed next to them. ``convention: bias_node`` is the one of *Learning From
Data*: each Linear layer's input gets a constant 1 in front, its weight matrix has the
biases as its first row and one column per unit, and it computes s = Wᵀ[1; x].
"""
from dataclasses import dataclass, field

import mpmath
import sympy as sp
from sympy.core.cache import cacheit

from .errors import ExpressionError, ShapeError, SymderiveError
from .expressions import Scope, parse
from .latex import matrix, show, tex_name
from .derivative import derivative
from .indices import make_index
from .layers import MODULES, MissingRule, NumericRule
from .layers.linear import NetLinear
from .network import question_network
from .tensors import Tensor, flat_positions
from .yaml_positions import Located, key_position, locate, position

#: Above this many operations an exact entry is left as computed instead of simplified.
SIMPLIFY_OPS = 60
SIGN_PRECISION = 60


# --------------------------------------------------------------------------------------
# Values


def declared_at(ctx, name):
    """(line, column) of the declaration of tensor ``name`` (the question's, else the file's)."""
    for spec in (ctx.question.spec, ctx.problem.spec):
        tensors = spec.get("tensors")
        if isinstance(tensors, dict) and name in tensors:
            return key_position(tensors, name)
    return ctx.question.line, None


def tensor_value(ctx, tensor):
    """The declared ``value`` of a tensor, exact: a number, or a Matrix (a vector is a column)."""
    if tensor.rank > 2:
        raise ShapeError(f"tensor '{tensor.name}': values in a network: stack are for scalars, vectors and "
                         f"matrices", *declared_at(ctx, tensor.name))
    return tensor_array(ctx, tensor)


def tensor_array(ctx, tensor):
    """The declared ``value`` of a tensor of any rank, exact: a number, a Matrix (a vector is a
    column) or, from rank 3 on, a SymPy array (row-major nested lists, as PyTorch prints them)."""
    where = declared_at(ctx, tensor.name)
    spec = tensor.value_spec
    if spec is None:
        raise ExpressionError(f"tensor '{tensor.name}' has no value: declare it as "
                              f"{tensor.name}: {{shape: [...], value: ...}}", *where)
    if not all(s.is_Integer for s in tensor.shape):
        raise ShapeError(f"tensor '{tensor.name}': a tensor with a value needs numeric sizes", *where)
    scope = ctx.decls.scope()
    shape = tuple(int(s) for s in tensor.shape)

    def entry(v):
        at = position(v) if isinstance(v, Located) else where
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise ExpressionError(f"tensor '{tensor.name}': value entry {v!r} is not a number", *at)
        try:
            value = parse(v, scope)
        except SymderiveError as exc:
            raise (locate(exc, v) if isinstance(v, Located) else exc.located(line=at[0], column=at[1])) \
                from None
        if value.free_symbols or not value.is_number:
            raise ExpressionError(f"tensor '{tensor.name}': value entry {v} must be a number", *at)
        return value

    def nested(v, dims):
        if not dims:
            return entry(v)
        if not isinstance(v, list) or len(v) != dims[0]:
            wanted = "×".join(map(str, shape))
            raise ShapeError(f"tensor '{tensor.name}': the value must have shape {wanted}"
                             + (f" (a list of {shape[0]} lists of {shape[1]} numbers)" if len(shape) == 2
                                else f" (a list of {shape[0]} numbers)" if len(shape) == 1
                                else f" (lists nested {len(shape)} deep)"), *where)
        return [nested(x, dims[1:]) for x in v]

    value = nested(spec, shape)
    if not shape:
        return value
    if len(shape) > 2:
        return sp.ImmutableDenseNDimArray(value, shape)
    return sp.Matrix(value) if len(shape) == 2 else sp.Matrix(len(value), 1, value)


def option_at(ctx, key):
    """(line, column) of a question option: of its value when that is text, else of its key."""
    value = ctx.option(key)
    return position(value) if isinstance(value, Located) else key_position(ctx.question.spec, key)


def integer_option(ctx, key, default, low, high):
    value = ctx.option(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ExpressionError(f"'{key}' must be a whole number from {low} to {high}", *option_at(ctx, key))
    return value


def number_option(ctx, key, default=None):
    """A numeric option (``0.02``, ``"1/50"``), exact."""
    text = ctx.option(key, default) if default is not None else ctx.require(key)
    try:
        value = parse(text, ctx.decls.scope())
    except SymderiveError as exc:
        raise (locate(exc, text) if isinstance(text, Located) else
               exc.located(line=option_at(ctx, key)[0], column=option_at(ctx, key)[1])) from None
    if not value.is_number:
        raise ExpressionError(f"'{key}' must be a number", *option_at(ctx, key))
    return value


def digits_option(ctx, default=4):
    """The question's ``digits``: significant digits of the decimals shown next to exact values."""
    return integer_option(ctx, "digits", default, 1, 50)


def tidy(expr):
    """A short exact form of a number: the shortest of the value as computed, its rational-function
    form (``cancel``, which collects e.g. q₁ − p₁ from the softmax Jacobian) and its expansion.
    (``simplify`` would try trigonometric rewrites of nested tanh, which take seconds.)

    Memoized (a pure function of the number): solving the shipped problems tidied 547 numbers, 129
    distinct (a layer's gradient entries repeat, and each graph pass tidies them again); 1.03 s of
    CPU in all, 0.75 s with the memo."""
    return _tidy(sp.sympify(expr))


@cacheit
def _tidy(expr):
    if expr.is_Rational or sp.count_ops(expr) > SIMPLIFY_OPS:
        return expr
    candidates = [expr, sp.factor(expr), sp.cancel(expr), sp.expand(expr)]
    return min(candidates, key=sp.count_ops)      # the first of the shortest: as computed, if it is


def sign(expr, what):
    """−1, 0 or 1 for an exact number (decided exactly, or numerically at high precision)."""
    expr = sp.sympify(expr)
    if expr.is_zero:
        return 0
    if expr.is_positive:
        return 1
    if expr.is_negative:
        return -1
    value = sp.N(expr, SIGN_PRECISION)
    if abs(value) > sp.Float(10) ** (-SIGN_PRECISION // 2):
        return 1 if value > 0 else -1
    if sp.simplify(expr) == 0:
        return 0
    raise ExpressionError(f"cannot decide the sign of {what} = {expr}")


def expand_definitions(value, definitions):
    """Replace abbreviations (τ₁ = tanh(7/10), ...) by what they stand for, latest first."""
    for symbol, meaning in reversed(definitions):
        value = value.xreplace({symbol: meaning})
    return value


def decimal(value, digits, definitions=()):
    """The value with ``digits`` significant digits (integers stay as they are)."""
    if isinstance(value, sp.MatrixBase):
        return value.applyfunc(lambda v: decimal(v, digits, definitions))
    value = expand_definitions(sp.sympify(value), definitions)
    return value if value.is_Integer else sp.N(value, digits)


def approx_latex(value, digits, definitions=()):
    """The decimal value in LaTeX with exactly ``digits`` significant digits (0.6590, 3.282 · 10^{-7});
    integers as they are."""
    if isinstance(value, sp.MatrixBase):
        rows = [" & ".join(approx_latex(value[r, c], digits, definitions) for c in range(value.cols))
                for r in range(value.rows)]
        return r"\begin{bmatrix}" + r" \\ ".join(rows) + r"\end{bmatrix}"
    value = expand_definitions(sp.sympify(value), definitions)
    if value.is_Integer:
        return sp.latex(value)
    number = sp.N(value, digits + 10)
    if not number.is_real:
        return sp.latex(sp.N(value, digits))
    with mpmath.workdps(digits + 10):
        text = mpmath.nstr(mpmath.mpf(number._mpf_), digits, strip_zeros=False)
    mantissa, _, exponent = text.partition("e")
    return mantissa.rstrip(".") + (rf" \cdot 10^{{{int(exponent)}}}" if exponent else "")


def exact_and_decimal(value, digits, definitions=()):
    """'exact ≈ decimal' in LaTeX (only the exact value when every entry is an integer)."""
    exact = matrix(value) if isinstance(value, sp.MatrixBase) else sp.latex(value)
    entries = list(value) if isinstance(value, sp.MatrixBase) else [value]
    if all(sp.sympify(v).is_Integer for v in entries):
        return exact
    return rf"{exact} \approx {approx_latex(value, digits, definitions)}"


# --------------------------------------------------------------------------------------
# Passes


@dataclass
class Pass:
    """The result of the forward and backward passes."""
    values: dict = field(default_factory=dict)        # name -> exact value of each vector
    loss: object = None
    grads: dict = field(default_factory=dict)         # layer name -> ∂E/∂(its output)
    param_grads: dict = field(default_factory=dict)   # tensor name -> ∂E/∂tensor (shaped like it)
    definitions: list = field(default_factory=list)   # (τ_k, what it stands for), in order
    shown_values: dict = field(default_factory=dict)  # as the course writes them (bias node 1 first)
    forward_steps: list = field(default_factory=list)  # (latex, why)
    backward_steps: list = field(default_factory=list)
    input_grad: object = None                         # ∂E/∂(the network's input), unless it is data


@dataclass
class BackwardStep:
    """What a layer's backward rule gets: its input (name, value), its output y, ∂E/∂y, and the LaTeX
    of ∂E/∂y (``d_out``), of ∂E/∂input (``d_in``, with its δ label in ``target``)."""
    name_in: str
    x_in: object
    y: object
    grad: object
    result: Pass
    d_out: str
    d_in: str
    target: str
    first: bool

    def record(self, latex, why):
        self.result.backward_steps.append((latex, why))


class NumericNetwork:
    """Exact forward and backward passes; each layer's step is its kind's ``NumericRule``
    (``symderive/layers/``), which gets this object for the helpers below (``tidy``, ``sign``,
    ``shown``, ``full``, ``abbreviate``)."""
    tidy = staticmethod(tidy)
    sign = staticmethod(sign)

    def __init__(self, ctx, key="network", forward_only=False):
        self.ctx, self.forward_only = ctx, forward_only
        self.net = question_network(ctx, key, numeric=True)
        spec = self.net.spec
        if self.net.input_tensor is None:
            raise ExpressionError("a numeric network needs 'input': the name of a vector with a value",
                                  *key_position(spec, "input") if "input" in spec else
                                  key_position(ctx.question.spec, key))
        self.bias_node = self.net.convention == "bias_node"
        self.input = self.net.input_tensor
        self.x0 = tensor_value(ctx, self.input)
        if not isinstance(self.x0, sp.MatrixBase):
            raise ShapeError(f"input '{self.input.name}' must be a vector, or a batch: a matrix with one sample "
                             f"per row (N × in, as PyTorch)", *declared_at(ctx, self.input.name))
        if self.input.rank == 2 and not forward_only:
            raise ShapeError(f"input '{self.input.name}' is a batch (one sample per row): a backward pass through "
                             f"a network: stack takes one vector; for a batch write the layers under layers: and "
                             f"ask with of: (see docs/problem-format.md)", *declared_at(ctx, self.input.name))
        # a batch: one sample per row (N × in); each is passed through on its own
        self.batch = [self.x0.row(r).T for r in range(self.x0.rows)] if self.input.rank == 2 else [self.x0]
        taken = {self.input.name}
        for layer in self.net.layers:
            if isinstance(layer, NetLinear):
                if layer.weight is None:
                    raise layer.error("a numeric pass needs the weights: Linear(W) or Linear(W, B) with "
                                      "declared tensors that have values", ExpressionError)
            elif not self.has_rule(layer):
                raise layer.error(f"{layer.describe()} is not supported in a numeric pass (Linear and "
                                  f"{', '.join(self.supported())} are)", ExpressionError)
            if layer.name in taken or ctx.decls.lookup(layer.name) is not None:
                raise layer.error(f"the name '{layer.name}' is already used; name each layer's output "
                                  f"differently from the tensors", ExpressionError)
            taken.add(layer.name)
        self.weights = {}       # every declared tensor a layer reads (weights, biases, masks), by name
        for layer in self.net.layers:
            for tensor in layer.value_tensors():
                if tensor.name not in self.weights:
                    value = tensor_value(ctx, tensor)
                    flat = isinstance(value, sp.MatrixBase) and tensor is not getattr(layer, "weight", None)
                    self.weights[tensor.name] = value.reshape(value.rows * value.cols, 1) if flat else value
        if forward_only:
            if "loss" in spec:
                raise ExpressionError("ask 'forward' computes the outputs only: leave 'loss' out, or ask "
                                      "forward_backward", *key_position(spec, "loss"))
            self.loss_name = None
            return
        self.loss_name, self.loss_raw, self.loss_text = self._loss()
        self.loss_expr = self._substitute(self.loss_raw, self.loss_text)

    def has_rule(self, layer):
        try:
            return self.rule(layer) is not None
        except MissingRule:
            return False

    @staticmethod
    def supported():
        """The activations a numeric pass computes: those with a rule or an index formula."""
        return sorted(name for name, kind in MODULES.items() if name != "Linear" and (
            kind.numeric is not None or (kind.formula is not None and kind.activation)))

    def linear_layers(self):
        return [layer for layer in self.net.layers if isinstance(layer, NetLinear)]

    def delta_label(self, layer):
        """δ^{(l)} for the l-th Linear layer in the bias-node convention, else None."""
        if not (self.bias_node and isinstance(layer, NetLinear)):
            return None
        return rf"\delta^{{({self.linear_layers().index(layer) + 1})}}"

    # The loss ----------------------------------------------------------------------------
    def _loss(self):
        spec = self.net.spec.get("loss")
        where = key_position(self.net.spec, "loss")
        if spec is None:
            raise ExpressionError("a numeric network needs a 'loss', e.g. loss: {e: \"(x3[1] - y)**2\"}",
                                  *key_position(self.ctx.question.spec, "network"))
        if isinstance(spec, dict):
            if len(spec) != 1:
                raise ExpressionError("'loss' is one 'name: expression'", *where)
            (name, text), = spec.items()
            if not isinstance(name, str) or not name.isidentifier():
                raise ExpressionError("the loss's name must be a name such as E", *where)
        elif isinstance(spec, str):
            name, text = "E", spec
        else:
            raise ExpressionError("'loss' is an expression, or one 'name: expression'", *where)
        last = self.net.layers[-1]
        size = self.output_size(last)
        output = Tensor(last.name, (size,))
        scope = self.ctx.decls.scope()
        scope = Scope(scope.sizes, {last.name: output}, {}, scope.resolve, scope.base)
        if not isinstance(text, str):
            raise ExpressionError("the loss must be an expression string", *where)
        try:
            expr = parse(text, scope)
        except SymderiveError as exc:
            raise locate(exc, text) from None
        if expr.has(sp.Sum):   # a sum over the entries (all sizes are numbers here): written out
            expr = expr.doit()
            if expr.has(sp.Sum):
                raise ExpressionError("the loss's sums need numeric limits", *position(text))
        outputs = {layer.name for layer in self.net.layers[:-1]}
        used = {str(e.base.label) for e in expr.atoms(sp.Indexed)} | {str(s) for s in expr.free_symbols}
        if used & outputs:
            raise ExpressionError(f"the loss may use the network's output '{last.name}' and declared tensors, "
                                  f"not '{sorted(used & outputs)[0]}'", *position(text))
        self.output = output
        return str(name), expr, text

    def _substitute(self, expr, text):
        """Put the values of declared tensors into the loss; the output's entries stay symbols."""
        values = {}
        for atom in expr.atoms(sp.Indexed) | {s for s in expr.free_symbols if isinstance(s, sp.Symbol)}:
            label = str(atom.base.label) if isinstance(atom, sp.Indexed) else str(atom)
            if label == self.output.name:
                continue
            tensor = self.ctx.decls.lookup(label)
            if tensor is None or tensor.is_layer:
                raise ExpressionError(f"the loss uses '{label}', which has no value", *position(text))
            value = tensor_value(self.ctx, tensor)
            if isinstance(atom, sp.Indexed):
                index = tuple(int(i) for i in atom.indices)
                values[atom] = value[index[0], index[1] if len(index) > 1 else 0]
            else:
                values[atom] = value
        return expr.xreplace(values)

    def output_size(self, layer):
        size = self.x0.rows
        for item in self.net.layers:
            size = item.flat_size(size)
            if item is layer:
                break
        return size

    # Forward -----------------------------------------------------------------------------
    def with_one(self, x):
        return sp.Matrix([[1]] + [[v] for v in x])

    def shown_input(self, x, layer_index):
        """The vector as the course writes it: with its leading 1 when the next layer is Linear."""
        following = self.net.layers[layer_index + 1] if layer_index + 1 < len(self.net.layers) else None
        return self.with_one(x) if self.bias_node and isinstance(following, NetLinear) else x

    def shown(self, value):
        """Exact (with abbreviations) ≈ decimal, in LaTeX."""
        return exact_and_decimal(value, self.digits, self.result.definitions)

    def full(self, value):
        """The exact value with every abbreviation written out (for answers and signs)."""
        if isinstance(value, sp.MatrixBase):
            return value.applyfunc(self.full)
        return expand_definitions(sp.sympify(value), self.result.definitions)

    def abbreviate(self, value):
        """A new abbreviation τ_k for an activation's value that is not a plain rational."""
        if value.is_Rational:
            return value
        symbol = sp.Symbol(f"tau_{len(self.result.definitions) + 1}", real=True)
        self.result.definitions.append((symbol, value))
        return symbol

    def run_forward(self, digits):
        """The forward pass only, sample by sample for a batch: (Pass of the last sample with every
        step, {layer name: N × out matrix} for a batch or the output vector for one sample)."""
        outputs, steps, definitions = {}, [], []
        for n, x in enumerate(self.batch):
            self.x0 = x
            done = self.run(digits, definitions=definitions)
            for latex, why in done.forward_steps:
                steps.append((latex, why if len(self.batch) == 1 else f"sample {n + self.ctx.base}: {why}"))
            definitions = done.definitions
            for name, value in done.shown_values.items():
                outputs.setdefault(name, []).append(value)
        done.forward_steps = steps
        batch = self.input.rank == 2
        joined = {name: sp.Matrix.vstack(*[v.T for v in vs]) if batch else vs[0] for name, vs in outputs.items()}
        return done, joined

    def run(self, digits, definitions=None):
        self.digits = digits
        self.result = result = Pass()
        if definitions is not None:
            result.definitions = list(definitions)
        x, name = self.x0, self.input.name
        result.values[name] = x
        shown = self.shown_input(x, -1)
        if shown is x:
            result.forward_steps.append((rf"{tex_name(name)} = {matrix(x)}", "the input"))
        else:
            result.forward_steps.append((rf"\begin{{bmatrix}} 1 \\ {tex_name(name)} \end{{bmatrix}} = {matrix(shown)}",
                                         "the input, with the bias node 1 in front"))
        result.shown_values[name] = shown
        inputs = []
        for i, layer in enumerate(self.net.layers):
            inputs.append((name, x))
            known = len(result.definitions)
            x, formula, why = self.forward(layer, name, x)
            name = layer.name
            if len(result.definitions) > known:
                result.forward_steps.append((r",\quad ".join(
                    rf"{sp.latex(symbol)} = {sp.latex(meaning)}" for symbol, meaning in result.definitions[known:]),
                    "abbreviations for the exact values (each $\\tau$ stands for the value written after it)"))
            result.values[name] = x
            shown = self.shown_input(x, i)
            if shown is not x:
                formula = rf"\begin{{bmatrix}} 1 \\ {formula} \end{{bmatrix}}"
                why += "; the bias node 1 goes in front for the next layer"
            result.forward_steps.append((rf"{tex_name(name)} = {formula} = {self.shown(shown)}", why))
            result.shown_values[name] = shown
        if self.forward_only:
            return result
        out = {self.output.base[i]: x[i] for i in range(x.rows)}
        symbols = {e: sp.Dummy(f"{self.output.name}{i}") for i, e in enumerate(out)}
        loss_sym = self.loss_expr.xreplace(symbols)
        result.loss = tidy(loss_sym.xreplace({symbols[e]: v for e, v in out.items()}))
        loss_tex = tex_name(self.loss_name)
        result.forward_steps.append(
            (rf"{loss_tex} = {show(self.loss_raw, self.ctx.base)} = {self.shown(result.loss)}",
             "the loss at the output"))
        # Backward: ∂E/∂output from the loss, then layer by layer.
        grad = sp.Matrix([tidy(sp.diff(loss_sym, symbols[self.output.base[i]]).xreplace(
            {symbols[e]: v for e, v in out.items()})) for i in range(x.rows)])
        formula = [show(sp.diff(self.loss_raw, self.output.base[i]), self.ctx.base) for i in range(x.rows)]
        label = self.delta_label(self.net.layers[-1])
        result.backward_steps.append(
            ((f"{label} = " if label else "")
             + rf"\frac{{\partial {loss_tex}}}{{\partial {tex_name(self.output.name)}}} = "
             + r"\begin{bmatrix}" + r" \\ ".join(formula) + r"\end{bmatrix} = "
             + self.shown(grad), "differentiate the loss by each output entry"))
        for layer, (name_in, x_in) in zip(reversed(self.net.layers), reversed(inputs)):
            result.grads[layer.name] = grad
            grad = self.backward(layer, name_in, x_in, result.values[layer.name], grad, result)
            if grad is None:         # the layer's input is data (an embedding's indices)
                break
        if grad is not None:         # the gradient by the input too (CS231n's dx)
            result.input_grad = grad
        return result

    def forward(self, layer, name_in, x):
        """(exact output, LaTeX of how it is computed, why) for one layer."""
        return self.rule(layer).forward(self, layer, name_in, x)

    def backward(self, layer, name_in, x_in, y, grad, result):
        """Record ∂E/∂(parameters) of ``layer`` and return ∂E/∂(its input) (None when not needed)."""
        loss = tex_name(self.loss_name)
        d_in = rf"\frac{{\partial {loss}}}{{\partial {tex_name(name_in)}}}"
        label = self.delta_label_of_input(layer)
        step = BackwardStep(name_in, x_in, y, grad, result, d_out=rf"\frac{{\partial {loss}}}{{\partial "
                            rf"{tex_name(layer.name)}}}", d_in=d_in, target=f"{label} = {d_in}" if label else d_in,
                            first=False)
        return self.rule(layer).backward(self, layer, step)

    @staticmethod
    def rule(layer):
        """The kind's own numeric rule; else, for an activation with an index formula, the rule
        that evaluates and differentiates that formula."""
        kind = MODULES.get(layer.kind)
        if kind is not None and kind.numeric is not None:
            return kind.numeric
        if kind is not None and kind.formula is not None and kind.activation:
            return FROM_FORMULA
        raise MissingRule(layer.kind, "a numeric pass")

    def delta_label_of_input(self, layer):
        """δ^{(l)} when the layer's input is the output of the l-th Linear layer (bias-node convention)."""
        index = self.net.layers.index(layer)
        return self.delta_label(self.net.layers[index - 1]) if index > 0 else None


# --------------------------------------------------------------------------------------
# The default rule: a kind's own index formula, evaluated and differentiated by the engine


def _formula_layer(layer, name_in, size):
    """The stack layer as its kind's index formula over a symbolic input vector named ``name_in``."""
    symbolic = Tensor(name_in, (size,))
    return MODULES[layer.kind].formula(layer.name, symbolic, **layer.options), symbolic


def formula_forward(net, layer, name_in, x):
    """The output, exact: the kind's index formula at the input's exact values."""
    formula, symbolic = _formula_layer(layer, name_in, x.rows)
    values = {symbolic.base[i]: net.full(v) for i, v in enumerate(x)}
    named = {net.full(v): v for v in x}          # an output equal to an input entry keeps its name
    entries = []
    for position_ in flat_positions(formula.shape):
        value = tidy(formula.element(position_).doit().xreplace(values).doit())   # sums written out first
        entries.append(named[value] if value in named else net.abbreviate(value))
    i = make_index("i", x.rows)
    definition = show(formula.element((i,)), net.ctx.base)
    return (sp.Matrix(entries), rf"\operatorname{{{layer.kind}}}({tex_name(name_in)})",
            f"{layer.name}: {layer.kind} entry by entry, ${tex_name(layer.name)}_i = {definition}$ "
            f"(its index formula)")


def formula_backward(net, layer, step):
    """∂E/∂input = Jᵀ ∂E/∂output, with J the Jacobian derivative() takes of the kind's formula."""
    formula, symbolic = _formula_layer(layer, step.name_in, step.x_in.rows)
    values = {symbolic.base[i]: net.full(v) for i, v in enumerate(step.x_in)}
    jacobian = derivative(formula, symbolic).array().xreplace(values).applyfunc(lambda e: tidy(e.doit()))
    jacobian = _named_entries(net, jacobian, layer.name, step.name_in)
    below = (jacobian.T * step.grad).applyfunc(tidy)
    step.record(rf"{step.target} = J^{{T}} {step.d_out} = {net.shown(jacobian.T)} {matrix(step.grad)} = "
                rf"{net.shown(below)}",
                f"J = ∂{layer.name}/∂{step.name_in}: the derivative of {layer.kind}'s index formula, "
                f"at the input's values")
    return below


def _named_entries(net, jacobian, name_out, name_in):
    r"""The Jacobian with each entry that is not a rational number written as a τ, like the forward
    values: GELU's derivative at s = −1/2 is a sum of tanh terms far wider than a line, and the
    products with ∂E/∂output, then with the layer input, would repeat it in every entry. A value
    already abbreviated keeps its τ; the new ones are recorded as a step with the entry they name."""
    known = {meaning: symbol for symbol, meaning in net.result.definitions}
    start, base = len(net.result.definitions), net.ctx.base
    labels = {}
    named = sp.zeros(jacobian.rows, jacobian.cols)
    for r in range(jacobian.rows):
        for c in range(jacobian.cols):
            value = jacobian[r, c]
            if value.is_Rational or value in known:
                named[r, c] = known.get(value, value)
                continue
            named[r, c] = known[value] = net.abbreviate(value)
            labels[named[r, c]] = (rf"\frac{{\partial {tex_name(name_out)}_{{{r + base}}}}}"
                                   rf"{{\partial {tex_name(name_in)}_{{{c + base}}}}}")
    new = net.result.definitions[start:]
    if new:
        net.result.backward_steps.append((r",\quad ".join(
            rf"{sp.latex(symbol)} = {labels[symbol]} = {sp.latex(meaning)}" for symbol, meaning in new),
            f"abbreviations for the entries of J = ∂{name_out}/∂{name_in} that are not rational (each $\\tau$ "
            f"stands for the value written after it)"))
    return named


FROM_FORMULA = NumericRule(formula_forward, formula_backward)
