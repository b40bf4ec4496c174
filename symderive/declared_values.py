"""Values declared on tensors are used by every answer that can use them, or refused: never ignored.

An ask derives its answer symbolically (a Jacobian's array, a chain rule's ∂L/∂X, a value in
tensor entries). When the question's tensors carry values (``x: {shape: [2], value: [1, 2]}``),
every result that is a function of those entries alone (no free index) is then also given at
those values, exactly: the max-pool backward with X and the upstream G declared gives the
numbers, not only the array of Heaviside steps. A result that cannot take them (an element
formula with free indices, and nothing else in the answer that can) makes the question fail with
one line that says what to ask instead. Asks that compute with values themselves
(``USES_VALUES = True``: forward_backward, forward, gradient_step, rnn_recurrence) are left as
they are.
"""
import sympy as sp

from .answer import Kind, Result, Step
from .errors import ExpressionError
from .numeric_network import tensor_array, tidy
from .tensors import zero_outside

#: Kinds whose values are formulas in tensor entries (the others are shapes, words, text).
EVALUATED = {Kind.ENTRIES, Kind.VALUE, Kind.ELEMENT, Kind.CLAIM}


def valued_tensors(ctx):
    """name -> Tensor for every tensor the question sees that carries a value."""
    found = {}
    decls = ctx.decls
    while decls is not None:
        for name, tensor in decls.tensors.items():
            if name not in found and getattr(tensor, "value_spec", None) is not None:
                found[name] = tensor
        decls = decls.parent
    return {name: tensor for name, tensor in found.items() if ctx.decls.lookup(name) is tensor}


def _label(atom):
    return atom.base.label.name if isinstance(atom, sp.Indexed) else atom.name


def _atoms(value):
    expr = value if isinstance(value, (sp.Basic, sp.MatrixBase)) else sp.sympify(value)
    atoms = expr.atoms(sp.Indexed, sp.Symbol) if hasattr(expr, "atoms") else set()
    return atoms


def use_declared_values(ctx, answer):
    """The answer with each result that is a function of valued tensor entries also given at the
    values; or an error when the values matter to the answer and none of its results can take them."""
    from .asks import ASKS
    if not answer.ok or ASKS[ctx.question.ask].uses_values:
        return answer
    valued = valued_tensors(ctx)
    if not valued:
        return answer
    arrays, extra, unusable, used_names = {}, [], [], set()
    for result in list(answer.results):
        if result.kind not in EVALUATED or isinstance(result.value, (str, tuple)):
            continue
        try:
            atoms = _atoms(result.value)
        except (TypeError, sp.SympifyError):
            continue
        hits = {a for a in atoms if _label(a) in valued and (isinstance(a, sp.Indexed) or not valued[_label(a)].shape)}
        if not hits:
            continue
        names = sorted({_label(a) for a in hits})
        # free indices (integer symbols) leave a formula; other tensors without values may stay symbolic
        # (the max-pool backward at the given X with the upstream g still a symbol routes each g entry)
        free = {a for a in atoms if isinstance(a, (sp.Idx, sp.Symbol)) and a.is_integer}
        if result.kind in (Kind.ELEMENT, Kind.CLAIM) or free or any(isinstance(a, sp.Indexed) and not all(
                i.is_Integer for i in a.indices) for a in hits):
            unusable.append((result, names))
            continue
        for name in names:
            if name not in arrays:
                arrays[name] = tensor_array(ctx, valued[name])
        extra.append(_at_values(ctx, result, hits, valued, arrays))
        used_names |= set(names)
    if unusable and not extra:
        result, names = unusable[0]
        raise ExpressionError(
            f"tensor{'s' if len(names) > 1 else ''} {', '.join(names)} "
            f"{'have values' if len(names) > 1 else 'has a value'}"
            f", which ask '{ctx.question.ask}' cannot use: its answer is "
            + ("an identity for all values" if result.kind is Kind.CLAIM else "a formula in the indices")
            + (" (ask for the array: leave out 'array: false')" if ctx.option("array") is False else "")
            + ("; remove the value (ask value for the expression at it)" if result.kind is Kind.CLAIM else
               "; for numbers ask forward_backward with of: (see docs/problem-format.md), or remove the value"),
            ctx.question.line, None)
    if extra:
        answer.results.extend(extra)
        answer.steps.append(Step("", f"the answer at the declared values of {', '.join(sorted(used_names))}, exactly"
                                     + ("; the formula results stay symbolic" if unusable else "")))
    return answer


def _at_values(ctx, result, hits, valued, arrays):
    from .numeric_graph import TieError, is_tie_step, shown
    known = {}
    for atom in hits:
        name = _label(atom)
        value = arrays[name]
        if not isinstance(atom, sp.Indexed):
            known[atom] = value
            continue
        idx = tuple(int(i) for i in atom.indices)
        shape = tuple(int(s) for s in valued[name].shape)
        if not all(0 <= i < n for i, n in zip(idx, shape)):
            known[atom] = sp.Integer(0)          # zero padding
        elif isinstance(value, sp.MatrixBase):
            known[atom] = value[idx[0], idx[1] if len(idx) > 1 else 0]
        else:
            known[atom] = value[idx]

    def evaluate(expr):
        expr = zero_outside(sp.sympify(expr), {n: tuple(int(s) for s in t.shape) for n, t in valued.items()})
        for step in expr.atoms(sp.Heaviside):
            if is_tie_step(step) and step.args[0].xreplace(known).doit() == 0:
                raise TieError(f"{result.label}: a max (pooling) of equal entries at the declared values, where "
                               f"the derivative is not defined; give values without a tie",
                               ctx.question.line, None)
        return tidy(expr.xreplace(known).doit())

    value = result.value.applyfunc(evaluate) if hasattr(result.value, "applyfunc") else evaluate(result.value)
    kind = Kind.ENTRIES if hasattr(value, "shape") else Kind.VALUE
    names = ", ".join(valued[n].tex for n in sorted({_label(a) for a in hits}))
    # The value first, then where it holds as a note in parentheses: a line that can be pasted back as an
    # answer ("at the given G, X:\quad" before it read as two parts, G and X = ...).
    text = shown(value)
    if text.startswith(r"\approx"):
        text = rf"{result.label} {text}" if result.label.isidentifier() and len(result.label) == 1 else text[8:]
    return Result(f"{result.label} at the values", value, rf"{text}\ \ (\text{{at the given }} {names})",
                  kind, key=f"{result.key} at values")


# The --verify side: the results at the declared values, against torch at those same values.
def check_at_values(job):
    """Compare each result given at the declared values with torch autograd at those values: a chain
    rule's ∂L/∂X with the declared upstream, a derivative's Jacobian row by row. Other asks' results
    at values (a ``value`` in tensor entries) are compared with the expression evaluated by torch."""
    results = [r for r in job.answer.results if isinstance(r.key, str) and r.key.endswith(" at values")]
    if not results:
        return
    import numpy as np
    import torch
    from .numeric_graph import graph_nodes
    valued = valued_tensors(job.ctx)

    def floats(value):
        if isinstance(value, sp.MatrixBase):
            return np.array([[float(v) for v in value.row(r)] for r in range(value.rows)], dtype=float)
        if isinstance(value, sp.NDimArray):
            return np.array(value.tolist(), dtype=float)
        return np.array(float(value))

    arrays = {name: floats(tensor_array(job.ctx, t)).reshape(tuple(int(s) for s in t.shape))
              for name, t in valued.items()}
    ask, base = job.question.ask, job.problem.index_base
    if ask not in ("chain_rule", "derivative"):
        return
    of, wrt = job.ctx.tensor("of"), job.ctx.tensor("wrt")
    missing = [n.name for n in graph_nodes([of]) if not n.is_layer and n.name not in arrays]
    if missing:
        return
    graph = job.graph({}, arrays)
    variable = graph.leaf(wrt.name, requires_grad=True)
    out = graph.get(of)
    job.random_inputs, job.autograd = False, True
    if ask == "chain_rule":
        upstream = job.question.option("upstream")
        if upstream not in arrays:
            return
        out.backward(torch.tensor(arrays[upstream], dtype=torch.float64).reshape(out.shape))
        reference = variable.grad.reshape(-1).numpy()
    else:
        rows = []
        flat = out.reshape(-1)
        for k in range(flat.numel()):
            (row,) = torch.autograd.grad(flat[k], variable, retain_graph=True, allow_unused=True)
            rows.append(np.zeros(variable.numel()) if row is None else row.reshape(-1).numpy())
        reference = np.concatenate(rows) if rows else np.zeros(0)
    for result in results:
        engine = floats(result.value).reshape(-1)
        job.compare(f"{result.label} with autograd at the declared values", engine, reference,
                    [f"entry {k + base}" for k in range(engine.size)])
