"""Names the engine's sheet defines by a formula, and what the checker draws for them (issue 14, blind batch 4).

Each answer's verdict is the one a grader gives from the course's own solution (Nielsen ch. 2 BP1-BP4,
CS224n a2 word2vec, CS231n softmax, Vaswani §3.2.1), not the engine's output.
"""
from pathlib import Path

import pytest
import sympy as sp

from symderive import load_problem
from symderive.checking.grade import check_one, prepare
from symderive.checking.random_values import scalar_class_labels
from symderive.checking.targets import unfold

PROBLEMS = Path(__file__).resolve().parent.parent / "problems"


def verdict(problem, qid, latex):
    info = prepare(load_problem(PROBLEMS / problem), {qid})[qid]
    return check_one(info, latex, 20).verdict


@pytest.mark.parametrize("latex, expected", [
    # δ² = (W³ᵀ δ³) ⊙ σ'(z²), δ³ = (a³ − y) ⊙ σ'(z³), written out: the sheet's δ^{z3} is unfolded
    (r"\left(W_3^T \left((a_3 - y) \odot \sigma'(z_3)\right)\right) \odot \sigma'(z_2)", "correct"),
    (r"\left(W_3^T \left((a_3 - y) \odot a_3 \odot (1 - a_3)\right)\right) \odot a_2 \odot (1 - a_2)", "correct"),
    (r"W_3^T \left((a_3 - y) \odot \sigma'(z_3)\right)", "incorrect"),                 # σ'(z²) dropped
    (r"\left(W_3^T \left((y - a_3) \odot \sigma'(z_3)\right)\right) \odot \sigma'(z_2)", "incorrect"),   # sign
])
def test_backprop_deltas_are_unfolded_and_z_2_is_the_questions_z2(latex, expected):
    # the file also declares the CS231n net's z (H entries): z_2 there would be its entry 2
    assert verdict("backprop-by-layers.yaml", "nielsen-bp3", latex) == expected


@pytest.mark.parametrize("qid, latex, expected", [
    ("w2v-dv", r"\frac{\partial J}{\partial v_c} = U(\hat{y} - y)", "correct"),
    ("w2v-dv", r"U(y - \hat{y})", "incorrect"),
    ("w2v-dv", r"U \hat{y}", "incorrect"),
    ("w2v-dU", r"v_c (\hat{y} - y)^T", "correct"),
    ("softmax-scores", r"\frac{1}{N}(P - Y)", "correct"),
    ("softmax-scores", r"P - Y", "incorrect"),
])
def test_course_names_of_the_softmax_and_the_one_hot_target(qid, latex, expected):
    assert verdict("course-forms.yaml", qid, latex) == expected


def test_a_scalar_label_is_drawn_as_a_class():
    # CS224n: U_{p,o} picks the outside word's column; with o drawn as a real it would pick nothing
    assert verdict("course-forms.yaml", "w2v-dv", r"\sum_{c} U_{p,c} \hat{y}_c - U_{p,o}") == "correct"
    assert verdict("course-forms.yaml", "w2v-dv", r"\sum_{c} U_{p,c} \hat{y}_c") == "incorrect"
    o, n = sp.Symbol("o", real=True), sp.Symbol("n", integer=True)
    assert scalar_class_labels(sp.IndexedBase("U", shape=(2, n))[1, o], sp.S.Zero) == {o: n}
    assert scalar_class_labels(sp.IndexedBase("U", shape=(2, n))[1, 0], sp.S.Zero) == {}


def test_inner_layers_of_attention_compare_written_out():
    exact = (r"\sum_{l=1}^{L} \frac{\exp\left(\sum_{k=1}^{E} Q_{l,k} K_{s,k} / \sqrt{E}\right)}"
             r"{\sum_{j=1}^{S} \exp\left(\sum_{k=1}^{E} Q_{l,k} K_{j,k} / \sqrt{E}\right)}\, g_{l,e}")
    lhs = r"\frac{\partial \ell}{\partial V_{s,e}} = "
    assert verdict("recurrent-and-attention.yaml", "vaswani-sdpa-dV", lhs + exact) == "correct"
    assert verdict("recurrent-and-attention.yaml", "vaswani-sdpa-dV",
                   lhs + exact.replace(r" / \sqrt{E}", "")) == "incorrect"


def test_unfold_renames_bound_indices():
    """A definition's summation index is not captured by the index it is evaluated at."""
    n = sp.Symbol("n", integer=True)
    i, c = sp.Idx("i", n), sp.Idx("c", n)
    a, d, w = sp.IndexedBase("a", shape=(n,)), sp.IndexedBase("d", shape=(n,)), sp.IndexedBase("w", shape=(n, n))
    definitions = [(d, (i,), sp.Sum(w[c, i] * a[c], (c, 0, n - 1)), "d")]
    out = unfold(d[c], definitions)
    (s,) = out.atoms(sp.Sum)
    bound = s.limits[0][0]
    assert bound != c and out.xreplace({bound: c}) != out
    assert out.free_symbols >= {c}                               # c is free: the entry asked for


def test_without_a_bias_declared_the_count_is_the_networks():
    # MobileNet: 3·3·32 + 32·64 = 2336 separable, 3·3·32·64 = 18432 ordinary, all bias=False
    assert verdict("batched-conv-and-pooling.yaml", "mobilenet-separable-parameters",
                   r"\text{separable} = 2336 \quad \text{ordinary} = 18432") == "correct"
    assert verdict("batched-conv-and-pooling.yaml", "mobilenet-separable-parameters",
                   r"\text{separable} = 2432") == "incorrect"              # biases the layers do not have
    # DCGAN: transposed-conv weights 3574784 + BatchNorm γ, β 1920
    assert verdict("normalization-and-transposed-conv.yaml", "dcgan-generator-parameters", "3576704") == "correct"
    assert verdict("normalization-and-transposed-conv.yaml", "dcgan-generator-parameters", "3574784") == "incorrect"


# --- notation of the blind batch's other fixes -------------------------------------------------------------
@pytest.mark.parametrize("problem, qid, latex, expected", [
    # CS231n staged computation: f = 3.0180/1.9526 = 1.5456; rounded intermediates are not wrong working
    ("numeric-passes.yaml", "cs231n-staged-computation", r"f = \frac{3.018}{1.953} = 1.545", ("correct", [])),
    ("numeric-passes.yaml", "cs231n-staged-computation", r"f = \frac{3.1}{1.953} = 1.545",
     ("correct", ["wrong working"])),
    # a one-channel output written as its matrix; the pooled values (7.5, 6.5; 3.5, 9.5) by hand
    ("numeric-passes.yaml", "conv-relu-maxpool", r"p = \begin{bmatrix} 7.5 & 6.5 \\ 3.5 & 9.5 \end{bmatrix}",
     ("correct", [])),
    ("numeric-passes.yaml", "conv-relu-maxpool", r"p = \begin{bmatrix} 7.5 & 3.5 \\ 6.5 & 9.5 \end{bmatrix}",
     ("incorrect", [])),
    # numbers are compared with the values at the given data, not with the symbolic entries
    ("numeric-passes.yaml", "maxpool-backward-values",
     r"\frac{\partial L}{\partial X} = \begin{bmatrix} 0 & 1 & 2 & 0 & 3 & 0 & 0 & 4 \end{bmatrix}", ("correct", [])),
    ("numeric-passes.yaml", "maxpool-backward-values",
     r"\frac{\partial L}{\partial X} = \begin{bmatrix} 1 & 0 & 2 & 0 & 3 & 0 & 4 & 0 \end{bmatrix}", ("incorrect", [])),
    # softmax of a matrix is row by row (Vaswani: dV = softmax(QKᵀ/√E)ᵀ g)
    ("recurrent-and-attention.yaml", "vaswani-sdpa-dV",
     r"\operatorname{softmax}\left(\frac{Q K^T}{\sqrt{E}}\right)^T g", ("correct", [])),
    ("recurrent-and-attention.yaml", "vaswani-sdpa-dV", r"\operatorname{softmax}\left(Q K^T\right)^T g",
     ("incorrect", [])),
    # the square of an N × m state is entry by entry (CS231n rnn_step_backward); W_hh^2 stays refused
    ("recurrent-and-attention.yaml", "cs231n-rnn-step-dprev-h",
     r"\left(g \odot (1 - h_{\mathrm{next}}^2)\right) W_{hh}", ("correct", [])),
    ("recurrent-and-attention.yaml", "cs231n-rnn-step-dprev-h",
     r"\left(g \odot (1 - h_{\mathrm{next}}^2)\right) W_{hh}^T", ("incorrect", [])),
    ("recurrent-and-attention.yaml", "cs231n-rnn-step-dprev-h", r"W_{hh}^2 g", ("incorrect", [])),
    # the statement's x_n (rows of X), declared as an alias
    ("course-forms.yaml", "tanh-regression",
     r"\frac{2}{N} \sum_{n=0}^{N-1} \left(\tanh(w^T x_n) - y_n\right)\left(1 - \tanh^2(w^T x_n)\right) x_n",
     ("correct", [])),
])
def test_notation_of_the_blind_batch(problem, qid, latex, expected):
    info = prepare(load_problem(PROBLEMS / problem), {qid})[qid]
    v = check_one(info, latex, 20)
    assert (v.verdict, list(v.flags)) == expected, v.evidence


def test_a_kernel_indexed_by_its_spatial_axes():
    """D2L writes the 2 × 2 kernel of a 1 × 1 × 2 × 2 convolution as K_{0,0} ... K_{1,1}."""
    rows = [["K_{0,0}", "0", "0", "0"], ["K_{0,1}", "K_{0,0}", "0", "0"], ["0", "K_{0,1}", "0", "0"],
            ["K_{1,0}", "0", "K_{0,0}", "0"], ["K_{1,1}", "K_{1,0}", "K_{0,1}", "K_{0,0}"],
            ["0", "K_{1,1}", "0", "K_{0,1}"], ["0", "0", "K_{1,0}", "0"], ["0", "0", "K_{1,1}", "K_{1,0}"],
            ["0", "0", "0", "K_{1,1}"]]
    latex = r"T = \begin{bmatrix} " + r" \\ ".join(" & ".join(r) for r in rows) + r" \end{bmatrix}"
    assert verdict("normalization-and-transposed-conv.yaml", "d2l-transposed-matrix", latex) == "correct"
    flipped = latex.replace("K_{0,0}", "Z").replace("K_{1,1}", "K_{0,0}").replace("Z", "K_{1,1}")
    assert verdict("normalization-and-transposed-conv.yaml", "d2l-transposed-matrix", flipped) == "incorrect"


@pytest.mark.parametrize("problem, qid, latex, expected", [
    # CS231n two-layer case study: dW1 = (V₂ᵀ(p − t) ⊙ 𝟙[z > 0]) uᵀ, t declared one-hot (drawn one-hot)
    ("backprop-by-layers.yaml", "cs231n-two-layer",
     r"\left(\left(V_2^T (\operatorname{softmax}(s) - t)\right) \odot \mathbb{1}[z > 0]\right) u^T", "correct"),
    ("backprop-by-layers.yaml", "cs231n-two-layer",
     r"\left(V_2^T (\operatorname{softmax}(s) - t)\right) u^T", "incorrect"),                 # the ReLU gate
    ("backprop-by-layers.yaml", "cs231n-two-layer",
     r"\left(\left(V_2^T (t - \operatorname{softmax}(s))\right) \odot \mathbb{1}[z > 0]\right) u^T", "incorrect"),
    # the sheet writes H(z) for ReLU' though the file declares a size H (hidden units)
    ("backprop-by-layers.yaml", "cs231n-two-layer",
     r"\left(\left(V_2^T (\operatorname{softmax}(s) - t)\right) \odot H(z)\right) u^T", "correct"),
    ("backprop-by-layers.yaml", "cs231n-two-layer",
     r"\left(\left(V_2^T (\operatorname{softmax}(s) - t)\right) \odot H(-z)\right) u^T", "incorrect"),
    # CS224d a1 with row vectors (z₁ = x W₁ + b₁): ∂J/∂x = ((ŷ − y) W₂ᵀ ∘ σ'(z₁)) W₁ᵀ
    ("course-forms.yaml", "one-hidden-layer-dx",
     r"\left((\hat{y} - y) W_2^T \odot \sigma'(z_1)\right) W_1^T", "correct"),
    ("course-forms.yaml", "one-hidden-layer-dx", r"(\hat{y} - y) W_2^T W_1^T", "incorrect"),
    ("course-forms.yaml", "one-hidden-layer-dx",
     r"\left((\hat{y} - y) W_2 \odot \sigma'(z_1)\right) W_1", "incorrect"),      # no product of that shape
    # CS224n's u_o, column o of U (column alias)
    ("course-forms.yaml", "w2v-dv", r"U \hat{y} - u_o", "correct"),
    ("course-forms.yaml", "w2v-dv", r"U \hat{y} - u_1", "incorrect"),
])
def test_vector_gates_row_vectors_and_columns(problem, qid, latex, expected):
    assert verdict(problem, qid, latex) == expected


@pytest.mark.parametrize("latex, expected", [
    # NYU DL 2021 hw3 1.1c(i), index base 1: f_{1,j} = Σ_c Σ_k W_{1,c,k} x_{c,2j+k-2} (stride 2)
    (r"f_W(x)[1][j] = \sum_{c=1}^{2} \sum_{k=1}^{3} W_{1,c,k}\, x_{c,2j+k-2}", "correct"),
    (r"f_W(x)[1, j] = \sum_{c=1}^{2} \sum_{k=1}^{3} W_{1,c,k}\, x_{c,2j+k}", "incorrect"),      # off by 2
])
def test_the_output_written_as_the_statement_calls_it(latex, expected):
    assert verdict("nyu-dl-2021-hw3.yaml", "nyu21-1.1c-i", latex) == expected


@pytest.mark.parametrize("qid, latex, expected", [
    # CS231n batchnorm_backward: dgamma = Σ_i dy ⊙ x̂, dx = (γ/(N√(var + ε)))(N dy − Σ dy − x̂ Σ dy x̂); x̂, var and μ
    # are the library batch_norm's own inner layers (the question declares none of them)
    ("cs231n-bn-dgamma", r"\sum_{i=0}^{N-1} \mathrm{dy}_{i,p} \hat{x}_{i,p}", "correct"),
    ("cs231n-bn-dgamma", r"\sum_{i=0}^{N-1} \mathrm{dy}_{i,p} x_{i,p}", "incorrect"),
    ("cs231n-bn-dgamma", r"\frac{\sum_{i=0}^{N-1} \mathrm{dy}_{i,p} (x_{i,p} - \mu_p)}{\sqrt{\mathrm{var}_p + 10^{-5}}}",
     "correct"),
    # γ in front of the parenthesis: the parenthesis holds the sheet's dy, a name, not a prose note to drop
    ("cs231n-bn-dx", r"\frac{\gamma_q}{N \sqrt{\mathrm{var}_q + 10^{-5}}} \left(N \mathrm{dy}_{p,q} - \sum_{i=0}^{N-1} "
                     r"\mathrm{dy}_{i,q} - \hat{x}_{p,q} \sum_{i=0}^{N-1} \mathrm{dy}_{i,q} \hat{x}_{i,q}\right)", "correct"),
    ("cs231n-bn-dx", r"\frac{\gamma_q}{N \sqrt{\mathrm{var}_q + 10^{-5}}} \left(N \mathrm{dy}_{p,q} - "
                     r"\hat{x}_{p,q} \sum_{i=0}^{N-1} \mathrm{dy}_{i,q} \hat{x}_{i,q}\right)", "incorrect"),   # Σ dy dropped
])
def test_batch_norm_answers_in_its_statistics(qid, latex, expected):
    """A μ or var named by another inner layer's definition is that layer, not a value drawn at random: with
    μ drawn, an answer using var (defined through μ) and one using x̂ (written out) disagreed. And
    γ_q (N dy_{p,q} − …) is a product: the parenthesis was read as a prose note (dy is no declared name) and
    dropped, so the answer read γ_q alone."""
    assert verdict("normalization-and-transposed-conv.yaml", qid, latex) == expected
