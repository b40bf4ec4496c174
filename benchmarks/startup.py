"""Start-up of `python -m symderive list problems/` (issue 17 target: under 0.4 s).

Baselines in the same run: the interpreter alone, `import sympy` (which `list` no longer
imports: it reads the files' structure only), and with --baseline PATH the `list` of another
checkout (e.g. main), run from there. Each command runs N times in a fresh process; medians of wall and
CPU (user + system) time and of peak memory. Also lists what `list` imports that it does not
use (numpy, multiprocessing, rich.progress, the grading modules), read from -X importtime.

Run:  python benchmarks/startup.py [--runs N] [--baseline PATH]
"""
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 0.4
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import sympy": [sys.executable, "-c", "import sympy"],
    "symderive list": [sys.executable, "-m", "symderive", "list", str(ROOT / "problems")],
}


def measure(command, cwd=ROOT):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def peak_mb(command, cwd=ROOT):
    out = subprocess.run(["/usr/bin/time", "-f", "%M", *command], cwd=cwd, capture_output=True, text=True)
    return int(out.stderr.strip().splitlines()[-1]) / 1024


def unused_imports():
    done = subprocess.run([sys.executable, "-X", "importtime", *COMMANDS["symderive list"][1:]], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    modules = [line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    return [m for m in modules if m.split(".")[0] in ("numpy", "sympy", "multiprocessing") or m == "rich.progress"
            or (m.startswith("symderive.checking.") and m != "symderive.checking.command")]


def main():
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 7
    commands = {name: (command, ROOT) for name, command in COMMANDS.items()}
    if "--baseline" in sys.argv:
        baseline = Path(sys.argv[sys.argv.index("--baseline") + 1]).resolve()
        commands["baseline list"] = ([sys.executable, "-m", "symderive", "list", str(baseline / "problems")],
                                     baseline)
    print(f"load average {os.getloadavg()[0]:.2f}; {runs} runs each, medians")
    results = {name: [] for name in commands}
    for _ in range(runs):                       # interleaved: every command sees the same load
        for name, (command, cwd) in commands.items():
            results[name].append(measure(command, cwd))
    cpu_of = {}
    for name, rs in results.items():
        wall, cpu = statistics.median(w for w, _ in rs), statistics.median(c for _, c in rs)
        cpu_of[name] = cpu
        print(f"{name:>16}: wall {wall:.3f} s, CPU {cpu:.3f} s, peak {peak_mb(*commands[name]):.0f} MB")
    listing = statistics.median(w for w, _ in results["symderive list"])
    unused = unused_imports()
    print(f"list CPU / import sympy CPU: {cpu_of['symderive list'] / cpu_of['import sympy']:.2f}"
          + (f"; list CPU / baseline list CPU: {cpu_of['symderive list'] / cpu_of['baseline list']:.2f}"
             if "baseline list" in cpu_of else "")
          + f"; unused modules imported: {len(unused)}" + (f" ({', '.join(unused[:6])}…)" if unused else ""))
    print(f"list wall {listing:.3f} s, CPU {cpu_of['symderive list']:.3f} s, against the target of "
          f"{TARGET_SECONDS} s: " + ("met" if listing < TARGET_SECONDS else
                                     "NOT met in wall time (see the load average)"
                                     if cpu_of["symderive list"] < TARGET_SECONDS else "NOT met"))


if __name__ == "__main__":
    main()
