"""The labelled collection (tests/grading_collection/*.yaml: answers.yaml, then blind4.yaml, a batch written
blind): realistic answers with the verdict a careful grader gives, decided by hand before the checker was run
(issue 14).

Reports the agreement by kind of answer and asserts that no answer the grader marks wrong is accepted.
Agreement means the same verdict and, where the grader flags wrong working, the same flag.
"""
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from symderive import load_problem
from symderive.checking.grade import check_one, prepare

HERE = Path(__file__).resolve().parent
PROBLEMS = HERE.parent / "problems"
COLLECTION = sorted((HERE / "grading_collection").glob("*.yaml"))
#: The issue's goal: at least 95 % agreement (and no wrong answer accepted, asserted separately).
MIN_AGREEMENT = 0.95


def collection():
    return [case for path in COLLECTION for case in yaml.safe_load(path.read_text())]


def graded():
    cases = collection()
    by_problem = defaultdict(set)
    for c in cases:
        by_problem[c["problem"]].add(c["question"])
    infos = {}
    for name, qids in by_problem.items():
        problem = load_problem(PROBLEMS / name)
        for qid, info in prepare(problem, qids).items():
            infos[(name, qid)] = info
    out = []
    for c in cases:
        info = infos[(c["problem"], c["question"])]
        v = check_one(info, c["answer"], 20, part=c["part"]) if "part" in c else check_one(info, c["answer"], 20)
        out.append((c, v))
    return out


@pytest.fixture(scope="module")
def results():
    return graded()


def agrees(case, v):
    return v.verdict == case["verdict"] and sorted(case.get("flags", [])) == sorted(v.flags)


def test_the_collection_is_large_and_labelled():
    cases = collection()
    assert len(COLLECTION) >= 2 and len(cases) >= 300
    assert len(cases) >= 100
    assert all(c["verdict"] in ("correct", "incorrect", "unparseable", "unknown name") for c in cases)
    assert sum(c["verdict"] == "incorrect" for c in cases) >= 30      # wrong answers are half the point


def test_no_wrong_answer_is_accepted(results):
    accepted = [(c["question"], c["answer"], v.decided_by) for c, v in results
                if c["verdict"] != "correct" and v.verdict == "correct"]
    assert not accepted, accepted


def test_agreement_by_kind(results, capsys):
    by_kind = defaultdict(lambda: [0, 0])
    disagreements = []
    for c, v in results:
        ok = agrees(c, v)
        by_kind[c["kind"]][0] += ok
        by_kind[c["kind"]][1] += 1
        if not ok:
            disagreements.append(f"{c['question']}: {c['answer'][:60]!r}: grader {c['verdict']}"
                                 f"{c.get('flags', '')}, checker {v.verdict}{v.flags or ''} ({v.evidence[:120]})")
    total = sum(a for a, _ in by_kind.values()), sum(n for _, n in by_kind.values())
    with capsys.disabled():
        print("\nagreement with the grader, by kind:")
        for kind, (a, n) in sorted(by_kind.items()):
            print(f"  {kind:10s} {a:3d}/{n:<3d} {100 * a / n:5.1f} %")
        print(f"  {'all':10s} {total[0]:3d}/{total[1]:<3d} {100 * total[0] / total[1]:5.1f} %")
        for d in disagreements:
            print("  differs:", d)
    assert total[0] / total[1] >= MIN_AGREEMENT, disagreements
