"""Derivatives by an intermediate layer (∂P/∂S where S feeds P) against PyTorch autograd.

A layer used to be expanded into its definition even when it was the variable, which made
every such derivative 0; these tests pin the fix with an independent reference.
"""
import numpy as np
import pytest
import sympy as sp

import symderive as sd
from symderive.derivative import chain_rule
from symderive.tensors import flat_positions
from helpers import assert_close, rng_for

torch = pytest.importorskip("torch")


def block(n=2, m=2, k=2):
    """conv2d (k×k, stride 1, no padding) → sigmoid → 2×2 average pooling, as cq-3.1."""
    X = sd.tensor("X", 2 * n + k - 1, 2 * m + k - 1)
    K = sd.tensor("K", k, k)
    C = sd.conv2d(X, K, name="C")
    S = sd.sigmoid(C, name="S")
    P = sd.avg_pool2d(S, kernel_size=2, name="P")
    return X, K, C, S, P


def substitute(matrix, values):
    return np.array(matrix.xreplace(values).evalf(), dtype=float)


def torch_block(x, k):
    c = torch.nn.functional.conv2d(x[None, None], k[None, None])[0, 0]
    s = torch.sigmoid(c)
    return c, s, torch.nn.functional.avg_pool2d(s[None, None], 2)[0, 0]


@pytest.mark.parametrize("wrt", ["S", "C", "K", "X"])
def test_chain_rule_by_each_tensor_in_the_block(wrt, request):
    X, K, C, S, P = block()
    rng = rng_for(request.node.name)
    x = rng.normal(size=[int(n) for n in X.shape])
    kern = rng.normal(size=[int(n) for n in K.shape])
    g = rng.normal(size=[int(n) for n in P.shape])

    xt = torch.tensor(x, requires_grad=True)
    kt = torch.tensor(kern, requires_grad=True)
    c, s, p = torch_block(xt, kt)
    c.retain_grad(), s.retain_grad()
    (p * torch.tensor(g)).sum().backward()
    expected = {"S": s.grad, "C": c.grad, "K": kt.grad, "X": xt.grad}[wrt].numpy()

    target = {"S": S, "C": C, "K": K, "X": X}[wrt]
    rule = chain_rule(P, target, "g")
    result = rule.array()
    values = {X.base[i]: x[i] for i in flat_positions(X.shape)}
    values.update({K.base[i]: kern[i] for i in flat_positions(K.shape)})
    values.update({rule.upstream.base[i]: g[i] for i in flat_positions(P.shape)})
    # Intermediate entries that remain (S[...] or C[...]) take their forward values.
    values.update({S.base[i]: s.detach().numpy()[i] for i in flat_positions(S.shape)})
    values.update({C.base[i]: c.detach().numpy()[i] for i in flat_positions(C.shape)})
    got = substitute(result, {k: v for k, v in values.items()})
    assert np.abs(expected).max() > 0          # the reference is not trivially zero
    assert_close(got.reshape(expected.shape), expected, f"dloss/d{wrt}")


@pytest.mark.parametrize("n,m,k", [(1, 2, 1), (2, 3, 2), (3, 2, 3)])
def test_symbolic_pooling_gradient_is_one_term_and_right(n, m, k, request):
    """For general n, m, k the sum over the pooling window collapses (proved by residues) to
    g[floor(p/2), floor(q/2)]/4; evaluated at concrete sizes it matches PyTorch."""
    from symderive.evaluate import evaluate
    N, M, Ksz = sd.sizes("n m k")
    X = sd.tensor("X", 2 * N + Ksz - 1, 2 * M + Ksz - 1)
    C = sd.conv2d(X, sd.tensor("K", Ksz, Ksz), name="C")
    S = sd.sigmoid(C, name="S")
    P = sd.avg_pool2d(S, kernel_size=2, name="P")
    rule = chain_rule(P, S, "g")
    assert not rule.value.has(sp.Sum), rule.value          # one term, no sum left

    rng = rng_for(request.node.name)
    s = torch.tensor(rng.normal(size=(2 * n, 2 * m)), requires_grad=True)
    g = rng.normal(size=(n, m))
    (torch.nn.functional.avg_pool2d(s[None, None], 2)[0, 0] * torch.tensor(g)).sum().backward()
    sizes = {N: n, M: m, Ksz: k}
    got = np.array([[evaluate(rule.value, {"g": g}, sizes, dict(zip(rule.local.wrt_idx, (a, b))))
                     for b in range(2 * m)] for a in range(2 * n)])
    assert_close(got, s.grad.numpy(), "dloss/dS")
