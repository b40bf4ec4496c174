"""Build the convolution matrix A and check B = Aᵀ: symderive against plain SymPy.

Naive method (the baseline named in the issue): vec(y) written out entry by entry,
A = Matrix.jacobian, the backward matrix B from differentiating gᵀy, then
expand(B − Aᵀ) == 0. symderive: A from index arithmetic, B from the chain-rule
closed form, exact sparse comparison.

Scaling (issue 17): conv_matrix against a plain NumPy construction of the same (row, column,
weight-index) triples by broadcasting into preallocated int64 arrays, each case in a fresh
process so that peak memory is its own; ns and bytes per nonzero, the fitted growth exponent
of time in nnz, and check_transpose against building A once. The 292.6 M-nonzero case runs
last and alone, only when enough memory is free.

Run:  python benchmarks/conv_matrix.py          (a few minutes; the naive 24×24 is the slow part)
      python benchmarks/conv_matrix.py --scaling-only
      python benchmarks/conv_matrix.py --check-only      (check_transpose at the scaling sizes)
      python benchmarks/conv_matrix.py --check-only --baseline /work/main [--cases 16x64x32,… --runs 5]
                     (the same rows for another tree's symderive too, in the same run, alternating;
                      a case is channels in x input side x channels out)
      python benchmarks/conv_matrix.py --fresh-split [--baseline /work/main] [--cases 16x64x32,32x128x64 --runs 3]
                     (check_transpose and building A, each in a fresh process: fixed cost and cost per
                      nonzero apart, CPU and wall, and the size from which the check is within 3x)
"""
import os
import resource
import subprocess
import sys
import time

import numpy as np
import sympy as sp

import symderive as sd
from symderive.backward import backward_matrix, check_transpose
from symderive.conv_matrix import conv_matrix

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


# (channels in, input side, channels out) with a 3x3 kernel; 16x64x64 -> 32 is 17.7 M nonzeros
SCALING = [(8, 48, 16), (16, 64, 32), (16, 96, 32), (32, 96, 48)]
HUGE = (32, 128, 64)          # 292.6 M nonzeros: about 3.5 GB of int32 indices


def numpy_triples(c_in, n, c_out):
    """The baseline: the same triples from plain NumPy, broadcast into preallocated int64 arrays
    (valid stride-1 3x3 convolution, no padding: every kernel position is inside)."""
    m = n - KERNEL + 1
    o = np.arange(c_out).reshape(-1, 1, 1, 1, 1, 1)     # axes (o, c, a, b, i, j): long inner loops
    c = np.arange(c_in).reshape(1, -1, 1, 1, 1, 1)
    a = np.arange(KERNEL).reshape(1, 1, -1, 1, 1, 1)
    b = np.arange(KERNEL).reshape(1, 1, 1, -1, 1, 1)
    i = np.arange(m).reshape(1, 1, 1, 1, -1, 1)
    j = np.arange(m).reshape(1, 1, 1, 1, 1, -1)
    shape = (c_out, c_in, KERNEL, KERNEL, m, m)
    rows, cols, weights = (np.empty(shape, dtype=np.int64) for _ in range(3))
    np.add((o * m + i) * m, j, out=rows)
    np.add((c * n + i + a) * n, j + b, out=cols)
    np.add(((o * c_in + c) * KERNEL + a) * KERNEL, b, out=weights)
    return rows.reshape(-1), cols.reshape(-1), weights.reshape(-1)


def rss_mb():
    """Resident memory now; also resets the peak (Linux clear_refs 5), so that ``hwm_mb``
    afterwards is the peak of what follows alone."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def hwm_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def measure_case(method, c_in, n, c_out):
    """One build in this (fresh) process: wall, CPU, nnz, peak memory beyond the imports."""
    layer = sd.conv2d(sd.tensor("x", c_in, n, n), sd.tensor("w", c_out, c_in, KERNEL, KERNEL))
    before = rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    if method == "numpy":
        nnz = len(numpy_triples(c_in, n, c_out)[0])
    elif method == "symderive":
        nnz = conv_matrix(layer).nnz
    elif method == "backward":  # B alone: chain rule (SymPy) and reading the triples off it
        nnz = backward_matrix(layer).matrix.nnz
    elif method == "compare":   # B = Aᵀ only, B and A built beforehand
        b, a = backward_matrix(layer).matrix, conv_matrix(layer)
        before = rss_mb()
        wall, cpu = time.perf_counter(), time.process_time()
        assert b.equals(a.transpose())
        nnz = a.nnz
    else:   # check_transpose: derive B, build A, compare
        if method == "warm":    # first one check at a small size: SymPy's and lambdify's first-use costs
            check_transpose(sd.conv2d(sd.tensor("x", c_in, 8, 8), sd.tensor("w", c_out, c_in, KERNEL, KERNEL)))
        if method == "repeat":  # first one check of a layer declared the same way (another object)
            check_transpose(sd.conv2d(sd.tensor("x", c_in, n, n), sd.tensor("w", c_out, c_in, KERNEL, KERNEL)))
        if method in ("warm", "repeat"):
            before = rss_mb()
            wall, cpu = time.perf_counter(), time.process_time()
        _, a, equal, _ = check_transpose(layer)
        assert equal
        nnz = a.nnz
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = hwm_mb() - before
    print(f"{wall} {cpu} {nnz} {peak}")


def measure_parts(method, c_in, n, c_out):
    """One build in this (fresh) process, in two timed parts: the fixed part (independent of the
    number of nonzeros) and the rest. ``check``: the fixed part is deriving the chain rule in SymPy
    and reading B's small per-factor tables off it (``backward._derived``; SymPy's first use in the
    process included), the rest is check_transpose itself, which then finds that derivation cached:
    B's broadcast and A generated and compared. ``build A``: the fixed part is A's per-axis layout
    tables, the rest their broadcast into A's triples. Prints the two parts' wall and CPU seconds,
    nnz and the peak memory of the whole."""
    from symderive import backward
    from symderive.conv_matrix import SparseSymbolMatrix, _ConvLayout
    layer = sd.conv2d(sd.tensor("x", c_in, n, n), sd.tensor("w", c_out, c_in, KERNEL, KERNEL))
    before = rss_mb()
    clock = [(time.perf_counter(), time.process_time())]
    if method == "check":
        backward._derived(backward._Declaration(layer))
        clock.append((time.perf_counter(), time.process_time()))
        _, a, equal, _ = check_transpose(layer)
        assert equal
    else:
        layout = _ConvLayout(layer)
        clock.append((time.perf_counter(), time.process_time()))
        shape = (int(sp.Mul(*layer.shape)), int(layer.x.numel))      # as conv_matrix builds A
        a = SparseSymbolMatrix(shape, *layout.triples(), layer.weight, layout.locate)
    clock.append((time.perf_counter(), time.process_time()))
    (w0, c0), (w1, c1), (w2, c2) = clock
    print(f"{w1 - w0} {c1 - c0} {w2 - w1} {c2 - c1} {a.nnz} {hwm_mb() - before}")


def run_parts(method, case, tree=None):
    out = subprocess.run([sys.executable, __file__, "--parts", method, *map(str, case)],
                         capture_output=True, text=True, check=True, env=tree_env(tree))
    fixed_wall, fixed_cpu, rest_wall, rest_cpu, nnz, peak = out.stdout.split()
    return {"fixed": (float(fixed_wall), float(fixed_cpu)), "rest": (float(rest_wall), float(rest_cpu)),
            "whole": (float(fixed_wall) + float(rest_wall), float(fixed_cpu) + float(rest_cpu)),
            "nnz": int(nnz), "peak": float(peak)}


def fresh_split(cases, runs=3, target=3.0, baseline=None):
    """check_transpose against building A once, each in a fresh process (best of ``runs`` by whole
    CPU; A and the check alternating, and with ``baseline`` (a tree) that tree's too): the fixed cost
    and the cost per nonzero of each, printed apart, and the ratio of the wholes. The fixed cost of
    the check is paid once per structure in a process: a layer declared alike reuses the derivation,
    another size of the same structure costs about 0.003 s, but another stride, dilation or kernel
    is derived again (0.04-0.08 s, SymPy's imports aside)."""
    trees = [None] + ([baseline] if baseline else [])
    print(f"load average {os.getloadavg()[0]:.2f}; fresh process per run, best of {runs} by CPU; "
          f"'fixed': check = chain rule derived in SymPy + B's tables read off it, A = its layout tables; "
          f"'per nnz': the rest (check: B broadcast, A generated and compared; A: broadcast)"
          + (f"; baseline tree {baseline}" if baseline else ""))
    print(f"{'case':>16} {'nnz':>12} {'tree':>8} {'what':>8} {'fixed CPU':>9} {'(wall)':>7} {'ns/nnz CPU':>10} "
          f"{'(wall)':>7} {'whole CPU':>9} {'(wall)':>7} {'MB':>6} {'CPU x A':>7} {'wall x A':>8}")
    last = {}
    for case in cases:
        measured = {(tree, what): [] for tree in trees for what in ("build A", "check")}
        for _ in range(runs):
            for tree, what in measured:
                measured[tree, what].append(run_parts("A" if what == "build A" else "check", case, tree))
        best = {key: min(results, key=lambda r: r["whole"][1]) for key, results in measured.items()}
        for tree in trees:
            a = best[tree, "build A"]
            for what in ("build A", "check"):
                r, nnz = best[tree, what], best[tree, what]["nnz"]
                print(f"{'%dx%dx%d->%d' % (case[0], case[1], case[1], case[2]):>16} {nnz:>12,} "
                      f"{'this' if tree is None else 'baseline':>8} {what:>8} "
                      f"{r['fixed'][1]:>9.3f} {r['fixed'][0]:>7.3f} {r['rest'][1] / nnz * 1e9:>10.2f} "
                      f"{r['rest'][0] / nnz * 1e9:>7.2f} {r['whole'][1]:>9.3f} {r['whole'][0]:>7.3f} "
                      f"{r['peak']:>6.0f} {r['whole'][1] / a['whole'][1]:>7.2f} {r['whole'][0] / a['whole'][0]:>8.2f}")
            last[tree] = (best[tree, "build A"], best[tree, "check"])
    # what the fixed cost means: from which size the check is within the target of building A, with the
    # per-nonzero costs measured at the last (largest) case
    for tree, (a, c) in last.items():
        per_a, per_c = a["rest"][1] / a["nnz"], c["rest"][1] / c["nnz"]
        label = "this tree" if tree is None else "baseline"
        if per_c < target * per_a:
            above = (c["fixed"][1] - target * a["fixed"][1]) / (target * per_a - per_c)
            print(f"{label}: per nonzero the check costs {per_c / per_a:.2f}x building A (last case); with its fixed "
                  f"cost of {c['fixed'][1]:.3f} s CPU it is within {target:.0f}x of building A once from about "
                  f"{above / 1e6:.0f} M nonzeros up (CPU, fresh process)")
        else:
            print(f"{label}: per nonzero the check costs {per_c / per_a:.2f}x building A: not within {target:.0f}x "
                  f"at any size")


def tree_env(tree):
    """The environment of a case process: ``tree``'s symderive first on the path (None: this one)."""
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = os.pathsep.join([os.path.abspath(tree)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def run_case(method, case, tree=None):
    out = subprocess.run([sys.executable, __file__, "--case", method, *map(str, case)],
                         capture_output=True, text=True, check=True, env=tree_env(tree))
    wall, cpu, nnz, peak = out.stdout.split()
    return float(wall), float(cpu), int(nnz), float(peak)


def free_gb():
    with open("/proc/meminfo") as f:
        info = dict(line.split(":") for line in f)
    return int(info["MemAvailable"].split()[0]) / 2 ** 20


def scaling():
    print(f"load average {os.getloadavg()[0]:.2f}; each case in a fresh process")
    print(f"{'case':>16} {'nnz':>12} {'method':>10} {'wall s':>7} {'CPU s':>7} {'ns/nnz':>7} "
          f"{'MB':>7} {'B/nnz':>6} {'CPU ratio':>9} {'mem ratio':>9}")
    fit = []
    for case in SCALING:
        base = min((run_case("numpy", case) for _ in range(3)), key=lambda r: r[1])
        ours = min((run_case("symderive", case) for _ in range(3)), key=lambda r: r[1])
        fit.append((ours[2], ours[1]))
        for name, (wall, cpu, nnz, peak) in (("numpy", base), ("symderive", ours)):
            print(f"{'%dx%dx%d->%d' % (case[0], case[1], case[1], case[2]):>16} {nnz:>12,} {name:>10} "
                  f"{wall:>7.2f} {cpu:>7.2f} {cpu / nnz * 1e9:>7.1f} {peak:>7.0f} {peak * 2 ** 20 / nnz:>6.1f} "
                  f"{cpu / base[1]:>9.2f} {peak / base[3]:>9.2f}")
    nnz, cpu = np.log([f[0] for f in fit]), np.log([f[1] for f in fit])
    print(f"fitted growth: CPU time ∝ nnz^{np.polyfit(nnz, cpu, 1)[0]:.2f} (target ≈ 1.0; ratios target ≤ 2)")
    check_transpose_table(SCALING)
    same_process_ratio()
    needed = 12.0
    if free_gb() < needed:
        print(f"32x128x128 -> 64 skipped: {free_gb():.1f} GB available, {needed:.0f} GB wanted")
        return
    base = run_case("numpy", HUGE)
    ours = run_case("symderive", HUGE)
    for name, (wall, cpu, nnz, peak) in (("numpy", base), ("symderive", ours)):
        print(f"32x128x128->64 {nnz:,} nonzeros, {name}: wall {wall:.2f} s, CPU {cpu:.2f} s, "
              f"{peak:.0f} MB ({peak * 2 ** 20 / nnz:.1f} B/nnz)")
    check_transpose_table([HUGE], runs=1, building=ours)


def same_process_ratio(case=(16, 64, 32), runs=5, tree=None):
    """``same_process`` in a fresh process of ``tree`` (None: this tree), printed."""
    out = subprocess.run([sys.executable, __file__, "--same", *map(str, case), str(runs)],
                         capture_output=True, text=True, check=True, env=tree_env(tree))
    print(("" if tree is None else f"[{tree}] ") + out.stdout.strip())


def same_process(c_in, n, c_out, runs):
    """Building A and the whole check_transpose alternately in this one process, best CPU of
    ``runs`` each: under load the fresh-process figures scatter by several times, and this
    ratio is the steadier one (SymPy's caches are warm; each check gets a newly declared layer,
    so a cache per layer object would not help, one per declaration does)."""
    def layer():
        return sd.conv2d(sd.tensor("x", c_in, n, n), sd.tensor("w", c_out, c_in, KERNEL, KERNEL))
    check_transpose(layer())
    best = {"build A": [], "check": []}
    for _ in range(runs):
        for name, run in (("build A", lambda: conv_matrix(layer())), ("check", lambda: check_transpose(layer()))):
            wall, cpu = time.perf_counter(), time.process_time()
            result = run()
            best[name].append((time.process_time() - cpu, time.perf_counter() - wall))
            del result
    (a_cpu, a_wall), (t_cpu, t_wall) = (min(best[k]) for k in ("build A", "check"))
    print(f"same process, {c_in}x{n}x{n}->{c_out}, best of {runs} (load {os.getloadavg()[0]:.2f}): build A CPU "
          f"{a_cpu:.3f} s (wall {a_wall:.3f}), check_transpose CPU {t_cpu:.3f} s (wall {t_wall:.3f}): "
          f"{t_cpu / a_cpu:.1f}x (target 3x)")


CHECK_STEPS = (("build A", "symderive"), ("read B", "backward"), ("compare", "compare"), ("check", "check"),
               ("warm check", "warm"), ("repeat", "repeat"))


def check_transpose_table(cases, runs=3, building=None, baseline=None):
    """check_transpose against building A once, per case (best of ``runs`` by CPU, fresh processes):
    B alone (chain rule + read-off), the comparison alone (B and A built beforehand; memory beyond
    them), and the whole check (derive B, build A, compare): cold, warm (after a check at 8x8) and
    repeated (after a check of a layer declared the same way). With ``baseline`` (a tree), the same
    rows for that tree's symderive, each run alternating with this tree's."""
    trees = [None] + ([baseline] if baseline else [])
    print(f"load average {os.getloadavg()[0]:.2f}; check_transpose against building A once "
          f"(ratios of CPU and of wall time)" + (f"; baseline tree {baseline}" if baseline else ""))
    print(f"{'case':>16} {'nnz':>12} {'tree':>8} {'step':>10} {'wall s':>7} {'CPU s':>7} {'ns/nnz':>7} "
          f"{'MB':>7} {'B/nnz':>6} {'CPU x A':>7} {'wall x A':>8}")
    fits = {}
    for case in cases:
        rows = {tree: ({"build A": building} if building and tree is None else {}) for tree in trees}
        for name, method in CHECK_STEPS:
            measured = {tree: [] for tree in trees if name not in rows[tree]}
            for _ in range(runs):
                for tree in measured:
                    measured[tree].append(run_case(method, case, tree))
            for tree, results in measured.items():
                rows[tree][name] = min(results, key=lambda r: r[1])
        for tree in trees:
            a = rows[tree]["build A"]
            label = "this" if tree is None else "baseline"
            for name, (wall, cpu, nnz, peak) in rows[tree].items():
                fits.setdefault((label, name), []).append((nnz, cpu))
                print(f"{'%dx%dx%d->%d' % (case[0], case[1], case[1], case[2]):>16} {nnz:>12,} {label:>8} "
                      f"{name:>10} {wall:>7.2f} {cpu:>7.2f} {cpu / nnz * 1e9:>7.1f} {peak:>7.0f} "
                      f"{peak * 2 ** 20 / nnz:>6.1f} {cpu / a[1]:>7.2f} {wall / a[0]:>8.2f}")
    if len(cases) > 1:
        for (label, name), points in fits.items():
            if name in ("check", "warm check", "repeat"):
                nnz, cpu = np.log([p[0] for p in points]), np.log([p[1] for p in points])
                print(f"fitted growth ({label}, {name}): CPU time ∝ nnz^{np.polyfit(nnz, cpu, 1)[0]:.2f}")
    print("target: compare and check within 3x of building A. 'compare': MB beyond A and B. 'read B' and "
          "'check' include deriving the chain rule in SymPy (and SymPy's first use in the process); "
          "'warm check': after one check at 8x8 in that process (SymPy warm, this size's chain rule not yet "
          "derived); 'repeat': after one check of a layer declared the same way (another object)")


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
    if "--large" in sys.argv:
        large_case()
    elif "--case" in sys.argv:
        at = sys.argv.index("--case")
        measure_case(sys.argv[at + 1], *map(int, sys.argv[at + 2:at + 5]))
    elif "--parts" in sys.argv:
        at = sys.argv.index("--parts")
        measure_parts(sys.argv[at + 1], *map(int, sys.argv[at + 2:at + 5]))
    elif "--fresh-split" in sys.argv:
        def option(name, default):
            return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default
        cases = [tuple(map(int, c.split("x"))) for c in option("--cases", "").split(",") if c] \
            or [(16, 64, 32), (32, 96, 48)]
        fresh_split(cases, runs=int(option("--runs", 3)), baseline=option("--baseline", None))
    elif "--same" in sys.argv:
        at = sys.argv.index("--same")
        same_process(*map(int, sys.argv[at + 1:at + 5]))
    elif "--scaling-only" in sys.argv:
        scaling()
    elif "--check-only" in sys.argv:
        def option(name, default):
            return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default
        baseline = option("--baseline", None)
        cases = [tuple(map(int, c.split("x"))) for c in option("--cases", "").split(",") if c] or SCALING
        check_transpose_table(cases, runs=int(option("--runs", 3)), baseline=baseline)
        for tree in [None] + ([baseline] if baseline else []):
            same_process_ratio(tree=tree)
    else:
        main()
        print()
        scaling()
