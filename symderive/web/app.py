"""The Starlette application behind ``symderive serve``.

Pages: ``/`` lists the problems, ``/problem/K`` lets a student type, preview and check an
answer to each question, ``/key/K`` is the answer key (the HTML sheet). JSON API:
``POST /api/preview`` and ``POST /api/check`` with ``{"problem": K, "question": ID,
"answer": LaTeX}``. Problems are numbered by the server; no request ever names a file.
Bodies are limited to ``MAX_BODY`` bytes and answers to ``MAX_ANSWER`` characters.
"""
import contextlib
import html
import json

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from ..checking.grade import DEFAULT_TIMEOUT
from ..checking.latex_tokens import MAX_CHARS
from ..checking.reader import strip_math
from ..html_sheet import STYLE, math_html, page, render_html, text_html
from .pool import Busy, CheckPool, solve_all

#: The checker's own bound on an answer (the sheets' longest boxed answer is about 7,500 characters).
MAX_ANSWER = MAX_CHARS
#: JSON may escape every character of the answer as \uXXXX (six bytes); a kilobyte for the rest.
MAX_BODY = 6 * MAX_ANSWER + 1024

PAGE_STYLE = STYLE + """
textarea { width: 100%; font-family: monospace; font-size: 1rem; }
.preview { min-height: 1.5rem; background: #f7f7fa; padding: .3rem .5rem; margin: .3rem 0; }
.verdict { margin: .4rem 0; padding: .3rem .5rem; }
.verdict[data-verdict=correct] { background: #e6f6e6; }
.verdict[data-verdict=incorrect], .verdict[data-verdict=unparseable], .verdict[data-verdict="unknown name"],
.verdict[data-verdict=timeout],
.verdict[data-verdict=error] { background: #fbeaea; }
.hint { color: #555; font-size: .9rem; }
"""

SCRIPT = """
<script>
async function post(url, form) {
  const body = JSON.stringify({problem: Number(form.dataset.problem), question: form.dataset.question,
                               answer: form.elements.answer.value});
  const r = await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json'}, body});
  return r.json();
}
function show(el, data) {
  el.innerHTML = data.html || '';
  if (data.verdict) el.dataset.verdict = data.verdict;
}
document.querySelectorAll('form.answer').forEach(form => {
  let timer = null, seq = 0;
  const preview = form.querySelector('.preview'), verdict = form.querySelector('.verdict');
  form.elements.answer.addEventListener('input', () => {
    clearTimeout(timer);
    preview.innerHTML = '';
    verdict.innerHTML = '';
    delete verdict.dataset.verdict;
    timer = setTimeout(async () => {
      const mine = ++seq, typed = form.elements.answer.value;
      const data = await post('/api/preview', form);
      if (mine === seq) { show(preview, data); preview.dataset.answer = typed; }
    }, 350);
  });
  form.addEventListener('submit', async event => {
    event.preventDefault();
    verdict.dataset.verdict = 'checking';
    verdict.textContent = 'checking…';
    show(verdict, await post('/api/check', form));
  });
});
</script>
"""


class Site:
    """The solved problems, their HTML keys and the checking pool."""

    def __init__(self, problems, timeout=DEFAULT_TIMEOUT, workers=2, solve_timeout=60.0, cache=True):
        self.solved, infos = solve_all(problems, solve_timeout, cache)
        self.keys = {}
        self.pool = CheckPool(infos, timeout, workers)

    def key_html(self, k):
        if k not in self.keys:
            problem, answers = self.solved[k]
            self.keys[k] = render_html(problem, answers)
        return self.keys[k]


def create_app(problems, timeout=DEFAULT_TIMEOUT, workers=2, cache=True):
    """The application over loaded problems (solved now, or read from the disk cache of answers, before the
    workers are forked)."""
    site = Site(problems, timeout, workers, cache=cache)

    async def index(request):
        items = []
        for k, (problem, _) in enumerate(site.solved):
            questions = "".join(f"<li><a href=\"/problem/{k}#{html.escape(q.id)}\">{html.escape(q.id)}</a> "
                                f"{text_html(_short(q.statement))}</li>" for q in problem.questions)
            items.append(f"<li><h2>{html.escape(problem.title)}</h2><p><a href=\"/problem/{k}\">check answers</a>"
                         f" · <a href=\"/key/{k}\">answer key (TA)</a></p><ul>{questions}</ul></li>")
        body = ("<h1>symderive: check your answers</h1><p class=\"hint\">Pick a problem, type an answer in "
                "LaTeX, and the page tells you whether it is right, and why not.</p>"
                f"<ol>{''.join(items)}</ol>")
        return HTMLResponse(page("symderive", body, f"<style>{PAGE_STYLE}</style>"))

    async def problem_page(request):
        k = request.path_params["k"]
        if not 0 <= k < len(site.solved):
            return HTMLResponse(page("not found", "<p>No such problem.</p>"), status_code=404)
        problem, _ = site.solved[k]
        sections = []
        for q in problem.questions:
            info = site.pool.infos[(k, q.id)]
            form = (f'<form class="answer" data-problem="{k}" data-question="{html.escape(q.id)}">'
                    f'<textarea name="answer" rows="2" maxlength="{MAX_ANSWER}" spellcheck="false" '
                    f'placeholder="your answer in LaTeX"></textarea>'
                    '<div class="preview"></div>'
                    '<button type="submit">Check</button><div class="verdict"></div></form>'
                    if info.checkable else f'<p class="hint">Not checked: {html.escape(info.reason)}</p>')
            sections.append(f'<section class="question" id="{html.escape(q.id)}"><h2>{html.escape(q.id)}</h2>'
                            f"<p>{text_html(q.statement)}</p>{form}</section>")
        body = (f'<p><a href="/">all problems</a> · <a href="/key/{k}">answer key</a></p>'
                f"<h1>{html.escape(problem.title)}</h1>"
                f"<p class=\"hint\">Indices start at {problem.index_base}.</p>" + "".join(sections) + SCRIPT)
        return HTMLResponse(page(problem.title, body, f"<style>{PAGE_STYLE}</style>"))

    async def key_page(request):
        k = request.path_params["k"]
        if not 0 <= k < len(site.solved):
            return HTMLResponse(page("not found", "<p>No such problem.</p>"), status_code=404)
        return HTMLResponse(await run_in_threadpool(site.key_html, k))

    async def preview(request):
        got = await _answer_request(request, site)
        if isinstance(got, JSONResponse):
            return got
        key, latex = got
        typed = math_html(strip_math(latex)[0]) if latex.strip() else ""
        if not latex.strip():
            return JSONResponse({"ok": False, "html": ""})
        try:
            read = await run_in_threadpool(site.pool.preview, key, latex)
        except Busy:
            return JSONResponse({"ok": False, "html": "the server is busy"}, status_code=503)
        shown = (math_html(read["latex"]) if read["ok"]
                 else f'<span class="failed">{html.escape(_where(read, latex))}</span>')
        return JSONResponse({"ok": read["ok"], "html": f'<div><span class="hint">typed:</span> {typed}</div>'
                                                       f'<div><span class="hint">read as:</span> {shown}</div>',
                             "read": read.get("latex", "")})

    async def check(request):
        got = await _answer_request(request, site)
        if isinstance(got, JSONResponse):
            return got
        key, latex = got
        try:
            verdict = await run_in_threadpool(site.pool.check, key, latex)
        except Busy:
            return JSONResponse({"error": "the server is busy, try again"}, status_code=503)
        record = verdict.to_json()
        how = f" ({html.escape(verdict.decided_by)})" if verdict.decided_by else ""
        evidence = f": {text_html(verdict.evidence)}" if verdict.evidence else ""
        record["html"] = f"<strong>{html.escape(verdict.verdict)}</strong>{how}{evidence}"
        return JSONResponse(record)

    routes = [Route("/", index), Route("/problem/{k:int}", problem_page), Route("/key/{k:int}", key_page),
              Route("/api/preview", preview, methods=["POST"]), Route("/api/check", check, methods=["POST"])]
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        site.pool.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.site = site
    return app


async def _answer_request(request, site):
    """((problem number, question id), LaTeX) from a bounded JSON body, or an error response."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        return JSONResponse({"error": f"request larger than {MAX_BODY} bytes"}, status_code=413)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return JSONResponse({"error": f"request larger than {MAX_BODY} bytes"}, status_code=413)
    try:
        data = json.loads(body)
        k, qid, latex = data["problem"], data["question"], data["answer"]
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "expected JSON {problem, question, answer}"}, status_code=400)
    if not isinstance(k, int) or not isinstance(qid, str) or not isinstance(latex, str):
        return JSONResponse({"error": "problem is a number, question and answer are text"}, status_code=400)
    if len(latex) > MAX_ANSWER:
        return JSONResponse({"error": f"answer longer than {MAX_ANSWER} characters"}, status_code=413)
    if (k, qid) not in site.pool.infos:
        return JSONResponse({"error": "no such problem or question"}, status_code=404)
    return (k, qid), latex


def _where(read, latex):
    pos = read.get("position")
    return f"column {pos + 1}: {read['message']}" if isinstance(pos, int) else read["message"]


def _short(statement, n=90):
    s = " ".join(str(statement).split())
    if len(s) <= n:
        return s
    cut = s[:n]
    if cut.count("$") % 2:           # never cut inside a maths span
        cut = cut[:cut.rfind("$")]
    return cut.rstrip() + " …"


def serve(problems, host="127.0.0.1", port=8000, timeout=DEFAULT_TIMEOUT, workers=2, log=print, cache=True):
    """Solve ``problems``, start the workers and serve until interrupted."""
    import uvicorn
    log(f"solving {len(problems)} problem(s) before serving …")
    app = create_app(problems, timeout, workers, cache)
    log(f"serving on http://{host}:{port}/  (Ctrl-C to stop)")
    uvicorn.run(app, host=host, port=port, log_level="warning", limit_concurrency=200,
                timeout_keep_alive=5)
