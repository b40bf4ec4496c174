"""A problem file: title, conventions, declarations and questions; solving it.

``load_problem(path)`` reads and checks the file's structure (errors here
make the whole file unreadable); each question is then solved on its own,
under a time limit, and any failure stays with that question.
"""
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .authored_text import AuthoredTextError, checked
from .asks import question_keys
from .errors import ExpressionError, ProblemFileError, SymderiveError
from .timeouts import time_limit
from .yaml_positions import LocatedDict, key_position, load, position

MAX_FILE_BYTES = 1_000_000
DEFAULT_TIMEOUT = 60.0
TOP_LEVEL_KEYS = {"title", "source", "index_base", "sizes", "tensors", "layers", "questions", "notes"}
#: Keys every question may have; each ask adds its own (``Ask.keys``).
#: Question keys that are printed as text (``answer`` of a text question, ``note``).
TEXT_KEYS_OF_QUESTION = ("note", "source")
QUESTION_KEYS_COMMON = {"id", "statement", "ask", "note", "source", "timeout", "sizes", "tensors", "layers",
                        "tolerance", "points", "aliases"}


@dataclass
class Question:
    id: str
    statement: str
    ask: str
    spec: dict
    line: int = None

    def option(self, key, default=None):
        return self.spec.get(key, default)


@dataclass
class Problem:
    path: Path
    title: str
    source: str
    index_base: int
    questions: list
    spec: dict = field(repr=False, default_factory=dict)
    notes: str = ""
    #: Errors in declared layers, found when the file is loaded (a layer no question uses is
    #: otherwise never built, and its mistakes never reported).
    declaration_errors: list = field(repr=False, default_factory=list)

    @property
    def name(self):
        return self.path.stem

    def question(self, qid):
        for q in self.questions:
            if q.id == qid:
                return q
        raise KeyError(f"{self.path}: no question {qid!r}; questions: "
                       f"{', '.join(q.id for q in self.questions)}")

    def declarations(self, question=None):
        """The scope a question sees: the file's declarations, then its own."""
        from .declarations import Declarations
        outer = Declarations(self.spec, base=self.index_base)
        if question is None:
            return outer
        return Declarations(question.spec, parent=outer, base=self.index_base)

    def solve(self, ids=None, timeout=DEFAULT_TIMEOUT):
        """Solve every question (or those in ``ids``); never raises for one bad question."""
        from .answer import Answers
        chosen = [q for q in self.questions if ids is None or q.id in ids]
        return Answers(self.solve_question(q, timeout) for q in chosen)

    def solve_question(self, question, timeout=DEFAULT_TIMEOUT):
        from . import display_names
        from .answer import Answer, Status
        from .asks import ASKS, Context
        from .declared_values import use_declared_values
        start = time.perf_counter()
        try:
            with time_limit(_time_limit(question, timeout)):
                decls = self.declarations(question)
                with display_names.declared(decls.display_names()):
                    ctx = Context(self, question, decls)
                    answer = use_declared_values(ctx, ASKS[question.ask].solve(ctx))
                answer.names = display_names.names_of(decls)
        except SymderiveError as exc:
            exc.located(file=self.path, question=question.id, line=question.line)
            answer = Answer(question.id, question.statement, Status.FAILED, error=str(exc))
        except RecursionError:
            answer = Answer(question.id, question.statement, Status.FAILED,
                            error=f"{self.path}: question {question.id}: expression too deeply nested")
        except Exception as exc:  # an engine bug must not take the rest of the run with it
            answer = Answer(question.id, question.statement, Status.FAILED,
                            error=f"{self.path}: question {question.id}: internal error: "
                                  f"{type(exc).__name__}: {exc}")
        answer.problem = self.name
        answer.source = str(question.spec.get("source") or "")
        answer.index_base = self.index_base
        answer.seconds = time.perf_counter() - start
        return answer

    def check(self, answers, timeout=None, workers=2, isolate=True, cache=True):
        """Check students' LaTeX answers ({question id: LaTeX}) against the engine's: a report of
        verdicts (correct, incorrect, unparseable, missing, timeout) that renders in notebooks.
        ``cache``: read the engine's answers from the disk cache of this file, as ``check`` does
        (False, or SYMDERIVE_NO_CACHE=1, solves again). See docs/checking.md."""
        from .checking.grade import DEFAULT_TIMEOUT as CHECK_TIMEOUT, answer_cache, check
        return check(self, answers, timeout or CHECK_TIMEOUT, workers, isolate,
                     cache=answer_cache(self, enabled=cache))

    def sheet(self, answers=None):
        """The LaTeX answer sheet (solving first if no answers are given)."""
        from .sheet import render_sheet
        return render_sheet(self, answers if answers is not None else self.solve())

    def _repr_markdown_(self):
        return f"**{self.title}** ({len(self.questions)} questions: " \
               f"{', '.join(q.id for q in self.questions)})"


def _time_limit(question, default):
    """The question's ``timeout`` (seconds, a positive number), else ``default``."""
    limit = question.option("timeout", default)
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not 0 < limit < float("inf"):
        raise ExpressionError("timeout must be a positive number of seconds",
                              *key_position(question.spec, "timeout"))
    return limit


def load_problem(path, check_layers=True):
    """Read a problem file; raises ``ProblemFileError`` if it cannot be used at all.

    ``check_layers=False`` reads only the file's structure (title, questions, their asks and
    keys), which needs neither SymPy nor the engine: ``list`` uses it. The declared layers are
    then not built, and ``declaration_errors`` is empty."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProblemFileError(f"cannot read: {exc.strerror}", file=path) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ProblemFileError(f"file is larger than {MAX_FILE_BYTES} bytes", file=path)
    try:
        spec = load(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProblemFileError("file is not UTF-8 text", file=path) from None
    except RecursionError:   # a backstop: the loader refuses deep nesting itself, with the position
        raise ProblemFileError("nested too deeply", file=path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        kind = "" if isinstance(exc, yaml.composer.ComposerError) else "YAML syntax error: "
        raise ProblemFileError(f"{kind}{problem}", file=path,
                               line=mark.line + 1 if mark else None,
                               column=mark.column + 1 if mark else None) from None
    if not isinstance(spec, dict):
        raise ProblemFileError("a problem file is a YAML mapping with title and questions", file=path)
    unknown = [k for k in spec if k not in TOP_LEVEL_KEYS]
    if unknown:
        raise ProblemFileError(f"unknown key '{unknown[0]}' (allowed: {', '.join(sorted(TOP_LEVEL_KEYS))})",
                               *position(unknown[0]), file=path)
    base = spec.get("index_base", 0)
    if base not in (0, 1) or isinstance(base, bool):
        raise ProblemFileError("index_base must be 0 or 1", *key_position(spec, "index_base"), file=path)
    questions_spec = spec.get("questions")
    if not isinstance(questions_spec, list) or not questions_spec:
        where = key_position(spec, "questions") if "questions" in spec else (1, 1)
        raise ProblemFileError("'questions' must be a non-empty list", *where, file=path)
    questions, seen, asks = [], set(), question_keys()
    for entry in questions_spec:
        if not isinstance(entry, LocatedDict):
            raise ProblemFileError("each question is a mapping with id and ask", file=path)
        qid = entry.get("id")
        where = dict(file=path, line=entry.line, column=entry.column)
        if not isinstance(qid, str) or not qid.strip():
            raise ProblemFileError("a question needs an 'id' (text)", **where)
        if qid in seen:
            raise ProblemFileError(f"duplicate question id '{qid}'", *position(qid), file=path)
        seen.add(qid)
        ask = entry.get("ask")
        if not isinstance(ask, str) or ask not in asks:
            raise ProblemFileError(f"question {qid}: unknown ask {ask!r} (one of: {', '.join(asks)})",
                                   *(position(ask) if isinstance(ask, str) else key_position(entry, "ask")),
                                   file=path)
        allowed = QUESTION_KEYS_COMMON | asks[ask]
        unknown = [k for k in entry if k not in allowed]
        if unknown:
            raise ProblemFileError(f"question {qid}: unknown key '{unknown[0]}' for ask '{ask}' (allowed: "
                                   f"{', '.join(sorted(allowed))})", *position(unknown[0]), file=path)
        for key in TEXT_KEYS_OF_QUESTION:
            _text(entry, key, path, f"question {qid}: ")
        questions.append(Question(str(qid), _text(entry, "statement", path), str(ask), entry, entry.line))
    if "title" not in spec:
        raise ProblemFileError("missing 'title'", 1, 1, file=path)
    problem = Problem(path, _text(spec, "title", path), _text(spec, "source", path), base, questions, spec,
                      _text(spec, "notes", path))
    if check_layers:
        problem.declaration_errors = declaration_errors(problem)
    return problem


def declaration_errors(problem, timeout=DEFAULT_TIMEOUT):
    """Build every declared layer, the file's and each question's own: the errors, located, once each.
    (Errors in sizes and tensors already fail every question that sees them.)"""
    found, seen = [], set()
    scopes = [None] + [q for q in problem.questions if q.spec.get("layers")]
    try:
        with time_limit(timeout):
            for question in scopes:
                try:
                    decls = problem.declarations(question)
                except SymderiveError:
                    continue                      # reported by the questions that use this scope
                for name in decls.layer_specs:
                    try:
                        decls.lookup(name)
                    except SymderiveError as exc:
                        exc.located(file=problem.path)
                        key = (exc.line, exc.column, exc.message)
                        if key not in seen:
                            seen.add(key)
                            exc.message = f"layer '{name}': {exc.message}"
                            found.append(exc)
                    except (RecursionError, Exception) as exc:   # an engine bug must not stop the load
                        what = "nested too deeply" if isinstance(exc, RecursionError) else \
                            f"internal error: {type(exc).__name__}: {exc}"
                        error = SymderiveError(f"layer '{name}': {what}", *position(decls.layer_specs[name][0]),
                                               file=problem.path)
                        if (error.line, error.column, what) not in seen:
                            seen.add((error.line, error.column, what))
                            found.append(error)
    except SymderiveError as exc:                 # the time limit
        found.append(exc.located(file=problem.path))
    return found


def _text(mapping, key, path, where=""):
    """The text under ``key`` ('' when absent). Anything but a string is refused: a list or
    mapping would be printed with ``str()``, which for aliases nested ten deep never ends.

    >>> _text({"title": "Hi"}, "title", "p.yaml"), _text({}, "notes", "p.yaml")
    ('Hi', '')
    >>> _text({"title": ["a"]}, "title", "p.yaml")
    Traceback (most recent call last):
    ...
    symderive.errors.ProblemFileError: p.yaml: 'title' must be text (a string), not a list
    """
    value = mapping.get(key)
    if key not in mapping:
        return ""
    if not isinstance(value, str):
        kind = {list: "a list", dict: "a mapping", type(None): "empty"}.get(type(value), type(value).__name__)
        kind = "a mapping" if isinstance(value, dict) else kind
        raise ProblemFileError(f"{where}'{key}' must be text (a string), not {kind}",
                               *key_position(mapping, key), file=path)
    try:                   # printed on the sheet: refused here, with its position, if it cannot be safely
        checked(value, f"{where}'{key}': ")
    except AuthoredTextError as exc:
        raise exc.located(file=path) from None
    return str(value)


def find_problem_files(paths):
    """Expand files and folders into a sorted list of problem files (.yaml / .yml)."""
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml"))
        else:
            found.append(p)
    return found
