"""Derivation time and result size against depth (issue 12): inlined against layer by layer.

The network: x → (Linear → sigmoid) × B → cross-entropy with soft targets, every size symbolic
(2B + 1 layers; B = 8 is the issue's 17-layer MLP). The gradient is ∂L/∂W1, the deepest weight.

- old: ``derivative(L, W1)``, the forward pass written down to the leaves and differentiated once;
  size is count_ops of its element formula.
- new: ``backprop(L, W1)``, one δ step per layer; size is count_ops of every step together (the
  definitions are part of the answer).
- ask: ``ask: derivative`` of L by W1 solved as a question of a problem file (what a user runs): the
  new path (``through_stack``: δ steps, the closed formula only while it stays small), the sheet's
  steps and their checked vector forms included; size is count_ops of the boxed element formula.

Each (depth, method) runs in a fresh process (no SymPy cache shared between them); CPU and wall
are of the derivation alone, not the imports. The growth exponent is the least-squares slope of
log(new) against log(layers).

Run:  python benchmarks/depth.py [--blocks 1,2,4,8] [--new-only 16,32]
"""
import json
import math
import os
import subprocess
import sys
import time

CHILD = r"""
import json, sys, time
import sympy as sp
import symderive as sd
from symderive.backprop import backprop
from symderive.derivative import derivative
blocks, method = int(sys.argv[1]), sys.argv[2]
ns = sd.sizes(" ".join(f"n{k}" for k in range(blocks + 1)))
h = x = sd.tensor("x", ns[0])
for k in range(1, blocks + 1):
    W = sd.tensor(f"W{k}", ns[k], ns[k - 1])
    W1 = W if k == 1 else W1
    h = sd.sigmoid(sd.linear(h, W, sd.tensor(f"b{k}", ns[k]), name=f"z{k}"), name=f"a{k}")
L = sd.cross_entropy(h, sd.tensor("p", ns[-1]), name="L")
cpu, wall = time.process_time(), time.perf_counter()
if method == "old":
    size = sp.count_ops(derivative(L, W1).value)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
elif method == "ask":
    import os, tempfile
    from symderive.problem import load_problem
    lines = ["title: depth", "sizes: [" + ", ".join(f"n{k}" for k in range(blocks + 1)) + "]", "tensors:",
             "  x: [n0]", f"  p: [n{blocks}]"]
    lines += [f"  W{k}: [n{k}, n{k - 1}]\n  b{k}: [n{k}]" for k in range(1, blocks + 1)]
    lines += ["layers:"] + [f"  z{k}: linear({'x' if k == 1 else f'a{k - 1}'}, W{k}, b{k})\n  a{k}: sigmoid(z{k})"
                            for k in range(1, blocks + 1)]
    lines += [f"  L: cross_entropy(a{blocks}, p)", "questions:", "  - id: d", "    statement: dL/dW1",
              "    ask: derivative", "    of: L", "    wrt: W1"]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    problem = load_problem(f.name)
    os.unlink(f.name)
    question = problem.question("d")
    cpu, wall = time.process_time(), time.perf_counter()
    answer = problem.solve_question(question, timeout=600)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert not answer.error, answer.error
    size = sp.count_ops(next(r.value for r in answer.results if r.label == "element"))
else:
    bp = backprop(L, W1)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    size = bp.size()
print(json.dumps({"cpu": cpu, "wall": wall, "size": int(size)}))
"""


def run(blocks, method):
    done = subprocess.run([sys.executable, "-c", CHILD, str(blocks), method], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def slope(xs, ys):
    """Least-squares slope of log y against log x."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def option(name, default):
    return [int(v) for v in sys.argv[sys.argv.index(name) + 1].split(",")] if name in sys.argv else default


def main():
    blocks = option("--blocks", [1, 2, 4, 8])
    new_only = option("--new-only", [16, 32])
    print(f"load average {os.getloadavg()[0]:.2f} (2 cores, shared); each row a fresh process")
    print(f"{'blocks':>6} {'layers':>6} | {'old CPU s':>9} {'old wall s':>10} {'old ops':>8} | "
          f"{'new CPU s':>9} {'new wall s':>10} {'new ops':>7} | {'CPU ratio':>9} {'ops ratio':>9} | "
          f"{'ask CPU s':>9} {'ask wall s':>10} {'ask ops':>7}")
    layers, new_cpu, new_size, ask_cpu = [], [], [], []
    for b in sorted(set(blocks) | set(new_only)):
        new = run(b, "new")
        old = run(b, "old") if b in blocks else None
        ask = run(b, "ask")
        layers.append(2 * b + 1)
        new_cpu.append(new["cpu"])
        new_size.append(new["size"])
        ask_cpu.append(ask["cpu"])
        if old:
            olds = f"{old['cpu']:>9.3f} {old['wall']:>10.3f} {old['size']:>8}"
            ratios = f"{old['cpu'] / new['cpu']:>9.1f} {old['size'] / new['size']:>9.1f}"
        else:
            olds, ratios = f"{'-':>9} {'-':>10} {'-':>8}", f"{'-':>9} {'-':>9}"
        print(f"{b:>6} {2 * b + 1:>6} | {olds} | {new['cpu']:>9.3f} {new['wall']:>10.3f} {new['size']:>7} | {ratios} | "
              f"{ask['cpu']:>9.3f} {ask['wall']:>10.3f} {ask['size']:>7}", flush=True)
    print(f"new, fitted growth in the number of layers: CPU time ~ layers^{slope(layers, new_cpu):.2f}, "
          f"size ~ layers^{slope(layers, new_size):.2f} (target about 1)")
    if len(layers) >= 4:      # fixed costs flatten the fit at small depths: the deepest three alone
        print(f"new, over the deepest three ({', '.join(map(str, layers[-3:]))} layers): CPU time ~ "
              f"layers^{slope(layers[-3:], new_cpu[-3:]):.2f}, size ~ layers^{slope(layers[-3:], new_size[-3:]):.2f}")
    print(f"ask: derivative, fitted growth: CPU time ~ layers^{slope(layers, ask_cpu):.2f}"
          + (f"; over the deepest three: layers^{slope(layers[-3:], ask_cpu[-3:]):.2f}" if len(layers) >= 4 else ""))
    eight = layers.index(17) if 17 in layers else None
    if eight is not None:
        print(f"17 layers (8 blocks), new: {new_cpu[eight]:.3f} s CPU; ask derivative: {ask_cpu[eight]:.3f} s CPU "
              "(target under 1 s)")


if __name__ == "__main__":
    main()
