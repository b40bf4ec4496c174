"""pdflatex per sheet: the plain compile against the precompiled sheet format (symderive/pdf.py).

Solves the given problem files once (``--no-pdf``, not timed), then compiles each sheet N times in each
mode, alternating so that both see the same load: "plain" (``SYMDERIVE_NO_TEX_FORMAT=1``, pdflatex's own
compressed format, the preamble read every time) and "format" (the cached format, already built). Prints
the median CPU (pdflatex's user + system) and wall time per sheet and mode, their totals and ratio, checks
that both modes give the same PDF bytes, and times building the format from nothing (a first-ever run:
an empty cache folder), N times.

With --solve, also times whole ``solve`` runs of the files with PDFs, with and without the format
(alternated, N each): cold (every question solved) and warm (answers read from the answer cache, so that
the run is mostly writing sheets and PDFs); the format is built before, untimed.

Run:  python benchmarks/pdf_sheets.py [--runs N] [--files a.yaml,b.yaml] [--solve]
      default files: the five the 4 s target of issue 17 was set for.
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
sys.path.insert(0, str(ROOT))
from symderive import pdf  # noqa: E402

FIVE = "csce636-hw2.yaml,hw5-written.yaml,conceptual-cnn-rnn.yaml,nyu-dl-2021-hw3.yaml,nyu-dl-2024-hw2.yaml"


def cpu_now():
    """CPU s used so far by this process and the TeX processes it waited for."""
    return sum(u.ru_utime + u.ru_stime for u in map(resource.getrusage, (resource.RUSAGE_SELF,
                                                                        resource.RUSAGE_CHILDREN)))


def timed(action):
    """(wall s, CPU s) of ``action()``: its own (starting TeX, unpacking the format) and TeX's."""
    before, start = cpu_now(), time.perf_counter()
    action()
    return time.perf_counter() - start, cpu_now() - before


def compile_in(mode, tex):
    if mode == "plain":
        os.environ[pdf.NO_FORMAT_VARIABLE] = "1"
    else:
        os.environ.pop(pdf.NO_FORMAT_VARIABLE, None)
    return timed(lambda: pdf.compile_pdf(tex))


def main():
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 5
    files = (sys.argv[sys.argv.index("--files") + 1] if "--files" in sys.argv else FIVE).split(",")
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        subprocess.run([sys.executable, "-m", "symderive", "solve", *[str(ROOT / "problems" / f) for f in files],
                        "-o", str(scratch / "sheets"), "--no-pdf"], cwd=ROOT, check=True, capture_output=True,
                       env=dict(os.environ, SYMDERIVE_NO_CACHE="1"))
        texts = sorted((scratch / "sheets").glob("*.tex"))
        builds = []
        for n in range(runs):        # a first-ever run: nothing in the cache folder
            os.environ["SYMDERIVE_CACHE_DIR"] = str(scratch / f"first-{n}")
            pdf._FORMATS.clear()
            builds.append(timed(lambda: pdf.sheet_format(texts[0])))
            assert pdf._FORMATS, "the format was not built"
        os.environ["SYMDERIVE_CACHE_DIR"] = str(scratch / "first-0")
        if None in pdf._FORMATS.values():
            print("the format could not be built: only the plain compile is timed")
        results = {}
        for n in range(runs):
            for tex in texts:
                for mode in ("plain", "format"):
                    folder = scratch / mode
                    folder.mkdir(exist_ok=True)
                    copy = folder / tex.name
                    copy.write_bytes(tex.read_bytes())
                    results.setdefault((tex.stem, mode), []).append(compile_in(mode, copy))
        same = all((scratch / "plain" / f"{t.stem}.pdf").read_bytes() == (scratch / "format" / f"{t.stem}.pdf")
                   .read_bytes() for t in texts)
    print(f"sheets: {len(texts)}, runs: {runs}, load average before: {load:.2f}, after: {os.getloadavg()[0]:.2f}")
    totals = {"plain": [0.0, 0.0], "format": [0.0, 0.0]}
    for tex in texts:
        cells = []
        for mode in ("plain", "format"):
            wall = statistics.median(w for w, _ in results[tex.stem, mode])
            cpu = statistics.median(c for _, c in results[tex.stem, mode])
            totals[mode][0] += wall
            totals[mode][1] += cpu
            cells.append(f"{mode} CPU {cpu:.3f} s, wall {wall:.3f} s")
        print(f"{tex.stem:>34}: " + "; ".join(cells))
    (pw, pc), (fw, fc) = totals["plain"], totals["format"]
    print(f"{'all sheets (sums of medians)':>34}: plain CPU {pc:.2f} s, wall {pw:.2f} s; format CPU {fc:.2f} s, "
          f"wall {fw:.2f} s; format / plain: CPU {fc / pc:.2f}, wall {fw / pw:.2f}")
    print(f"per sheet: plain CPU {pc / len(texts):.3f} s, format CPU {fc / len(texts):.3f} s "
          f"(saved {(pc - fc) / len(texts):.3f} s a sheet)")
    build_cpu = statistics.median(c for _, c in builds)
    print("building the format (first-ever run): wall " + ", ".join(f"{w:.2f}" for w, _ in builds)
          + " s; CPU " + ", ".join(f"{c:.2f}" for _, c in builds) + f" s (median CPU {build_cpu:.2f} s, "
          f"what {build_cpu / ((pc - fc) / len(texts)):.1f} sheets save)")
    print("PDF bytes the same in both modes: " + ("yes" if same else "NO"))
    if "--solve" in sys.argv:
        solve_runs(files, runs)
    return 0 if same else 1


def solve_runs(files, runs):
    """Whole ``solve`` runs with PDFs, format against plain, cold and warm, alternated in one loop."""
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        paths = [str(ROOT / "problems" / f) for f in files]
        base = dict(os.environ, SYMDERIVE_CACHE_DIR=str(scratch / "cache"))
        base.pop("SYMDERIVE_NO_CACHE", None)
        base.pop(pdf.NO_FORMAT_VARIABLE, None)
        subprocess.run([sys.executable, "-m", "symderive", "solve", *paths, "-o", str(scratch / "fill")],
                       cwd=ROOT, env=base, check=True, capture_output=True)   # answers cached, format built
        results = {}
        for n in range(runs):
            for answers in ("cold", "warm"):
                for mode in ("plain", "format"):
                    env = dict(base, **({"SYMDERIVE_NO_CACHE": "1"} if answers == "cold" else {}),
                               **({pdf.NO_FORMAT_VARIABLE: "1"} if mode == "plain" else {}))
                    out = scratch / f"{answers}-{mode}-{n}"
                    results.setdefault((answers, mode), []).append(timed(lambda: subprocess.run(
                        [sys.executable, "-m", "symderive", "solve", *paths, "-o", str(out)], cwd=ROOT, env=env,
                        check=True, capture_output=True)))
    print(f"whole solve runs with PDFs ({runs} each, alternated; load now {os.getloadavg()[0]:.2f}):")
    for answers in ("cold", "warm"):
        cells = []
        for mode in ("plain", "format"):
            rs = results[answers, mode]
            cells.append(f"{mode} wall " + ", ".join(f"{w:.2f}" for w, _ in rs) + f" (median "
                         f"{statistics.median(w for w, _ in rs):.2f}) s, CPU median "
                         f"{statistics.median(c for _, c in rs):.2f} s")
        walls = [statistics.median(w for w, _ in results[answers, m]) for m in ("plain", "format")]
        print(f"  {answers}: " + "; ".join(cells) + f"; format / plain wall {walls[1] / walls[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
