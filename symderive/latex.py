"""LaTeX for sheets and notebooks: expressions in the display index base, partials,
dimensions, and matrices as ``bmatrix`` (or a summary when too large to read)."""
import functools

import sympy as sp
from sympy.core.cache import cacheit
from sympy.printing.latex import LatexPrinter

from . import display_names, sympy_memos
from .indices import for_display

#: Matrices with more rows or columns than this are summarised, not printed in full.
MAX_PRINTED = 12


def tex_name(name):
    """LaTeX for a declared name (its display name: ``display_names``), safe to subscript again.

    >>> tex_name("x"), tex_name("w_k"), tex_name("Wx")
    ('x', '{w_{k}}', '{W_{x}}')
    """
    return braced(display_names.display_tex(str(name)))


def braced(tex):
    """A name's LaTeX in braces when it has scripts or commands, so that it can be subscripted."""
    return "{" + tex + "}" if "_" in tex or "^" in tex or "\\" in tex else tex


class SheetPrinter(LatexPrinter):
    """SymPy's LaTeX, with declared names as their display names (``Wx`` as W_{x}) and range
    conditions printed as a course writes them."""

    def _print_Symbol(self, expr, style="plain"):
        if expr in self._settings["symbol_names"] or isinstance(expr, sp.Dummy):
            return super()._print_Symbol(expr, style)
        return display_names.display_tex(expr.name)

    def _print_Piecewise(self, expr):
        rows = []
        for value, cond in expr.args:
            shown = r"\text{otherwise}" if cond == sp.true else r"\text{if } " + _stacked(condition(cond, self))
            rows.append(f"{self._print(value)} & {shown}")
        return r"\begin{cases} " + r" \\ ".join(rows) + r" \end{cases}"


    def _print_Derivative(self, expr):
        """Always ∂: the derivatives on a sheet are by one entry of a tensor."""
        tops = "".join(rf"\partial {self._print(v)}" for v in expr.variables)
        inner = self._print(expr.expr)
        if not isinstance(expr.expr, (sp.Symbol, sp.Indexed)):
            inner = rf"\left({inner}\right)"
        return rf"\frac{{\partial}}{{{tops}}} {inner}"

    def _print_Heaviside(self, expr, exp=None):
        """ReLU's derivative, the unit step H(z), written as the mask courses write: 1{z > 0}."""
        arg = expr.args[0]
        maxima = compared_with(arg)
        if isinstance(arg, sp.Add) and len(maxima) == 1:        # max pooling: 1{x_p > max(the others)}
            tex = r"\mathbf{1}\{%s > %s\}" % (self._print(arg - maxima[0]), self._print(-maxima[0]))
        else:
            tex = indicator(self._print(arg))
        return tex if exp is None else r"\left(%s\right)^{%s}" % (tex, exp)


def compared_with(arg):
    """[−b] when a step's argument a − b compares an entry with a maximum or with another entry
    (max pooling's 1{x_p > max of the others}, 1{x_0 > x_1}), else []: printed a > b, not a − b > 0.

    >>> x = sp.IndexedBase('x')
    >>> compared_with(x[0] - x[1]), compared_with(x[0] - x[1] + 1)
    ([-x[1]], [])
    """
    terms = sp.Add.make_args(arg)
    negated = [t for t in terms if t.could_extract_minus_sign()]
    if len(negated) != 1 or len(terms) < 2:
        return []
    if isinstance(-negated[0], sp.Max) or len(terms) == 2 and all(isinstance(-t if t in negated else t, sp.Indexed)
                                                                  for t in terms):
        return negated
    return []


def indicator(inner):
    r"""The indicator 𝟙[inner > 0] as a sheet writes it: ``\mathbf{1}\{…\}`` (plain amsmath; ``\mathbb{1}``
    needs a package the sheets do not load). The checker reads it, and ``\mathbb{1}[…]``, back.

    >>> indicator("z")
    '\\mathbf{1}\\{z > 0\\}'
    """
    return r"\mathbf{1}\{%s > 0\}" % inner


#: Conditions longer than this (LaTeX source characters) are set one per line, to fit the page.
LONG_CONDITION = 60


def _stacked(shown):
    r"""Several conditions one under the other when together they are long.

    >>> _stacked(r"0 \leq i")
    '0 \\leq i'
    """
    parts = shown.split(r",\ ")
    if len(shown) <= LONG_CONDITION or len(parts) == 1:
        return shown
    return r"\begin{array}[t]{@{}l@{}}" + r", \\ ".join(parts) + r"\end{array}"


def condition(cond, printer=None):
    r"""``0 ≤ q − 2j ≤ 2`` instead of ``2j − q ≥ −2 ∧ 2j − q ≤ 0``; ``D ∣ e`` for Mod(e, D) = 0.

    >>> q, j = sp.symbols('q j', integer=True)
    >>> print(condition(sp.And(2*j - q >= -2, 2*j - q <= 0)))
    0 \leq q - 2 j \leq 2
    """
    printer = printer or SheetPrinter({"mul_symbol": None})
    parts = cond.args if isinstance(cond, sp.And) else (cond,)
    ranges, order, other = {}, [], []
    for part in parts:
        bound = _range_of(part)
        if bound is None:
            if isinstance(part, sp.Eq) and isinstance(part.lhs, sp.Mod) and part.rhs == 0:
                other.append(rf"{printer._print(part.lhs.args[1])} \mid {printer._print(part.lhs.args[0])}")
            else:
                other.append(printer._print(part))
            continue
        e, side, value = bound
        if e not in ranges:
            ranges[e] = [None, None]
            order.append(e)
        ranges[e][0 if side == "lower" else 1] = value
    shown = []
    for e in order:
        lo, hi = ranges[e]
        middle = _positive_first(e)
        if lo is not None and hi is not None:
            shown.append(rf"{printer._print(lo)} \leq {middle} \leq {printer._print(hi)}")
        elif lo is not None:
            shown.append(rf"{middle} \geq {printer._print(lo)}")
        else:
            shown.append(rf"{middle} \leq {printer._print(hi)}")
    return r",\ ".join(shown + other)


def _positive_first(e):
    """Print a sum with its positive terms first: q - 2 j rather than - 2 j + q."""
    terms = sorted(sp.Add.make_args(e), key=lambda t: t.could_extract_minus_sign())
    unordered = SheetPrinter({"mul_symbol": None, "order": "none"})
    return unordered._print(sp.Add(*terms, evaluate=False))


def _range_of(rel):
    """(e, 'lower'|'upper', c) for a relation  e ≥ c  or  e ≤ c  between integers, e oriented
    so that some index has coefficient +1 (the index the condition was solved for)."""
    if not isinstance(rel, (sp.GreaterThan, sp.LessThan, sp.StrictGreaterThan, sp.StrictLessThan)):
        return None
    diff = sp.expand(rel.lhs - rel.rhs)
    if not diff.free_symbols or not all(s.is_integer for s in diff.free_symbols):
        return None
    indices = [s for s in diff.free_symbols if s.is_positive is not True]
    if not indices:
        return None
    const = sum((t for t in sp.Add.make_args(diff) if not t.free_symbols & set(indices)), sp.S.Zero)
    e = diff - const
    lower = isinstance(rel, (sp.GreaterThan, sp.StrictGreaterThan))
    bound = -const + (1 if isinstance(rel, sp.StrictGreaterThan) else -1 if isinstance(rel, sp.StrictLessThan) else 0)
    if not any(e.coeff(s) == 1 for s in indices) and any(e.coeff(s) == -1 for s in indices):
        e, bound, lower = -e, -bound, not lower
    return sp.expand(e), "lower" if lower else "upper", sp.expand(bound)


def show(expr, base=0):
    """LaTeX of ``expr`` with indices printed in ``base``, declared names as their display names."""
    return _show(expr, base, display_names.in_force())


@cacheit
def _show(expr, base, names):
    """Memoized (a pure function of its arguments, the display names in force among them):
    the shipped problems printed 227 distinct expressions 901 times."""
    if isinstance(expr, sp.MatrixBase):
        return matrix(expr, base)
    shown = _subscripts_together(_floors_together(for_display(sp.sympify(expr), base)))
    return _sheet_printer(names).doprint(shown)


# One fraction per subscript or floor: (q + P - S j)/D rather than q/D + P/D - S j/D.
_floors_together = sympy_memos.replacer(lambda e: isinstance(e, (sp.floor, sp.ceiling)) and e.args[0].is_Add,
                                        lambda e: e.func(sp.together(e.args[0])))
_subscripts_together = sympy_memos.replacer(lambda e: isinstance(e, sp.Indexed) and any(
                                                sp.fraction(sp.together(a))[1] != 1 for a in e.indices),
                                            lambda e: e.base[tuple(sp.together(a) for a in e.indices)])


class _MemoPrinter(SheetPrinter):
    """The printer of ``show``: each subtree's LaTeX is kept, since a run prints the same subtrees
    again and again (5,336 distinct subtrees in 38,886 prints). SymPy's LaTeX printer writes a
    subtree the same wherever it occurs (a parent only wraps the child's string), given the
    printer's settings, the display names in force and the keyword arguments (such as ``exp``)."""

    def __init__(self, names):
        super().__init__({"mul_symbol": None})
        self.names = names

    def _print(self, expr, **kwargs):
        if isinstance(expr, sp.Basic):
            try:
                return _subtree_tex(expr, tuple(sorted(kwargs.items())), self.names)
            except TypeError:       # an unhashable keyword argument: print it afresh
                pass
        return super()._print(expr, **kwargs)

    def print_afresh(self, expr, kwargs):
        return super()._print(expr, **dict(kwargs))


@functools.lru_cache(maxsize=64)
def _sheet_printer(names):
    """One memoizing printer per set of display names."""
    return _MemoPrinter(names)


@functools.lru_cache(maxsize=1 << 14, typed=True)
def _subtree_tex(expr, kwargs, names):
    return _sheet_printer(names).print_afresh(expr, kwargs)


def plain(expr):
    """SymPy's LaTeX of ``expr`` as it is (no index shift), with display names: a size ``KH`` is K_{H}.

    >>> plain(sp.Symbol("KH") + 1)
    'K_{H} + 1'
    """
    return SheetPrinter().doprint(sp.sympify(expr))


def entry(name, idx, base=0):
    """``x_{i,j}`` for indices (Idx or numbers) shown in ``base``."""
    shown = [plain(for_display(sp.sympify(i), base) + base) for i in idx]
    name = tex_name(name)
    return f"{name}_{{{','.join(shown)}}}" if idx else name


def partial(of, of_idx, wrt, wrt_idx, base=0):
    return rf"\frac{{\partial {entry(of, of_idx, base)}}}{{\partial {entry(wrt, wrt_idx, base)}}}"


def dims(shape):
    """\\mathbb{R}^{2 \\times 5}; a scalar is \\mathbb{R}."""
    if not shape:
        return r"\mathbb{R}"
    return r"\mathbb{R}^{" + r" \times ".join(plain(s) for s in shape) + "}"


def matrix(m, base=0):
    rows = [" & ".join(show(m[r, c], base) for c in range(m.cols)) for r in range(m.rows)]
    return r"\begin{bmatrix}" + r" \\ ".join(rows) + r"\end{bmatrix}"


def too_large(m, base=0):
    """More rows or columns than ``MAX_PRINTED``, or wider than a line of the sheet when printed
    (then the sheet shows the matrix's dimension and structure instead)."""
    from .page_fit import MATRIX_LINE, width
    return m.rows > MAX_PRINTED or m.cols > MAX_PRINTED or width(matrix(m, base)) > MATRIX_LINE


def text(s):
    """Text with ``$...$`` maths, made safe for LaTeX: see ``authored_text`` (one sanitizer for every
    text a sheet prints, authored or not)."""
    from .authored_text import to_latex
    return to_latex(s)
