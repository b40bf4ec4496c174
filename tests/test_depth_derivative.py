"""`ask: derivative` and `ask: chain_rule` through a stack, layer by layer (issue 12, "derivation that
scales with depth"): the boxed answer against torch autograd in float64, the sheet's δ steps, and the
shipped questions' answers against the inlined derivative they had before.

The δ form is evaluated with each δ computed from its own step (NumPy, top down); the references are
independent torch models of the same networks."""
import textwrap
import time

import numpy as np
import pytest
import sympy as sp

from symderive import load_problem
from symderive.backprop import CLOSED_MAX_DEPTH, STACK_DEPTH, delta_values, through_stack
from symderive.tensors import flat_positions
from symderive.verify.job import EngineValues, engine_value

torch = pytest.importorskip("torch")


def stack_problem(tmp_path, blocks, activation="sigmoid", questions=""):
    """x → (Linear → activation) × blocks → cross-entropy with soft targets p, sizes symbolic."""
    sizes = [f"n{k}" for k in range(blocks + 1)]
    text = [f"title: a stack of {blocks} blocks", f"sizes: [{', '.join(sizes)}]", "tensors:", "  x: [n0]",
            f"  p: [n{blocks}]", f"  g: [n{blocks}]"]
    text += [f"  W{k}: [n{k}, n{k - 1}]\n  b{k}: [n{k}]" for k in range(1, blocks + 1)]
    text += ["layers:"]
    text += [f"  z{k}: linear({'x' if k == 1 else f'a{k - 1}'}, W{k}, b{k})\n  a{k}: {activation}(z{k})"
             for k in range(1, blocks + 1)]
    text += [f"  L: cross_entropy(a{blocks}, p)", "questions:", textwrap.indent(textwrap.dedent(questions), "  ")]
    path = tmp_path / f"stack{blocks}.yaml"
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return load_problem(path)


def torch_stack(values, blocks, activation="sigmoid"):
    """The same stack in torch (float64): {name: leaf}, [a1 … a_blocks], L."""
    act = {"sigmoid": torch.sigmoid, "tanh": torch.tanh}[activation]
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in values.items()}
    h, outs = t["x"], []
    for k in range(1, blocks + 1):
        h = act(t[f"W{k}"] @ h + t[f"b{k}"])
        outs.append(h)
    return t, outs, -(t["p"] * torch.log_softmax(h, dim=0)).sum()


def draw(blocks, rng, extra=()):
    numbers = [int(v) for v in rng.integers(2, 5, size=blocks + 1)]
    sizes = {sp.Symbol(f"n{k}", integer=True, positive=True): sp.Integer(v) for k, v in enumerate(numbers)}
    shapes = {"x": (numbers[0],), "p": (numbers[-1],)}
    for k in range(1, blocks + 1):
        shapes[f"W{k}"], shapes[f"b{k}"] = (numbers[k], numbers[k - 1]), (numbers[k],)
    shapes.update({name: (numbers[-1],) for name in extra})
    return sizes, {k: rng.uniform(-1.5, 1.5, size=s) for k, s in shapes.items()}


def solved(problem, *names):
    """The problem's one answer (asserted derived) and its declared tensors and layers ``names``."""
    answer = problem.solve()[0]
    assert answer.status.value == "derived", answer.error
    decls = problem.declarations(problem.questions[0])
    return answer, decls, [decls.lookup(n) for n in names]


def element(answer):
    return next(r for r in answer.results if r.label == "element")


def evaluate(answer, ctx_args, values, sizes, problem, out_shape, wrt_shape):
    """The boxed element formula at every (output, wrt) position; a δ form's δ from its steps."""
    result = element(answer)
    bp = through_stack(*ctx_args["args"], **ctx_args["kwargs"])
    decls = problem.declarations(problem.questions[0])
    env = EngineValues(dict(values), decls.lookup, sizes)
    if bp is not None and result.value == bp.gradient.value:
        delta_values(bp, env, sizes)
    names = [i.name for _, i in result.axes]
    positions = [o + w for o in flat_positions(out_shape) for w in flat_positions(wrt_shape)]
    return np.array([engine_value(result.value, env, sizes, dict(zip(names, pos)))
                     for pos in positions]).reshape(out_shape + wrt_shape)


@pytest.mark.parametrize("blocks", [2, 4])
def test_loss_gradient_through_a_stack_against_autograd(tmp_path, blocks):
    """dL/dW1, dL/db2 and dL/dx of Linear → sigmoid blocks into cross-entropy: 2 blocks (5 layers,
    the closed formula is boxed) and 4 blocks (9 layers, the δ form is)."""
    questions = "".join(f"""
        - id: d{name}
          statement: dL/d{name}
          ask: derivative
          of: L
          wrt: {name}
        """ for name in ("W1", "b2", "x"))
    problem = stack_problem(tmp_path, blocks, questions=questions)
    answers = {a.question_id: a for a in problem.solve()}
    assert all(a.status.value == "derived" for a in answers.values()), [a.error for a in answers.values()]
    decls = problem.declarations(problem.questions[0])
    L = decls.lookup("L")
    rng = np.random.default_rng(40 + blocks)
    for _ in range(2):
        sizes, values = draw(blocks, rng)
        t, _, loss = torch_stack(values, blocks)
        loss.backward()
        for name in ("W1", "b2", "x"):
            wrt = decls.lookup(name)
            wrt_shape = tuple(values[name].shape)
            got = evaluate(answers[f"d{name}"], {"args": (L, wrt), "kwargs": {"avoid": decls.names(),
                                                                             "jacobian": True}},
                           values, sizes, problem, (), wrt_shape)
            np.testing.assert_allclose(got, t[name].grad.numpy(), rtol=1e-10, atol=1e-13,
                                       err_msg=f"{blocks} blocks, dL/d{name}")
    boxed = element(answers["dW1"]).value
    delta_form = any(b.label.name.startswith("delta__") for b in boxed.atoms(sp.IndexedBase))
    assert delta_form == (2 * blocks + 1 > CLOSED_MAX_DEPTH), boxed


def test_jacobian_through_a_deep_tanh_stack_against_autograd(tmp_path):
    """∂a4/∂x through 4 blocks Linear → tanh (8 layers): the δ form carries the output index
    (δ^z[i, k] = ∂a4[i]/∂z[k]); every entry against torch.autograd.functional.jacobian."""
    problem = stack_problem(tmp_path, 4, "tanh", """
        - id: jac
          statement: da4/dx
          ask: derivative
          of: a4
          wrt: x
        """)
    answer, decls, (a4, x) = solved(problem, "a4", "x")
    result = element(answer)
    assert any(b.label.name == "delta__z1" and len(b.shape) == 2 for b in result.value.atoms(sp.IndexedBase))
    rng = np.random.default_rng(7)
    for _ in range(2):
        sizes, values = draw(4, rng)
        J = torch.autograd.functional.jacobian(lambda v: _tanh_stack(values, v),
                                               torch.tensor(values["x"], dtype=torch.float64))
        got = evaluate(answer, {"args": (a4, x), "kwargs": {"avoid": decls.names(), "jacobian": True}},
                       values, sizes, problem, (values["b4"].shape[0],), tuple(values["x"].shape))
        np.testing.assert_allclose(got, J.numpy(), rtol=1e-10, atol=1e-13)


def _tanh_stack(values, x):
    h = x
    for k in range(1, 5):
        h = torch.tanh(torch.tensor(values[f"W{k}"]) @ h + torch.tensor(values[f"b{k}"]))
    return h


def test_chain_rule_through_a_deep_stack_against_autograd(tmp_path):
    """dl/dW1 given g = dl/da4 through 4 blocks (8 layers below a4): the δ form against torch's
    vector-Jacobian product with the same g."""
    problem = stack_problem(tmp_path, 4, questions="""
        - id: chain
          statement: dl/dW1 given g
          ask: chain_rule
          of: a4
          wrt: W1
          upstream: g
        """)
    answer, decls, (a4, W1) = solved(problem, "a4", "W1")
    rng = np.random.default_rng(9)
    for _ in range(2):
        sizes, values = draw(4, rng, extra=("g",))
        t, outs, _ = torch_stack(values, 4)
        outs[-1].backward(torch.tensor(values["g"], dtype=torch.float64))
        got = evaluate(answer, {"args": (a4, W1, "g"), "kwargs": {"avoid": {"l"} | decls.names()}},
                       values, sizes, problem, (), tuple(values["W1"].shape))
        np.testing.assert_allclose(got, t["W1"].grad.numpy(), rtol=1e-10, atol=1e-13)


def test_sheet_shows_the_backward_pass_as_delta_steps(tmp_path):
    """The 17-layer MLP through `derivative`: one δ step per layer from the top down, the δ form
    boxed, and the whole question (sheet steps and their checked vector forms) well under a second
    of CPU on a quiet machine (10 s allowed here for a loaded one)."""
    problem = stack_problem(tmp_path, 8, questions="""
        - id: deep
          statement: dL/dW1
          ask: derivative
          of: L
          wrt: W1
        """)
    start = time.process_time()
    answer = problem.solve()[0]
    elapsed = time.process_time() - start
    assert answer.status.value == "derived", answer.error
    whys = [s.why for s in answer.steps]
    deltas = [w for w in whys if w.startswith("δ of")]
    assert [w.split(":")[0] for w in deltas] == \
        [f"δ of {n}" for k in range(8, 0, -1) for n in (f"a{k}", f"z{k}")][:len(deltas)]
    assert len(deltas) == 16                                 # 16 layers below L, then the gradient by W1
    assert any("the answer is the δ form" in w for w in whys)
    latex = " ".join(s.latex for s in answer.steps)
    assert r"{\delta^{z_{1}}}_{i} = \frac{\partial L}{\partial {z_{1}}_{i}}" in latex, latex[:2000]
    assert element(answer).latex.replace(" ", "").startswith(r"\frac{\partialL}{\partial{W_{1}}_{")
    assert r"\delta^{z_{1}}" in element(answer).latex
    assert elapsed < 10, elapsed


def test_one_layer_is_not_a_stack(tmp_path):
    """Below STACK_DEPTH layers nothing changes: the derivation writes the layer out and differentiates."""
    problem = stack_problem(tmp_path, 1, questions="""
        - id: local
          statement: da1/dW1
          ask: derivative
          of: a1
          wrt: W1
        """)
    answer = problem.solve()[0]
    assert STACK_DEPTH == 3 and not any(s.why.startswith("δ of") for s in answer.steps)
    assert any("definition, written down to the variables" in s.why for s in answer.steps)


SHIPPED = [("conceptual-cnn-rnn", "cq-3.1-K"), ("course-forms", "softmax-regression-l2"),
           ("course-forms", "one-hidden-layer-dx"), ("course-forms", "batchnorm-dx"), ("course-forms", "layernorm-dx"),
           ("coursework-layers", "cs231n-full-loss-dW"), ("coursework-layers", "d2l-dropout-through-linear"),
           ("matrix-calculus", "logistic-regression"), ("nyu-dl-2024-hw2", "nyu24-1.2.2e"),
           ("nyu-dl-2024-hw2", "nyu24-1.2.2f"), ("recurrent-and-attention", "lstm-dc-dcprev"),
           ("recurrent-and-attention", "vaswani-sdpa-dQ"), ("recurrent-and-attention", "cs224n-attention-dhenc"),
           ("masks-and-stop-gradients", "cs231n-two-layer-relu-dW1"), ("masks-and-stop-gradients", "semi-gradient-td0"),
           ("recurrent-and-attention", "d2l-attention-regression-dQ"),
           ("recurrent-and-attention", "flash-attention-dK"),
           ("recurrent-and-attention", "flash-attention-dQ"),
           # the library norms go through their mean, variance and x̂ (layers inside them)
           ("normalization-and-transposed-conv", "cs231n-bn-dx"),
           ("normalization-and-transposed-conv", "d2l-layer-norm-jacobian")]
PROBLEMS = __import__("pathlib").Path(__file__).resolve().parent.parent / "problems"


def test_the_list_is_every_shipped_question_through_a_stack():
    """SHIPPED is what ``through_stack`` takes layer by layer among the shipped questions, no more or less."""
    from symderive.asks.context import Context
    from symderive.backprop import path_layers
    found = []
    for path in sorted(PROBLEMS.glob("*.yaml")):
        problem = load_problem(path)
        for q in problem.questions:
            if q.ask not in ("derivative", "chain_rule"):
                continue
            ctx = Context(problem, q, problem.declarations(q))
            of = ctx.tensor("of")
            wrt = ctx.tensor_or_entry("wrt")[0] if q.ask == "derivative" else ctx.tensor("wrt")
            layers = path_layers(of, wrt) if of.is_layer else []
            if len(layers) - any(n.name == wrt.name for n in layers) >= STACK_DEPTH:
                found.append((path.stem, q.id))
    assert sorted(found) == sorted(SHIPPED)


@pytest.mark.parametrize("file, qid", SHIPPED)
def test_shipped_answers_through_a_stack_equal_the_inlined_derivative(file, qid):
    """Values do not change: every shipped derivative / chain_rule question whose variable sits
    several layers deep, its new boxed formula (closed, or δ form with each δ from its step) against
    the inlined derivative at random sizes and values meeting the declared facts."""
    from symderive.asks.chain_rule import stack as chain_stack
    from symderive.asks.derivative import stack as derivative_stack
    from symderive.derivative import chain_rule, derivative, upstream_name
    from symderive.verify.job import Job, as_int
    problem = load_problem(PROBLEMS / f"{file}.yaml")
    question = problem.question(qid)
    answer = problem.solve_question(question)
    assert answer.status.value == "derived", answer.error
    job = Job(problem, question, answer, np.random.default_rng(11))
    ctx = job.ctx
    of = ctx.tensor("of")
    if question.ask == "derivative":
        wrt, _ = ctx.tensor_or_entry("wrt")
        bp = derivative_stack(ctx, of, wrt, None, ctx.signs())
        old = derivative(of, wrt, ctx.declared_names())
        old_names, extra = [i.name for i in old.out_idx + old.wrt_idx], []
    else:
        wrt = ctx.tensor("wrt")
        loss = question.option("loss", "l")
        bp = chain_stack(ctx, of, wrt, question.option("upstream"), loss)
        old = chain_rule(of, wrt, question.option("upstream"), avoid={str(loss)} | ctx.declared_names())
        old_names = [i.name for i in old.local.wrt_idx]
        extra = [(upstream_name(of, wrt, question.option("upstream")), of.shape)]
    assert bp is not None and bp.depth >= STACK_DEPTH
    new = element(answer)
    new_names = [i.name for _, i in new.axes]
    nonzero = 0
    for sizes in job.draw_sizes([of, wrt], 3):        # the first sizes with a nonzero value suffice
        if nonzero:
            break
        for _ in range(6):                   # until a draw gives a nonzero value: a ReLU or a mask can zero one
            values = job.values([of, wrt], sizes, extra)
            if new.value == bp.gradient.value:
                delta_values(bp, values, sizes)
            out_shape = tuple(as_int(n, sizes) for n in of.shape) if question.ask == "derivative" else ()
            wrt_shape = tuple(as_int(n, sizes) for n in wrt.shape)
            positions = [o + w for o in flat_positions(out_shape) for w in flat_positions(wrt_shape)]
            before = nonzero
            for k in job.rng.choice(len(positions), min(len(positions), 12), replace=False):
                want = engine_value(old.value, values, sizes, dict(zip(old_names, positions[k])))
                got = engine_value(new.value, values, sizes, dict(zip(new_names, positions[k])))
                assert got == pytest.approx(want, rel=1e-9, abs=1e-12), (qid, sizes, positions[k])
                nonzero += want != 0
            if nonzero > before:
                break
    assert nonzero, f"{qid}: every value compared was 0; the comparison would not see a difference"
