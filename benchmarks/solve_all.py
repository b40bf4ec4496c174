"""Wall time of the main job: `python -m symderive` on every shipped problem, sheets and PDFs.

Issue 17 target: under 4 s wall on a quiet 2-core machine, start-up and PDFs included, by
solving questions in worker processes. The baseline in the same run is the serial run
(`--jobs 1`); runs alternate so that both see the same machine load. Both solve every question
(SYMDERIVE_NO_CACHE=1), with the sheets' TeX format already built (symderive/pdf.py: a compiled
preamble, like .pyc, kept in the cache folder); "first-ever" is the parallel cold run with an empty cache
folder, so that it builds the format too; the last mode times a second run on unchanged files, which reads the
answers from the disk cache (filled by an untimed run first) and writes the sheets and PDFs. Reported per mode: the
median wall time, the CPU time of the run's processes (children's user + system), the peak
memory of its largest process, and the load average before the runs.

Run:  python benchmarks/solve_all.py [--runs N] [--files a.yaml,b.yaml] [--baseline PATH]
      --files: only these problem files; --baseline: also run another checkout (e.g. main),
      from there, in the same alternation.

The five files the 4 s target was set for:
  --files csce636-hw2.yaml,hw5-written.yaml,conceptual-cnn-rnn.yaml,nyu-dl-2021-hw3.yaml,nyu-dl-2024-hw2.yaml
"""
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 4.0
WARM = "cache (default, warm)"
FIRST = "first-ever (parallel)"     # cold, and an empty cache folder: the TeX format is built in the run


def run_once(output, jobs, tree=ROOT, files=None, cache=None, cache_dir=None):
    """(wall s, CPU s of the processes it started, return code); `jobs` None is the default.
    ``cache``: the answer-cache folder to use, None to run without it (cold). ``cache_dir``: the cache
    folder of a cold run, which holds the sheets' TeX format (symderive/pdf.py), not answers."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    extra = [] if jobs is None else ["--jobs", str(jobs)]
    paths = [str(tree / "problems" / f) for f in files] if files else [str(tree / "problems")]
    env = dict(os.environ, SYMDERIVE_CACHE_DIR=str(cache)) if cache else dict(os.environ, SYMDERIVE_NO_CACHE="1")
    if cache:
        env.pop("SYMDERIVE_NO_CACHE", None)
    elif cache_dir:
        env["SYMDERIVE_CACHE_DIR"] = str(cache_dir)
    done = subprocess.run([sys.executable, "-m", "symderive", "solve", *paths, "-o", str(output),
                           *extra], cwd=tree, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def main():
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 3
    load = os.getloadavg()[0]
    files = sys.argv[sys.argv.index("--files") + 1].split(",") if "--files" in sys.argv else None
    trees = {"": ROOT}
    if "--baseline" in sys.argv:
        trees["baseline "] = Path(sys.argv[sys.argv.index("--baseline") + 1]).resolve()
    results = {f"{t}{mode}": [] for t in trees for mode in ("serial (--jobs 1)", "parallel (default)")}
    results[FIRST] = []
    results[WARM] = []
    with tempfile.TemporaryDirectory() as scratch:
        cache = Path(scratch) / "cache"
        # fills the answer cache and builds the TeX format, not timed; cold runs use that format
        run_once(Path(scratch) / "fill", None, ROOT, files, cache)
        for n in range(runs):
            for t, tree in trees.items():
                for mode, jobs in (("serial (--jobs 1)", 1), ("parallel (default)", None)):
                    out = Path(scratch) / f"{t.strip()}{jobs}-{n}"
                    results[f"{t}{mode}"].append(run_once(out, jobs, tree, files, cache_dir=cache))
            results[FIRST].append(run_once(Path(scratch) / f"first-{n}", None, ROOT, files,
                                           cache_dir=Path(scratch) / f"first-cache-{n}"))
            results[WARM].append(run_once(Path(scratch) / f"warm-{n}", None, ROOT, files, cache))
        pdfs = sorted(p.name for p in (Path(scratch) / "None-0").glob("*.pdf"))
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    problems = files or sorted(p.name for p in (ROOT / "problems").glob("*.yaml"))
    print(f"problems: {len(problems)}, sheets compiled: {len(pdfs)}, cores: {len(os.sched_getaffinity(0))}, "
          f"load average before: {load:.2f}, after: {os.getloadavg()[0]:.2f}")
    medians = {}
    for mode, rs in results.items():
        medians[mode] = statistics.median(w for w, _, _ in rs)
        print(f"{mode:>20}: wall " + ", ".join(f"{w:.2f}" for w, _, _ in rs)
              + f" s (median {medians[mode]:.2f}); CPU " + ", ".join(f"{c:.2f}" for _, c, _ in rs)
              + f" s; exit {sorted({c for _, _, c in rs})}")
    serial, parallel = medians["serial (--jobs 1)"], medians["parallel (default)"]
    if "baseline parallel (default)" in medians:
        cpu = {mode: statistics.median(c for _, c, _ in rs) for mode, rs in results.items()}
        print(f"against the baseline: parallel wall {parallel / medians['baseline parallel (default)']:.2f}, "
              f"serial wall {serial / medians['baseline serial (--jobs 1)']:.2f}, serial CPU "
              f"{cpu['serial (--jobs 1)'] / cpu['baseline serial (--jobs 1)']:.2f}, parallel CPU "
              f"{cpu['parallel (default)'] / cpu['baseline parallel (default)']:.2f}")
    print(f"parallel / serial wall: {parallel / serial:.2f} ({serial / parallel:.2f}x faster); "
          f"largest process peak memory {peak:.0f} MB")
    print(f"parallel median {parallel:.2f} s against the target of {TARGET_SECONDS:g} s: "
          + ("met" if parallel < TARGET_SECONDS else "NOT met") + " (every question solved: no answer cache)")
    print(f"a first-ever run (every question solved, and the sheets' TeX format built): median {medians[FIRST]:.2f} s, "
          f"{medians[FIRST] / parallel:.2f} of the parallel run")
    print(f"a second run on unchanged files (answers read from the cache, sheets and PDFs written): "
          f"median {medians[WARM]:.2f} s, {medians[WARM] / parallel:.2f} of the parallel run")
    codes = {c for rs in results.values() for _, _, c in rs}
    return 0 if parallel < TARGET_SECONDS and codes == {0} else 1


if __name__ == "__main__":
    sys.exit(main())
