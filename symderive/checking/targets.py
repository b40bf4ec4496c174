"""What an answer is compared with: the engine's results for a question, typed.

Each ``Result`` of the engine's ``Answer`` becomes a ``Target``: a shape, an element
formula with its free indices (grouped as the output's and the variable's, in the
order of the question's left side), explicit entries, a number, or a word. The
``meaning.Context`` for reading the student's answer is built here too: the
question's scope, the upstream gradient of a chain-rule question, the state of a
recurrence.
"""
from dataclasses import dataclass, field

import sympy as sp

from ..derivative import chain_rule_avoid, derivative_indices, upstream_name
from ..expressions import parse, parse_equation
from ..tensors import Tensor, numel
from .meaning import Context

SHAPE_ASKS = {"shape", "element", "derivative", "chain_rule", "shape_table", "batchnorm_shapes"}
SHAPE_LABELS = {"shape", "dimension", "output shape"}
WORD_LABELS = {"verdict"}


@dataclass
class Target:
    label: str
    kind: str                  # shape, element, entries, value, word, tuple
    value: object
    axes: tuple = ()           # ((group, Idx), ...) of an element formula
    alt_shapes: tuple = ()     # other accepted shapes (a Jacobian as its flattened matrix)
    latex: str = ""


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
    ask, spec = question.ask, question.spec
    axes = ()
    try:
        axes = _axes(question, decls)
    except Exception:       # an ask whose indices cannot be rebuilt: fall back to the result's own
        axes = ()
    if ask == "chain_rule":
        of = decls.lookup(str(spec["of"]).strip())
        wrt = decls.lookup(str(spec["wrt"]).strip())
        upstream = Tensor(upstream_name(of, wrt, spec.get("upstream")), of.shape)
        args["upstream"] = upstream
        same = [n for n, t in all_tensors(decls).items() if tuple(t.shape) == tuple(of.shape)]
        args["upstream_of"] = tuple(dict.fromkeys([of.name] + same))
        args["losses"] = tuple(dict.fromkeys([str(spec.get("loss", "l")), "l", "L", "ell", "E", "J"]))
    if ask == "rnn_recurrence":
        state = decls.lookup(str(spec["state"]).strip())
        update = parse(str(spec["update"]), decls.scope())
        args["state"] = (state.base, update)
    if ask == "prove":
        for text in spec.get("constraints", []) or []:
            info.constraints.append(parse_equation(text, decls.scope()))
    for name, tensor in all_tensors(decls).items():
        value = getattr(tensor, "value_spec", None)
        if not tensor.shape and isinstance(value, (int, float)) and not isinstance(value, bool):
            info.values[tensor.base] = sp.Rational(str(value))
    info.targets = _targets(question, answer, decls, axes)
    args["question_indices"] = tuple(sorted({i.name for t in info.targets for _, i in t.axes}))
    if not info.targets:
        info.checkable, info.reason = False, "the engine's answer has nothing an answer can be compared with"
    return info


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


def _axes(question, decls):
    """The free indices of the question's element formula, grouped, in the left side's order."""
    ask, spec = question.ask, question.spec
    if ask == "element":
        layer = decls.lookup(str(spec["of"]).strip())
        return tuple(("of", i) for i in layer.free_indices())
    if ask in ("derivative", "chain_rule", "conv_matrix"):
        of = decls.lookup(str(spec["of"]).strip())
        if ask == "conv_matrix":
            wrt = of.x if spec.get("matrix", "A") == "A" else of.weight
        else:
            text = str(spec["wrt"]).strip()
            if "[" in text:            # one entry: only the output's indices are free
                return tuple(("of", i) for i in of.free_indices())
            wrt = decls.lookup(text)
        avoid = chain_rule_avoid(of, wrt, spec.get("upstream"), spec.get("loss", "l")) \
            if ask == "chain_rule" else ()
        out_idx, _, wrt_idx = derivative_indices(of, wrt, avoid)
        if ask == "chain_rule":
            return tuple(("wrt", i) for i in wrt_idx)
        return tuple(("of", i) for i in out_idx) + tuple(("wrt", i) for i in wrt_idx)
    return ()


def _free_idx(expr):
    bound = set()
    for s in expr.atoms(sp.Sum, sp.Product):
        bound |= {lim[0] for lim in s.limits}
    return sorted((i for i in expr.atoms(sp.Idx) if i not in bound), key=lambda i: i.name)


def _targets(question, answer, decls, axes):
    ask = question.ask
    out = []
    for r in answer.results:
        v, label = r.value, str(r.label)
        if isinstance(v, str):
            if label in WORD_LABELS:
                out.append(Target(label, "word", v, latex=r.latex))
            continue
        if isinstance(v, bool):
            continue
        if isinstance(v, (tuple, list)):
            items = [sp.sympify(x) for x in v]
            if ask in SHAPE_ASKS or label in SHAPE_LABELS:
                alts = ()
                if ask == "derivative" and label == "dimension":
                    of = decls.lookup(str(question.spec["of"]).strip())
                    wrt_text = str(question.spec["wrt"]).strip()
                    if "[" not in wrt_text:
                        wrt = decls.lookup(wrt_text)
                        alts = ((numel(of.shape), numel(wrt.shape)),)
                out.append(Target(label, "shape", tuple(items), alt_shapes=alts, latex=r.latex))
            else:
                out.append(Target(label, "tuple", tuple(items), latex=r.latex))
            continue
        if isinstance(v, (sp.MatrixBase,)):
            out.append(Target(label, "entries", sp.Matrix(v), latex=r.latex))
            continue
        if isinstance(v, sp.NDimArray):
            if v.rank() <= 2:
                out.append(Target(label, "entries", v.tomatrix(), latex=r.latex))
            continue
        if isinstance(v, sp.Eq):                      # a claim: compare with its right side
            free = tuple((None, i) for i in _free_idx(v))
            out.append(Target(label, "element", v.rhs, axes=free, latex=r.latex))
            continue
        if isinstance(v, (int, float)):
            out.append(Target(label, "value", sp.sympify(v), latex=r.latex))
            continue
        if isinstance(v, sp.Basic):
            free = _free_idx(v)
            if label == "element" or free:
                use = axes if axes and set(i for _, i in axes) >= set(free) else tuple((None, i) for i in free)
                out.append(Target(label, "element", v, axes=use, latex=r.latex))
            elif v.is_number:
                out.append(Target(label, "value", v, latex=r.latex))
            else:
                out.append(Target(label, "element", v, axes=(), latex=r.latex))
    # An exact value and its decimal are one target: the exact one.
    if any(t.label == "exact" for t in out):
        out = [t for t in out if t.label != "decimal"]
    return out
