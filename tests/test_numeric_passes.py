"""Numeric passes for any layer (issue 11): declared layers of any kind (of:), graphs that are not
stacks, a batch, gradients by the inputs, a forward-only ask, and declared values used by every
ask that can use them (or refused). References are torch autograd in float64 or values derived by
hand from the course's own worked example, never the engine's output."""
import json
import textwrap

import numpy as np
import pytest
import sympy as sp

from symderive.answer import Status
from symderive.numeric_graph import floats   # exact values as NumPy arrays, to compare
from symderive.problem import load_problem
from helpers import assert_close, rng_for

torch = pytest.importorskip("torch")
F = torch.nn.functional


def solve_text(tmp_path, text, qid="q"):
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(text))
    problem = load_problem(path)
    return problem.solve_question(problem.question(qid))


def yaml_list(array):
    return json.dumps(np.asarray(array).tolist())


def test_cs231n_f_equals_x_plus_y_times_z(tmp_path):
    """CS231n lecture 4: x = −2, y = 5, z = −4; q = x + y = 3, f = qz = −12; ∂f/∂x = ∂f/∂y = z = −4,
    ∂f/∂z = q = 3 (the lecture's numbers, derived by hand)."""
    answer = solve_text(tmp_path, """
        title: t
        questions:
          - id: q
            tensors: {x: {value: -2}, y: {value: 5}, z: {value: -4}}
            layers: {q: x + y, f: q * z}
            ask: forward_backward
            of: f
        """)
    assert answer.ok, answer.error
    got = {key: answer.value(key) for key in ("q", "f", "df/dx", "df/dy", "df/dz", "df/dq")}
    assert got == {"q": 3, "f": -12, "df/dx": -4, "df/dy": -4, "df/dz": 3, "df/dq": -4}


def test_cs231n_sigmoid_gate_against_autograd(tmp_path):
    """CS231n lecture 4's sigmoid neuron: w = [2, −3, −3], x = [−1, −2]; f ≈ 0.73, ∂f/∂w ≈ [−0.20, −0.39,
    0.20], ∂f/∂x ≈ [0.39, −0.59]."""
    answer = solve_text(tmp_path, """
        title: t
        questions:
          - id: q
            tensors:
              w: {shape: [3], value: [2, -3, -3]}
              x: {shape: [2], value: [-1, -2]}
            layers:
              s: w[0]*x[0] + w[1]*x[1] + w[2]
              f: sigmoid(s)
            ask: forward_backward
            of: f
        """)
    assert answer.ok, answer.error
    w = torch.tensor([2.0, -3.0, -3.0], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([-1.0, -2.0], dtype=torch.float64, requires_grad=True)
    f = torch.sigmoid(w[0] * x[0] + w[1] * x[1] + w[2])
    f.backward()
    assert_close(floats(answer.value("f")), f.item(), "f")
    assert_close(floats(answer.value("df/dw")).reshape(-1), w.grad.numpy(), "df/dw")
    assert_close(floats(answer.value("df/dx")).reshape(-1), x.grad.numpy(), "df/dx")
    assert_close(floats(answer.value("df/dw")).reshape(-1), [-0.1966, -0.3932, 0.1966], tol=1e-4)


def distinct(rng, shape):
    """Whole numbers, all different (a max pool over them has no tie)."""
    size = int(np.prod(shape))
    return (rng.permutation(4 * size)[:size] - 2 * size).reshape(shape)


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_relu_maxpool_with_upstream_against_autograd(tmp_path, stride):
    rng = rng_for(f"conv-pool-{stride}")
    x, w, b = distinct(rng, (2, 5, 5)) / 20, rng.integers(-2, 3, (2, 2, 2, 2)), rng.integers(1, 4, (2,))
    conv = F.conv2d(torch.tensor(x[None], dtype=torch.float64), torch.tensor(w, dtype=torch.float64),
                    torch.tensor(b, dtype=torch.float64), stride=stride)
    pooled_shape = tuple(F.max_pool2d(conv, 2).shape[1:])
    g = rng.integers(-3, 4, pooled_shape)
    answer = solve_text(tmp_path, f"""
        title: t
        questions:
          - id: q
            tensors:
              x: {{shape: [2, 5, 5], value: {yaml_list(x)}}}
              w: {{shape: [2, 2, 2, 2], value: {yaml_list(w)}}}
              b: {{shape: [2], value: {yaml_list(b)}}}
              G: {{shape: {list(pooled_shape)}, value: {yaml_list(g)}}}
            layers:
              c: conv2d(x, w, b, stride={stride})
              r: relu(c)
              p: max_pool2d(r, kernel_size=2)
            ask: forward_backward
            of: p
            upstream: G
        """)
    assert answer.ok, answer.error          # (the seeds give no tie; a tie is refused, tested below)
    X, W, B = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w, b))
    c = F.conv2d(X[None], W, B, stride=stride)
    p = F.max_pool2d(F.relu(c), 2)[0]
    p.backward(torch.tensor(g, dtype=torch.float64))
    assert_close(floats(answer.value("p")), p.detach().numpy(), "p")
    assert_close(floats(answer.value("dL/dx")), X.grad.numpy(), "dx")
    assert_close(floats(answer.value("dL/dw")), W.grad.numpy(), "dw")
    assert_close(floats(answer.value("dL/db")).reshape(-1), B.grad.numpy(), "db")


def test_batch_of_two_softmax_cross_entropy_gives_dx_and_dw(tmp_path):
    """CS231n's softmax classifier with the bias trick (a column of ones in X), two samples, mean loss."""
    rng = rng_for("batch-ce")
    X = np.hstack([rng.integers(-2, 3, (2, 3)), np.ones((2, 1), dtype=int)])
    W = rng.integers(-2, 3, (4, 3))
    y = np.array([2, 0])
    answer = solve_text(tmp_path, f"""
        title: t
        questions:
          - id: q
            tensors:
              X: {{shape: [2, 4], value: {yaml_list(X)}}}
              W: {{shape: [4, 3], value: {yaml_list(W)}}}
              y: {{shape: [2], value: {yaml_list(y)}}}
            layers:
              s: matmul(X, W)
              L: \"cross_entropy(s, y)\"
            ask: forward_backward
            of: L
        """)
    assert answer.ok, answer.error
    Xt, Wt = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (X, W))
    loss = F.cross_entropy(Xt @ Wt, torch.tensor(y))
    loss.backward()
    assert_close(floats(answer.value("L")), loss.item(), "L")
    assert_close(floats(answer.value("dL/dX")), Xt.grad.numpy(), "dX")
    assert_close(floats(answer.value("dL/dW")), Wt.grad.numpy(), "dW")
    assert answer.value("dL/dy") is None                    # labels are data: no gradient


def test_embedding_dropout_mask_and_a_residual_branch(tmp_path):
    """A graph that is not a stack: r = tanh(e') + e' with e' the dropped-out embedding rows."""
    answer = solve_text(tmp_path, """
        title: t
        questions:
          - id: q
            tensors:
              ids: {shape: [2], value: [2, 0]}
              U: {shape: [3, 2], value: [[0.5, -1], [2, 0.25], [-0.75, 1.5]]}
              M: {shape: [2, 2], value: [[1, 0], [1, 1]]}
              T: {shape: [2, 2], value: [[0, 1], [1, 0]]}
            layers:
              e: embedding(ids, U)
              d: dropout(e, M, p=0.25)
              h: tanh(d)
              "r[n, k]": h[n, k] + d[n, k]
              L: mse(r, T)
            ask: forward_backward
            of: L
        """)
    assert answer.ok, answer.error
    U = torch.tensor([[0.5, -1], [2, 0.25], [-0.75, 1.5]], dtype=torch.float64, requires_grad=True)
    M = torch.tensor([[1.0, 0], [1, 1]], dtype=torch.float64)
    d = F.embedding(torch.tensor([2, 0]), U) * M / 0.75
    r = torch.tanh(d) + d
    loss = F.mse_loss(r, torch.tensor([[0.0, 1], [1, 0]], dtype=torch.float64))
    loss.backward()
    assert_close(floats(answer.value("L")), loss.item(), "L")
    assert_close(floats(answer.value("dL/dU")), U.grad.numpy(), "dU")
    assert answer.value("dL/dids") is None and answer.value("dL/dM") is None


def test_xor_network_forward_on_its_four_inputs(tmp_path):
    """Goodfellow et al. §6.1: h = ReLU(XW + c) = [[0, 0], [1, 0], [1, 0], [2, 1]], y = hw = [0, 1, 1, 0]
    (the book's numbers; PyTorch's Linear stores W as out × in, and the book's W is symmetric)."""
    answer = solve_text(tmp_path, """
        title: t
        questions:
          - id: q
            tensors:
              X: {shape: [4, 2], value: [[0, 0], [0, 1], [1, 0], [1, 1]]}
              W: {shape: [2, 2], value: [[1, 1], [1, 1]]}
              c: {shape: [2], value: [0, -1]}
              w: {shape: [1, 2], value: [[1, -2]]}
              b: {shape: [1], value: [0]}
            network:
              input: X
              layers:
                - z: Linear(W, c)
                - h: ReLU()
                - y: Linear(w, b)
            ask: forward
        """)
    assert answer.ok, answer.error
    assert answer.value("h") == sp.Matrix([[0, 0], [1, 0], [1, 0], [2, 1]])
    assert answer.value("y") == sp.Matrix([[0], [1], [1], [0]])


def test_forward_of_several_layers_and_gradient_step_against_sgd(tmp_path):
    text = """
        title: t
        questions:
          - id: fwd
            tensors: &t
              X: {shape: [2, 2], value: [[1, -1], [0.5, 2]]}
              W: {shape: [2, 3], value: [[0.25, -0.5, 1], [1, 0, -1]]}
              y: {shape: [2], value: [1, 2]}
            layers: &l
              s: matmul(X, W)
              q: softmax(s)
              L: cross_entropy(s, y, reduction='sum')
            ask: forward
            of: [q, L]
          - id: q
            tensors: *t
            layers: *l
            ask: gradient_step
            of: L
            learning_rate: 0.1
            update: [W]
        """
    forward = solve_text(tmp_path, text, "fwd")
    step = solve_text(tmp_path, text, "q")
    assert forward.ok and step.ok, (forward.error, step.error)
    X = torch.tensor([[1, -1], [0.5, 2]], dtype=torch.float64)
    W = torch.tensor([[0.25, -0.5, 1], [1, 0, -1]], dtype=torch.float64, requires_grad=True)
    s = X @ W
    assert_close(floats(forward.value("q")), torch.softmax(s, -1).detach().numpy(), "q")
    F.cross_entropy(s, torch.tensor([1, 2]), reduction="sum").backward()
    torch.optim.SGD([W], lr=0.1).step()
    assert_close(floats(step.value("W'")), W.detach().numpy(), "W'")


def test_declared_values_are_used_by_a_chain_rule(tmp_path):
    """The max-pool backward with X and the upstream G declared gives the numbers (it used to give
    only the array of Heaviside steps): compared with autograd."""
    X = [[1, 2, 0, 1], [3, -1, 5, 2], [0, 1, 4, -2], [-1, 0, 6, 3]]
    answer = solve_text(tmp_path, f"""
        title: t
        questions:
          - id: q
            tensors:
              X: {{shape: [4, 4], value: {X}}}
              G: {{shape: [2, 2], value: [[1, 2], [3, 4]]}}
            layers:
              P: max_pool2d(X, kernel_size=2)
            ask: chain_rule
            of: P
            wrt: X
            upstream: G
        """)
    assert answer.ok, answer.error
    Xt = torch.tensor(X, dtype=torch.float64, requires_grad=True)
    F.max_pool2d(Xt[None], 2)[0].backward(torch.tensor([[1.0, 2], [3, 4]], dtype=torch.float64))
    numbers = [r for r in answer.results if r.key.endswith("at values")]
    assert len(numbers) == 1
    assert_close(floats(numbers[0].value), Xt.grad.numpy(), "dX at the values")


def test_declared_values_in_a_jacobian(tmp_path):
    answer = solve_text(tmp_path, """
        title: t
        questions:
          - id: q
            tensors: {x: {shape: [3], value: [1, -2, 0.5]}}
            layers: {y: tanh(x)}
            ask: derivative
            of: y
            wrt: x
        """)
    assert answer.ok, answer.error
    x = torch.tensor([1, -2, 0.5], dtype=torch.float64)
    reference = torch.autograd.functional.jacobian(torch.tanh, x)
    numbers = [r for r in answer.results if r.key.endswith("at values")]
    assert_close(floats(numbers[0].value), reference.numpy(), "J at the values")


# ---------------------------------------------------------------------------------------------
# Bad inputs: one line each, the rest of the file still solved

BAD = {
    "no value": ("tensors: {x: {shape: [2]}, w: {shape: [2], value: [1, 2]}}\n    layers: {f: \"dot(w, x)\"}\n"
                 "    ask: forward_backward\n    of: f", "tensor 'x' has no value"),
    "label out of range": ("tensors: {s: {shape: [1, 3], value: [[1, 2, 3]]}, y: {shape: [1], value: [3]}}\n"
                           "    layers: {L: \"cross_entropy(s, y)\"}\n    ask: forward_backward\n    of: L",
                           "class labels"),
    "mask not 0/1": ("tensors: {x: {shape: [2], value: [1, 2]}, m: {shape: [2], value: [1, 0.5]}}\n"
                     "    layers: {d: \"dropout(x, m)\", L: \"mse(d, x)\"}\n    ask: forward_backward\n    of: L",
                     "dropout mask"),
    "vector without upstream": ("tensors: {x: {shape: [2], value: [1, 2]}}\n    layers: {y: tanh(x)}\n"
                                "    ask: forward_backward\n    of: y", "upstream"),
    "upstream of the wrong shape": ("tensors: {x: {shape: [2], value: [1, 2]}, G: {shape: [3], value: [1, 2, 3]}}"
                                    "\n    layers: {y: tanh(x)}\n    ask: forward_backward\n    of: y\n"
                                    "    upstream: G", "shape of 'y'"),
    "a tie in max pooling": ("tensors: {x: {shape: [2, 2], value: [[1, 3], [3, 0]]}, G: {shape: [1, 1], value: "
                             "[[1]]}}\n    layers: {p: \"max_pool2d(x, kernel_size=2)\"}\n    ask: forward_backward\n"
                             "    of: p\n    upstream: G", "equal entries"),
    "upstream for a scalar": ("tensors: {x: {shape: [2], value: [1, 2]}, G: {value: 1}}\n"
                              "    layers: {y: \"dot(x, x)\"}\n    ask: forward_backward\n    of: y\n    upstream: G",
                              "only for an 'of' that is not a scalar"),
    "upstream without a value": ("tensors: {x: {shape: [2], value: [1, 2]}, G: {shape: [2]}}\n"
                                 "    layers: {y: tanh(x)}\n    ask: forward_backward\n    of: y\n    upstream: G",
                                 "declared tensor with a value"),
    "both network and of": ("tensors: {x: {shape: [2], value: [1, 2]}}\n    layers: {y: tanh(x)}\n"
                            "    network: {input: x, layers: [Tanh()]}\n    ask: forward\n    of: y",
                            "either 'network:'"),
    "forward with a loss": ("tensors: {x: {shape: [2], value: [1, 2]}}\n    network: {input: x, layers: [Tanh()], "
                            "loss: \"x[0]\"}\n    ask: forward", "leave 'loss' out"),
    "of is a tensor": ("tensors: {x: {shape: [2], value: [1, 2]}}\n    ask: forward\n    of: x",
                       "not a declared layer"),
    "values an element formula cannot use": ("tensors: {x: {shape: [2], value: [1, 2]}}\n    layers: {y: tanh(x)}\n"
                                             "    ask: element\n    of: y", "cannot use"),
    "values in an identity": ("tensors: {x: {value: 2}}\n    ask: prove\n    lhs: sigmoid(-x)\n"
                              "    rhs: 1 - sigmoid(x)", "identity for all values"),
    "values in a layer-by-layer derivation": ("tensors: {x: {shape: [2], value: [1, 2]}, W: {shape: [2, 2]}}\n"
                                              "    layers: {z: \"linear(x, W)\", L: \"Sum(z[i]**2, (i, 0, 1))\"}\n"
                                              "    ask: backprop\n    of: L\n    wrt: W", "cannot use"),
    "a batch backward through a stack": ("tensors: {X: {shape: [2, 2], value: [[1, 2], [3, 4]]}}\n"
                                         "    network: {input: X, layers: [Tanh()], loss: \"y[0]\"}\n"
                                         "    ask: forward_backward", "is a batch"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_located_line(tmp_path, case):
    body, message = BAD[case]
    path = tmp_path / "p.yaml"
    path.write_text(f"title: t\nquestions:\n  - id: ok\n    ask: value\n    expr: '1/2'\n  - id: q\n    {body}\n")
    problem = load_problem(path)
    answers = problem.solve()
    assert answers[0].ok
    bad = answers[1]
    assert bad.status is Status.FAILED
    assert message in bad.error and "\n" not in bad.error, bad.error
    assert bad.error.startswith(f"{path}:") and "question q" in bad.error, bad.error


# ---------------------------------------------------------------------------------------------
# network: stacks: Dropout with its mask, Embedding, and dx


def test_stack_with_dropout_mask_gives_dx_against_autograd(tmp_path):
    answer = solve_text(tmp_path, """
        title: t
        questions:
          - id: q
            tensors:
              x: {shape: [3], value: [1, -0.5, 2]}
              W1: {shape: [4, 3], value: [[0.5, 1, 0], [-1, 0.5, 0.5], [0, -0.5, 1], [1, 1, -1]]}
              b1: {shape: [4], value: [0, 0.5, -0.5, 1]}
              M: {shape: [4], value: [1, 0, 1, 1]}
              W2: {shape: [2, 4], value: [[1, 0, 0, -1], [0.5, 0, 1, 0]]}
            network:
              input: x
              layers:
                - h: Linear(W1, b1)
                - a: Tanh()
                - d: Dropout(p=0.25, mask=M)
                - o: Linear(W2)
              loss: {E: "(o[0] - 1)**2 + o[1]**2"}
            ask: forward_backward
        """)
    assert answer.ok, answer.error
    x = torch.tensor([1, -0.5, 2], dtype=torch.float64, requires_grad=True)
    W1 = torch.tensor([[0.5, 1, 0], [-1, 0.5, 0.5], [0, -0.5, 1], [1, 1, -1]], dtype=torch.float64,
                      requires_grad=True)
    b1 = torch.tensor([0, 0.5, -0.5, 1], dtype=torch.float64)
    W2 = torch.tensor([[1, 0, 0, -1], [0.5, 0, 1, 0]], dtype=torch.float64)
    o = W2 @ (torch.tanh(W1 @ x + b1) * torch.tensor([1.0, 0, 1, 1], dtype=torch.float64) / 0.75)
    ((o[0] - 1) ** 2 + o[1] ** 2).backward()
    assert_close(floats(answer.value("dE/dx")).reshape(-1), x.grad.numpy(), "dE/dx")
    assert_close(floats(answer.value("dE/dW1")), W1.grad.numpy(), "dE/dW1")


def test_stack_with_an_embedding_against_autograd(tmp_path):
    """Two word indices (the second looked up twice would add): rows of U, flattened, then Linear."""
    answer = solve_text(tmp_path, """
        title: t
        questions:
          - id: q
            tensors:
              w: {shape: [3], value: [2, 0, 2]}
              U: {shape: [3, 2], value: [[0.5, -1], [2, 0.25], [-0.75, 1.5]]}
              W: {shape: [1, 6], value: [[1, 0, 0, -1, 0.5, 2]]}
            network:
              input: w
              layers:
                - e: Embedding(U)
                - f: Flatten()
                - s: Linear(W)
              loss: {E: "s[0]**2"}
            ask: forward_backward
        """)
    assert answer.ok, answer.error
    U = torch.tensor([[0.5, -1], [2, 0.25], [-0.75, 1.5]], dtype=torch.float64, requires_grad=True)
    W = torch.tensor([[1, 0, 0, -1, 0.5, 2]], dtype=torch.float64)
    s = W @ F.embedding(torch.tensor([2, 0, 2]), U).reshape(-1)
    (s[0] ** 2).backward()
    assert_close(floats(answer.value("dE/dU")), U.grad.numpy(), "dE/dU")      # row 2 gets two parts
    assert answer.value("dE/dw") is None                                      # indices: no gradient


def test_embedding_and_dropout_in_shape_questions_match_torch_modules(tmp_path):
    text = """
        title: t
        questions:
          - id: q
            network:
              input: [5]
              layers: ["Embedding(100, 8)", Dropout(0.1), Flatten(), "Linear(40, 3)"]
            ask: parameter_count
          - id: s
            network:
              input: [5]
              layers: ["Embedding(100, 8)", Dropout(0.1), Flatten(), "Linear(40, 3)"]
            ask: shape_table
        """
    count, shapes = solve_text(tmp_path, text, "q"), solve_text(tmp_path, text, "s")
    assert count.ok and shapes.ok, (count.error, shapes.error)
    net = torch.nn.Sequential(torch.nn.Embedding(100, 8), torch.nn.Dropout(0.1), torch.nn.Flatten(0),
                              torch.nn.Linear(40, 3))
    assert count.value("total")[0] == sum(p.numel() for p in net.parameters())
    assert tuple(shapes.value("embedding1")) == tuple(net[0](torch.zeros(5, dtype=torch.long)).shape)


BAD_STACKS = {
    "dropout without a mask": ("x: {shape: [2], value: [1, 2]}", "Dropout(0.5)", "needs the mask"),
    "a mask that is not 0/1": ("x: {shape: [2], value: [1, 2]}\n              M: {shape: [2], value: [1, 2]}",
                               "Dropout(0.5, mask=M)", "0s and 1s"),
    "an index out of range": ("x: {shape: [2], value: [1, 3]}\n"
                              "              U: {shape: [3, 1], value: [[1], [2], [3]]}",
                              "Embedding(U)", "whole numbers 0..2"),
    "a mask that is not a tensor": ("x: {shape: [2], value: [1, 2]}", "Dropout(0.5, mask=Q)", "declared tensor"),
}


@pytest.mark.parametrize("case", sorted(BAD_STACKS))
def test_bad_stack_entries_are_one_line(tmp_path, case):
    tensors, call, message = BAD_STACKS[case]
    answer = solve_text(tmp_path, f"""
        title: t
        questions:
          - id: q
            tensors:
              {tensors}
            network:
              input: x
              layers: ["{call}"]
            ask: forward
        """)
    assert answer.status is Status.FAILED
    assert message in answer.error and "\n" not in answer.error, answer.error


def test_values_of_some_tensors_leave_the_others_symbolic(tmp_path):
    """X given, the upstream g a symbol: each g entry goes to the larger entry of its window."""
    answer = solve_text(tmp_path, """
        title: t
        questions:
          - id: q
            tensors: {X: {shape: [4], value: [1, 3, 5, -1]}}
            layers: {P: "max_pool1d(X, kernel_size=2)"}
            ask: chain_rule
            of: P
            wrt: X
        """)
    assert answer.ok, answer.error
    (numbers,) = [r.value for r in answer.results if r.key.endswith("at values")]
    assert [str(v) for v in numbers] == ["0", "g[0]", "g[1]", "0"]


def test_values_in_a_value_and_in_a_convolution_matrix(tmp_path):
    text = """
        title: t
        questions:
          - id: v
            tensors: {x: {shape: [2], value: [1, 2]}, y: {value: 3}}
            ask: value
            expr: x[0] * y + x[1]
          - id: q
            tensors: {x: [3], W: {shape: [2], value: [1, -1]}}
            layers: {y: "conv1d(x, W)"}
            ask: conv_matrix
            of: y
        """
    value, conv = solve_text(tmp_path, text, "v"), solve_text(tmp_path, text, "q")
    assert value.value("value at values") == 5                          # 1·3 + 2
    (A,) = [r.value for r in conv.results if r.key.endswith("at values")]
    assert A == sp.Matrix([[1, -1, 0], [0, 1, -1]])                     # y_i = x_i − x_{i+1}, by hand


# -- the generic pass through the normalization, transposed-convolution, recurrent and attention kinds --
def pass_against_autograd(tmp_path, tensors, layers, of, reference, seed):
    """forward_backward of ``of`` with an upstream G, and forward, against ``reference(**torch tensors)``
    under torch autograd (float64): the value and the gradient by every tensor."""
    rng = rng_for(seed)
    leaves = {name: torch.tensor(np.asarray(a, dtype=float), dtype=torch.float64, requires_grad=True)
              for name, a in tensors.items()}
    out = reference(**leaves)
    g = rng.integers(-3, 4, tuple(out.shape))
    out.backward(torch.tensor(g, dtype=torch.float64))
    declared = "\n".join(f"      {name}: {{shape: {list(np.shape(a))}, value: {yaml_list(a)}}}"
                         for name, a in {**tensors, "G": g}.items())
    written = "\n".join(f"      {name}: \"{text}\"" for name, text in layers.items())
    answers = {}
    for ask, extra in (("forward_backward", "\n    upstream: G"), ("forward", "")):
        path = tmp_path / f"{ask}.yaml"
        path.write_text(f"title: t\nquestions:\n  - id: q\n    tensors:\n{declared}\n    layers:\n{written}\n"
                        f"    ask: {ask}\n    of: {of}{extra}\n")
        problem = load_problem(path)
        answers[ask] = answer = problem.solve_question(problem.question("q"))
        assert answer.ok, f"{ask}: {answer.error}"
        assert_close(floats(answer.value(of)).reshape(out.shape), out.detach().numpy(), f"{ask} {of}")
    for name, leaf in leaves.items():
        got = answers["forward_backward"].value(f"dL/d{name}")
        assert got is not None, f"no dL/d{name}"
        assert_close(floats(got).reshape(leaf.shape), leaf.grad.numpy(), f"dL/d{name}")


def test_pass_through_batch_norm(tmp_path):
    x = [[[1, -2], [0.5, 2]], [[3, 0], [-1, 1]], [[-0.5, 2], [1.5, 0]]]
    pass_against_autograd(tmp_path, {"x": x, "g": [2, -1], "b": [0.25, 1]},
                          {"y": "batch_norm(x, g, b)"}, "y",
                          lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True), "bn-pass")


def test_pass_through_layer_norm(tmp_path):
    x = [[1, -2, 0.5], [3, 0, -1]]
    pass_against_autograd(tmp_path, {"x": x, "g": [2, -1, 0.5], "b": [0.25, 1, -1]},
                          {"y": "layer_norm(x, g, b, normalized_shape=3)"}, "y",
                          lambda x, g, b: F.layer_norm(x, (3,), g, b), "ln-pass")


def test_pass_through_conv_transpose1d_with_a_batch(tmp_path):
    x = [[[1, -2, 0.5], [3, 0, -1]]]
    w = [[[1, 2], [0, -1], [2, 1]], [[-1, 0.5], [1, 1], [0, 3]]]
    pass_against_autograd(tmp_path, {"x": x, "w": w, "b": [1, -1, 0.5]},
                          {"y": "conv_transpose1d(x, w, b, stride=2, padding=1, output_padding=1)"}, "y",
                          lambda x, w, b: F.conv_transpose1d(x, w, b, stride=2, padding=1, output_padding=1),
                          "ct-pass")


def test_pass_through_rnn_cell(tmp_path):
    tensors = {"x": [0.5, -1], "h": [1, 0.25, -0.5], "Wi": [[1, -1], [0.5, 2], [0, 1]],
               "Wh": [[0.5, 0, -1], [1, 1, 0], [-0.5, 0.25, 1]], "bi": [0.1, 0, -0.2], "bh": [0, 0.3, 0.1]}
    pass_against_autograd(tmp_path, tensors, {"y": "rnn_cell(x, h, Wi, Wh, bi, bh)"}, "y",
                          lambda x, h, Wi, Wh, bi, bh: torch.tanh(Wi @ x + bi + Wh @ h + bh), "rnn-pass")


def test_pass_through_scaled_dot_product_attention(tmp_path):
    tensors = {"Q": [[1, 0], [0.5, -1]], "K": [[1, 1], [-1, 0.5], [0, 2]], "V": [[1, -1], [2, 0], [0.5, 3]]}
    pass_against_autograd(tmp_path, tensors, {"y": "scaled_dot_product_attention(Q, K, V)"}, "y",
                          lambda Q, K, V: F.scaled_dot_product_attention(Q, K, V), "sdpa-pass")


def test_pass_through_grouped_conv_transpose2d(tmp_path):
    x = [[[[1, -2], [0.5, 1]], [[3, 0], [-1, 2]]]]
    w = [[[[1, 2], [0, -1]]], [[[-1, 0.5], [1, 1]]]]
    pass_against_autograd(tmp_path, {"x": x, "w": w, "b": [1, -1]},
                          {"y": "conv_transpose2d(x, w, b, stride=2, groups=2)"}, "y",
                          lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, groups=2), "ct-groups-pass")


def test_pass_through_group_norm(tmp_path):
    x = [[[1, -2], [0.5, 2], [3, 0], [-1, 1]], [[-0.5, 2], [1.5, 0], [2, 1], [0, -3]]]
    pass_against_autograd(tmp_path, {"x": x, "g": [2, -1, 0.5, 1], "b": [0.25, 1, -1, 0]},
                          {"y": "group_norm(x, g, b, num_groups=2)"}, "y",
                          lambda x, g, b: F.group_norm(x, 2, g, b), "gn-pass")
