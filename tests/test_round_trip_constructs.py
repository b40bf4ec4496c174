"""The constructs the sheets print that the checker learnt to read back (issue 14's round trip), each
tested on the sheet's own boxed answer (read back as correct) and on a wrong answer of the same shape
(read back as incorrect): a right reading must not make a wrong answer pass."""
import math
from pathlib import Path

import pytest

from symderive import load_problem
from symderive.checking.grade import check_one, prepare

PROBLEMS = Path(__file__).resolve().parent.parent / "problems"
_INFOS = {}


def info(file, qid):
    if (file, qid) not in _INFOS:
        _INFOS[file, qid] = prepare(load_problem(PROBLEMS / file), {qid})[qid]
    return _INFOS[file, qid]


def sheet(file, qid, label):
    """The boxed LaTeX the sheet prints for a result of the question."""
    (latex,) = [r.latex for r in info(file, qid).answer.results if str(r.label) == label]
    return latex


def verdict(file, qid, latex):
    return check_one(info(file, qid), latex, 60)


def wrong(latex, old, new):
    assert old in latex, (old, latex)
    return latex.replace(old, new, 1)


def test_heaviside_named_h_where_h_is_a_size_the_question_does_not_use():
    """cs231n-max-pool-backward: the file declares sizes [N, C, H, W, ...], the question's input is
    N × C × 4 × 4; the sheet's H(…) is the unit step, not the size H times (…). Read as a product, the
    right answer was graded incorrect wherever the checker drew H ≠ 1."""
    args = ("batched-conv-and-pooling.yaml", "cs231n-max-pool-backward")
    good = sheet(*args, "element")
    assert verdict(*args, good).verdict == "correct"
    bad = wrong(good, r"\delta_{u, 2 l + 1}", r"\delta_{u, 2 l}")        # the window's column off by one
    assert verdict(*args, bad).verdict == "incorrect"


def test_heaviside_letter_stays_a_size_where_the_question_uses_it(tmp_path):
    """Where H is a size of the question's own tensors, H(a + b) is a product, as before."""
    path = tmp_path / "h.yaml"
    path.write_text("title: t\nsizes: [H]\nquestions:\n  - id: q\n    tensors: {a: [H], x: [H]}\n"
                    "    layers:\n      y: transpose(a) @ x\n    ask: derivative\n    of: y\n    wrt: x\n")
    q = prepare(load_problem(path), {"q"})["q"]
    assert check_one(q, r"\frac{\partial y}{\partial x_{i}} = a_{i}", 60).verdict == "correct"
    # H(a_i)/H is a_i when H is the size, 1/H when it is the unit step (H(a_i)/H)
    assert check_one(q, r"\frac{\partial y}{\partial x_{i}} = \frac{H\left(a_{i}\right)}{H}", 60).verdict == "correct"
    assert "H" not in q.context_args["unused_sizes"]


def test_ratio_of_two_named_counts_as_a_label():
    args = ("batched-conv-and-pooling.yaml", "mobilenet-separable-parameters")
    good = sheet(*args, "ordinary / separable")
    assert good.startswith(r"\frac{\text{ordinary}}{\text{separable}}")
    assert verdict(*args, good).verdict == "correct"
    # bias=False: 32·64·9 = 18432 against 32·9 + 32·64 = 2336
    assert verdict(*args, r"\frac{\text{ordinary}}{\text{separable}} = \frac{18432}{2336}").verdict == "correct"
    # counting biases the layers do not have: (18432 + 64) / (2336 + 32 + 64)
    assert verdict(*args, r"\frac{\text{ordinary}}{\text{separable}} = \frac{18496}{2432}").verdict == "incorrect"
    # the inverse ratio is not the ordinary-over-separable ratio
    assert verdict(*args, r"\frac{\text{separable}}{\text{ordinary}} = 7.605").verdict == "incorrect"


@pytest.mark.parametrize("file,qid", [("numeric-passes.yaml", "maxpool-backward-values"),
                                      ("normalization-and-transposed-conv.yaml", "transposed-weight-gradient")])
def test_divisibility_condition_mid(file, qid):
    good = sheet(file, qid, "element")
    assert r"2 \mid" in good
    assert verdict(file, qid, good).verdict == "correct"
    bad = good.replace(r"2 \mid", r"3 \mid")                      # every other entry: the stride's parity
    assert verdict(file, qid, bad).verdict == "incorrect"


def test_divisibility_is_not_an_answer():
    v = verdict("numeric-passes.yaml", "maxpool-backward-values", r"2 \mid 4")
    assert v.verdict in ("unparseable", "incorrect"), v


@pytest.mark.parametrize("qid", ["vaswani-sdpa-dV", "vaswani-sdpa-dQ"])
def test_inner_layer_names_of_attention(qid):
    """y_{\\mathrm{scores}}: the scores layer of the attention layer y, not y indexed by 'scores'."""
    file = "recurrent-and-attention.yaml"
    good = sheet(file, qid, "element")
    assert r"y_{\mathrm{scores}}" in good
    assert verdict(file, qid, good).verdict == "correct"
    bad = good.replace(r"{\sum_{k=1}^{S} e^{{y_{\mathrm{scores}}}_{i,k}}}", r"{S}")   # softmax without its sum
    assert bad != good
    assert verdict(file, qid, bad).verdict == "incorrect"


def test_backprop_delta_of_a_layer_with_a_subscripted_name():
    """gru's δ^{n_h} (∂L/∂n_h): printed δ^{n_h}, no longer SymPy's δ_h^n, and read back."""
    file, qid = "recurrent-and-attention.yaml", "gru-dh-dhprev"
    good = sheet(file, qid, "element")
    assert r"\delta^{n_{h}}" in good and r"\delta_{h}^{n}" not in good
    assert verdict(file, qid, good).verdict == "correct"
    bad = wrong(good, r"{\delta^{n_{h}}}_{k} {r}_{k}", r"{\delta^{n_{h}}}_{k}")   # the reset gate dropped
    assert verdict(file, qid, bad).verdict == "incorrect"


@pytest.mark.parametrize("label", ["dL/dx", "dL/dw", "p"])
def test_rank_3_and_4_arrays_as_lists_of_matrices(label):
    """conv-relu-maxpool's arrays (1 × 5 × 5, 1 × 1 × 2 × 2) printed as \\left[M ≈ M'\\right]: each matrix
    compared with its slice; one wrong entry or a wrong number of matrices is incorrect."""
    file, qid = "numeric-passes.yaml", "conv-relu-maxpool"
    good = sheet(file, qid, label)
    assert good.count(r"\left[") >= 1
    assert verdict(file, qid, good).verdict == "correct"
    lhs, _, rest = good.partition(" = ")
    first = rest.split(r"\begin{bmatrix}", 1)[1].split(" &", 1)[0]             # the first entry, exactly
    bad = lhs + " = " + rest.replace(r"\begin{bmatrix}" + first + " &", r"\begin{bmatrix}" + first + " + 1 &", 1)
    v = verdict(file, qid, bad)
    assert v.verdict == "incorrect" and "matrix [0" in v.evidence, v
    inner = rest.split(r"\approx", 1)[0].replace(r"\left[", "").strip()       # the first exact matrix
    two = lhs + r" = \left[" + inner + r",\ " + inner + r"\right]"
    if label != "dL/dw":
        assert verdict(file, qid, two).verdict == "incorrect"
        assert verdict(file, qid, lhs + " = " + inner).verdict == "correct"    # 1 × H × W as its one matrix


@pytest.mark.parametrize("qid,wrt", [("nyu24-1.1c-ii", "W"), ("nyu24-1.1c-iii", "x")])
def test_jacobian_slices_named_by_an_entry_of_a_tensor(qid, wrt):
    """\\begin{gathered} of ∂f_{1,j}/∂W = (a matrix shaped like W), one slice a line: each slice is the row of
    f[1, j] in vec(f), compared with the whole Jacobian's row, whatever came before it."""
    file = "nyu-dl-2024-hw2.yaml"
    good = sheet(file, qid, "array")
    assert verdict(file, qid, good).verdict == "correct"
    first, second = rf"\frac{{\partial f_{{1,1}}}}{{\partial {wrt}}}", rf"\frac{{\partial f_{{1,2}}}}{{\partial {wrt}}}"
    swapped = good.replace(first, "@").replace(second, first).replace("@", second)     # two slices' labels swapped
    assert swapped != good
    v = verdict(file, qid, swapped)
    assert v.verdict == "incorrect", v
    one = good.split(r" \\ \frac")[0].replace(r"\begin{gathered}", "")                  # the first slice alone
    assert verdict(file, qid, one).verdict == "correct"
    assert verdict(file, qid, one.replace(first, second)).verdict == "incorrect"


@pytest.mark.parametrize("file,qid,label,first,second", [
    ("nyu-dl-2024-hw2.yaml", "nyu24-1.1c-matrix", "matrix", "A^{(1)}", "A^{(2)}"),
    ("nyu-dl-2024-hw2.yaml", "nyu24-1.1c-im2col", "matrix", "X^{(1,1)}", "X^{(1,2)}"),
    ("nyu-dl-2024-hw2.yaml", "nyu24-1.1c-backward", "B", "B^{(1)}", "B^{(2)}"),
    # a batch of 2: the two diagonal blocks are equal, so B^{(0;1)} (a zero block, not printed) is the wrong one
    ("batched-conv-and-pooling.yaml", "grouped-conv-backward-matrix", "B", "B^{(0;0)}", "B^{(0;1)}"),
])
def test_matrix_printed_by_labelled_blocks(file, qid, label, first, second):
    """A \\in \\mathbb{R}^{3 \\times 35},\\quad \\begin{gathered}A^{(1)} = ... \\\\ A^{(2)} = ...: the size is the
    whole matrix's, each labelled block is compared with its own part of the whole."""
    good = sheet(file, qid, label)
    assert first in good
    assert verdict(file, qid, good).verdict == "correct"
    swapped = good.replace(first, "@").replace(second, first).replace("@", second)
    v = verdict(file, qid, swapped)
    assert v.verdict == "incorrect" and (second not in good or "block" in v.evidence), v
    name = first[0]
    size = good.split(r",\quad", 1)[0]                        # A \in \mathbb{R}^{3 \times 35}
    rows, cols = size.split("{", 2)[2].rstrip("}").split(r" \times ")
    transposed = size.replace(f"{rows} \\times {cols}", f"{cols} \\times {rows}")
    assert verdict(file, qid, transposed + good[len(size):]).verdict == "incorrect"
    block = good.split(r"\begin{gathered}", 1)[1].split(r" \\ " + name + "^")[0]  # the first block alone
    assert verdict(file, qid, block).verdict == "correct"
    assert verdict(file, qid, block.replace(first, second)).verdict == "incorrect"


def test_block_label_with_a_comma_reads_as_with_a_semicolon():
    file, qid = "batched-conv-and-pooling.yaml", "grouped-conv-backward-matrix"
    block = sheet(file, qid, "B").split(r"\begin{gathered}", 1)[1].split(r" \\ B^")[0]
    assert block.startswith("B^{(0;0)}")
    assert verdict(file, qid, block.replace("B^{(0;0)}", "B^{(0,0)}")).verdict == "correct"


def test_longest_printed_answer_fits_the_bound_and_reads_back():
    """d2l-pool-padding-stride's element formula (7,532 characters, with the padding's −∞ in its cases) is
    the longest answer the engine prints; the reader's bound (12,000 characters, 6,000 tokens) keeps a
    margin over it and still refuses longer input."""
    from symderive.checking.latex_tokens import MAX_CHARS
    from symderive.checking.reader import ReadError, read
    file, qid = "batched-conv-and-pooling.yaml", "d2l-pool-padding-stride"
    good = sheet(file, qid, "element")
    assert 6000 < len(good) < MAX_CHARS and r"-\infty" in good
    assert verdict(file, qid, good).verdict == "correct"
    bad = good.replace(r"\delta_{u, 2 l - 1}", r"\delta_{u, 2 l}")              # the window one column off
    assert bad != good and verdict(file, qid, bad).verdict == "incorrect"
    with pytest.raises(ReadError, match="characters long"):
        read("x" * (MAX_CHARS + 1))


def test_infinity_only_as_a_case_value():
    """−∞ is read in a case of a piecewise value (the padded max pool's), not as an answer."""
    v = verdict("batched-conv-and-pooling.yaml", "d2l-pool-padding-stride", r"-\infty")
    assert v.verdict == "unparseable" and "infinity" in v.evidence


@pytest.mark.parametrize("qid", ["csce636-q4a", "csce636-q4b"])
def test_two_names_sharing_one_dimension(qid):
    """\\gamma,\\ \\beta \\in \\mathbb{R}^{C}: one labelled part (the result "gamma, beta"), not γ alone and β."""
    file = "csce636-hw2.yaml"
    good = sheet(file, qid, "gamma, beta")
    assert verdict(file, qid, good).verdict == "correct"
    v = verdict(file, qid, good.replace("{C}", "{N}"))
    assert v.verdict == "incorrect" and "N" in v.evidence, v


def test_a_label_in_words_followed_by_prose():
    """\\text{averaged over } N\\ \\ (N\\ \\text{values per statistic}) as the sheet prints it, and
    \\text{averaged over } N:\\ N: the label 'averaged over', the axis N (the result's axis names are size
    symbols, not SymPy's function N, which was an internal error). A fully connected input N × C: averaged
    over N only."""
    file, qid = "csce636-hw2.yaml", "csce636-q4a"
    good = sheet(file, qid, "averaged over")
    assert verdict(file, qid, good).verdict == "correct"
    assert verdict(file, qid, r"\text{averaged over } N:\ N").verdict == "correct"
    assert verdict(file, qid, r"\text{averaged over } N:\ C").verdict == "incorrect"
    v = verdict(file, qid, wrong(good, "over } N", "over } C"))
    assert v.verdict == "incorrect", v


def test_values_at_the_declared_values_with_a_note():
    """[...]\\ \\ (\\text{at the given } G, X): the note after the value says where it holds; a matrix of numbers
    is compared with the result at the declared values, not with the element formula's array."""
    file, qid = "numeric-passes.yaml", "maxpool-backward-values"
    good = sheet(file, qid, "array at the values")
    assert good.endswith(r"\ \ (\text{at the given } G, X)")
    assert verdict(file, qid, good).verdict == "correct"
    bare = good.split(r"\ \ (")[0]
    assert verdict(file, qid, bare).verdict == "correct"
    v = verdict(file, qid, bare.replace(r"4\end", r"5\end"))
    assert v.verdict == "incorrect" and "(7, 0)" in v.evidence, v


# hw5-p1: the recurrence a^{<t>} = σ(W_a a^{<t-1>} + W_x x_t + b) (its values: the question's own, 1/2 and 0)
HW5 = "hw5-written.yaml"


@pytest.mark.parametrize("qid", ["hw5-p1a", "hw5-p1b"])
def test_chain_of_unlabelled_sides_is_one_quantity(qid):
    """∂a^{<t>}/∂a^{<t-1>} = (in the pre-activation) = (in the state): both sides are the derivative; the
    second was compared with the next result (the fixed point) and read incorrect."""
    good = sheet(HW5, qid, "derivative")
    assert verdict(HW5, qid, good).verdict == "correct"
    bad = wrong(good, r"= W_{a} ", r"= 2 W_{a} ")                  # the first side, off by a factor 2
    assert verdict(HW5, qid, bad).verdict == "incorrect"
    last = good.rindex("=")
    assert verdict(HW5, qid, good[:last] + r"= W_{a} \left(1 + a^{\langle t\rangle}\right)").verdict == "incorrect"


def test_the_sheets_own_name_of_a_result_labels_it():
    """d ≈ 0.2247: the sheet calls the derivative at the fixed point d; a^* ≈ 0.6590 is the fixed point.
    Each is compared with the result the sheet names so, not with the next number asked.
    σ'(z) = σ(1 − σ) at the fixed point a* = σ(a*) (W_a = 1): d = a*(1 − a*)."""
    qid = "hw5-p1a"
    assert sheet(HW5, qid, "derivative at the fixed point").startswith("d ")
    a_star = 0.5
    for _ in range(200):                                 # a* = σ(a*), by iteration (its own computation)
        a_star = 1 / (1 + math.exp(-a_star))
    d = a_star * (1 - a_star)
    assert verdict(HW5, qid, rf"d \approx {d:.4f}").verdict == "correct"
    assert verdict(HW5, qid, rf"a^* \approx {a_star:.4f}").verdict == "correct"
    assert verdict(HW5, qid, rf"d \approx {a_star:.4f}").verdict == "incorrect"    # d is not the fixed point
    assert verdict(HW5, qid, rf"a^* \approx {d:.4f}").verdict == "incorrect"
    assert verdict(HW5, qid, sheet(HW5, qid, "derivative at the fixed point")).verdict == "correct"


@pytest.mark.parametrize("qid,old,new", [("hw5-p1a", r"\approx 0.6508", r"\approx 0.7508"),
                                          ("hw5-p1b", r"a^{\langle 3\rangle} = 0", r"a^{\langle 3\rangle} = 1")])
def test_trajectory_entries_named_as_the_sheet_names_them(qid, old, new):
    """a^{<1>} = …, a^{<2>} = …, \\dots: each entry named by its step, the list trailing off."""
    good = sheet(HW5, qid, "trajectory")
    assert good.endswith(r"\dots")
    assert verdict(HW5, qid, good).verdict == "correct"
    bad = wrong(good, old, new)                                   # the third step wrong
    assert verdict(HW5, qid, bad).verdict == "incorrect"


def test_trajectory_step_two_by_its_name():
    a2 = 1 / (1 + math.exp(-0.5))                     # a^{<2>} = σ(a^{<1>}) with W_a = 1, a^{<1>} = 1/2
    assert verdict(HW5, "hw5-p1a", rf"a^{{\langle 2\rangle}} \approx {a2:.4f}").verdict == "correct"
    a3 = 1 / (1 + math.exp(-a2))
    assert verdict(HW5, "hw5-p1a", rf"a^{{\langle 2\rangle}} \approx {a3:.4f}").verdict == "incorrect"


def test_word_with_a_condition_in_parentheses():
    """\\text{neither}\\ (|d| = 1): the parenthesis is the reason, a note (as (|d| < 1) already was)."""
    good = sheet(HW5, "hw5-p1b", "verdict")
    assert verdict(HW5, "hw5-p1b", good).verdict == "correct"
    assert verdict(HW5, "hw5-p1b", wrong(good, "neither", "vanishing")).verdict == "incorrect"


def test_quantity_symbol_after_a_label_in_words():
    """\\text{pool}:\\ r = 4 \\times 4: r is the receptive field's symbol, not an unknown name."""
    good = sheet(HW5, "hw5-p2d", "receptive field")
    assert verdict(HW5, "hw5-p2d", good).verdict == "correct"
    assert verdict(HW5, "hw5-p2d", wrong(good, r"r = 4 \times 4", r"r = 5 \times 4")).verdict == "incorrect"


CSCE = "csce636-hw2.yaml"


def test_label_in_prose_ending_in_a_colon():
    """\\text{zero padding on each side: } 2: the result 'padding' named inside the prose."""
    good = sheet(CSCE, "csce636-q5c", "padding")
    assert verdict(CSCE, "csce636-q5c", good).verdict == "correct"
    assert verdict(CSCE, "csce636-q5c", wrong(good, "} 2", "} 1")).verdict == "incorrect"


def test_rank3_array_as_one_matrix_of_its_leading_axes_flattened_row_major():
    """The flipped kernels (2 × 2 × 3: out channel, in channel, tap) printed as one 4 × 3 matrix whose
    rows run over the leading axes row-major, as torch's reshape(4, 3): w_{1,1,·}, w_{2,1,·}, w_{1,2,·}, …
    Each row is its kernel reversed (convolution as correlation with the flipped kernel); the rows in
    the other order (column-major) are wrong."""
    good = sheet(CSCE, "csce636-q5c", "kernels")
    assert verdict(CSCE, "csce636-q5c", good).verdict == "correct"
    body = good[good.index(r"\begin{bmatrix}") + len(r"\begin{bmatrix}"):good.index(r"\end{bmatrix}")]
    rows = [r.strip() for r in body.split(r"\\")]
    assert len(rows) == 4 and rows[0].startswith("{w}_{1,1,3}") and rows[1].startswith("{w}_{2,1,3}")
    # written by hand: each kernel w_{o,i,·} reversed, rows (o, i) = (1,1), (2,1), (1,2), (2,2)
    mine = r" \\ ".join(" & ".join(f"w_{{{o},{i},{k}}}" for k in (3, 2, 1)) for i in (1, 2) for o in (1, 2))
    assert verdict(CSCE, "csce636-q5c", rf"\begin{{bmatrix}} {mine} \end{{bmatrix}}").verdict == "correct"
    swapped = r" \\ ".join([rows[0], rows[2], rows[1], rows[3]])
    assert verdict(CSCE, "csce636-q5c", good.replace(body, swapped)).verdict == "incorrect"
    unflipped = r" \\ ".join(" & ".join(f"w_{{{o},{i},{k}}}" for k in (1, 2, 3)) for i in (1, 2) for o in (1, 2))
    assert verdict(CSCE, "csce636-q5c", rf"\begin{{bmatrix}} {unflipped} \end{{bmatrix}}").verdict == "incorrect"


def test_label_in_words_then_a_list_of_axis_names():
    """\\text{averaged over } N, H, W\\ \\ (N H W \\text{ values per statistic}): the commas continue the
    label's list, the count is a note. Batch norm on N × C × H × W keeps one statistic per channel, averaged
    over N, H and W (torch.nn.BatchNorm2d); C is the channel axis and is not averaged over."""
    good = sheet(CSCE, "csce636-q4b", "averaged over")
    assert verdict(CSCE, "csce636-q4b", good).verdict == "correct"
    assert verdict(CSCE, "csce636-q4b", r"\text{averaged over } N, H, W").verdict == "correct"
    assert verdict(CSCE, "csce636-q4b", wrong(good, "N, H, W", "N, C, W")).verdict == "incorrect"
    assert verdict(CSCE, "csce636-q4b", r"\text{averaged over } H, W").verdict == "incorrect"   # instance norm's


def test_differential_graded_as_a_claim():
    """\\mathrm{d}Y = -Y\\,\\mathrm{d}X\\,Y (the Matrix Cookbook, eq. 59, Y = X^{-1}) holds iff its right side,
    a linear map of dX, equals Σ_pq (∂Y_ij/∂X_pq) dX_pq at random X and dX."""
    args = ("matrix-calculus.yaml", "cookbook-inverse")
    good = sheet(*args, "differential")
    assert good.startswith(r"\mathrm{d}")
    assert verdict(*args, good).verdict == "correct"
    assert verdict(*args, r"\mathrm{d}Y = -Y\,\mathrm{d}X\,Y").verdict == "correct"
    assert verdict(*args, r"\mathrm{d}Y = -Y \mathrm{d}X^{T} Y").verdict == "incorrect"   # same shape, transposed
    assert verdict(*args, r"\mathrm{d}Y = Y\,\mathrm{d}X\,Y").verdict == "incorrect"       # the sign
    assert verdict(*args, r"\mathrm{d}Y = -\mathrm{d}X\,Y\,Y").verdict == "incorrect"     # the order
    # the derivative's own element formula still goes to the element result, not to the differential
    assert verdict(*args, r"\frac{\partial Y_{i,j}}{\partial X_{p,q}} = -Y_{i,p} Y_{q,j}").verdict == "correct"


def test_derivative_written_with_mathrm_d_is_not_a_differential():
    """\\frac{\\mathrm{d}Y}{\\mathrm{d}X} is a derivative's left side: the differentials' reading leaves it."""
    from symderive.checking.compare import _differentials
    info_ = info("matrix-calculus.yaml", "cookbook-inverse")
    text = r"\frac{\mathrm{d}Y}{\mathrm{d}X} = 1, \mathrm{d}Y = \mathrm{d}\,X"
    assert _differentials(text, info_) == r"\frac{\mathrm{d}Y}{\mathrm{d}X} = 1, \mathrm{dY} = \mathrm{dX}"
