"""Build the convolution matrix A and check B = Aᵀ: symderive against plain SymPy.

Naive method (the baseline named in the issue): vec(y) written out entry by entry,
A = Matrix.jacobian, the backward matrix B from differentiating gᵀy, then
expand(B − Aᵀ) == 0. symderive: A from index arithmetic, B from the chain-rule
closed form, exact sparse comparison.

Run:  python benchmarks/conv_matrix.py          (about a minute; the naive 24×24 is the slow part)
"""
import resource
import subprocess
import sys
import time

import sympy as sp

import symderive as sd
from symderive.backward import check_transpose

KERNEL = 3


def naive(n):
    x = sp.Matrix(n, n, lambda i, j: sp.Symbol(f"x_{i}_{j}"))
    w = sp.Matrix(KERNEL, KERNEL, lambda i, j: sp.Symbol(f"w_{i}_{j}"))
    m = n - KERNEL + 1
    y = [sum(w[a, b] * x[i + a, j + b] for a in range(KERNEL) for b in range(KERNEL))
         for i in range(m) for j in range(m)]
    x_vec = list(x)
    g = sp.symbols(f"g0:{m * m}")
    start = time.perf_counter()
    A = sp.Matrix(y).jacobian(x_vec)
    loss = sum(gi * yi for gi, yi in zip(g, y))
    B = sp.Matrix([sp.diff(loss, xi) for xi in x_vec]).jacobian(g)
    ok = (B - A.T).expand() == sp.zeros(*B.shape)
    return time.perf_counter() - start, ok


def ours(n, c_in=1, c_out=1):
    layer = sd.conv2d(sd.tensor("x", c_in, n, n), sd.tensor("w", c_out, c_in, KERNEL, KERNEL))
    start = time.perf_counter()
    _, a, equal, _ = check_transpose(layer)
    return time.perf_counter() - start, equal, a.nnz


def large_case():
    """Run in a fresh process so that its peak memory is its own."""
    seconds, ok, nnz = ours(64, 3, 8)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{seconds:.3f} {ok} {nnz} {peak_mb:.0f}")


def main():
    print("2-D convolution, 3x3 kernel, one channel: build A and check B = A^T")
    print(f"{'input':>8} {'naive SymPy (s)':>16} {'symderive (s)':>14} {'ratio':>8}  both agree")
    ours(8)  # warm-up: imports and SymPy caches, not part of any timing
    for n in (8, 16, 24):
        t_naive, ok_naive = naive(n)
        t_ours, ok_ours, _ = ours(n)
        print(f"{n:>5}x{n:<2} {t_naive:>16.3f} {t_ours:>14.4f} {t_naive / t_ours:>7.0f}x  "
              f"{ok_naive and ok_ours}")
    out = subprocess.run([sys.executable, __file__, "--large"], capture_output=True, text=True, check=True)
    seconds, ok, nnz, peak = out.stdout.split()
    print(f"\n64x64 input, 3 -> 8 channels, 3x3 kernel: {int(nnz):,} nonzeros, A built and B = A^T "
          f"{'verified' if ok == 'True' else 'FAILED'} in {float(seconds):.2f} s (target < 2 s); "
          f"peak memory of that process {peak} MB (target < 1024 MB)")


if __name__ == "__main__":
    large_case() if "--large" in sys.argv else main()
