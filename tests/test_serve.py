"""symderive serve: the JSON API gives check's verdicts, bounds requests, survives a hung answer."""
import signal
import time
from pathlib import Path

import pytest

from symderive import load_problem
from symderive.html_sheet import render_html
from symderive.web import pool as web_pool

pytest.importorskip("httpx")
from starlette.testclient import TestClient  # noqa: E402

from symderive.checking.latex_tokens import MAX_CHARS  # noqa: E402
from symderive.web.app import MAX_ANSWER, MAX_BODY, create_app  # noqa: E402

HW5 = Path(__file__).resolve().parent.parent / "problems" / "hw5-written.yaml"
ANSWERS = {"hw5-p2a": ["280", "3", r"\frac{1}{"], "hw5-p2b": [r"\mathbb{R}^{126 \times 126 \times 10}",
                                                          r"\mathbb{R}^{2 \times 3}"]}
HANG = r"\hang"


@pytest.fixture(scope="module")
def client():
    real = web_pool.check_one

    def slow_for_hang(info, latex, timeout=20.0, seed=None):   # forked into the workers
        if latex == HANG:         # a hang the soft limit cannot stop (as C-level work)
            signal.signal(signal.SIGALRM, signal.SIG_IGN)
            while True:
                time.sleep(0.05)
        return real(info, latex, timeout, seed)

    mp = pytest.MonkeyPatch()
    mp.setattr(web_pool, "check_one", slow_for_hang)
    problem = load_problem(HW5)
    app = create_app([problem], timeout=1.0, workers=2)
    mp.undo()
    with TestClient(app) as c:
        c.problem = problem
        yield c


def post(client, qid, latex, url="/api/check"):
    return client.post(url, json={"problem": 0, "question": qid, "answer": latex})


def test_verdicts_are_checks(client):
    for qid, answers in ANSWERS.items():
        for latex in answers:
            got = post(client, qid, latex).json()
            expected = client.problem.check({qid: latex}, timeout=5)[qid]
            assert (got["verdict"], got["decided_by"], got["evidence"]) == \
                (expected.verdict, expected.decided_by, expected.evidence), latex
    assert post(client, "hw5-p2a", "280").json()["verdict"] == "correct"
    wrong = post(client, "hw5-p2b", r"\mathbb{R}^{2 \times 3}").json()
    assert wrong["verdict"] == "incorrect" and "126" in wrong["html"]


def test_preview_shows_the_parsed_form_as_mathml(client):
    got = post(client, "hw5-p2a", r"2 \cdot 140", "/api/preview").json()
    assert got["ok"] and got["html"].count("<math") == 2 and got["read"] == "280"   # as typed, as read
    bad = post(client, "hw5-p2a", r"\frac{1}{", "/api/preview").json()
    assert not bad["ok"] and "column" in bad["html"]


def test_requests_are_bounded_and_name_no_files(client):
    assert client.post("/api/check", content=b"x" * (MAX_BODY + 1)).status_code == 413
    assert post(client, "hw5-p2a", "1" * (MAX_ANSWER + 1)).status_code == 413
    assert client.post("/api/check", json={"problem": "problems/hw5-written.yaml", "question": "hw5-p2a",
                                           "answer": "1"}).status_code == 400
    assert client.post("/api/check", json={"problem": 7, "question": "hw5-p2a", "answer": "1"}).status_code == 404
    assert client.get("/problem/3").status_code == 404
    assert client.get("/key/..%2F..%2Fetc%2Fpasswd").status_code == 404


def test_the_page_takes_every_answer_the_checker_reads(client):
    """The page's limit is the checker's, so a long answer (sheets box answers of 7,500 characters)
    is graded, not refused: 280 written as a sum of 280 ones, 4,757 characters, its backslashes escaped by JSON."""
    assert MAX_ANSWER == MAX_CHARS
    long_sum = " + ".join([r"\left(1\right)"] * 280)
    assert 4000 < len(long_sum) < MAX_ANSWER
    assert post(client, "hw5-p2a", long_sum).json()["verdict"] == "correct"
    assert post(client, "hw5-p2a", long_sum + " + 1").json()["verdict"] == "incorrect"


def test_a_hung_answer_is_stopped_and_the_server_keeps_serving(client):
    start = time.monotonic()
    got = post(client, "hw5-p2a", HANG).json()
    assert got["verdict"] == "timeout" and time.monotonic() - start < 10
    assert post(client, "hw5-p2a", "280").json()["verdict"] == "correct"
    assert client.app.state.site.pool.restarts >= 1


def test_pages_render_maths_as_mathml(client):
    index, page, key = client.get("/"), client.get("/problem/0"), client.get("/key/0")
    assert index.status_code == page.status_code == key.status_code == 200
    assert "<math" in page.text and 'data-question="hw5-p2a"' in page.text
    assert key.text.count('class="boxed"') >= 8 and "Established:" in key.text
    assert key.text == render_html(*client.app.state.site.solved[0])
