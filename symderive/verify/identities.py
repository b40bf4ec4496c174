"""Cross-check of ``prove``: both sides of the identity computed by torch, ``diff(...)`` by autograd."""
import sympy as sp

from ..derivative import derivative
from ..torch_ops import VerifyError, integer_value, to_torch
from .job import as_int, engine_value, free_indices, sample_positions
from ..answer import Kind
from .registry import checks
from .report import FORMULA_DRAWS


@checks("prove")
def check_prove(job):
    """Both sides of the claim in torch at random inputs meeting the constraints: layer entries
    from the layers' torch ops, diff(f, x[i]) by autograd, then lhs against rhs."""
    from ..expressions import parse_equation
    claim = job.result(Kind.CLAIM)
    lhs, rhs = claim.lhs, claim.rhs
    free = sorted(free_indices(lhs) | free_indices(rhs))
    idx_of = {i.name: i for e in (lhs, rhs) for i in sp.sympify(e).free_symbols if isinstance(i, sp.Idx)}
    constraints = [parse_equation(text, job.ctx.decls.scope()) for text in job.question.option("constraints") or []]
    names = {a.base.label.name for e in (lhs, rhs) for a in e.atoms(sp.Indexed)} | \
        {s.name for e in (lhs, rhs) for s in e.free_symbols if isinstance(s, sp.Symbol) and not s.is_integer}
    nodes = [n for n in (job.decls.lookup(name) for name in sorted(names)) if n is not None]
    derivatives = sorted(set(lhs.atoms(sp.Derivative)) | set(rhs.atoms(sp.Derivative)), key=sp.default_sort_key)
    placeholders = {d: sp.Symbol(f"_derivative_{k}") for k, d in enumerate(derivatives)}
    sides = [sp.sympify(e).xreplace(placeholders) for e in (lhs, rhs)]
    job.autograd = bool(derivatives)
    for sizes in job.draw_sizes(nodes, FORMULA_DRAWS):
        values = job.values(nodes, sizes)
        env = {s: int(v) for s, v in sizes.items()}
        _meet_constraints(job, constraints, values, env)
        graph = job.graph(sizes, values)
        shape = [as_int(idx_of[n].upper, sizes) + 1 for n in free]
        positions = sample_positions(tuple(shape), 60, job.rng)
        left, right = [], []
        for pos in positions:
            where = {**env, **dict(zip(free, pos))}
            known = {placeholders[d].name: _autograd_value(job, d, sizes, values, where) for d in derivatives}

            def lookup(atom, graph=graph, known=known):
                if isinstance(atom, sp.Symbol) and atom.name in known:
                    return known[atom.name]
                return _graph_entry(job, graph, atom)

            left.append(float(to_torch(sides[0], lookup, where)))
            right.append(float(to_torch(sides[1], lookup, where)))
        job.compare("the two sides of the claim, each computed by PyTorch"
                    + (" (diff by autograd)" if derivatives else ""), left, right,
                    [", ".join(f"{n} = {v + job.problem.index_base}" for n, v in zip(free, pos)) or "the claim"
                     for pos in positions], sides=("lhs", "rhs"))


def _graph_entry(job, graph, atom):
    """The torch value of a tensor or layer entry (zero outside its range) or of a scalar."""
    import torch
    name = atom.base.label.name if isinstance(atom, sp.Indexed) else atom.name
    node = job.decls.lookup(name)
    if node is None:
        raise VerifyError(f"'{name}' is not a declared tensor or layer")
    value = graph.get(node)
    if not isinstance(atom, sp.Indexed):
        return value
    idx = tuple(int(i) for i in atom.indices)
    if not all(0 <= i < n for i, n in zip(idx, value.shape)):
        return torch.zeros((), dtype=torch.float64)
    return value[idx]


def _autograd_value(job, derivative, sizes, values, env):
    """diff(f, v) at the index values ``env``: f computed in torch with v's tensor as a leaf."""
    import torch
    (variable, count), = derivative.variable_count
    if count != 1:
        raise VerifyError("only first derivatives are cross-checked")
    name = variable.base.label.name if isinstance(variable, sp.Indexed) else variable.name
    node = job.decls.lookup(name)
    forward = job.graph(sizes, values).get(node).detach().numpy()
    graph = job.graph(sizes, {**values, name: forward}, override={name})
    leaf = graph.leaf(name, requires_grad=True)
    f = to_torch(derivative.expr, lambda atom: _graph_entry(job, graph, atom), env)
    if not f.requires_grad:
        return 0.0
    (grad,) = torch.autograd.grad(f, leaf, allow_unused=True)
    if grad is None:
        return 0.0
    if not isinstance(variable, sp.Indexed):
        return float(grad)
    return float(grad[tuple(integer_value(i, env) for i in variable.indices)])


def _meet_constraints(job, constraints, values, env):
    """Make the random inputs meet linear constraints such as sum_i p[i] = 1, by solving each for
    the last entry of the first tensor it names."""
    for left, right in constraints:
        atoms = sorted(left.atoms(sp.Indexed) | right.atoms(sp.Indexed), key=sp.default_sort_key)
        if not atoms:
            continue
        name = atoms[0].base.label.name
        if name not in values:
            raise VerifyError(f"cannot meet the constraint {left} = {right}: '{name}' is not an input")
        array = values[name]
        last = tuple(n - 1 for n in array.shape)

        def residual(v):
            array[last] = v
            return engine_value(left - right, values, None, env)

        at0, at1 = residual(0.0), residual(1.0)
        if abs(at1 - at0) < 1e-12:
            raise VerifyError(f"cannot meet the constraint {left} = {right} by its last entry of '{name}'")
        residual(-at0 / (at1 - at0))
        if abs(residual(array[last])) > 1e-9:
            raise VerifyError(f"the constraint {left} = {right} is not linear in '{name}': random inputs "
                              "cannot be drawn to meet it")
