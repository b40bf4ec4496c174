"""Is a student's answer equivalent to the engine's? Symbolic first, then numbers.

An answer is split into parts (``\\\\``, ``;``, ``\\quad``); each part is a chain of
sides joined by ``=`` or ``\\approx``, of which a first side naming the question's own
left side (``\\frac{\\partial l}{\\partial W_{p,q,r}}``, ``f_{i,j}``, ``F``) is stripped and
read for the answer's index letters. Every remaining side must equal its target:

* an element formula (or a matrix expression, lowered to index form): the simplified
  difference is zero under the problem's constraints ("symbolic"), else random seeded
  points over the declared sizes, index ranges and tensor values ("numeric at N points");
* a dimension: sizes compared one by one ("shape");
* an explicit matrix: entry by entry, the first differing entry as evidence ("entries");
* a number: exact, or within the question's tolerance ("value").
"""
import itertools
import math
import re
import time
import dataclasses
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import sympy as sp

from ..display_names import reading_of, to_declared
from ..evaluate import CannotEvaluate, evaluate
from ..indices import for_display, substitute
from ..layers import expand_layers
from ..simplify import alpha_normal, apply_constraints, combine_sums
from ..tensors import zero_outside
from . import meaning as M
from . import reader as R
from .names import split_name
from .random_values import NUMERIC_RTOL, draw_values, numeric_entries, rewrite, tensors_in
from .targets import unfold
from .tolerance import DEFAULT_RELATIVE
from .verdict import UNKNOWN_NAME

MAX_INDEX_POINTS = 48


@dataclass
class Outcome:
    verdict: str                 # correct, incorrect, unparseable
    decided_by: str = ""
    evidence: str = ""
    position: int = None
    flags: tuple = ()            # remarks that do not change the verdict: "wrong working"


class Incorrect(Exception):
    def __init__(self, decided_by, evidence):
        super().__init__(evidence)
        self.decided_by, self.evidence = decided_by, evidence


# The whole answer -----------------------------------------------------------------

def check_latex(info, latex, deadline, seed=0, part=None):
    """The outcome of one answer to one question (``info``: targets.QuestionInfo); ``part``: the
    target every side is compared with (an answer to one part, ``csce636-q2:dW1``)."""
    lead = len(latex) - len(latex.lstrip())
    latex = _differentials(latex, info)              # \mathrm{d}X -> the tensor dX of a differential's claim
    scope = info.context_args.get("scope")           # the question's notation: W_x, h[t-1] -> Wx, hp
    written, (latex, back) = latex, to_declared(latex, reading_of(scope) if scope is not None else {})
    try:
        parts = R.read(latex)
    except R.ReadError as exc:
        return _located("unparseable", "parse", written, _back(back, exc.pos), exc.message, lead)
    _, offset = R.strip_math(latex)
    if scope is not None:
        parts = [dataclasses.replace(p, items=[call_form(i, scope) for i in p.items]) for p in parts]
    checker = _Checker(info, latex, deadline, seed, part)
    try:
        return checker.run(parts)
    except M.ShapeMismatch as exc:
        return _located("incorrect", "shape", written, _back(back, _shift(exc.pos, offset)), exc.message, lead)
    except M.UnknownName as exc:
        return _located(UNKNOWN_NAME, "names", written, _back(back, _shift(exc.pos, offset)), exc.message, lead)
    except M.MeaningError as exc:
        return _located("unparseable", "parse", written, _back(back, _shift(exc.pos, offset)), exc.message, lead)
    except Incorrect as exc:
        return Outcome("incorrect", exc.decided_by, exc.evidence)


def call_form(node, scope, depth=0):
    """``node`` with the statement's call form of a layer, f_W(x) (NYU DL: the convolution f with weight W
    on input x), written as the layer's name f: ``f_W(x)[1][j]`` is ``f[1][j]``. Only when f is a declared
    layer, W and x are what it reads, and f_W names nothing else."""
    if depth > 100 or not isinstance(node, R.Node):
        return node
    if isinstance(node, R.Bin) and node.op == "implicit" and isinstance(node.left, R.Name) \
            and isinstance(node.right, R.Group) and node.right.paren == "(" and isinstance(node.right.body, R.Name):
        f, arg = node.left, node.right.body
        name = "".join(f.letters)
        layer = _lookup(scope, name)
        if layer is not None and getattr(layer, "is_layer", False) and len(f.scripts) == 1 and f.scripts[0][0] == "_" \
                and isinstance(f.scripts[0][1], R.Name) and not arg.scripts:
            sub = "".join(f.scripts[0][1].letters)
            reads = set(layer.leaves()) | set(layer.layer_inputs())
            if sub in reads and "".join(arg.letters) in reads and _lookup(scope, name + sub) is None \
                    and _lookup(scope, f"{name}_{sub}") is None:
                return R.Name(f.pos, list(f.letters), list(node.right.scripts))
    changes = {}
    for field in dataclasses.fields(node):
        value = getattr(node, field.name)
        if isinstance(value, R.Node):
            new = call_form(value, scope, depth + 1)
        elif isinstance(value, list):
            new = [call_form(v, scope, depth + 1) if isinstance(v, R.Node) else v for v in value]
        else:
            continue
        changes[field.name] = new
    return dataclasses.replace(node, **changes) if changes else node


def _lookup(scope, name):
    try:
        return scope.lookup(name)
    except Exception:
        return None


def _back(back, pos):
    """A position in the answer as read (display names replaced) as a position in it as written."""
    return None if pos is None else back(pos)


def _shift(pos, offset):
    return None if pos is None else pos + offset


def _located(verdict, decided_by, latex, pos, message, lead):
    """An outcome whose evidence names the column (1-based, in the answer as written)."""
    if pos is None:
        return Outcome(verdict, decided_by, message)
    text = latex.strip()
    snippet = text[max(0, pos - 10):pos + 10].replace("\n", " ")
    evidence = f"column {pos + lead + 1}: {message}" + (f" (near “{snippet}”)" if snippet else "")
    return Outcome(verdict, decided_by, evidence, pos + lead)


#: the kinds of result a side of each kind can be compared with, the likeliest first
_COMPATIBLE = {
    "shape": ("shape", "tuple"), "tuple": ("tuple", "shape"), "entries": ("entries", "element"),
    "word": ("word",), "expr": ("element", "entries", "value"),
    "number": ("value", "tuple", "element", "entries"),
}


class _Checker:
    def __init__(self, info, latex, deadline, seed, part=None):
        self.info, self.latex, self.deadline, self.seed = info, latex, deadline, seed
        self.part = part
        self.used = set()
        self.decided = []
        self.notes = []
        self.flags = []
        self.last_component = None
        self.last_label = None
        self.side_labels = {}          # id(side) -> its label, when a note ("without bias") completes it
        self.next_component = {}       # id(tuple target) -> the entry the next unlabelled number gives
        self.chosen_component = None   # the entry of a list that choose() found by its printed name
        self.side_component = {}       # id(side) -> that entry

    def run(self, parts):
        checked = 0
        for part in _listed_names(_shared_dimensions(parts, self.info.targets), self.info):
            if _is_dots(part) and len(parts) > 1:
                continue                        # a^{<1>} = 1/2, a^{<2>} = …, \dots: the list trails off
            sides = self.sides(part)
            working = [s for s in sides if s[3] == "working"]
            for side, target, lhs, role in sides:
                if role == "working":
                    continue
                self.last_component = None
                try:
                    self.compare(side, target, None, lhs, component=self.side_component.get(id(side)),
                                 number=role == "result")
                except Incorrect as exc:
                    if working and all(self._working_holds(s) for s in working):
                        raise Incorrect(exc.decided_by, exc.evidence + "; the working before it is right (a slip "
                                                                       "in the last step?)") from None
                    raise
                checked += 1
            for k, item in enumerate(working):
                self.check_working(item, k + 1)
        if not checked:
            raise M.MeaningError("the answer has nothing to compare (only a left side?)", 0)
        how = "; ".join(dict.fromkeys(self.decided))
        notes = list(dict.fromkeys(self.notes)) + [f"wrong working: {f}" for f in dict.fromkeys(self.flags)]
        return Outcome("correct", how, "; ".join(notes), flags=("wrong working",) if self.flags else ())

    # Working: the sides before a final number -----------------------------------------
    def _quietly(self, item):
        """Compare a side of working with the final side's quantity, leaving no trace but the exception."""
        side, target, lhs, _ = item
        saved = (list(self.decided), list(self.notes), dict(self.next_component))
        try:
            self.compare(side, target, None, lhs, component=self.last_component, number=True)
        finally:
            self.decided, self.notes, self.next_component = saved

    def _working_holds(self, item):
        try:
            self._quietly(item)
            return True
        except (Incorrect, M.MeaningError):
            return False

    def check_working(self, item, k):
        """A side of working (``2 \\times (9 \\cdot 1024 + 32)`` in ``... = 18496``) must equal the
        quantity too; when it does not, the answer is flagged, and the verdict stays the final value's."""
        try:
            self._quietly(item)
        except Incorrect as exc:
            self.flags.append(f"step {k} ({exc.evidence})")
        except M.MeaningError as exc:          # "2432 + \\dots": not wrong, just not checkable
            self.notes.append(f"working step {k} not checked: {exc.message}")

    # Parts and targets -----------------------------------------------------------
    def sides(self, part):
        items, ops = list(part.items), list(part.ops)
        if ops and ops[0] == "in":
            if _is_range_statement(part):
                return []
            lhs, rest = items[0], [_strip_notes(side, self.info)[0] for side in items[1:]]
            if not isinstance(rest[0], R.Reals):
                raise M.MeaningError("after \\in, write the dimension as \\mathbb{R}^{a \\times b}", rest[0].pos)
            whole = _block_whole(lhs, self.info)
            if whole is not None:                  # A \in \mathbb{R}^{3 \times 35} before A's blocks
                return [(rest[0], whole, lhs, "final")]
            target = self.choose(_label(lhs), "shape", part)
            return [(rest[0], target, lhs, "final")]
        lhs = None
        head_notes = []
        if len(items) >= 2 and isinstance(items[0], R.Bin) and items[0].op == "implicit" \
                and isinstance(items[0].left, R.Word) and not items[0].left.scripts \
                and any(_same_label(items[0].left.text, t.label) for t in self.info.targets):
            # \text{averaged over } N: N: a result's label in words, the prose after it part of the label
            items = [items[0].left] + items[1:]
        if len(items) == 1 and isinstance(items[0], R.Bin) and items[0].op == "implicit" \
                and isinstance(items[0].left, R.Word) and items[0].left.text.endswith(":") \
                and not items[0].left.scripts:
            # \text{zero padding on each side: } 2: a label in prose ending in a colon, then the value
            named = _label_in_prose(items[0].left.text[:-1], self.info.targets)
            if named is not None:
                items = [R.Word(items[0].left.pos, named.label, []), items[0].right]
        if len(items) >= 2 and not _is_lhs(items[0]):
            # \frac{\text{ordinary}}{\text{separable}}\ \text{(with bias)}: a left side with a note after it
            head, words = _strip_notes(items[0], self.info)
            if words and _is_lhs(head):
                items, head_notes = [head] + items[1:], [w for w in words if w != "(…)"]
        if len(items) >= 2 and _is_lhs(items[0]):
            lhs, items = items[0], items[1:]
            # \delta^{(3)} = \frac{\partial e}{\partial s_3} = ...: a second name of the left side
            while len(items) >= 2 and _is_derivative(items[0]):
                items = items[1:]
            # \text{pool}:\ r = 4 \times 4: after a label in words, a name the question does not declare
            # is the quantity's symbol, a second name of the left side
            if len(items) >= 2 and isinstance(lhs, R.Word) and isinstance(items[0], R.Name) \
                    and not _declared_name(items[0], self.info):
                items = items[1:]
        if len(items) > 1 and any(op in ("<=", ">=", "<", ">", "!=", "mid") for op in ops):
            raise M.MeaningError("an inequality is not an answer", part.pos)
        label = _label(lhs) if lhs is not None else None
        stripped = [_strip_notes(side, self.info) for side in items]
        items = [side for side, _ in stripped]
        notes = " ".join(head_notes + [n for _, words in stripped for n in words if n != "(…)"])
        if label:
            self.last_label = label
        if notes and _component_in_label(notes, self.info.targets)[1] is not None:
            # "280 \text{with bias}, 270 \text{without bias}": the note names which count
            label = f"{label or self.last_label or ''} {notes}".strip()
        elif notes and label:                   # "standard: 4718592 \text{multiply--adds per example}"
            longer = f"{label} {notes}"
            if _label_prefix_target(longer, self.info.targets) is not None:
                label = longer
        for side in items:
            self.side_labels[id(side)] = label
        if label and _is_number_node(items[-1]) and not M.times_chain(items[-1]) \
                and not any(t.kind in ("value", "tuple", "element", "entries") for t in self.info.targets) \
                and not any(_same_label(label, t.label) for t in self.info.targets):
            # n = \lfloor (10 - 3)/2 \rfloor + 1 = 4 on the way to a dimension: a step, not the answer.
            self.notes.append(f"not compared: {label} = … (the question asks for "
                              f"{', '.join(dict.fromkeys(t.kind for t in self.info.targets))})")
            return []
        if len(items) > 1 and _is_number_node(items[-1]) and not M.times_chain(items[-1]):
            # Working that ends in a number (2 \times (3 \cdot 3 \cdot 32 \cdot 32 + 32) = 18496): one
            # quantity; the last side is the answer, the sides before it the working.
            target = self.choose(label, "number", items[-1])
            if self.chosen_component is not None:
                self.side_component[id(items[-1])] = self.chosen_component
            return [(side, target, lhs, "working") for side in items[:-1]] + [(items[-1], target, lhs, "result")]
        out = []
        block = _block_named(lhs, self.info) if self.part is None else None
        if block is not None:                   # A^{(2)} = [...]: that block of the matrix A
            return [(side, block, lhs, "final") for side in items]
        row_of = None if self.part is not None or (label and any(_same_label(label, t.label) for t in
                                                                 self.info.targets)) \
            else next((t for t in self.info.targets if t.kind == "entries" and isinstance(t.value, sp.MatrixBase)
                       and _row_named(lhs, t, self.info) is not None), None)
        for side in items:
            kind = _kind(side, self.info)
            # ∂f_{1,2}/∂W = [...]: one slice of the explicit Jacobian, whichever slice came before it
            target = row_of or (_at_values(side, self.info) if not label and kind == "entries" else None)
            if target is None and out and not label and kind == "expr" and out[-1][1].kind == "element":
                target = out[-1][1]            # A = B = C, unlabelled: every side is the one quantity
            if target is None:
                target = self.choose(label, kind, side)
                if self.chosen_component is not None:
                    self.side_component[id(side)] = self.chosen_component
            out.append((side, target, lhs, "final"))
        return out

    def choose(self, label, kind, node):
        """The result a side is compared with: by its left side's label, else the next unused result
        of a compatible kind (a result labelled 'total' first)."""
        self.chosen_component = None
        return self._choose(label, kind, node)

    def _choose(self, label, kind, node):
        targets = self.info.targets
        if self.part is not None:
            return self.part
        if label:
            named = [t for t in targets if _same_label(label, t.label)]
            named = [t for t in named if _same_label(label, t.label, case=True)] or named
            if not named:
                best = _label_prefix_target(label, targets)
                named = [best] if best is not None else []
            if not named:                       # d ≈ 0.2247: the name the sheet gives the result, of this kind
                named = [t for t in targets if _same_label(label, _sheet_label(t), case=True)
                         and t.kind == _COMPATIBLE[kind][0]]
                named = [t for t in named if id(t) not in self.used] or named
            if not named:                       # a^{<2>} = …: the name the sheet gives an entry of a list
                for t in targets:
                    labels = _sheet_labels(t) if t.kind == "tuple" else []
                    hits = [k for k, name in enumerate(labels) if k < len(t.value) and _same_label(label, name,
                                                                                                   case=True)]
                    if len(labels) > 1 and hits:
                        self.chosen_component, named = hits[0], [t]
                        break
            if not named:                       # "conv without bias": the result conv, its second entry
                rest, _ = _component_in_label(label, targets)
                named = [t for t in targets if rest and _same_label(rest, t.label)]
                if not named and rest is not None and not rest.strip():
                    named = [t for t in targets if t.key == "total"]
            if named:
                self.used.add(id(named[0]))
                return named[0]
        if kind == "number":                    # "18496, 18432": the second number is the total's next entry
            for t in targets:
                if t.kind == "tuple" and id(t) in self.used and 0 < self.next_component.get(id(t), 0) < len(t.value):
                    return t
        compatible = _COMPATIBLE[kind]
        ranked = sorted((t for t in targets if t.kind in compatible),
                        key=lambda t: (t.key != "total", compatible.index(t.kind)))
        if kind == "number":
            ranked = [t for t in ranked if not (t.kind == "element" and t.axes)] or ranked
        if kind == "entries" and _numbers_only(node):   # a matrix of numbers: the values at the given data first
            ranked.sort(key=lambda t: not (t.kind == "entries" and all(sp.sympify(e).is_number for e in t.value)))
        for t in ranked:
            if id(t) not in self.used:
                self.used.add(id(t))
                return t
        if ranked:
            return ranked[0]
        if kind == "number":                    # "3" for the dimension of a vector: a one-axis shape
            vectors = [t for t in targets if t.kind == "shape" and _one_axis(t)]
            if vectors:
                self.used.add(id(vectors[0]))
                return vectors[0]
        what = {"shape": "a dimension", "tuple": "a list", "entries": "an explicit matrix", "word": "a word",
                "expr": "an expression", "number": "a number"}[kind]
        asked = ", ".join(dict.fromkeys(t.label or t.kind for t in targets))
        raise Incorrect("kind", f"the answer is {what}, but the question asks for: {asked}")

    # One side --------------------------------------------------------------------
    def compare(self, side, target, ctx, lhs, component=None, number=False):
        """``number``: the side is arithmetic (working ending in a number), never a dimension."""
        ctx = self.info.context()
        mapping = _lhs_mapping(lhs, target, ctx, self.info)
        if target.kind == "shape" or (target.kind == "tuple" and not number
                                      and _kind(side, self.info) in ("shape", "tuple")):
            dims = _dims_of(side, ctx)
            self.decided.append(compare_shape(dims, target, self.info, self.seed))
            return
        if target.kind == "word":
            self.decided.append(compare_word(side, target))
            return
        if target.kind == "entries" and isinstance(side, R.Reals):
            self.decided.append(_compare_matrix_size(_dims_of(side, ctx), target))
            return
        if target.kind == "entries" and isinstance(target.value, sp.NDimArray):
            self.decided.append(self.compare_array(side, target, ctx))
            return
        value = M.resolve(side, ctx)
        if target.kind == "entries":
            target = _row_named(lhs, target, self.info) or target
            try:
                self.decided.append(self.compare_entries(value, target, ctx, side))
            except Incorrect as exc:
                if ", block " not in target.label:
                    raise
                raise Incorrect(exc.decided_by, f"{target.label.split(', ')[-1]}: {exc.evidence}") from None
            return
        if target.kind == "tuple":
            if not value.is_scalar:
                raise Incorrect("shape", "expected a number or a list of numbers")
            label = self.side_labels.get(id(side), _label(lhs))
            self.decided.append(self.compare_component(value.expr, target, ctx, side, label, component))
            return
        if target.kind == "value":
            if not value.is_scalar:
                raise Incorrect("shape", f"the answer is a {_shape_text(value)} matrix, the question asks for "
                                         f"a number")
            self.decided.append(self.compare_value(value.expr, target, ctx, side))
            return
        self.decided.append(self.compare_element(value, target, ctx, mapping))

    # Element formulas ------------------------------------------------------------
    def compare_element(self, value, target, ctx, mapping):
        info = self.info
        axes = list(target.axes)
        base = info.problem.index_base
        fixed, by_name = mapping
        engine = target.value
        if fixed:
            engine = substitute(engine, {idx: sp.Integer(v - base) for idx, v in fixed.items()})
        free_axes = [(g, i) for g, i in axes if i not in fixed]
        if not value.is_scalar:
            student = self.lower_matrix(value, free_axes, target)
            extra = [n for n in ctx.free_order]
            if extra:
                raise Incorrect("symbolic", f"index {extra[0]} is neither a free index of the question nor "
                                            f"summed over")
        else:
            student = value.expr
            names = [n for n in ctx.free_order]
            assign = dict(by_name)
            remaining = [i for _, i in free_axes if i not in assign.values()]
            unassigned = [n for n in names if n not in assign]
            engine_names = {i.name: i for i in remaining}
            if unassigned and all(n in engine_names for n in unassigned):
                for n in unassigned:
                    assign[n] = engine_names[n]
            elif unassigned:
                if len(unassigned) > len(remaining):
                    extra = unassigned[len(remaining):]
                    raise Incorrect("symbolic", f"index {extra[0]} is neither a free index of the question "
                                                f"({', '.join(i.name for _, i in axes) or 'none'}) nor summed "
                                                f"over")
                for n, i in zip(unassigned, remaining):
                    assign[n] = i
                self.notes.append("indices matched by first appearance: " + ", ".join(
                    f"your {n} = {i.name}" for n, i in zip(unassigned, remaining)))
            student = student.xreplace({ctx.free[n]: i + base for n, i in assign.items()})
        student = unfold(student, info.definitions).xreplace(info.values)
        engine = unfold(engine, info.definitions).xreplace(info.values)
        if _symbolic_equal(student, engine, info.constraints, self.deadline):
            return "symbolic"
        # One side may name a layer (H(z_i)) that the other writes out (H(Σ f_k x_{i+k−1})).
        layers = _layers_in(student, info) | _layers_in(engine, info)
        if layers and _symbolic_equal(_expand(student, layers), _expand(engine, layers), info.constraints,
                                      self.deadline):
            return "symbolic"
        points, counter = numeric_equal(student, engine, [i for _, i in free_axes], info, self.seed,
                                        self.deadline)
        if counter is None:
            return _points(points)
        raise Incorrect(_points(points), counter + self._difference(student, engine))

    def _difference(self, student, engine):
        try:
            d = sp.expand(alpha_normal(student) - alpha_normal(engine))
        except Exception:
            return ""
        if d.has(sp.Sum, sp.Piecewise):        # bound-index names would only confuse
            return ""
        text = sp.sstr(for_display(d, self.info.problem.index_base))
        return f"; the simplified difference is {text}" if len(text) <= 160 else ""

    def lower_matrix(self, value, free_axes, target):
        """A matrix-valued answer in the target's index form (ROW, COL → the free indices)."""
        sizes = [i.upper + 1 for _, i in free_axes]
        if M._is_eye(value) and len(sizes) == 2 and M.equal_size(*sizes):
            value = M.Val(value.expr, tuple(sizes))          # I, without its size: the question's
        value = M.as_symbolic(value)
        rows, cols = value.shape
        if len(free_axes) == 1:
            (n,) = sizes
            if M.equal_size(rows, n) and M.equal_size(cols, 1):
                return value.expr.xreplace({ROW_: free_axes[0][1] for ROW_ in [M.ROW]}).xreplace({M.COL: 0})
            if M.equal_size(cols, n) and M.equal_size(rows, 1):
                return value.expr.xreplace({M.COL: free_axes[0][1], M.ROW: 0})
        elif len(free_axes) == 2:
            if M.equal_size(rows, sizes[0]) and M.equal_size(cols, sizes[1]):
                return value.expr.xreplace({M.ROW: free_axes[0][1], M.COL: free_axes[1][1]})
            i, j = free_axes[0][1], free_axes[1][1]
            if M.equal_size(*sizes) and M.equal_size(rows, sizes[0]) and M.equal_size(cols, 1):
                # σ(x)(1 − σ(x)) for the n × n Jacobian of an entrywise function: its diagonal, as courses
                # write an activation's derivative; any entry off the diagonal makes the comparison fail
                return value.expr.xreplace({M.ROW: i, M.COL: 0}) * sp.KroneckerDelta(i, j)
        expected = " × ".join(_show(s, self.info) for s in sizes) or "a number"
        hint = ""
        if len(free_axes) == 2 and M.equal_size(rows, sizes[1]) and M.equal_size(cols, sizes[0]):
            hint = " (its transpose has the right shape)"
        raise Incorrect("shape", f"the answer is {_show(rows, self.info)} × {_show(cols, self.info)}, "
                                 f"the question's is {expected}{hint}")

    # Entries -----------------------------------------------------------------------
    def compare_array(self, side, target, ctx):
        """An array of rank 3 or 4 (C × H × W, or N × C × H × W) written as the sheet prints it: a list of
        its matrices, ``\\left[M_0,\\ M_1\\right]`` (a list of such lists for rank 4), each matrix compared
        entry by entry with its slice; ``M ≈ M'`` is its exact side M. A 1 × H × W (or 1 × 1 × H × W) array may be
        written as its one matrix."""
        expected = target.value
        shape = " × ".join(str(n) for n in expected.shape)
        leaves = _array_leaves(side, expected.rank())
        drop = 0                     # 1 × H × W as its one matrix, 1 × 1 × K × K too (D2L's kernels)
        while leaves is None and drop < expected.rank() - 2 and expected.shape[drop] == 1:
            drop += 1
            leaves = _array_leaves(side, expected.rank() - drop)
            for _ in range(drop if leaves is not None else 0):
                leaves = [leaves]
        if leaves is None and expected.rank() == 3 and isinstance(side, R.Group) \
                and isinstance(side.body, R.MatrixNode):
            # one matrix, the leading axes flattened row-major (as torch's reshape): the rows of a C_out × C_in × K
            # kernel as the sheet prints them, w_{1,1,·}, w_{2,1,·}, w_{1,2,·}, …
            rows = expected.shape[0] * expected.shape[1]
            value = M.resolve(side, self.info.context())
            if not value.is_scalar and tuple(value.shape[-2:]) == (rows, expected.shape[2]):
                flat = sp.Matrix(rows, expected.shape[2], list(sp.flatten(expected.tolist())))
                return self.compare_entries(value, dataclasses.replace(target, value=flat), ctx, side) \
                    + " (the array's leading axes flattened, row-major)"
        if leaves is None:
            raise Incorrect("shape", f"the question's array is {shape}: write it as a list of its matrices, "
                                     f"[M_1, M_2, …], or one matrix of its leading axes flattened row-major")

        def walk(nodes, array, at):
            if array.rank() == 2:
                sub = dataclasses.replace(target, value=array.tomatrix())
                try:
                    return self.compare_entries(M.resolve(nodes, self.info.context()), sub, ctx, nodes)
                except Incorrect as exc:
                    where = ", ".join(str(k + self.info.problem.index_base) for k in at)
                    raise Incorrect(exc.decided_by, f"matrix [{where}]: {exc.evidence}") from None
            if len(nodes) != array.shape[0]:
                raise Incorrect("shape", f"the answer lists {len(nodes)} matrices where the question's {shape} "
                                         f"array has {array.shape[0]}")
            for k, node in enumerate(nodes):
                walk(node, array[k], at + (k,))
            return "entries"
        return walk(leaves, expected, ())

    def compare_entries(self, value, target, ctx, node):
        info = self.info
        base = info.problem.index_base
        expected = target.value
        if value.is_scalar:
            if expected.shape == (1, 1):
                return self.compare_value(value.expr, _target_value(expected[0, 0], target), ctx, node)
            raise Incorrect("shape", f"the answer is one number, the question's is a "
                                     f"{expected.rows} × {expected.cols} matrix")
        if not M.is_literal(value):
            # A matrix expression against explicit entries: evaluate it at each entry.
            value = M.as_symbolic(value)
            rows, cols = value.shape
            if not (rows.is_Integer and cols.is_Integer):
                raise Incorrect("shape", "the answer's shape depends on sizes, the question's matrix is explicit")
            matrix = sp.Matrix(int(rows), int(cols), lambda r, c: value.at(r, c))
        else:
            matrix = value.expr
        if ctx.free_order:
            raise Incorrect("entries", f"the matrix uses the index {ctx.free_order[0]}, which is not defined")
        if matrix.shape != expected.shape:
            if 1 in matrix.shape and 1 in expected.shape and len(matrix) == len(expected):
                matrix = matrix.reshape(*expected.shape)
            else:
                raise Incorrect("shape", f"the answer is {matrix.rows} × {matrix.cols}, the question's matrix is "
                                         f"{expected.rows} × {expected.cols}")
        matrix = matrix.xreplace(info.values)
        shapes = _concrete_shapes(info)
        literal_entries = _entry_literals(node)
        pending = []
        for r in range(expected.rows):
            for c in range(expected.cols):
                a, b = zero_outside(sp.sympify(matrix[r, c]), shapes), zero_outside(sp.sympify(expected[r, c]),
                                                                                     shapes)
                if sp.expand(a - b) == 0:
                    continue
                if b.is_number and a.is_number:
                    lit = literal_entries.get((r, c)) if literal_entries else None
                    ok, why, rule = number_agrees(a, b, lit, info.tolerance)
                    if not ok:
                        raise Incorrect("entries", f"entry ({r + target.row + base}, {c + base}): {why}")
                    if rule != "exact":
                        self.notes.append(f"numbers {rule}")
                    continue
                pending.append((r, c, a, b))
        if pending:
            points, bad = numeric_entries(pending, info, self.seed, self.deadline)
            if bad is not None:
                r, c, a, b = bad
                raise Incorrect("entries", f"entry ({r + target.row + base}, {c + base}): the answer has "
                                           f"{_plain(a, info)}, the expected entry is {_plain(b, info)}")
        return "entries"

    # Numbers -----------------------------------------------------------------------
    def compare_component(self, expr, target, ctx, node, label=None, component=None):
        """One number against a tuple such as (with bias, without bias): the first entry, which is what
        the question asks, unless the answer's label names another ("without bias") or the number
        follows the first one ("18496, 18432")."""
        from .targets import Target
        names = target.components or tuple(f"entry {k + 1}" for k in range(len(target.value)))
        if component is None and label:
            _, component = _component_in_label(label, [target])
        if component is None:
            component = self.next_component.get(id(target), 0)
            if component >= len(target.value):
                component = 0
            self.next_component[id(target)] = component + 1
        self.last_component = component
        expected = target.value[component]
        what = f"{target.label} ({names[component]})" if target.components else target.label
        try:
            return self.compare_value(expr, Target(what, "value", expected), ctx, node)
        except Incorrect as exc:
            others = [k for k, v in enumerate(target.value) if k != component and _exactly(expr, v)]
            if others:
                k = others[0]
                raise Incorrect("value", f"{sp.sstr(expr)} is the {target.label} count {names[k]}; the question "
                                         f"asks for {sp.sstr(expected)} ({names[component]}). To give the count "
                                         f"{names[k]}, label it: \\text{{{names[k]}}} = {sp.sstr(expr)}") \
                    from None
            raise Incorrect(exc.decided_by, exc.evidence + f" ({what})") from None

    def compare_value(self, expr, target, ctx, node):
        info = self.info
        if ctx.free_order:
            raise Incorrect("value", f"the answer uses the index {ctx.free_order[0]}, the question asks for a "
                                     f"number")
        expr = expr.xreplace(info.values)
        expected = target.value if not isinstance(target, sp.Basic) else target
        if expr.free_symbols - set(info.values):
            if expected.is_number:
                raise Incorrect("value", f"the answer depends on {sorted(map(str, expr.free_symbols))[0]}; the "
                                         f"question asks for a number")
        if _symbolic_equal(expr, expected, (), self.deadline):
            return "symbolic"
        literal = _single_literal(node)
        ok, why, rule = number_agrees(expr, expected, literal, info.tolerance, writes_decimal(node))
        if not ok:
            raise Incorrect("value", why)
        return f"value ({rule})"


# Comparisons ------------------------------------------------------------------------

def _symbolic_equal(a, b, constraints, deadline):
    """True when a − b simplifies to zero (under the constraints); False when not shown."""
    try:
        d = _delta_normal(alpha_normal(a)) - _delta_normal(alpha_normal(b))
        if d == 0:
            return True
        d = sp.expand(d)
        if d == 0:
            return True
        if constraints:
            d = sp.expand(apply_constraints(combine_sums(d), constraints))
            if d == 0:
                return True
        d = combine_sums(d)
        if d == 0:
            return True
        if d.has(sp.Sum):
            d = d.replace(lambda e: isinstance(e, sp.Sum), lambda e: sp.Sum(sp.expand(e.function), *e.limits))
            if d == 0 or sp.expand(d) == 0:
                return True
            concrete = all(lo.is_Integer and hi.is_Integer for s in d.atoms(sp.Sum) for _, lo, hi in s.limits)
            if concrete and _time_left(deadline) > 1:
                d = sp.expand(d.doit())
                if d == 0:
                    return True
        if d.has(sp.Piecewise, sp.Sum, sp.Indexed) or sp.count_ops(d) > 120 or _time_left(deadline) < 2:
            return False
        return sp.simplify(d) == 0
    except Exception:          # SymPy gives up on some index expressions: the numbers decide
        return False


def _delta_normal(expr):
    """δ(i + 1, p + 1) is δ(i, p): compare deltas by the difference of their arguments."""
    return expr.replace(lambda e: isinstance(e, sp.KroneckerDelta),
                        lambda e: sp.KroneckerDelta(sp.expand(e.args[0] - e.args[1]), 0))


def _time_left(deadline):
    return deadline - time.monotonic() if deadline else math.inf


def compare_shape(dims, target, info, seed):
    expected = list(target.value)
    candidates = [expected] + [list(s) for s in target.alt_shapes]
    best = None
    for cand in candidates:
        if len(cand) != len(dims):
            continue
        bad = _first_differing_size(dims, cand, info, seed)
        if bad is None:
            return "shape"
        best = best or bad
    if best is None:
        squeezed = _without_unit_axes(dims)
        for cand in map(_without_unit_axes, candidates):   # no candidate has the answer's number of axes
            if len(cand) == len(squeezed) and _first_differing_size(squeezed, cand, info, seed) is None:
                return "shape, axes of size 1 left out"
    if best is None:
        shown = " × ".join(_show(s, info) for s in expected)
        raise Incorrect("shape", f"the answer has {len(dims)} ax{'i' if len(dims) == 1 else 'e'}s, the expected "
                                 f"dimension is {shown} ({len(expected)} axes)")
    k, a, b, point = best
    where = f" at {point}" if point else ""
    raise Incorrect("shape", f"axis {k + 1}: the answer has {_show(a, info)}, expected {_show(b, info)}{where}")


def _without_unit_axes(dims):
    """The sizes other than a written 1: 4 × 4 and 1 × 4 × 4 hold the same entries in the same order.

    >>> _without_unit_axes([1, 4, sp.Symbol('n')])
    [4, n]
    """
    return [d for d in dims if sp.sympify(d) != 1]


def _one_axis(target):
    return len(list(target.value)) == 1 or len(_without_unit_axes(list(target.value))) == 1


def _first_differing_size(dims, expected, info, seed):
    rng = np.random.default_rng(seed)
    for k, (a, b) in enumerate(zip(dims, expected)):
        a, b = sp.sympify(a), sp.sympify(b)
        if sp.simplify(a - b) == 0:
            continue
        symbols = sorted((a.free_symbols | b.free_symbols), key=str)
        if not symbols:
            return k, a, b, ""
        for _ in range(60):
            point = {s: int(rng.integers(1, 10)) for s in symbols}
            try:
                va, vb = a.xreplace(point), b.xreplace(point)
                if sp.simplify(va - vb) != 0:
                    return k, a, b, ", ".join(f"{s} = {v}" for s, v in point.items())
            except Exception:
                continue
    return None


def compare_word(side, target):
    words = _words(side)
    expected = str(target.value).lower()
    if any(w.startswith(expected[:6]) or expected.startswith(w[:6]) for w in words if len(w) >= 4):
        return "value"
    raise Incorrect("value", f"the answer says {' '.join(words) or '?'}, expected {target.value}")


def _words(node):
    if isinstance(node, R.Word):
        return [w.lower().strip(".,") for w in node.text.split()]
    if isinstance(node, R.Name):
        return ["".join(node.letters).lower()]
    if isinstance(node, R.Bin):
        return _words(node.left) + _words(node.right)
    return []


def number_agrees(value, expected, literal, tolerance, decimals_written=False):
    """(ok, why, rule) for a numeric answer against an exact value; ``rule`` names what decided.

    The question's ``tolerance`` when it sets one; else a number written with decimals (or any
    number, when the exact value is not an integer) is accepted within the precision written (the
    exact value rounds to the digits written, counted when at least two significant digits are
    written) or within 1% relative, whichever is looser; an integer value (a count) must be exact
    to the precision written.

    >>> number_agrees(sp.Rational(324, 100), sp.Float("3.2511"), None, None)[2]
    'within 1%'
    >>> number_agrees(sp.Integer(18432), sp.Integer(18496), None, None)[0]
    False
    """
    try:
        a, b = float(sp.N(value, 30)), float(sp.N(expected, 30))
    except (TypeError, ValueError):
        return False, f"the answer {sp.sstr(value)} is not a number", "value"
    if not (math.isfinite(a) and math.isfinite(b)):
        return a == b, f"the answer is {a}, expected {b}", "exact"
    diff = abs(a - b)
    if diff <= 1e-12 * max(1.0, abs(b)):
        return True, "", "exact"
    if tolerance is not None:
        ok = (tolerance.absolute is None or diff <= float(tolerance.absolute) * (1 + 1e-12)) and \
             (tolerance.relative is None or diff <= float(tolerance.relative) * abs(b) * (1 + 1e-12))
        why = f"the answer is {a:.6g}, expected {b:.6g} (the question's tolerance {tolerance.describe()})"
        return ok, why, f"the question's tolerance {tolerance.describe()}"
    count = _is_integer(expected)
    relative = float(DEFAULT_RELATIVE) * abs(b) * (1 + 1e-12)
    shown = literal.text if literal is not None else f"{a:.6g}"
    if literal is not None:
        half = float(literal.unit) / 2
        if diff <= half * (1 + 1e-9) and (count or _significant_digits(literal.text) >= 2):
            return True, "", f"to the precision written, ±{half:g}"
        if not count and diff <= relative:
            return True, "", "within 1%"
        why = (f"the answer is {shown}, expected {b:.6g}: off by {diff:.3g}, "
               + ("and the value is a whole number" if count else
                  f"more than the precision written (±{half:g}) and more than 1%"))
        return False, why, "value"
    if not count and diff <= relative and (_has_decimal(value) or decimals_written):
        return True, "", "within 1%"
    return False, f"the answer is {a:.6g}, expected {b:.6g}", "value"


def writes_decimal(node, depth=0):
    """Whether the answer writes a decimal anywhere in ``node``: then arithmetic on it (3.018 / 1.953, from
    rounded intermediates) is held to 1 % like a decimal answer, though its exact value is a fraction such
    as 3018/1953 that has no decimal left in it.

    >>> writes_decimal(R.Bin(0, "/", R.Num(0, "3.018"), R.Num(0, "1.953"))), writes_decimal(R.Num(0, "18"))
    (True, False)
    """
    if isinstance(node, R.Num):
        return "." in node.text
    if depth > 200 or not isinstance(node, R.Node):
        return False
    for value in vars(node).values():
        items = value if isinstance(value, (list, tuple)) else (value,)
        for item in items:
            inner = item if isinstance(item, (list, tuple)) else (item,)
            if any(isinstance(x, R.Node) and writes_decimal(x, depth + 1) for x in inner):
                return True
    return False


def _is_integer(value):
    value = sp.sympify(value)
    return bool(value.is_Integer or (value.is_Float and value == int(value)))


def _significant_digits(text):
    """Significant digits written: 3.24 has 3, 0.05 has 1, 280 has 3 (trailing zeros of an integer count).

    >>> _significant_digits("0.050"), _significant_digits("3.24"), _significant_digits("-1")
    (2, 3, 1)
    """
    digits = text.lstrip("-+").replace(".", "").lstrip("0")
    return len(digits)


def _exactly(expr, value):
    try:
        return sp.simplify(sp.sympify(expr) - sp.sympify(value)) == 0
    except Exception:
        return False


def _component_in_label(label, targets):
    """(the label without a count's name, the entry it names) for "conv without bias"; (None, None)."""
    def norm(s):
        return "".join(ch for ch in str(s) if ch.isalnum()).lower()
    key = norm(label).replace("biases", "bias")
    for t in targets:
        names = sorted(enumerate(t.components), key=lambda kn: -len(norm(kn[1])))
        for k, name in names:
            n = norm(name)
            if n and n in key:
                return key.replace(n, "", 1), k
        if "nobias" in key and len(t.components) > 1 and any("without" in c for c in t.components):
            k = next(k for k, c in enumerate(t.components) if "without" in c)
            return key.replace("nobias", "", 1), k
    return None, None


def _has_decimal(value):
    return any(not r.q == 1 and (r.q % 2 == 0 or r.q % 5 == 0) for r in sp.sympify(value).atoms(sp.Rational))


# Numeric testing ---------------------------------------------------------------------

def numeric_equal(a, b, free, info, seed, deadline):
    """(points compared, None) when a and b agree at every point, else (points, evidence)."""
    layers = _layers_in(a, info) | _layers_in(b, info)
    a, b = _expand(a, layers), _expand(b, layers)
    a, b = rewrite(a), rewrite(b)
    computed = _computed_in(info, a, b)
    if computed:              # the δ's are computed from their definitions: their tensors and sizes are drawn too
        b_only = b
        b = sp.Tuple(b, *[e for _, e, _ in computed])
    rng = np.random.default_rng(seed)
    sizes = sorted(_size_symbols(info, a, b, free), key=str)
    size_draws = 3 if sizes else 1
    points, errors = 0, []
    for draw in range(size_draws * 6):
        if points and draw >= size_draws * 2 and _time_left(deadline) < 0.5:
            break
        if _time_left(deadline) < 0.2:
            break
        concrete = _draw_sizes(sizes, info, a, b, free, rng)
        if concrete is None:
            continue
        try:
            arrays, scalars = draw_values(info, a, b, concrete, rng)
            _compute(computed, arrays, scalars, concrete)
        except (CannotEvaluate, ArithmeticError, ValueError, TypeError) as exc:
            errors.append(str(exc))
            continue
        ranges = [range(int(sp.sympify(i.upper).xreplace(concrete)) + 1) for i in free]
        tuples = list(itertools.islice(itertools.product(*ranges), 100_000))
        if len(tuples) > MAX_INDEX_POINTS:
            picks = rng.choice(len(tuples), MAX_INDEX_POINTS, replace=False)
            tuples = [tuples[k] for k in sorted(picks)]
        for at in tuples:
            env = dict(zip(free, at))
            try:
                vb = evaluate(b_only if computed else b, arrays, scalars, env)
            except (CannotEvaluate, ArithmeticError, ValueError, TypeError) as exc:
                errors.append(f"expected side: {exc}")
                continue
            try:
                va = evaluate(a, arrays, scalars, env)
            except (CannotEvaluate, ArithmeticError, ValueError, TypeError) as exc:
                errors.append(f"answer: {exc}")
                va = math.nan
            if not (math.isfinite(vb)):
                continue
            points += 1
            if not (math.isfinite(va) and abs(va - vb) <= NUMERIC_RTOL * max(1.0, abs(va), abs(vb))):
                return points, _point_text(info, concrete, free, at, va, vb)
        if points >= 400:
            break
    if points == 0:
        why = errors[0] if errors else "no test point could be evaluated"
        raise Incorrect("numeric", f"could not be compared numerically: {why}")
    return points, None


def _computed_in(info, a, b):
    """[(name, definition with its layers written out, Intermediate)] of the δ's ``a`` and ``b`` use (and the
    δ's those use), in the order they are computed: each after the ones its definition names."""
    computed = getattr(info, "computed", None) or {}
    if not computed:
        return []

    def names(e):
        return {x.base.label.name for x in e.atoms(sp.Indexed)} & set(computed)
    wanted, todo = set(), names(a) | names(b)
    while todo:
        name = todo.pop()
        wanted.add(name)
        todo |= names(computed[name].element) - wanted
    written = {}
    for name in wanted:
        element = computed[name].element
        written[name] = rewrite(_expand(element, _layers_in(element, info)))
    order, done = [], set()
    while len(order) < len(wanted):
        ready = [n for n in sorted(wanted - done) if names(written[n]) - {n} <= done]
        if not ready:
            raise Incorrect("numeric", "the sheet's δ's could not be ordered")
        for n in ready:
            order.append((n, written[n], computed[n]))
            done.add(n)
    return order


def _compute(computed, arrays, scalars, sizes):
    """Each δ's array from its definition, top down, at the drawn values (replacing the random one)."""
    for name, element, intermediate in computed:
        shape = tuple(int(sp.sympify(n).xreplace(sizes)) for n in intermediate.shape)
        array = np.zeros(shape)
        for pos in np.ndindex(*shape):
            array[pos] = evaluate(element, arrays, scalars, dict(zip(intermediate.idx, pos)))
        arrays[name] = array


def _point_text(info, sizes, free, at, va, vb):
    base = info.problem.index_base
    parts = [f"{s} = {v}" for s, v in sizes.items()]
    parts += [f"{i.name} = {v + base}" for i, v in zip(free, at)]
    where = ", ".join(parts)
    shown = "undefined" if not math.isfinite(va) else f"{va:.6g}"
    return (f"differs at {where} (random tensor values): the answer gives {shown}, expected {vb:.6g}" if where
            else f"differs at random tensor values: the answer gives {shown}, expected {vb:.6g}")


def _layers_in(expr, info):
    out = {}
    decls = info.context_args["scope"]
    for name in {e.base.label.name for e in expr.atoms(sp.Indexed)} | {s.name for s in expr.free_symbols}:
        try:
            node = decls.lookup(name)
        except Exception:
            node = None
        if node is not None and node.is_layer:
            out[name] = node
            out.update(node.layer_inputs())
    return set(out.items())


#: Expressions with their layers written out, by (expression, layers): the engine's side is the same
#: for every answer to a question, and writing it out takes seconds for the largest (nyu24-1.2.2f),
#: which left trivial answers such as ``1`` to time out.
_EXPANDED = {}


def _expand(expr, layers):
    if not layers:
        return expr
    key = (expr, frozenset(layers))
    if key not in _EXPANDED:
        if len(_EXPANDED) >= 64:
            _EXPANDED.clear()
        _EXPANDED[key] = expand_layers(expr, dict(layers))
    return _EXPANDED[key]


def _size_symbols(info, *exprs_and_free):
    *exprs, free = exprs_and_free
    sizes = set(info.context_args["scope"].sizes.values())
    found = set()
    for e in exprs:
        found |= e.free_symbols & sizes
        for ind in e.atoms(sp.Indexed):
            for n in getattr(ind.base, "shape", None) or ():
                found |= sp.sympify(n).free_symbols & sizes
    for i in free:
        found |= sp.sympify(i.upper).free_symbols & sizes
    for t in tensors_in(info, *exprs):
        for n in t.shape:
            found |= sp.sympify(n).free_symbols & sizes
    return found


def _draw_sizes(sizes, info, a, b, free, rng):
    tensors = tensors_in(info, a, b)
    for _ in range(50):
        point = {s: sp.Integer(int(rng.integers(1, 5))) for s in sizes}
        ok = True
        for t in tensors:
            for n in t.shape:
                v = sp.sympify(n).xreplace(point)
                if not (v.is_Integer and v >= 1):
                    ok = False
        for i in free:
            v = sp.sympify(i.upper).xreplace(point)
            if not (v.is_Integer and v >= 0):
                ok = False
        if ok:
            return point
    return None


# Reading parts -------------------------------------------------------------------------

def _label_prefix_target(label, targets):
    """The target whose label's words begin ``label``'s words beyond it, the longest such, when the label
    goes on past the target's own: "standard multiply-adds per example" -> "standard multiply-adds"."""
    words = _label_words(label)
    found = [t for t in targets if t.label and _label_words(t.label)
             and words[:len(_label_words(t.label))] == _label_words(t.label)
             and len(words) > len(_label_words(t.label))]
    return max(found, key=lambda t: len(_label_words(t.label)), default=None)


def _label_in_prose(text, targets):
    """The one result whose label's words all occur in ``text`` (``padding`` in "zero padding on each
    side"), or None when none or several do.

    >>> _label_in_prose("zero padding on each side", [SimpleNamespace(label="padding")]).label
    'padding'
    """
    words = set(_label_words(text))
    found = [t for t in targets if t.label and set(_label_words(t.label)) <= words]
    return found[0] if len(found) == 1 else None


def _label_words(text):
    import re
    return [w for w in re.split(r"[^a-z0-9']+", str(text).lower().replace("--", "-")) if w]


def _strip_notes(side, info):
    """(the side without prose notes, [the notes' words]). A ``\\text{...}`` that names nothing the question
    declares, written after a value, is a note, as is a parenthesis holding prose or a condition:
    ``280\\ \\text{with bias}``, ``P = 1\\ \\text{on each side}``, ``\\text{vanishing}\\ (|d| < 1)``,
    ``\\mathbb{R}^{C}\\ (\\text{kept as } 1 \\times C)``. A note never changes the value compared.

    >>> _strip_notes(R.read(r"280 \\text{with bias}")[0].items[0], None)[1]
    ['with bias']
    """
    notes = []
    while isinstance(side, R.Bin) and side.op == "implicit":
        right = side.right
        if isinstance(right, R.Word) and not right.scripts and not _declared_word(right, info):
            notes.insert(0, right.text)
        elif isinstance(right, R.Group) and right.paren == "(" and not right.scripts and _is_prose(right.body, info):
            notes.insert(0, "(…)")
        elif isinstance(right, R.Tuple) and right.paren == "(" and _is_prose(right, info):
            notes.insert(0, "(…)")             # (\text{at the given } G, X)
        else:
            break
        side = side.left
    return side, notes


def _declared_name(node, info):
    """Whether a name (its letters, without scripts) is a tensor, layer or size of the question."""
    return _declared_word(R.Word(node.pos, "".join(node.letters), []), info)


def _declared_word(word, info):
    if info is None:
        return False
    scope = info.context_args["scope"]
    name = word.text.replace(" ", "")
    try:
        return scope.lookup(name) is not None or scope.sizes.get(name) is not None
    except Exception:
        return False


def _sheet_word(word, info):
    """Whether a word is a name the engine's sheet writes that the question does not declare: the upstream
    gradient dy of a chain rule, a δ, a name the sheet defines (x̂)."""
    if info is None:
        return False
    name = word.text.replace(" ", "")
    args = info.context_args
    return name in (args.get("extra_tensors") or {}) or name in (args.get("definitions") or {})


def _is_prose(node, info):
    """A parenthesis holding words or a condition (|d| < 1, |d| = 1), not a value: a relation is never a
    factor of one."""
    if isinstance(node, R.Relation) and node.ops:
        return True
    if isinstance(node, R.Word):            # \mathrm{dy}_{p,q}, a name the sheet gives, is not prose
        return not node.scripts and not _declared_word(node, info) and not _sheet_word(node, info)
    if isinstance(node, R.Bin):
        return _is_prose(node.left, info) or _is_prose(node.right, info)
    if isinstance(node, R.Tuple) and node.paren == "(":     # (\text{at the given } G, X): its first item
        return _is_prose(node.items[0], info)
    return False


def _is_range_statement(part):
    return isinstance(part.items[0], R.Name) and len(part.items) == 2 and isinstance(part.items[1], R.SetNode)


def _is_derivative(node):
    return (isinstance(node, R.Frac) and M.is_partial(node.num) and M.is_partial(node.den)) or \
        (isinstance(node, R.Bin) and node.op == "/" and M.is_partial(node.left) and M.is_partial(node.right))


def _is_lhs(node):
    if isinstance(node, R.Frac) and M.is_partial(node.num) and M.is_partial(node.den):
        return True
    if _entry_of_derivative(node) is not None:            # \frac{\partial l}{\partial W_x}[i][j]
        return True
    if isinstance(node, R.Bin) and node.op == "implicit" and isinstance(node.right, R.Group) \
            and node.right.paren == "(" and not node.right.scripts and isinstance(node.left, R.Nabla):
        return True                                         # \nabla E(w), \nabla_w E_{in}(w)
    if isinstance(node, R.Bin) and node.op == "/" and M.is_partial(node.left) and M.is_partial(node.right):
        return True
    if isinstance(node, (R.Nabla, R.Word)):
        return True
    if _ratio_label(node) is not None:
        return True
    if isinstance(node, R.Name):
        return True
    if isinstance(node, R.Group) and node.paren == "{" and isinstance(node.body, R.Name):
        return True
    return False


def _kind(side, info):
    if isinstance(side, R.Reals):
        return "shape"
    if M.times_chain(side) and any(t.kind == "shape" or (t.kind == "tuple" and not t.components)
                                   for t in info.targets):
        return "shape"
    if isinstance(side, R.Tuple):
        return "tuple"
    if isinstance(side, R.Name) and not side.scripts and any(t.kind == "shape" and _one_axis(t) for t in info.targets) \
            and info.context().scope.sizes.get("".join(side.letters)) is not None:
        return "shape"                          # "m" for the dimension of c[t] ∈ R^m: a size is a dimension
    if isinstance(side, R.Word) and not side.scripts:
        return "word"
    if isinstance(side, R.Group) and isinstance(side.body, R.MatrixNode):
        return "entries"
    if _is_number_node(side):
        return "number"
    return "expr"


def _is_number_node(node):
    if isinstance(node, R.Num):
        return True
    if isinstance(node, R.Neg):
        return _is_number_node(node.arg)
    if isinstance(node, R.Bin):
        return node.op != "odot" and _is_number_node(node.left) and _is_number_node(node.right)
    if isinstance(node, R.Frac):
        return _is_number_node(node.num) and _is_number_node(node.den)
    if isinstance(node, R.Group):
        return node.body is not None and not isinstance(node.body, R.MatrixNode) and _is_number_node(node.body)
    if isinstance(node, R.Call):
        return all(_is_number_node(a) for a in node.args)
    return False


def _single_literal(node):
    """The Literal when the side is one number as written (for the precision rule)."""
    sign = 1
    while isinstance(node, (R.Neg, R.Group)) and not (isinstance(node, R.Group) and node.scripts):
        if isinstance(node, R.Neg):
            sign = -sign
            node = node.arg
        else:
            node = node.body
    if isinstance(node, R.Num):
        value = sp.Rational(node.text) * sign
        unit = sp.Rational(1, 10 ** len(node.text.split(".")[1])) if "." in node.text else sp.Integer(1)
        return M.Literal(value, unit, ("-" if sign < 0 else "") + node.text)
    if isinstance(node, R.Bin) and node.op in ("times", "cdot", "*", "implicit") and isinstance(node.left, R.Num) \
            and "." in node.left.text:
        return None
    return None


def _numbers_only(node):
    """Whether ``node`` is an explicit matrix whose every entry is a number written out."""
    literals = _entry_literals(node)
    return bool(literals) and all(v is not None for v in literals.values())


def _entry_literals(node):
    while isinstance(node, R.Group) and not isinstance(node.body, R.MatrixNode):
        node = node.body
    if not (isinstance(node, R.Group) and isinstance(node.body, R.MatrixNode)) or node.scripts:
        return {}
    return {(r, c): _single_literal(e) for r, row in enumerate(node.body.rows) for c, e in enumerate(row)}


def _dims_of(side, ctx):
    if isinstance(side, R.Reals):
        return M.resolve_dims(side.dims, ctx)
    chain = M.times_chain(side)
    if chain:
        return M.resolve_dims(chain, ctx)
    if isinstance(side, R.Tuple):
        return M.resolve_dims(side.items, ctx)
    v = M.resolve(side, ctx)
    if not v.is_scalar:
        raise Incorrect("shape", "expected a dimension")
    return [v.expr]


def _entry_of_derivative(node):
    """(the derivative fraction, [index items]) for ``\\frac{∂l}{∂W_x}[i][j]`` or ``[0, i, j]``; else None."""
    if isinstance(node, R.Group) and node.paren == "{" and isinstance(node.body, R.Frac) and node.scripts \
            and all(kind == "[" for kind, _ in node.scripts) and _is_lhs(node.body):
        return node.body, [i for _, items in node.scripts for i in items]
    return None


def _differentials(latex, info):
    """``latex`` with each differential ``\\mathrm{d}X`` (``\\mathrm{d}\\,X``, ``\\mathrm{d}{X}``) of a matrix
    the question's claims use (their tensor dX) or state (their left side dY) written as the one name
    ``\\mathrm{dX}``; derivatives (``\\frac{\\mathrm{d}y}{\\mathrm{d}x}``) are left alone. The same length
    is kept where it can be, so positions stay near.

    >>> _differentials(r"\\mathrm{d}Y = -Y\\,\\mathrm{d}X\\,Y", SimpleNamespace(targets=[], context_args={
    ...     "extra_tensors": {"dX": None, "dY": None}}))
    '\\\\mathrm{dY} = -Y\\\\,\\\\mathrm{dX}\\\\,Y'
    """
    if r"\mathrm{d}" not in latex and r"\operatorname{d}" not in latex:
        return latex
    names = {n[1:] for n in info.context_args.get("extra_tensors", {}) if n.startswith("d") and len(n) > 1}
    for t in info.targets:
        stated = re.match(r"\\mathrm\{d\}\s*\{?([A-Za-z])\}?", t.latex or "") if t.kind == "element" else None
        if stated and t.value is not None and any(str(b).startswith("d") for b in
                                                  getattr(t.value, "atoms", lambda *_: ())(sp.IndexedBase)):
            names.add(stated.group(1))
    if not names:
        return latex
    pattern = r"(?<!\\frac\{)(?<!\}\{)\\(?:mathrm|operatorname)\{d\}(?:\s|\\,)*\{?(" + "|".join(
        re.escape(n) for n in sorted(names, key=len, reverse=True)) + r")\}?(?![A-Za-z])"
    return re.sub(pattern, lambda m: rf"\mathrm{{d{m.group(1)}}}", latex)


def _sheet_label(target):
    """The label of the left side the sheet prints for a result (``d`` in ``d \\approx 0.2247``,
    ``a`` of ``a^*``), so that an answer written as the sheet writes it names that result; '' when the
    printed answer has no left side.

    >>> _sheet_label(SimpleNamespace(latex=r"d \\approx 0.2247"))
    'd'
    """
    labels = _sheet_labels(target)
    return labels[0] if labels else ""


def _sheet_labels(target):
    """The labels of the left sides of every part the sheet prints for a result: for a list
    (``a^{\\langle 1\\rangle} = \\frac{1}{2},\\ a^{\\langle 2\\rangle} = …``) the name of each entry."""
    if not hasattr(target, "_sheet_labels_cache"):
        latex = target.latex or ""
        if latex.startswith(r"\mathrm{d}"):           # a differential's left side, \mathrm{d}Y: the name dY
            latex = re.sub(r"^\\mathrm\{d\}\s*\{?([A-Za-z])\}?", r"\\mathrm{d\1}", latex)
        try:
            parts = R.read(latex) if latex else []
        except R.ReadError:
            parts = []
        found = [(_label(p.items[0]) or "") if len(p.items) >= 2 and _is_lhs(p.items[0]) else ""
                 for p in parts if not _is_dots(p)]
        try:
            target._sheet_labels_cache = found
        except AttributeError:
            return found
    return target._sheet_labels_cache


def _is_dots(part):
    """A part that is only ``\\dots``: a list that trails off, as the sheet prints a long trajectory."""
    return len(part.items) == 1 and isinstance(part.items[0], R.Dots)


def _label(node):
    """A canonical key for a left side: 'W1', "W'", 'de/dW1', 'total', 'delta3'."""
    if node is None:
        return None
    entry = _entry_of_derivative(node)
    if entry is not None:
        return _label(entry[0])
    if isinstance(node, R.Bin) and node.op == "implicit" and isinstance(node.left, R.Nabla):
        return _label(node.left)
    if isinstance(node, R.Frac) and M.is_partial(node.num) and M.is_partial(node.den):
        return "d" + (_label(M.partial_arg(node.num)) or "") + "/d" + (_label(M.partial_arg(node.den)) or "")
    if isinstance(node, R.Bin) and node.op == "/" and M.is_partial(node.left):
        return "d" + (_label(M.partial_arg(node.left)) or "") + "/d" + (_label(M.partial_arg(node.right)) or "")
    if isinstance(node, R.Word):
        return node.text
    if _ratio_label(node) is not None:
        return _ratio_label(node)
    if isinstance(node, R.Group) and isinstance(node.body, R.Name):
        return _label(R.Name(node.pos, node.body.letters, node.body.scripts + node.scripts))
    if isinstance(node, R.Name):
        key = "".join(node.letters)
        for kind, arg in node.scripts:
            if kind == "'" or (kind == "^" and isinstance(arg, R.Word) and arg.text == "'"):
                key += "'"
            elif isinstance(arg, R.Num):
                key += arg.text
            elif isinstance(arg, R.Group) and isinstance(arg.body, R.Num):
                key += arg.body.text
        return key
    if isinstance(node, R.Bin) and node.op == "implicit":
        return (_label(node.left) or "") + (_label(node.right) or "")
    return None


def _array_leaves(node, rank):
    """The nodes of the matrices of an array of ``rank`` written as nested lists of matrices (``M ≈ M'``:
    its exact side M), nested as the array's leading axes; None when the side is not written so."""
    if rank == 2:
        if isinstance(node, R.Relation) and node.ops and all(op == "approx" for op in node.ops):
            return node.items[0]
        return None if isinstance(node, (R.Relation, R.Tuple)) else node
    if isinstance(node, R.Group) and node.paren == "[" and not node.scripts:
        items = [node.body]
    elif isinstance(node, R.Tuple) and node.paren == "[":
        items = node.items
    else:
        return None
    out = [_array_leaves(item, rank - 1) for item in items]
    return None if any(o is None for o in out) else out


def _at_values(side, info):
    """The result at the question's declared values, for a matrix of numbers with no label (the sheet's
    ``[...]\\ (\\text{at the given } G, X)``); None when there is none or the matrix has a letter."""
    body = side.body if isinstance(side, R.Group) and side.paren == "{" else side
    if not isinstance(body, R.MatrixNode) or not all(_is_number_node(e) for row in body.rows for e in row):
        return None
    return next((t for t in info.targets if t.kind == "entries" and str(t.key).endswith(" at values")), None)


def _shared_dimensions(parts, targets):
    """``\\gamma,\\ \\beta \\in \\mathbb{R}^{C}`` is read as two parts, γ and β ∈ ℝ^C: when the names
    together are a result's label ("gamma, beta"), one part whose left side is that label."""
    out = list(parts)
    k = 0
    while k + 1 < len(out):
        head, nxt = out[k], out[k + 1]
        if isinstance(head, R.Relation) and not head.ops and len(head.items) == 1 \
                and isinstance(nxt, R.Relation) and nxt.ops[:1] == ["in"] and len(nxt.items) == 2:
            first, second = _label(head.items[0]), _label(nxt.items[0])
            joined = f"{first}, {second}" if first and second else None
            if joined and isinstance(head.items[0], R.Name) and any(_same_label(joined, t.label, case=True)
                                                                     or _same_label(joined, t.label) for t in targets):
                out[k:k + 2] = [R.Relation(head.pos, [R.Word(head.pos, joined, []), nxt.items[1]], ["in"])]
                continue
        k += 1
    return out


def _listed_names(parts, info):
    """``\\text{averaged over } N, H, W`` is read as three parts, the label and N, then H, then W: when a part
    is a result's label in words followed by a name, the parts after it that are one name each (a note
    after the last) continue its list: one part, the label = (N, H, W)."""
    out = list(parts)
    k = 0
    while k < len(out):
        head = out[k]
        first = head.items[0] if isinstance(head, R.Relation) and not head.ops and len(head.items) == 1 else None
        first = _strip_notes(first, info)[0] if first is not None else None       # averaged over N (N values)
        if isinstance(first, R.Bin) and first.op == "implicit" and isinstance(first.left, R.Word) \
                and not first.left.scripts and isinstance(first.right, R.Name) \
                and any(t.kind in ("shape", "tuple") and _same_label(first.left.text, t.label) for t in info.targets):
            names, end = [first.right], k + 1
            while end < len(out) and isinstance(out[end], R.Relation) and not out[end].ops \
                    and len(out[end].items) == 1:
                name = _strip_notes(out[end].items[0], info)[0]
                if not isinstance(name, R.Name):
                    break
                names.append(name)
                end += 1
            listed = R.Tuple(first.right.pos, names, "(") if len(names) > 1 else names[0]
            out[k:end] = [R.Relation(head.pos, [first.left, listed], ["="])]
        k += 1
    return out


def _ratio_label(node):
    """'ordinary / separable' for a left side \\frac{\\text{ordinary}}{\\text{separable}} (a ratio of two
    counts the question names in words), else None.

    >>> _ratio_label(R.read(r"\\frac{\\text{a b}}{\\text{c}}")[0].items[0]), _ratio_label(R.read("x/y")[0].items[0])
    ('a b / c', None)
    """
    if isinstance(node, R.Frac) and isinstance(node.num, R.Word) and isinstance(node.den, R.Word) \
            and not node.num.scripts and not node.den.scripts:
        return f"{node.num.text} / {node.den.text}"
    return None


def _same_label(key, label, case=False):
    """``case``: letters must match in case too (dJ/dV is not dJ/dv when a question has both)."""
    def norm(s):
        text = "".join(ch for ch in str(s) if ch.isalnum() or ch in "/'")
        return text if case else text.lower()
    k, l = norm(key), norm(label)
    if not k:
        return False
    if k == l:
        return True
    if k.startswith("delta") and k[5:].isdigit():          # δ^{(3)} = ∂e/∂s^{(3)}
        return l.startswith("d") and l.endswith("/ds" + k[5:])
    return False


def _lhs_mapping(lhs, target, ctx, info):
    """({engine Idx: display value} fixed by the left side, {student name: engine Idx})."""
    if lhs is None or target.kind != "element" or not target.axes:
        return {}, {}
    groups = _lhs_groups(lhs, ctx)
    if groups is None:
        return {}, {}
    axes = list(target.axes)
    if "all" in groups:                 # [i][j] after a derivative: its entry, every axis in order
        if len(groups["all"]) != len(axes):
            return {}, {}
        groups = {"of": groups["all"][:sum(g == "of" for g, _ in axes)],
                  "wrt": groups["all"][sum(g == "of" for g, _ in axes):]}
        if all(g is None for g, _ in axes):
            groups = {"of": [], "wrt": list(groups["of"]) + list(groups["wrt"])}
    if all(g is None for g, _ in axes):
        pairs = list(zip(groups.get("of", []) + groups.get("wrt", []), [i for _, i in axes]))
        if len(groups.get("of", []) + groups.get("wrt", [])) != len(axes):
            return {}, {}
    else:
        pairs = []
        for group in ("of", "wrt"):
            mine = [i for g, i in axes if g == group]
            written = groups.get(group, [])
            if group == "of" and not written and "entry" in groups and all(g == "wrt" for g, _ in axes):
                written = groups["entry"]
            if written and len(written) != len(mine):
                if len(written) == 1 and isinstance(written[0], R.Name) and len(written[0].letters) == len(mine):
                    written = [R.Name(written[0].pos, [c]) for c in written[0].letters]
                else:
                    return {}, {}
            pairs += list(zip(written, mine))
        if "entry" in groups and not pairs:
            mine = [i for _, i in axes]
            written = groups["entry"]
            if len(written) == 1 and isinstance(written[0], R.Name) and len(written[0].letters) == len(mine) > 1:
                written = [R.Name(written[0].pos, [c]) for c in written[0].letters]
            if len(written) == len(mine):
                pairs = list(zip(written, mine))
    fixed, by_name = {}, {}
    for node, idx in pairs:
        if isinstance(node, R.Name) and len(node.letters) == 1 and not node.scripts:
            name = node.letters[0]
            by_name[name] = idx
            ctx.index_symbol(name, node.pos, register=True)
        elif isinstance(node, R.Num) and "." not in node.text:
            fixed[idx] = int(node.text)
    return fixed, by_name


def _lhs_groups(lhs, ctx):
    entry = _entry_of_derivative(lhs)
    if entry is not None:
        return {"all": entry[1]}
    if isinstance(lhs, R.Frac) and M.is_partial(lhs.num):
        return {"of": _index_items(M.partial_arg(lhs.num), ctx),
                "wrt": _index_items(M.partial_arg(lhs.den), ctx)}
    if isinstance(lhs, R.Bin) and lhs.op == "/" and M.is_partial(lhs.left):
        return {"of": _index_items(M.partial_arg(lhs.left), ctx),
                "wrt": _index_items(M.partial_arg(lhs.right), ctx)}
    if isinstance(lhs, (R.Name, R.Group)):
        return {"entry": _index_items(lhs, ctx), "of": _index_items(lhs, ctx)}
    return None


def _index_items(node, ctx):
    if isinstance(node, R.Group) and isinstance(node.body, R.Name):
        node = R.Name(node.pos, node.body.letters, node.body.scripts + node.scripts)
    if not isinstance(node, R.Name):
        return []
    items = []
    _, scripts = split_name("".join(node.letters), node.scripts, ctx)
    if any(M.time_offset(i) is not None for k, a in scripts if k in "_[" for i in (M.script_items(a) if k == "_"
                                                                                     else a)):
        return []            # h_{t-1}: a time step, not the answer's indices
    for kind, arg in scripts:
        if kind == "_":
            items += M.script_items(arg)
        elif kind == "[":
            items += list(arg)
        elif kind == "^" and isinstance(arg, R.Group) and arg.paren in ("(", "<"):
            items.append(arg.body)
    return items


def _row_named(lhs, target, info):
    """The row of an explicit Jacobian that a left side ∂y_k/∂x names (the sheet's ``\\begin{gathered}`` of
    one row a line), as a target of its own; None when the left side names no single row. An entry of a
    tensor y (∂f_{1,2}/∂W) names the row of its row-major position, shown as a slice shaped like x."""
    if not (isinstance(lhs, R.Frac) and M.is_partial(lhs.num) and M.is_partial(lhs.den)):
        return None
    top, bottom = M.partial_arg(lhs.num), M.partial_arg(lhs.den)
    if isinstance(top, R.Group) and top.paren == "{" and isinstance(top.body, R.Name):
        top = R.Name(top.pos, top.body.letters, top.body.scripts + top.scripts)
    if not isinstance(top, R.Name) or len(top.scripts) != 1 or top.scripts[0][0] != "_":
        return None
    arg = top.scripts[0][1]
    nums = arg.items if isinstance(arg, R.Tuple) and arg.paren == "," else [arg]
    if not all(isinstance(n, R.Num) and "." not in n.text for n in nums):
        return None
    if not isinstance(bottom, R.Name) or bottom.scripts:
        return None
    base, expected = info.problem.index_base, target.value
    at = [int(n.text) - base for n in nums]
    if len(at) == 1:
        k, shape = at[0], None
    else:                                   # ∂f_{1,2}/∂W: the row of f[0, 1] in vec(f), a slice shaped like W
        from ..derivative import matrix_view
        of, wrt = _declared("".join(top.letters), info), _declared("".join(bottom.letters), info)
        if of is None or wrt is None or len(of.shape) != len(at) \
                or not all(sp.sympify(n).is_Integer for n in tuple(of.shape) + tuple(wrt.shape)) \
                or not all(0 <= a < int(n) for a, n in zip(at, of.shape)):
            return None
        k = 0
        for a, n in zip(at, of.shape):
            k = k * int(n) + a
        shape = matrix_view(wrt.shape)
    if not (0 <= k < expected.rows) or expected.rows == 1:
        return None
    row = expected[k, :]
    if shape is not None and shape[0] * shape[1] == row.cols:
        return dataclasses.replace(target, value=row.reshape(*shape), row=0,
                                   label=f"{target.label}, the slice ∂{''.join(top.letters)}"
                                         f"[{', '.join(n.text for n in nums)}]")
    return dataclasses.replace(target, value=row, row=k, label=f"{target.label}, row {k + base}")


def _block_parts(lhs):
    """(name, (indices...)) of a block label A^{(2)}, X^{(1,3)}, B^{(0;0)}; None for any other left side."""
    if isinstance(lhs, R.Group) and lhs.paren == "{" and isinstance(lhs.body, R.Name) and not lhs.scripts:
        lhs = lhs.body
    if not isinstance(lhs, R.Name) or len(lhs.scripts) != 1 or lhs.scripts[0][0] != "^":
        return None
    arg = lhs.scripts[0][1]
    if isinstance(arg, R.Group) and arg.paren == "(":
        nums = [arg.body]
    elif isinstance(arg, R.Tuple) and arg.paren == "(":
        nums = arg.items
    else:
        return None
    if not all(isinstance(n, R.Num) and "." not in n.text for n in nums):
        return None
    return "".join(lhs.letters), tuple(int(n.text) for n in nums)


def _block_named(lhs, info):
    """The block of a matrix printed by blocks that a left side A^{(2)} names, as a target of its own."""
    parts = _block_parts(lhs)
    if parts is None:
        return None
    for t in info.targets:
        for name, at, r0, c0, rows, cols in t.blocks:
            if (name, tuple(at)) == parts:
                return dataclasses.replace(t, value=t.value[r0:r0 + rows, c0:c0 + cols], blocks=(),
                                           label=f"{t.label}, block {name}^({','.join(map(str, at))})")
    return None


def _block_whole(lhs, info):
    """The matrix printed by blocks whose name the left side is (A of A \\in \\mathbb{R}^{…}), or None."""
    if isinstance(lhs, R.Group) and lhs.paren == "{" and isinstance(lhs.body, R.Name) and not lhs.scripts:
        lhs = lhs.body
    if not isinstance(lhs, R.Name) or lhs.scripts:
        return None
    name = "".join(lhs.letters)
    return next((t for t in info.targets if t.blocks and t.blocks[0][0] == name), None)


def _compare_matrix_size(dims, target):
    """A dimension stated for an explicit matrix (A \\in \\mathbb{R}^{3 \\times 35}): its size."""
    if dims is None or tuple(sp.sympify(d) for d in dims) != tuple(target.value.shape):
        shown = " × ".join(str(d) for d in dims or ())
        raise Incorrect("shape", f"the answer is {shown}, the matrix {target.label} is "
                                 f"{target.value.rows} × {target.value.cols}")
    return "shape"


def _declared(name, info):
    """The tensor or layer ``name`` of the question, or None."""
    from .targets import all_tensors
    return all_tensors(info.context_args["scope"]).get(name)


def _target_value(v, target):
    from .targets import Target
    return Target(target.label, "value", v)


def _concrete_shapes(info):
    from .targets import all_tensors
    shapes = {}
    for name, t in all_tensors(info.context_args["scope"]).items():
        if t.shape and all(sp.sympify(n).is_Integer for n in t.shape):
            shapes[name] = t.shape
    up = info.context_args.get("upstream")
    if up is not None and all(sp.sympify(n).is_Integer for n in up.shape):
        shapes[up.name] = up.shape
    return shapes


def _points(n):
    return f"numeric at {n} point{'s' if n != 1 else ''}"


def _show(size, info):
    return sp.sstr(sp.sympify(size))


def _shape_text(value):
    return " × ".join(str(s) for s in value.shape[-2:])


def _plain(expr, info):
    from ..answer import sympy_string
    return sympy_string(expr, info.problem.index_base)
