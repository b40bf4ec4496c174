"""What an answer is compared with: the engine's results for a question, typed.

Each ``Result`` of the engine's ``Answer`` becomes a ``Target`` by its kind
(``answer.Kind``, set by the ask): a shape, an element formula with its free indices
(the result's ``axes``: the output's and the variable's, in the order of the
question's left side), explicit entries, a number, a list or a word. The
``meaning.Context`` for reading the student's answer is built here too: the
question's scope, the upstream gradient of a chain-rule question, the state of a
recurrence.
"""
from dataclasses import dataclass, field
from types import SimpleNamespace

import sympy as sp

from .meaning import Context

@dataclass
class Target:
    label: str
    kind: str                  # shape, element, entries, value, word, tuple
    value: object
    axes: tuple = ()           # ((group, Idx), ...) of an element formula
    alt_shapes: tuple = ()     # other accepted shapes (a Jacobian as its flattened matrix)
    latex: str = ""
    key: str = ""              # the result's key (answer.Result.key)
    components: tuple = ()     # what each entry of a tuple counts ("with bias", "without bias")
    row: int = 0               # for one row of an explicit matrix (∂y_k/∂x): k, the row's place in the whole


@dataclass
class QuestionInfo:
    """Everything about one question that checking needs, built once per question."""
    problem: object
    question: object
    answer: object
    targets: list
    context_args: dict
    constraints: list = field(default_factory=list)
    values: dict = field(default_factory=dict)       # scalar tensors with declared values
    tolerance: object = None
    #: {name: course_forms.Intermediate} backprop's δ's: names in what is graded, their values computed
    #: from these definitions at each test point (compare.numeric_equal)
    computed: dict = field(default_factory=dict)
    checkable: bool = True
    reason: str = ""

    def context(self):
        return Context(**self.context_args)


def question_info(problem, question, answer):
    from ..answer import Status
    decls = problem.declarations(question)
    args = {"scope": decls, "base": problem.index_base}
    info = QuestionInfo(problem, question, answer, [], args)
    from .tolerance import read_tolerance
    info.tolerance = read_tolerance(question)
    if question.ask == "text" or answer.status is Status.AUTHORED:
        info.checkable, info.reason = False, "an authored-text question: there is nothing to compare with"
        return info
    if answer.status is Status.FAILED:
        info.checkable, info.reason = False, f"the engine could not answer this question: {answer.error}"
        return info
    from ..asks import ASKS
    ask = ASKS.get(question.ask)
    if ask is not None and ask.grading is not None:      # what reading an answer to this ask needs
        extra = dict(ask.grading(question, decls))
        info.constraints = list(extra.pop("constraints", []))
        args.update(extra)
    for name, tensor in all_tensors(decls).items():
        value = getattr(tensor, "value_spec", None)
        if not tensor.shape and isinstance(value, (int, float)) and not isinstance(value, bool):
            info.values[tensor.base] = sp.Rational(str(value))
    from .aliases import read_aliases
    args["aliases"] = read_aliases(question, decls)
    info.targets = _targets(answer)
    # The names the sheet defines (ŷ, P, the one-hot Y; course_forms.Intermediate): a student may write them,
    # and a boxed result written with them is graded as what they stand for
    recorded = {name: i for name, i in getattr(answer, "intermediates", {}).items() if decls.lookup(name) is None}
    defined = {name: i for name, i in recorded.items() if not i.computed}
    if recorded:
        from dataclasses import replace
        from ..course_forms import expand_intermediates
        readable = dict(defined)
        for i in defined.values():                    # Ŷ for P: where the question and the sheet leave it free
            readable.update({other: i for other in i.also if other not in readable and decls.lookup(other) is None})
        args["definitions"] = readable
        for t in info.targets:
            if t.kind == "element":
                t.value = expand_intermediates(t.value, defined)
        # backprop's δ's stay names (sheet_names makes them tensors); their values are computed from these
        info.computed = {name: replace(i, element=expand_intermediates(i.element, defined))
                         for name, i in recorded.items() if i.computed}
    args["extra_tensors"], args["constants"] = sheet_names(answer, decls, info.targets,
                                                           [i.element for i in info.computed.values()])
    args["question_indices"] = tuple(sorted({i.name for t in info.targets for _, i in t.axes}))
    if not info.targets:
        info.checkable, info.reason = False, "the engine's answer has nothing an answer can be compared with"
    return info


def sheet_names(answer, decls, targets, definitions=()):
    """({name: Tensor}, {name: value}): the names the answer sheet itself introduces, so that a boxed
    answer pasted back reads: backpropagation's δ^{z_1} (an IndexedBase of the engine's answer that the
    question does not declare: delta__z1) and a numeric pass's abbreviations τ_k (their exact values)."""
    from ..tensors import Tensor
    tensors = {}
    for t in [*targets, *(SimpleNamespace(value=d) for d in definitions)]:
        value = t.value
        exprs = list(value) if isinstance(value, (tuple, sp.MatrixBase)) else [value]
        for e in exprs:
            atoms = getattr(e, "atoms", None)
            for base in (atoms(sp.IndexedBase) if atoms is not None else ()):
                name = base.label.name
                if name in tensors or not base.shape:
                    continue
                try:
                    if decls.lookup(name) is not None:
                        continue
                except Exception:
                    pass
                tensor = Tensor(name, base.shape)
                tensor.base = base
                tensors[name] = tensor
    constants = {str(symbol): value for symbol, value in getattr(answer, "abbreviations", {}).items()}
    return tensors, constants


def all_tensors(decls):
    """Every tensor and layer that ``decls`` can name, by name; inner declarations win."""
    out = {}
    chain = []
    node = decls
    while node is not None:
        chain.append(node)
        node = node.parent
    for level in reversed(chain):
        for name in list(level.tensors) + list(level.layer_specs):
            try:
                t = level.lookup(name)
            except Exception:
                continue
            if t is not None:
                out[name] = t
    return out


def _free_idx(expr):
    bound = set()
    for s in expr.atoms(sp.Sum, sp.Product):
        bound |= {lim[0] for lim in s.limits}
    return sorted((i for i in expr.atoms(sp.Idx) if i not in bound), key=lambda i: i.name)


def _targets(answer):
    """The targets of an answer's results, read off each result's kind and axes."""
    from ..answer import Kind
    out = [t for t in (_target(r) for r in answer.results) if t is not None]
    # An exact value and its decimal are one target: the exact one.
    if any(r.kind is Kind.VALUE for r in answer.results):
        decimals = {r.key for r in answer.results if r.kind is Kind.DECIMAL}
        out = [t for t in out if t.key not in decimals]
    return out


def _target(r):
    from ..answer import Kind
    v, label, kind = r.value, str(r.label), r.kind
    if kind is Kind.WORD:
        return Target(label, "word", v, latex=r.latex, key=r.key)
    if kind in (Kind.SHAPE, Kind.TUPLE):
        return Target(label, kind.value, tuple(sp.sympify(x) for x in v), alt_shapes=r.alt_shapes,
                      latex=r.latex, key=r.key, components=tuple(getattr(r, "components", ()) or ()))
    if kind is Kind.ENTRIES:
        if isinstance(v, sp.MatrixBase):
            return Target(label, "entries", sp.Matrix(v), latex=r.latex, key=r.key)
        if isinstance(v, sp.NDimArray) and v.rank() <= 2:
            return Target(label, "entries", v.tomatrix(), latex=r.latex, key=r.key)
        return None
    if kind is Kind.CLAIM:                       # compare with its right side
        free = tuple((None, i) for i in _free_idx(v))
        return Target(label, "element", v.rhs, axes=free, latex=r.latex, key=r.key)
    if kind is Kind.ELEMENT:
        v = sp.sympify(v)
        free = _free_idx(v)
        axes = r.axes
        use = axes if axes and set(i for _, i in axes) >= set(free) else tuple((None, i) for i in free)
        return Target(label, "element", v, axes=use, latex=r.latex, key=r.key)
    if kind in (Kind.VALUE, Kind.DECIMAL):
        if isinstance(v, (int, float)):
            return Target(label, "value", sp.sympify(v), latex=r.latex, key=r.key)
        free = _free_idx(v)
        if free:                                 # a scalar formula in tensor entries
            return Target(label, "element", v, axes=tuple((None, i) for i in free), latex=r.latex, key=r.key)
        if v.is_number:
            return Target(label, "value", v, latex=r.latex, key=r.key)
        return Target(label, "element", v, axes=(), latex=r.latex, key=r.key)
    return None                                  # matrix forms, facts and text are shown, not graded
