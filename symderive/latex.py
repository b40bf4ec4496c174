"""LaTeX for sheets and notebooks: expressions in the display index base, partials,
dimensions, and matrices as ``bmatrix`` (or a summary when too large to read)."""
import sympy as sp

from .indices import for_display

#: Matrices with more rows or columns than this are summarised, not printed in full.
MAX_PRINTED = 12


def show(expr, base=0):
    """LaTeX of ``expr`` with indices printed in ``base``."""
    if isinstance(expr, sp.MatrixBase):
        return matrix(expr, base)
    return sp.latex(for_display(sp.sympify(expr), base), mul_symbol=None)


def entry(name, idx, base=0):
    """``x_{i,j}`` for indices (Idx or numbers) shown in ``base``."""
    shown = [sp.latex(for_display(sp.sympify(i), base) + base) for i in idx]
    return f"{name}_{{{','.join(shown)}}}" if idx else name


def partial(of, of_idx, wrt, wrt_idx, base=0):
    return rf"\frac{{\partial {entry(of, of_idx, base)}}}{{\partial {entry(wrt, wrt_idx, base)}}}"


def dims(shape):
    """\\mathbb{R}^{2 \\times 5}; a scalar is \\mathbb{R}."""
    if not shape:
        return r"\mathbb{R}"
    return r"\mathbb{R}^{" + r" \times ".join(sp.latex(s) for s in shape) + "}"


def matrix(m, base=0):
    rows = [" & ".join(show(m[r, c], base) for c in range(m.cols)) for r in range(m.rows)]
    return r"\begin{bmatrix}" + r" \\ ".join(rows) + r"\end{bmatrix}"


def too_large(m):
    return m.rows > MAX_PRINTED or m.cols > MAX_PRINTED


def text(s):
    """Escape plain text for LaTeX, keeping $...$ math spans as written."""
    out, math = [], False
    specials = {"&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}
    unicode = {"×": r"$\times$", "−": "-", "≤": r"$\le$", "≥": r"$\ge$", "→": r"$\to$", "∂": r"$\partial$",
               "σ": r"$\sigma$", "δ": r"$\delta$", "⊙": r"$\odot$", "ᵀ": r"$^{T}$", "∞": r"$\infty$",
               "‖": r"$\|$", "Σ": r"$\Sigma$", "∈": r"$\in$", "⟨": r"$\langle$", "⟩": r"$\rangle$",
               "’": "'", "“": "``", "”": "''", "–": "--", "—": "---", "…": r"\dots{}", "²": r"$^2$",
               "ℝ": r"$\mathbb{R}$", "√": r"$\surd$", "≈": r"$\approx$", "·": r"$\cdot$", "⌊": r"$\lfloor$",
               "⌋": r"$\rfloor$", "₀": r"$_0$", "₁": r"$_1$", "₂": r"$_2$", "ⁿ": r"$^n$", "α": r"$\alpha$",
               "η": r"$\eta$", "θ": r"$\theta$", "λ": r"$\lambda$", "μ": r"$\mu$", "ε": r"$\varepsilon$"}
    for ch in str(s):
        if ch == "$":
            math = not math
            out.append(ch)
        elif math:
            out.append(ch)
        elif ch in specials:
            out.append(specials[ch])
        elif ch in unicode:
            out.append(unicode[ch])
        elif ord(ch) > 127:
            out.append("?")
        else:
            out.append(ch)
    if math:
        out.append("$")
    return "".join(out)
