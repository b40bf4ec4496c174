"""CPU and wall time of every question of the shipped problems, each solved in one process
in file order (as `solve --jobs 1` does), slowest first; those over the target marked.

The issue-17 target: each proof and derivation under 1 s. CPU time is the figure to trust on a
shared machine (wall time includes waiting for a core); the load average is printed.

The CPU time of a question includes any full garbage collection that happens to fall in it (its
cost grows with everything the run keeps alive, not with the question): it is printed beside
each time, as "GC".

Run:  python benchmarks/questions.py [--target SECONDS] [--tree PATH] [--ids ID,ID,...]
      (--tree: time another checkout, e.g. main, with this interpreter, for a baseline;
       --ids: also print these questions' times, wherever they rank)
"""
import gc
import glob
import os
import sys
import time

TARGET = float(sys.argv[sys.argv.index("--target") + 1]) if "--target" in sys.argv else 1.0
TREE = sys.argv[sys.argv.index("--tree") + 1] if "--tree" in sys.argv else \
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IDS = sys.argv[sys.argv.index("--ids") + 1].split(",") if "--ids" in sys.argv else []
sys.path.insert(0, TREE)

from symderive import load_problem  # noqa: E402


GC_CPU = [0.0, 0.0]          # CPU seconds in the collector so far; when the running collection began


def _time_gc(phase, info):
    if phase == "start":
        GC_CPU[1] = time.process_time()
    else:
        GC_CPU[0] += time.process_time() - GC_CPU[1]


def main():
    print(f"load average {os.getloadavg()[0]:.2f}; tree {TREE}")
    gc.callbacks.append(_time_gc)
    rows = []
    for path in sorted(glob.glob(os.path.join(TREE, "problems", "*.yaml"))):
        problem = load_problem(path)
        for question in problem.questions:
            cpu, wall, collecting = time.process_time(), time.perf_counter(), GC_CPU[0]
            answer = problem.solve_question(question, 600)
            rows.append((time.process_time() - cpu, time.perf_counter() - wall, question.id, question.ask,
                         f"{answer.status.name}  GC {GC_CPU[0] - collecting:4.2f} s"))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    print(f"{len(rows)} questions, {total:.2f} s CPU in all ({GC_CPU[0]:.2f} s in the garbage collector); "
          f"over {TARGET:g} s CPU:")
    for cpu, wall, qid, ask, status in rows:
        if cpu > TARGET:
            print(f"  {qid:<28} {ask:<16} CPU {cpu:5.2f} s  wall {wall:5.2f} s  {status}")
    print("next slowest:", ", ".join(f"{qid} {cpu:.2f}" for cpu, _, qid, _, _ in
                                     [r for r in rows if r[0] <= TARGET][:5]))
    if IDS:
        print("asked for (--ids):")
    for cpu, wall, qid, ask, status in sorted((r for r in rows if r[2] in IDS), reverse=True):
        print(f"  {qid:<28} {ask:<16} CPU {cpu:5.2f} s  wall {wall:5.2f} s  {status}")


if __name__ == "__main__":
    main()
