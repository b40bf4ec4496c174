"""Unicode maths symbols and the LaTeX they stand for: read by students' LaTeX
(``checking.latex_tokens``) and by authored text (``authored_text``), which adds more of its own.
A module of its own so that loading a problem file does not import the grading package."""

MATH_UNICODE = {
    "σ": r"\sigma", "δ": r"\delta", "∂": r"\partial", "⊙": r"\odot", "∘": r"\circ", "×": r"\times",
    "·": r"\cdot", "⋅": r"\cdot", "−": "-", "∑": r"\sum", "ᵀ": "^T", "≈": r"\approx", "≤": r"\le",
    "≥": r"\ge", "∈": r"\in", "ℝ": r"\mathbb{R}", "⌊": r"\lfloor", "⌋": r"\rfloor", "⌈": r"\lceil",
    "⌉": r"\rceil", "⟨": r"\langle", "⟩": r"\rangle", "′": "'", "∇": r"\nabla", "τ": r"\tau",
    "η": r"\eta", "α": r"\alpha", "β": r"\beta", "γ": r"\gamma", "μ": r"\mu", "π": r"\pi", "θ": r"\theta",
    "ℓ": r"\ell", "≠": r"\neq", "…": r"\dots", "⊤": r"\top", "∞": r"\infty", "λ": r"\lambda",
}
