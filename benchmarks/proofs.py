"""General-size results against plain SymPy at concrete sizes, in one run.

For each result symderive derives for symbolic sizes, print its time, then the
largest concrete size at which plain SymPy (differentiate entry by entry,
then ``simplify(derived − expected) == 0``) finishes within that same time,
and how long that took.

Run:  python benchmarks/proofs.py
"""
import subprocess
import sys
import time
from pathlib import Path

import sympy as sp

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 1.0


TIMER = """
import sys, time
from symderive.problem import load_problem
problem = load_problem(sys.argv[1])
question = problem.question(sys.argv[2])
start = time.perf_counter()
answer = problem.solve_question(question)
print(time.perf_counter() - start, answer.status.value)
"""


def ours(path, qid):
    """The question solved once in a fresh process: imports excluded, no warm caches."""
    out = subprocess.run([sys.executable, "-c", TIMER, str(ROOT / "problems" / path), qid],
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), out[1]


# Plain SymPy baselines: each returns True when the closed form is confirmed at size N.

def softmax_cross_entropy(N):
    """cq-3.4: dE/dz_0 = q_0 - p_0 given sum(p) = 1."""
    z, p = sp.symbols(f"z0:{N}", real=True), sp.symbols(f"p0:{N}", real=True)
    S = sum(sp.exp(zi) for zi in z)
    E = -sum(pi * sp.log(sp.exp(zi) / S) for pi, zi in zip(p, z))
    derived = sp.diff(E, z[0]).subs(p[-1], 1 - sum(p[:-1]))
    expected = (sp.exp(z[0]) / S - p[0]).subs(p[-1], 1 - sum(p[:-1]))
    return sp.simplify(derived - expected) == 0


def rnn_jacobian(N):
    """cq-3.6: dh/dh_prev = diag(h (1 - h)) W_h for h = sigmoid(W_i x + W_h h_prev), sizes N."""
    Wi, Wh = sp.Matrix(N, N, lambda i, j: sp.Symbol(f"Wi{i}{j}")), sp.Matrix(N, N, lambda i, j: sp.Symbol(f"Wh{i}{j}"))
    x, hp = sp.Matrix(sp.symbols(f"x0:{N}")), sp.Matrix(sp.symbols(f"hp0:{N}"))
    pre = Wi * x + Wh * hp
    h = pre.applyfunc(lambda a: 1 / (1 + sp.exp(-a)))
    derived = h.jacobian(hp)
    expected = sp.diag(*[hi * (1 - hi) for hi in h]) * Wh
    return sp.simplify(derived - expected) == sp.zeros(N, N)


def tanh_regression(N):
    """csce636-q1: grad E = (2/N) sum_n (tanh(w.x_n) - y_n)(1 - tanh^2(w.x_n)) x_n, with d = 2."""
    d = 2
    w = sp.symbols(f"w0:{d}", real=True)
    X = [[sp.Symbol(f"x{n}_{k}", real=True) for k in range(d)] for n in range(N)]
    y = sp.symbols(f"y0:{N}", real=True)
    dots = [sum(wk * xk for wk, xk in zip(w, row)) for row in X]
    E = sum((sp.tanh(a) - yn) ** 2 for a, yn in zip(dots, y)) / N
    for p in range(d):
        expected = sum(2 * (sp.tanh(a) - yn) * (1 - sp.tanh(a) ** 2) * row[p]
                       for a, yn, row in zip(dots, y, X)) / N
        if sp.simplify(sp.diff(E, w[p]) - expected) != 0:
            return False
    return True


def gated_rnn_bptt(N):
    """nyu21-1.2c: dl/dW_x = sum_t ((1 - c_t) * g_t) x_t^T over N steps, n = m = 2."""
    n = m = 2
    Wc = sp.Matrix(m, n, lambda i, j: sp.Symbol(f"Wc{i}{j}"))
    Wh = sp.Matrix(m, m, lambda i, j: sp.Symbol(f"Wh{i}{j}"))
    Wx = sp.Matrix(m, n, lambda i, j: sp.Symbol(f"Wx{i}{j}"))
    total, expected = 0, sp.zeros(m, n)
    for t in range(N):
        x = sp.Matrix(sp.symbols(f"x{t}_0:{n}"))
        hp = sp.Matrix(sp.symbols(f"h{t}_0:{m}"))           # h[t-1], held fixed (g_t is total)
        g = sp.Matrix(sp.symbols(f"g{t}_0:{m}"))
        c = (Wc * x + Wh * hp).applyfunc(lambda a: 1 / (1 + sp.exp(-a)))
        h = c.multiply_elementwise(hp) + (sp.ones(m, 1) - c).multiply_elementwise(Wx * x)
        total += (g.T * h)[0]
        expected += ((sp.ones(m, 1) - c).multiply_elementwise(g)) * x.T
    derived = sp.Matrix(m, n, lambda i, j: sp.diff(total, Wx[i, j]))
    return sp.simplify(derived - expected) == sp.zeros(m, n)


def conv_sigmoid_pool(N):
    """cq-3.1: dloss/dK for conv (k = 2) -> sigmoid -> 2x2 average pool, n = m = N."""
    k, n = 2, N
    X = sp.Matrix(2 * n + k - 1, 2 * n + k - 1, lambda i, j: sp.Symbol(f"x{i}_{j}"))
    K = sp.Matrix(k, k, lambda i, j: sp.Symbol(f"k{i}_{j}"))
    g = sp.Matrix(n, n, lambda i, j: sp.Symbol(f"g{i}_{j}"))
    C = sp.Matrix(2 * n, 2 * n, lambda a, b: sum(K[u, v] * X[a + u, b + v] for u in range(k) for v in range(k)))
    S = C.applyfunc(lambda c: 1 / (1 + sp.exp(-c)))
    loss = sum(g[i, j] * (S[2 * i, 2 * j] + S[2 * i + 1, 2 * j] + S[2 * i, 2 * j + 1] + S[2 * i + 1, 2 * j + 1]) / 4
               for i in range(n) for j in range(n))
    for u in range(k):
        for v in range(k):
            expected = sum(g[a // 2, b // 2] / 4 * S[a, b] * (1 - S[a, b]) * X[a + u, b + v]
                           for a in range(2 * n) for b in range(2 * n))
            if sp.simplify(sp.diff(loss, K[u, v]) - expected) != 0:
                return False
    return True


def attention_jacobian(N):
    """nyu24-1.2.2e: dh[t]/dh[t-1] = a1 V1 + a1 (v1 - h) (Q1^T K1 + K1^T Q1) hp)^T, n = m = N."""
    mats = {name: sp.Matrix(N, N, lambda i, j, name=name: sp.Symbol(f"{name}{i}{j}"))
            for name in ("Q0", "K0", "V0", "Q1", "K1", "V1", "Q2", "K2", "V2")}
    x, hp, hpp = (sp.Matrix(sp.symbols(f"{v}0:{N}")) for v in ("x", "hp", "hpp"))
    inputs = [x, hp, hpp]
    w = [((mats[f"Q{i}"] * s).T * (mats[f"K{i}"] * s))[0] for i, s in enumerate(inputs)]
    total = sum(sp.exp(wi) for wi in w)
    a = [sp.exp(wi) / total for wi in w]
    v = [mats[f"V{i}"] * s for i, s in enumerate(inputs)]
    h = sum((ai * vi for ai, vi in zip(a, v)), sp.zeros(N, 1))
    dw1 = (mats["Q1"].T * mats["K1"] + mats["K1"].T * mats["Q1"]) * hp
    expected = a[1] * mats["V1"] + a[1] * (v[1] - h) * dw1.T
    return sp.simplify(h.jacobian(hp) - expected) == sp.zeros(N, N)


CASES = [
    ("cq-3.4 softmax cross-entropy proof", "conceptual-cnn-rnn.yaml", "cq-3.4", softmax_cross_entropy),
    ("cq-3.6 RNN Jacobian", "conceptual-cnn-rnn.yaml", "cq-3.6", rnn_jacobian),
    ("csce636-q1 tanh regression gradient", "csce636-hw2.yaml", "csce636-q1", tanh_regression),
    ("nyu21-1.2c gated RNN, dl/dW_x over t", "nyu-dl-2021-hw3.yaml", "nyu21-1.2c", gated_rnn_bptt),
    ("cq-3.1 conv-sigmoid-pool, dloss/dK", "conceptual-cnn-rnn.yaml", "cq-3.1-K", conv_sigmoid_pool),
    ("nyu24-1.2.2e AttentionRNN(2) Jacobian", "nyu-dl-2024-hw2.yaml", "nyu24-1.2.2e", attention_jacobian),
]


CAP = 12


def largest_size(check, budget, cap=CAP):
    """The largest N (and its time) that ``check`` confirms within ``budget`` seconds."""
    best = (None, None)
    for N in range(1, cap + 1):
        start = time.perf_counter()
        ok = check(N)
        elapsed = time.perf_counter() - start
        if elapsed > budget:
            break
        if ok:
            best = (N, elapsed)
    return best


def main():
    print(f"{'result':40} {'symderive, all sizes':>22} {'plain SymPy: largest N in that time':>38}")
    slow = []
    for label, path, qid, baseline in CASES:
        seconds, status = ours(path, qid)
        N, took = largest_size(baseline, max(seconds, 0.05))
        sympy_part = (f"N {'>=' if N == CAP else '='} {N} ({took:.3f} s)" if N
                      else "none (N = 1 already slower)")
        print(f"{label:40} {seconds:>9.3f} s ({status:>8}) {sympy_part:>38}")
        if seconds > TARGET_SECONDS:
            slow.append(label)
    print(f"\ntarget: every general-size result under {TARGET_SECONDS:g} s:",
          "met" if not slow else "NOT met for " + ", ".join(slow))
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
