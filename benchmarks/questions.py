"""CPU and wall time of every question of the shipped problems, each solved in one process
in file order (as `solve --jobs 1` does), slowest first; those over the target marked.

The issue-17 target: each proof and derivation under 1 s. CPU time is the figure to trust on a
shared machine (wall time includes waiting for a core); the load average is printed.

Run:  python benchmarks/questions.py [--target SECONDS] [--tree PATH]
      (--tree: time another checkout, e.g. main, with this interpreter, for a baseline)
"""
import glob
import os
import sys
import time

TARGET = float(sys.argv[sys.argv.index("--target") + 1]) if "--target" in sys.argv else 1.0
TREE = sys.argv[sys.argv.index("--tree") + 1] if "--tree" in sys.argv else \
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TREE)

from symderive import load_problem  # noqa: E402


def main():
    print(f"load average {os.getloadavg()[0]:.2f}; tree {TREE}")
    rows = []
    for path in sorted(glob.glob(os.path.join(TREE, "problems", "*.yaml"))):
        problem = load_problem(path)
        for question in problem.questions:
            cpu, wall = time.process_time(), time.perf_counter()
            answer = problem.solve_question(question, 600)
            rows.append((time.process_time() - cpu, time.perf_counter() - wall, question.id, question.ask,
                         answer.status.name))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    print(f"{len(rows)} questions, {total:.2f} s CPU in all; over {TARGET:g} s CPU:")
    for cpu, wall, qid, ask, status in rows:
        if cpu > TARGET:
            print(f"  {qid:<28} {ask:<16} CPU {cpu:5.2f} s  wall {wall:5.2f} s  {status}")
    print("next slowest:", ", ".join(f"{qid} {cpu:.2f}" for cpu, _, qid, _, _ in
                                     [r for r in rows if r[0] <= TARGET][:5]))


if __name__ == "__main__":
    main()
