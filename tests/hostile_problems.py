"""Generators of hostile and mistaken problem files, shared by the hypothesis tests
(test_fuzz_problems.py) and the fuzz benchmark (benchmarks/fuzz.py).

Each generator takes a ``random.Random`` and returns a ``Case``: the YAML text and what must
happen to it. ``expect`` is ``"unreadable"`` (load_problem raises ProblemFileError),
``"failed"`` (it loads, and the question ``q`` fails with a located error), ``"declaration"``
(it loads and reports a declaration error) or ``None`` (anything documented, as long as
nothing crashes or hangs). Families follow the defects of issue 15; mutations start from
the shipped problem files.
"""
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "problems").glob("*.yaml"))


@dataclass
class Case:
    family: str
    text: str
    expect: str = None
    question: str = None          # the question to solve (None: every question, or none for mutations)


def quoted(text):
    """A YAML single-quoted scalar holding ``text`` exactly."""
    return "'" + text.replace("'", "''").replace("\n", " ") + "'"


# Families ----------------------------------------------------------------------------------

def alias_bomb(rng):
    levels, width = rng.randint(7, 12), rng.randint(6, 10)
    key = rng.choice(["title", "source", "notes"])
    parts = ["&a0 [" + ", ".join(["lol"] * width) + "]"]
    parts += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    head = "" if key == "title" else "title: T\n"
    return Case("alias bomb", f"{head}{key}: [{', '.join(parts)}]\n" + TEXT_QUESTION, "unreadable")


def deep_nesting(rng):
    opening = rng.choice(["[", "{a: ", "- "])
    depth = rng.choice([150, 1000, 50_000 if opening != "- " else 2000])
    if opening == "- ":
        body = "\n" + "".join("  " * k + "- \n" for k in range(depth))
    else:
        body = opening * depth
    key = rng.choice(["title", "statement"])
    if key == "title":
        return Case("deep nesting", "title: " + body + "\n" + TEXT_QUESTION, "unreadable")
    return Case("deep nesting", "title: T\nquestions:\n  - {id: q, ask: text, answer: hi, statement: "
                + body.replace("\n", " ") + "\n", "unreadable")


def text_not_string(rng):
    key = rng.choice(["title", "source", "notes"])
    value = rng.choice(["[a, b]", "{a: 1}", "[&x [1, 2], *x]", "2024", "true", "[[[[x]]]]"])
    head = "" if key == "title" else "title: T\n"
    return Case("text field not a string", f"{head}{key}: {value}\n" + TEXT_QUESTION, "unreadable")


EXPR_TOKENS = ["x[1]", "x[2]", "W[1, 2]", "s", "so", "sigmoid(", "log(", "exp(", "relu(", "tanh(", "sqrt(",
               "conv1d(", "linear(", "softmax(", ")", "(", "+", "-", "*", "/", "**", "1000", "10**59", "2",
               "0.5", "1e308", "9" * 70, ",", "Sum(", "(j, 1, 3)", "x[j]", "__import__", ".", "[", "]",
               "lambda", "os", "'", '"', "\\", "==", "<", "if", "E", "pi", "oo", "Abs(", "Max(", "floor("]
LATEX_TOKENS = ["x_{1}", "x_1", "W_{1,2}", "s", r"\sigma(", r"\log(", r"\exp(", r"\tanh(", r"\frac{", "}", "{",
                "(", ")", "+", "-", "^{", "10", "1000", "!", r"\binom{", r"\sum_{j=1}^{3}", "x_{j}", r"\sqrt{",
                "1." + "1" * 80, r"\input{/etc/passwd}", r"\def", "$", "&", r"\\"]


def token_soup(rng, tokens, n):
    return " ".join(rng.choice(tokens) for _ in range(rng.randint(1, n)))


def hostile_expression(rng):
    if rng.random() < 0.3:
        return "$" + token_soup(rng, LATEX_TOKENS, 14) + "$"
    return token_soup(rng, EXPR_TOKENS, 16)


DECLARATIONS = """title: T
index_base: 1
sizes: [n]
tensors:
  x: [3]
  W: [3, 3]
  s: []
  y: []
layers:
  z: linear(x, W)
  a: relu(z)
  so: 2*s
"""
TEXT_QUESTION = "questions:\n  - {id: q, ask: text, answer: hi}\n"


def hostile_layer(rng):
    """A layer of hostile text that a question uses; it fails, with a position, or it is fine."""
    expr = hostile_expression(rng)
    ask = rng.choice(["value", "derivative", "shape"])
    question = {"value": "{id: q, ask: value, expr: h}", "derivative": "{id: q, ask: derivative, of: h, wrt: s}",
                "shape": "{id: q, ask: shape, of: h}"}[ask]
    text = DECLARATIONS + f"  h: {quoted(expr)}\nquestions:\n  - {question}\n"
    return Case("hostile layer", text, None, "q")


def unused_broken_layer(rng):
    bad = rng.choice(["conv1d(x, nothere)", "x[9]", "sigmoid(", "W[1]", "linear(x, W, stride=2)", "nope(x)",
                      "'$\\frac{$'", "'$y_{9}$'"])
    text = DECLARATIONS + f"  broken: {bad}\nquestions:\n  - {{id: q, ask: shape, of: a}}\n"
    return Case("unused broken layer", text, "declaration", "q")


def hostile_value(rng):
    expr = rng.choice(["exp(exp(exp(exp(10))))", "(sqrt(2)*10**59)**1000", "$(10^{1000})^{1000}$",
                       "$1." + "1" * 1500 + "$", "$100000!$", "$\\binom{n}{2}$", "10**10**10", "2**1001",
                       "(1/3)**1000", "exp(1e6)", "$e^{e^{e^{10}}}$"])
    return Case("hostile value", DECLARATIONS + f"questions:\n  - {{id: q, ask: value, expr: {quoted(expr)}}}\n",
                "failed", "q")


def bad_given(rng):
    condition = rng.choice(["garbage(((", "y[9] > 0", "z[9] > 0", "z[1] >= 0", "z[1] > 1", "__import__('os')",
                            "z[1] > 0 and z[2] > 0", "q[1] > 0", "z > 0", "$z_1 > 0$"])
    text = DECLARATIONS + "questions:\n  - {id: q, ask: derivative, of: a, wrt: x, given: [" + quoted(condition) \
        + "]}\n"
    return Case("bad given", text, "failed", "q")


def bad_option(rng):
    option = rng.choice(["timeout: abc", "timeout: -1", "timeout: [1]", "timeout: .inf", "timeout: true",
                         "array: maybe"])
    text = DECLARATIONS + f"questions:\n  - {{id: q, ask: derivative, of: a, wrt: x, {option}}}\n"
    return Case("bad option", text, "failed", "q")


def composed_functions(rng):
    expr = rng.choice(["log(sigmoid(so))", "-(y*log(sigmoid(s)) + (1-y)*log(1-sigmoid(s)))", "tanh(relu(so))",
                       "exp(tanh(s))*sigmoid(so)", "sqrt(1 + sigmoid(s)**2)", "relu(sigmoid(so) - 1/2)"])
    text = DECLARATIONS + f"  h: {quoted(expr)}\nquestions:\n  - {{id: q, ask: derivative, of: h, wrt: s}}\n"
    return Case("composed functions", text, "answered", "q")


def rnn_text(update, weight, initial, steps):
    """A one-unit recurrence a = update(W_a a + W_x x_t + b) with x_t = b = 0, question id q."""
    return f"""title: rnn
questions:
  - id: q
    tensors:
      a: []
      W_a: {{value: {weight}}}
      W_x: []
      x_t: {{value: 0}}
      b: {{value: 0}}
    ask: rnn_recurrence
    state: a
    update: "{update}(W_a*a + W_x*x_t + b)"
    initial: {initial}
    steps: {steps}
"""


def rnn_steps(rng):
    update = rng.choice(["tanh", "sigmoid"])
    weight, initial, steps = rng.choice([0.5, 1, 2]), rng.choice([0, 0.5, 1]), rng.choice([4, 5, 20, 50])
    return Case("rnn steps", rnn_text(update, weight, initial, steps), "answered", "q")


def hostile_loss(rng):
    """A small numeric network whose loss is hostile, mistaken or written with a sum."""
    loss = rng.choice(["-Sum(P[i]*ln(q[i]), (i, 1, 3))", "Sum((q[i] - P[i])**2, (i, 1, n))", "q", "q[4]",
                       "P[1]", "-ln(q[1])**1001", "exp(exp(exp(exp(10))))*q[1]", "$-\\ln q_{1}$",
                       "Sum(q[i], (i, 1, 10**9))", "c[1]", "__import__('os')", "q[1] > 0", "1/(q[1] - q[1])"])
    ask = rng.choice(["forward_backward", "gradient_step\n    learning_rate: 0.1"])
    text = f"""title: fb
index_base: 1
sizes: [n]
questions:
  - id: q
    tensors:
      x: {{shape: [3], value: [1, 2, -1]}}
      W: {{shape: [3, 3], value: [[0.1, 0.2, 0.3], [0.3, -0.2, 0.1], [0, 0.5, -0.5]]}}
      P: {{shape: [3], value: [0.2, 0.3, 0.5]}}
    ask: {ask}
    network:
      input: x
      layers:
        - c: Linear(W)
        - q: {rng.choice(["Softmax()", "Sigmoid()", "ReLU()", "Tanh()"])}
      loss: {{E: {quoted(loss)}}}
"""
    return Case("hostile loss", text, None, "q")


TEX_ATTACKS = [r"\input{/etc/passwd}", r"\include{x}", r"\immediate\write18{touch p}", r"\openout1=../x",
               r"\def\x{1}", r"\catcode`\A=0", r"\csname input\endcsname", "^^5cinput{x}", r"\unknown",
               "} x {", "x % y", r"\begin{document}", r"\end{itemize}"]


def hostile_text(rng):
    """A TeX command smuggled into authored maths (issue 13): a text field refuses the file, a text
    answer fails its question, both with the position."""
    key = rng.choice(["title", "source", "notes", "statement", "note", "answer"])
    value = quoted(rng.choice(["", "See ", "a $x$ b "]) + "$" + rng.choice(["", "x + "]) + rng.choice(TEX_ATTACKS)
                   + "$")
    head = f"title: {value}\n" if key == "title" else "title: T\n"
    head += f"{key}: {value}\n" if key in ("source", "notes") else ""
    own = f", {key}: {value}" if key in ("statement", "note") else ""
    answer = value if key == "answer" else "hi"
    text = head + f"questions:\n  - {{id: q, ask: text, answer: {answer}{own}}}\n"
    return Case("hostile text", text, "failed" if key == "answer" else "unreadable", "q")


FAMILIES = [alias_bomb, deep_nesting, text_not_string, hostile_layer, unused_broken_layer, hostile_value,
            bad_given, bad_option, composed_functions, rnn_steps, hostile_loss, hostile_text]


# Mutations of the shipped files ------------------------------------------------------------

HOSTILE_SCALARS = ["'$\\frac{$'", "[[[[]]]]", "*undefined", "&a [*a]", "!!python/object/apply:os.system [ls]",
                   "'__import__(\"os\")'", "'x' * 10**9", "-1", "0", "1e309", "'9" + "9" * 80 + "'", "null",
                   "{}", "[]", "'\\x00'", "'exp(exp(exp(exp(10))))'", "'$\\input{/etc/passwd}$'", "' '"]


def mutation(rng, shipped=None):
    """A shipped problem file with one random change: a line deleted, duplicated or truncated, a
    value replaced by a hostile one, or two characters swapped. Anything documented may follow."""
    path = shipped or rng.choice(SHIPPED)
    lines = path.read_text().split("\n")
    k = rng.randrange(len(lines))
    kind = rng.choice(["delete", "duplicate", "value", "value", "value", "swap", "truncate"])
    if kind == "delete":
        del lines[k]
    elif kind == "duplicate":
        lines.insert(k, lines[k])
    elif kind == "value":
        candidates = [i for i, line in enumerate(lines) if re.match(r"\s*-?\s*[A-Za-z_]+:\s*\S", line)]
        k = rng.choice(candidates)
        key = lines[k].split(":", 1)[0]
        lines[k] = f"{key}: {rng.choice(HOSTILE_SCALARS)}"
    elif kind == "swap" and len(lines[k]) > 2:
        i = rng.randrange(len(lines[k]) - 1)
        lines[k] = lines[k][:i] + lines[k][i + 1] + lines[k][i] + lines[k][i + 2:]
    else:
        lines = lines[:k] + [lines[k][:len(lines[k]) // 2]]
    return Case(f"mutation ({kind})", "\n".join(lines), None, None)


def generate(rng):
    """One case: a family's (two in three) or a mutation of a shipped file."""
    return rng.choice(FAMILIES)(rng) if rng.random() < 2 / 3 else mutation(rng)


# Running a case ----------------------------------------------------------------------------

LOCATED = re.compile(r"\.yaml:\d+(:\d+)?: ")


def run_case(case, path, timeout=5.0):
    """Load ``path`` (holding ``case.text``) and solve its question; the list of defects found:
    'crash: ...' (a traceback, an internal error, a multi-line error) or 'wrong: ...' (an outcome
    other than the one the family must have). Empty when everything is as documented."""
    from symderive.errors import ProblemFileError
    from symderive.problem import load_problem
    try:
        problem = load_problem(path)
    except ProblemFileError as exc:
        defects = [] if "\n" not in str(exc) else [f"crash: a multi-line error: {exc!s:.200}"]
        if case.expect not in (None, "unreadable"):
            defects.append(f"wrong: unreadable ({exc!s:.200}), expected {case.expect}")
        return defects
    except Exception as exc:  # noqa: BLE001 -- exactly what the fuzzing looks for
        return [f"crash: load_problem: {type(exc).__name__}: {exc!s:.200}"]
    if case.expect == "unreadable":
        return ["wrong: loaded, but the file must be refused"]
    defects = [f"crash: declaration: {e!s:.200}" for e in problem.declaration_errors if "internal error" in str(e)]
    if case.expect == "declaration" and not problem.declaration_errors:
        defects.append("wrong: a broken layer was not reported")
    ids = [q.id for q in problem.questions]
    chosen = case.question if case.question in ids else ids[sum(map(ord, case.text)) % len(ids)]
    try:
        answer = problem.solve(ids={chosen}, timeout=timeout)[0]
    except Exception as exc:  # noqa: BLE001
        return defects + [f"crash: solve: {type(exc).__name__}: {exc!s:.200}"]
    if "internal error" in answer.error or "\n" in answer.error:
        defects.append(f"crash: {answer.error:.300}")
    if case.expect == "failed" and (answer.ok or not LOCATED.search(answer.error)):
        defects.append(f"wrong: expected a located failure, got {answer.status.value} {answer.error:.200}")
    if case.expect == "answered" and not answer.ok:
        defects.append(f"wrong: expected an answer, got {answer.error:.200}")
    return defects
