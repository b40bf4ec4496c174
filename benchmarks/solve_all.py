"""Wall time of the main job: `python -m symderive` on every shipped problem, sheets and PDFs.

Issue target: under 15 s on this 2-core machine, start-up included. Runs the real command
in a fresh process (three times; the median is reported) into a scratch folder.

Run:  python benchmarks/solve_all.py
"""
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 15.0


def run_once(output):
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "symderive", "solve", str(ROOT / "problems"), "-o", str(output)],
                          cwd=ROOT, capture_output=True, text=True)
    return time.perf_counter() - start, done.returncode


def main():
    with tempfile.TemporaryDirectory() as scratch:
        runs = [run_once(Path(scratch) / f"run{n}") for n in range(3)]
        pdfs = sorted(p.name for p in (Path(scratch) / "run0").glob("*.pdf"))
    times = [t for t, _ in runs]
    codes = {c for _, c in runs}
    problems = sorted(p.name for p in (ROOT / "problems").glob("*.yaml"))
    print(f"problems: {len(problems)}, sheets compiled: {len(pdfs)}, exit status: {sorted(codes)}")
    print("runs (s): " + ", ".join(f"{t:.2f}" for t in times))
    median = statistics.median(times)
    print(f"median {median:.2f} s against the target of {TARGET_SECONDS:g} s: "
          + ("met" if median < TARGET_SECONDS else "NOT met"))
    return 0 if median < TARGET_SECONDS and codes == {0} else 1


if __name__ == "__main__":
    sys.exit(main())
