"""Read a student's LaTeX into a syntax tree, as a deep-learning course writes it.

latex2sympy2 alone loses meaning here (``W^T`` becomes ``W``, ``p_i`` one symbol,
``\\odot`` and ``a^{(i)<t>}`` are errors), so answers are first normalised by a
tokenizer (spacing, ``\\left``/``\\right``, font commands, Unicode symbols), then
parsed by a small recursive-descent parser into the nodes below. Nothing here
knows the problem: names are resolved against its declarations afterwards
(``meaning.py``). Every node keeps its column in the answer, so an unreadable
answer is reported with a position. Input is bounded in length, token count
and nesting depth; nothing is evaluated.
"""
import re
from dataclasses import dataclass, field

from .latex_tokens import ReadError, Tok, WORD_SEPARATORS, tokenize

MAX_DEPTH = 40


# Nodes --------------------------------------------------------------------------------

@dataclass
class Node:
    pos: int


@dataclass
class Num(Node):
    text: str


@dataclass
class Name(Node):
    """A run of letters written together (``Wx``, ``hp``, ``\\sigma``), with its scripts in order."""
    letters: list                                 # ["W", "x"] or ["sigma"]
    scripts: list = field(default_factory=list)   # [("_" | "^" | "[" | "'", node or list)]


@dataclass
class Word(Node):
    text: str
    scripts: list = field(default_factory=list)


@dataclass
class Group(Node):
    """Braces, or parentheses (``paren`` is the opening delimiter), with scripts applied to it."""
    body: Node
    paren: str = "{"
    scripts: list = field(default_factory=list)


@dataclass
class Tuple(Node):
    items: list
    paren: str = "("


@dataclass
class Bin(Node):
    op: str            # + - * / cdot times odot circ implicit
    left: Node
    right: Node


@dataclass
class Neg(Node):
    arg: Node


@dataclass
class Frac(Node):
    num: Node
    den: Node


@dataclass
class Sqrt(Node):
    arg: Node
    index: Node = None


@dataclass
class Call(Node):
    """A known function applied: \\sigma(z), \\tanh z, \\operatorname{softmax}(z), \\max(0, z)."""
    func: str
    args: list
    primes: int = 0
    power: Node = None
    sub: Node = None        # \log_2, \max_j
    scripts: list = field(default_factory=list)


@dataclass
class BigOp(Node):
    """\\sum (or \\prod) with its limits and body."""
    op: str
    sub: Node
    sup: Node
    body: Node


@dataclass
class Partial(Node):
    """``\\partial x`` (or ``d x``): one side of a derivative fraction."""
    arg: Node


@dataclass
class Nabla(Node):
    sub: Node
    arg: Node


@dataclass
class Delim(Node):
    """\\lfloor x \\rfloor, \\lceil x \\rceil, |x|, \\|x\\|."""
    kind: str
    body: Node
    scripts: list = field(default_factory=list)


@dataclass
class MatrixNode(Node):
    rows: list          # [[Node]]
    env: str


@dataclass
class Cases(Node):
    branches: list      # [(value, condition or None)]


@dataclass
class Reals(Node):
    """\\mathbb{R}^{a \\times b}: a dimension."""
    dims: list


@dataclass
class Relation(Node):
    """A chain a op b op c, used in conditions (``-1 \\le q - 2j \\le 1``) and as the top level."""
    items: list
    ops: list


@dataclass
class Conj(Node):
    """Conditions joined by 'and' or commas."""
    items: list


@dataclass
class SetNode(Node):
    items: list


@dataclass
class Dots(Node):
    pass


@dataclass
class Indicator(Node):
    """\\mathbb{1}[cond] / \\mathbb{1}_{cond}: 1 where the condition holds, else 0."""
    cond: Node


#: Functions by the name a student writes (after \\, or inside \\operatorname / \\text / \\mathrm).
FUNCTIONS = {
    "sigma": "sigmoid", "sigmoid": "sigmoid", "sigm": "sigmoid", "logistic": "sigmoid",
    "tanh": "tanh", "exp": "exp", "log": "log", "ln": "log", "sqrt": "sqrt",
    "relu": "relu", "ReLU": "relu", "Relu": "relu", "RELU": "relu",
    "softmax": "softmax", "softargmax": "softmax", "Softmax": "softmax", "SoftMax": "softmax",
    "diag": "diag", "Diag": "diag", "max": "max", "min": "min", "step": "step", "sign": "sign",
    "sgn": "sign", "floor": "floor", "ceil": "ceiling", "tr": "trace", "trace": "trace",
    "sech": "sech", "cosh": "cosh", "sinh": "sinh", "vec": "vec", "erf": "erf",
    "Tr": "trace", "det": "det", "logdet": "logdet",
}


class Parser:
    def __init__(self, tokens):
        self.toks, self.i, self.depth = tokens, 0, 0

    # Helpers ------------------------------------------------------------------------
    @property
    def tok(self):
        return self.toks[self.i]

    def peek(self, k=1):
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def at(self, kind, text=None):
        t = self.tok
        return t.kind == kind and (text is None or t.text == text)

    def take(self):
        t = self.tok
        self.i = min(self.i + 1, len(self.toks) - 1)
        return t

    def expect(self, kind, text=None, what=None):
        if not self.at(kind, text):
            self.fail(f"expected {what or text or kind}", self.tok)
        return self.take()

    def fail(self, message, tok=None):
        tok = tok or self.tok
        found = "the end" if tok.kind == "eof" else repr(_shown(tok))
        raise ReadError(f"{message}, found {found}", tok.pos)

    def enter(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ReadError(f"nested deeper than {MAX_DEPTH} levels", self.tok.pos)

    def leave(self):
        self.depth -= 1

    # Top level: parts and relations -------------------------------------------------
    def parse_answer(self):
        """A list of parts; each part a Relation (a chain of sides joined by =, \\approx, \\in ...)."""
        parts = []
        while not self.at("eof"):
            if self.at("sep") or self.at("\\\\") or self.at("op", ";") or self.at("&") \
                    or (self.at("word") and self.tok.text.lower().strip(" ,.") in WORD_SEPARATORS) \
                    or self.at("op", ","):
                self.take()
                continue
            if self.at("op", ".") and self.peek().kind == "eof":
                self.take()
                continue
            if self.at("begin", "gathered") or self.at("end", "gathered"):
                self.take()                       # the sheet's \begin{gathered}: one part a line
                continue
            if self.at("rel") and not parts and self.tok.text in ("=", "approx"):
                self.take()                       # "\approx 1.386": a value written after its (omitted) left side
                continue
            if self.at("rel") and parts:          # "&= ..." continues the previous line's chain
                op = self.take().text
                rhs = self.parse_side()
                parts[-1].items.append(rhs)
                parts[-1].ops.append(op)
            else:
                parts.append(self.parse_relation())
        return parts

    def parse_relation(self):
        pos = self.tok.pos
        items, ops = [self.parse_side()], []
        while self.at("rel") or (self.at("op", ":") and len(items) == 1):
            ops.append("=" if self.tok.text == ":" else self.tok.text)
            self.take()
            items.append(self.parse_side())
        return Relation(pos, items, ops)

    def parse_side(self):
        return self.parse_expr()

    # Expressions --------------------------------------------------------------------
    def parse_expr(self, first=None):
        self.enter()
        try:
            pos = self.tok.pos
            if first is not None:
                left = self.parse_term(first)
            elif self.at("op", "+"):
                self.take()
                left = self.parse_term()
            elif self.at("op", "-"):
                self.take()
                left = Neg(pos, self.parse_term())
            else:
                left = self.parse_term()
            while self.at("op", "+") or self.at("op", "-"):
                op = self.take()
                right = self.parse_term()
                left = Bin(op.pos, op.text, left, right)
            return left
        finally:
            self.leave()

    PRODUCT_OPS = {"cdot": "cdot", "times": "times", "odot": "odot", "circ": "odot", "ast": "*", "div": "/",
                   "otimes": "otimes", "bmod": "mod", "mod": "mod"}

    def parse_term(self, first=None):
        self.enter()
        try:
            left = self.parse_factor() if first is None else first
            while True:
                t = self.tok
                if t.kind == "op" and t.text == "/" and self.peek().kind == "op" and self.peek().text == "/" \
                        and not self.peek().space:       # 8 // 2: integer division, as in Python
                    self.take()
                    self.take()
                    left = Bin(t.pos, "//", left, self.parse_signed_factor())
                elif t.kind == "op" and t.text in "*/":
                    self.take()
                    left = Bin(t.pos, t.text, left, self.parse_signed_factor())
                elif t.kind == "op" and t.text == "%":    # j \% 3: the remainder (25\% alone is a percentage)
                    self.take()
                    left = Bin(t.pos, "mod", left, self.parse_signed_factor())
                elif t.kind == "cmd" and t.text in self.PRODUCT_OPS:
                    self.take()
                    left = Bin(t.pos, self.PRODUCT_OPS[t.text], left, self.parse_signed_factor())
                elif self.starts_factor():
                    left = Bin(t.pos, "implicit", left, self.parse_factor())
                else:
                    return left
        finally:
            self.leave()

    def parse_signed_factor(self):
        if self.at("op", "-"):
            t = self.take()
            return Neg(t.pos, self.parse_factor())
        if self.at("op", "+"):
            self.take()
        return self.parse_factor()

    def starts_factor(self):
        t = self.tok
        if t.kind in ("num", "letter", "{", "(", "begin"):
            return True
        if t.kind == "[":
            return False
        if t.kind == "word":
            return t.text.lower().strip(" ,.") not in WORD_SEPARATORS and not _is_condition_word(t.text)
        if t.kind == "cmd":
            if t.text in ("|", "Vert", "rVert", "rvert"):
                return t.text in ("|", "Vert") and not self._closing_norm()
            return t.text not in self.PRODUCT_OPS and t.text not in STOPS
        if t.kind == "op" and t.text == "|":
            return not self._closing_bar()
        return False

    def _operand_follows(self):
        """After ``%``: does an operand follow (``j \\% 3``, a remainder) or not (``25\\%``, a percentage)?"""
        nxt = self.peek()
        return nxt.kind in ("num", "letter", "(", "{") or (nxt.kind == "cmd" and nxt.text in GREEK)

    def _closing_bar(self):
        return getattr(self, "_bars", 0) > 0

    def _closing_norm(self):
        return getattr(self, "_norms", 0) > 0

    def parse_factor(self):
        self.enter()
        try:
            node = self.parse_primary()
            return self.parse_postfix(node)
        finally:
            self.leave()

    def parse_postfix(self, node):
        while True:
            t = self.tok
            if t.kind in ("^", "_"):
                self.take()
                arg = self.parse_script_arg()
                node = self.attach(node, (t.kind, arg), t)
            elif t.kind == "op" and t.text == "'":
                self.take()
                node = self.attach(node, ("'", None), t)
            elif t.kind == "op" and t.text == "%" and isinstance(node, Num) and not self._operand_follows():
                self.take()
                node = Bin(t.pos, "/", node, Num(t.pos, "100"))
            elif t.kind == "[" and not t.space and isinstance(node, Frac):
                # \frac{\partial l}{\partial W_x}[i][j]: an entry of a derivative (a left side)
                node = Group(node.pos, node, "{")
            elif t.kind == "[" and not t.space and isinstance(node, (Name, Word, Group)):
                self.take()
                items = self.parse_list("]")
                self.expect("]")
                node = self.attach(node, ("[", items), t)
            else:
                return node

    def attach(self, node, script, tok):
        if isinstance(node, (Name, Word, Group, Call, Delim)):
            node.scripts.append(script)
            return node
        if isinstance(node, Num) and script[0] == "^":
            return Group(node.pos, node, "{", [script])
        if isinstance(node, MatrixNode) and script[0] in "^'":
            return Group(node.pos, node, "{", [script])
        self.fail("a sub- or superscript here is not understood", tok)

    def parse_script_arg(self):
        """The argument of ^ or _: a braced group, or one token (x^2, W^T, a_i, x_{t-1})."""
        t = self.tok
        if t.kind == "{":
            self.take()
            if self.at("}"):
                self.take()
                return Group(t.pos, None)
            body = self.parse_script_body("}")
            self.expect("}")
            return body
        if t.kind in ("num", "letter"):          # x^23 is x^2 3 in LaTeX: one digit
            return self.one_token_argument()
        if t.kind == "cmd":
            if t.text in ("top", "intercal", "prime", "ast", "star", "dagger", "circ"):
                self.take()
                return Word(t.pos, {"top": "T", "intercal": "T", "prime": "'", "ast": "*", "star": "*",
                                    "dagger": "T", "circ": "circ"}[t.text])
            self.take()
            return self.command_primary(t)
        if t.kind == "word":
            self.take()
            return Word(t.pos, t.text)
        if t.kind == "op" and t.text in "+-*":
            self.take()
            return Word(t.pos, t.text)
        self.fail("expected a sub- or superscript")

    def parse_script_body(self, close):
        """Inside {...} of a script: a comma list, a relation (i=1), or ⟨t⟩ / (i) / [l] / <t>."""
        pos = self.tok.pos
        items = [self.parse_script_item()]
        while self.at("op", ","):
            self.take()
            items.append(self.parse_script_item())
        if len(items) == 1:
            return items[0]
        return Tuple(pos, items, ",")

    def parse_script_item(self):
        """One comma item of a script: ⟨t⟩, (i), [l] (several may follow each other), T, ', or an
        expression or relation (i=1)."""
        pos = self.tok.pos
        parts = []
        while True:
            if self.at("rel", "<") and self._angle_ahead():
                self.take()
                inner = self.parse_expr()
                self.expect("rel", ">", "'>'")
                parts.append(Group(pos, inner, "<"))
            elif self.at("cmd", "langle"):
                self.take()
                inner = self.parse_expr()
                self.expect("cmd", "rangle", r"\rangle")
                parts.append(Group(pos, inner, "<"))
            elif (self.at("(") or self.at("[")) and not parts or (parts and (self.at("(") or self.at("["))):
                group = self.parse_primary()
                if self.at("}") or self.at("op", ",") or self.at("rel", "<") or self.at("cmd", "langle") \
                        or self.at("(") or self.at("["):
                    parts.append(group)
                else:                                  # (a+b)c: an expression after all
                    parts.append(self.parse_expr(self.parse_postfix(group)))
            elif self.at("word") and self.tok.text in ("T", "\\top") and not parts:
                t = self.take()
                parts.append(Word(t.pos, "T"))
            elif self.at("cmd") and self.tok.text in ("top", "intercal", "prime", "mathsf"):
                t = self.take()
                parts.append(Word(t.pos, "'" if t.text == "prime" else "T"))
            elif self.at("op", "'"):
                t = self.take()
                parts.append(Word(t.pos, "'"))
            elif self.at("cmd", "circ") and not parts:        # A^{\circ 2}: the entrywise power
                t = self.take()
                parts.append(Bin(t.pos, "implicit", Word(t.pos, "circ"), self.parse_expr()))
            else:
                expr = self.parse_relation()
                parts.append(expr.items[0] if not expr.ops else expr)
            if not (self.at("rel", "<") and self._angle_ahead() or self.at("cmd", "langle") or self.at("(")
                    or self.at("[")):
                break
        return parts[0] if len(parts) == 1 else Tuple(pos, parts, "script")

    def _angle_ahead(self):
        depth = 0
        for k in range(self.i + 1, min(self.i + 40, len(self.toks))):
            t = self.toks[k]
            if t.kind in ("{", "(", "["):
                depth += 1
            elif t.kind in ("}", ")", "]"):
                if depth == 0:
                    return False
                depth -= 1
            elif t.kind == "rel" and t.text == ">" and depth == 0:
                return True
            elif t.kind == "eof":
                return False
        return False

    def parse_list(self, close, separators=(",",)):
        """Comma-separated expressions up to ``close`` (not consumed)."""
        items = [self.parse_condition_or_expr()]
        while any(self.at("op", sep) for sep in separators):
            self.take()
            items.append(self.parse_condition_or_expr())
        return items

    def parse_condition_or_expr(self):
        rel = self.parse_relation()
        return rel.items[0] if not rel.ops else rel

    # Primaries ---------------------------------------------------------------------
    def parse_primary(self):
        t = self.tok
        if t.kind == "num":
            self.take()
            return Num(t.pos, t.text)
        if t.kind == "letter":
            letters = [self.take().text]
            while self.at("letter") and not self.tok.space and ":" not in self.tok.text \
                    and ":" not in letters[-1]:
                letters.append(self.take().text)
            return Name(t.pos, letters)
        if t.kind == "word":
            self.take()
            return self.word_primary(t)
        if t.kind == "{":
            self.take()
            if self.at("}"):
                self.fail("empty braces")
            body = self.parse_group_body("}")
            self.expect("}", what="'}'")
            return Group(t.pos, body, "{")
        if t.kind == "(" or t.kind == "[":
            close = ")" if t.kind == "(" else "]"
            self.take()
            # (0;0): a semicolon separates too, as in the sheet's block labels B^{(0;0)} (rows; columns)
            items = self.parse_list(close, (",", ";") if t.kind == "(" else (",",))
            if not self.at(close) and t.kind == "(" and self.at("]"):
                close = "]"                      # half-open intervals are not expressions anyway
            self.expect(close, what=f"'{close}'")
            if len(items) > 1:
                return Tuple(t.pos, items, t.kind)
            return Group(t.pos, items[0], t.kind)
        if t.kind == "op" and t.text == "|":
            self.take()
            self._bars = getattr(self, "_bars", 0) + 1
            try:
                body = self.parse_expr()
            finally:
                self._bars -= 1
            self.expect("op", "|", "a closing '|'")
            return Delim(t.pos, "abs", body)
        if t.kind == "begin":
            return self.environment()
        if t.kind == "cmd":
            self.take()
            return self.command_primary(t)
        if t.kind == "op" and t.text == "-":
            self.take()
            return Neg(t.pos, self.parse_factor())
        self.fail("expected a number, a name or '('")

    def parse_group_body(self, close):
        """The inside of { }: an expression, or a relation (used in \\sum_{i=1} and conditions)."""
        items = self.parse_list(close)
        if len(items) > 1:
            return Tuple(items[0].pos, items, ",")
        return items[0]

    def word_primary(self, t):
        name = t.text.strip()
        key = name.replace(" ", "")
        if key in FUNCTIONS or key.lower() in ("relu", "softmax", "softargmax", "sigmoid", "diag"):
            return self.function(t, FUNCTIONS.get(key) or FUNCTIONS.get(key.lower()) or key.lower())
        return Word(t.pos, name)

    def command_primary(self, t):
        name = t.text
        if name in ("frac", "dfrac", "tfrac", "cfrac"):
            num = self.braced_or_token()
            den = _merged_partials(self.braced_or_token())
            if isinstance(num, Name) and num.letters == ["d"] and not num.scripts and isinstance(den, Name) \
                    and len(den.letters) > 1 and den.letters[0] == "d" and self.starts_factor():
                num = Partial(num.pos, None)      # \frac{d}{dx} f: the operator form with d
            if isinstance(num, Partial) and num.arg is None:
                # the operator form \frac{\partial}{\partial z} f: the derivative of the operand after it
                if not self.starts_factor():
                    self.fail(r"\frac{\partial}{\partial ...} needs what it differentiates after it", t)
                return Frac(t.pos, Partial(num.pos, self.parse_factor()), den)
            return Frac(t.pos, num, den)
        if name == "sqrt":
            index = None
            if self.at("["):
                self.take()
                index = self.parse_expr()
                self.expect("]")
            return Sqrt(t.pos, self.braced_or_token(), index)
        if name in ("sum", "prod"):
            return self.big_operator(t)
        if name in FUNCTIONS:
            return self.function(t, FUNCTIONS[name])
        if name == "partial":
            if self.at("^"):                  # \partial^2 J: a second derivative (the order is in the denominator)
                self.take()
                self.parse_script_arg()
            if self.at("}"):                  # \frac{\partial}{\partial z}: the operator form
                return Partial(t.pos, None)
            return Partial(t.pos, self.parse_factor())
        if name == "nabla":
            sub = None
            for _ in range(2):                # \nabla_w, \nabla^2_w, \nabla_w^2 (a Hessian)
                if self.at("_") and sub is None:
                    self.take()
                    sub = self.parse_script_arg()
                elif self.at("^"):
                    self.take()
                    self.parse_script_arg()
            return Nabla(t.pos, sub, self.parse_factor())
        if name in ("lfloor", "lceil"):
            body = self.parse_expr()
            self.expect("cmd", "rfloor" if name == "lfloor" else "rceil",
                        r"\rfloor" if name == "lfloor" else r"\rceil")
            return Delim(t.pos, "floor" if name == "lfloor" else "ceiling", body)
        if name in ("lvert", "vert"):
            body = self.parse_expr()
            self.expect("cmd", "rvert" if name == "lvert" else "vert", "a closing bar")
            return Delim(t.pos, "abs", body)
        if name in ("|", "Vert", "lVert"):
            self._norms = getattr(self, "_norms", 0) + 1
            try:
                body = self.parse_expr()
            finally:
                self._norms -= 1
            if not (self.at("cmd", "|") or self.at("cmd", "Vert") or self.at("cmd", "rVert")):
                self.fail("expected a closing \\|")
            self.take()
            return Delim(t.pos, "norm", body)
        if name == "langle":
            body = self.parse_expr()
            self.expect("cmd", "rangle", r"\rangle")
            return Group(t.pos, body, "<")
        if name == "l{":
            items = self.parse_list("r}")
            self.expect("cmd", "r}", r"\}")
            return SetNode(t.pos, items)
        if name in ("dots", "ldots", "cdots"):
            return Dots(t.pos)
        if name == "substack":                  # \sum_{\substack{1 \le k \le 3 \\ 1 \le c \le 2}}: one range a line
            self.expect("{", what="'{' after \\substack")
            lines = [self.parse_relation()]
            while self.at("\\\\"):
                self.take()
                lines.append(self.parse_relation())
            self.expect("}", what="'}'")
            return Tuple(t.pos, lines, "substack")
        if name.startswith("mathbb:"):
            what = name.split(":", 1)[1]
            if what == "R":
                dims = []
                if self.at("^"):
                    self.take()
                    dims = self.dims_arg()
                return Reals(t.pos, dims)
            if what in ("1", "I"):
                if self.at("_"):
                    self.take()
                    return Indicator(t.pos, self.parse_script_arg())
                if self.at("[") or self.at("(") or self.at("cmd", "l{"):
                    close = {"[": "]", "(": ")"}.get(self.tok.kind)
                    self.take()
                    cond = self.parse_condition_or_expr()
                    if close:
                        self.expect(close)
                    else:
                        self.expect("cmd", "r}", r"\}")
                    return Indicator(t.pos, cond)
                return Num(t.pos, "1")
            self.fail(f"\\mathbb{{{what}}} is not understood here", t)
        if name == "infty":
            return Word(t.pos, "infty")
        if name in ("top", "intercal"):
            return Word(t.pos, "T")
        if name in ("cdot", "times", "odot", "circ"):
            self.fail(f"\\{name} needs something on its left", t)
        if re.fullmatch(r"[A-Za-z]+", name) and name in GREEK:
            return Name(t.pos, [name])
        if name == "ell":
            return Name(t.pos, ["ell"])
        if name == "mathsf":
            return Word(t.pos, "T")
        raise ReadError(f"the command \\{name} is not understood", t.pos)

    def braced_or_token(self):
        t = self.tok
        if t.kind == "{":
            self.take()
            body = self.parse_group_body("}")
            self.expect("}", what="'}'")
            return body
        if t.kind in ("num", "letter"):          # \frac12 is 1/2
            return self.one_token_argument()
        if t.kind == "cmd":
            self.take()
            return self.command_primary(t)
        self.fail("expected an argument in braces")

    def one_token_argument(self):
        """An unbraced argument: one letter or one digit (the rest of a number stays for later)."""
        t = self.take()
        if t.kind == "letter":
            return Name(t.pos, [t.text])
        if len(t.text) > 1 and "." not in t.text:
            self.toks.insert(self.i, Tok("num", t.text[1:], t.pos + 1))
            return Num(t.pos, t.text[0])
        return Num(t.pos, t.text)

    def dims_arg(self):
        """The exponent of \\mathbb{R}: sizes joined by \\times (or a comma list)."""
        t = self.tok
        if t.kind == "{":
            self.take()
            dims = [self.parse_dim()]
            while self.at("cmd", "times") or self.at("op", ",") or self.at("op", "*"):
                self.take()
                dims.append(self.parse_dim())
            self.expect("}", what="'}'")
            return dims
        return [self.parse_script_arg()]

    def parse_dim(self):
        """One size: an additive expression whose products are not joined by \\times."""
        self.enter()
        try:
            pos = self.tok.pos
            left = Neg(pos, self.dim_term()) if self.at("op", "-") and self.take() else self.dim_term()
            while self.at("op", "+") or self.at("op", "-"):
                op = self.take()
                left = Bin(op.pos, op.text, left, self.dim_term())
            return left
        finally:
            self.leave()

    def dim_term(self):
        left = self.parse_factor()
        while True:
            t = self.tok
            if t.kind == "op" and t.text in "/":
                self.take()
                left = Bin(t.pos, "/", left, self.parse_factor())
            elif t.kind == "cmd" and t.text == "cdot":
                self.take()
                left = Bin(t.pos, "*", left, self.parse_factor())
            elif self.starts_factor():
                left = Bin(t.pos, "implicit", left, self.parse_factor())
            else:
                return left

    def big_operator(self, t):
        sub = sup = None
        for _ in range(2):
            if self.at("_") and sub is None:
                self.take()
                sub = self.parse_script_arg()
            elif self.at("^") and sup is None:
                self.take()
                sup = self.parse_script_arg()
        if self.at("eof") or self.at("op", "+") or self.at("rel"):
            self.fail("a sum needs a body", self.tok)
        body = self.sum_body()
        return BigOp(t.pos, t.text, sub, sup, body)

    def sum_body(self):
        """The body of a sum: the product that follows (up to + or -)."""
        if self.at("op", "-"):
            t = self.take()
            return Neg(t.pos, self.parse_term())
        return self.parse_term()

    def function(self, t, func):
        primes, power, sub = 0, None, None
        while True:
            if self.at("op", "'"):
                self.take()
                primes += 1
            elif self.at("^"):
                self.take()
                arg = self.parse_script_arg()
                if isinstance(arg, Word) and arg.text == "'":
                    primes += 1
                else:
                    power = arg
            elif self.at("_"):
                self.take()
                sub = self.parse_script_arg()
            else:
                break
        if self.at("(") or self.at("["):
            close = ")" if self.at("(") else "]"
            self.take()
            args = self.parse_list(close)
            self.expect(close, what=f"'{close}'")
        elif self.at("{"):
            self.take()
            args = [self.parse_expr()]
            self.expect("}", what="'}'")
        elif self.starts_factor():
            args = [self.parse_factor()]       # \tanh x, \log 4: the next factor
        else:                                  # \sigma^2 as a name (a variance), not a call
            scripts = [("'", None)] * primes + ([("^", power)] if power is not None else []) \
                + ([("_", sub)] if sub is not None else [])
            return Name(t.pos, [t.text], scripts)
        call = Call(t.pos, func, args, primes, power, sub)
        return call

    # Environments -------------------------------------------------------------------
    def environment(self):
        t = self.take()
        env = t.text
        if env in ("bmatrix", "pmatrix", "matrix", "Bmatrix", "vmatrix", "smallmatrix", "array"):
            if env == "array" and self.at("{"):
                self.take()
                while not self.at("}") and not self.at("eof"):
                    self.take()
                self.expect("}")
            rows, row = [], []
            while True:
                if self.at("end"):
                    break
                if self.at("eof"):
                    self.fail(f"\\begin{{{env}}} without \\end{{{env}}}", t)
                row.append(self.parse_expr())
                if self.at("&"):
                    self.take()
                elif self.at("\\\\"):
                    self.take()
                    rows.append(row)
                    row = []
                elif not self.at("end"):
                    self.fail("expected '&', '\\\\' or \\end in a matrix")
            if row:
                rows.append(row)
            end = self.expect("end", what=f"\\end{{{env}}}")
            if end.text != env:
                self.fail(f"\\begin{{{env}}} closed by \\end{{{end.text}}}", end)
            if env == "vmatrix":
                raise ReadError("determinants (vmatrix) are not supported", t.pos)
            if not rows or len({len(r) for r in rows}) != 1:
                raise ReadError("every row of a matrix needs the same number of entries", t.pos)
            return self.parse_postfix(Group(t.pos, MatrixNode(t.pos, rows, env), "{"))
        if env == "cases":
            branches = []
            while not self.at("end"):
                if self.at("eof"):
                    self.fail("\\begin{cases} without \\end{cases}", t)
                value = self.parse_expr()
                cond = None
                if self.at("&"):
                    self.take()
                    cond = self.parse_condition()
                branches.append((value, cond))
                if self.at("\\\\"):
                    self.take()
            self.expect("end", "cases", r"\end{cases}")
            return Cases(t.pos, branches)
        raise ReadError(f"the environment {env} is not understood here", t.pos)

    def parse_condition(self):
        """A condition in cases: 'if', relations joined by commas or 'and'; 'otherwise' is None."""
        items = []
        while not (self.at("\\\\") or self.at("end") or self.at("eof")):
            if self.at("word"):
                word = self.tok.text.lower().strip(" ,.")
                self.take()
                if word in ("otherwise", "else", "sonst", "elsewhere"):
                    return None
                continue
            if self.at("op", ","):
                self.take()
                continue
            items.append(self.parse_relation())
        if not items:
            return None
        return items[0] if len(items) == 1 else Conj(items[0].pos, items)


STOPS = {"rfloor", "rceil", "rangle", "r}", "dots", "ldots", "cdots", "vdots", "ddots", "top"}
GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta",
         "iota", "kappa", "lambda", "mu", "nu", "xi", "pi", "rho", "varrho", "sigma", "tau", "upsilon",
         "phi", "varphi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma",
         "Upsilon", "Phi", "Psi", "Omega"}


def _is_condition_word(text):
    return text.lower().strip(" ,.:") in ("if", "for", "when", "otherwise", "else", "for all", "where")


def _shown(tok):
    if tok.kind == "cmd":
        return "\\" + tok.text
    if tok.kind in ("begin", "end"):
        return f"\\{tok.kind}{{{tok.text}}}"
    return tok.text


def _merged_partials(den):
    r"""``\partial w_p \, \partial w_q`` (the denominator of a second derivative) as one ∂ of ``w_{p,q}``:
    the variable's indices in order, as the engine's Hessian entry ∂²J/∂w_p∂w_q has them."""
    factors, node = [], den
    while isinstance(node, Bin) and node.op == "implicit" and isinstance(node.right, Partial):
        factors.insert(0, node.right)
        node = node.left
    if not factors or not isinstance(node, Partial):
        return den
    factors.insert(0, node)
    names = [f.arg.body if isinstance(f.arg, Group) and f.arg.paren == "{" and isinstance(f.arg.body, Name)
             and not f.arg.scripts else f.arg for f in factors]
    if not all(isinstance(n, Name) for n in names) or len({tuple(n.letters) for n in names}) != 1:
        return den
    items = []
    for n in names:
        if len(n.scripts) != 1 or n.scripts[0][0] != "_":
            return den
        arg = n.scripts[0][1]
        items += list(arg.items) if isinstance(arg, Tuple) and arg.paren == "," else [arg]
    return Partial(den.pos, Name(names[0].pos, names[0].letters, [("_", Tuple(names[0].pos, items, ","))]))


# Entry point ------------------------------------------------------------------------

MATH_WRAPPERS = [(r"\[", r"\]"), (r"\(", r"\)"), ("$$", "$$"), ("$", "$")]
DISPLAY_ENVS = ("equation", "equation*", "align", "align*", "gather", "gather*", "aligned", "split",
                "multline", "multline*", "displaymath", "math", "eqnarray", "eqnarray*")


def strip_math(text):
    """The math inside the answer: $...$ spans, \\[...\\], display environments (joined as parts)."""
    text = text.strip()
    offset = 0
    for env in DISPLAY_ENVS:
        begin, end = f"\\begin{{{env}}}", f"\\end{{{env}}}"
        if text.startswith(begin) and text.endswith(end):
            return text[len(begin):-len(end)], offset + len(begin)
    for left, right in MATH_WRAPPERS:
        if text.startswith(left) and text.endswith(right) and len(text) >= len(left) + len(right):
            inner = text[len(left):-len(right)]
            if left == "$" and "$" in inner:
                break
            return inner, len(left)
    if "$" in text:            # prose with math spans: keep the math, one part per span
        spans = [(m.group(1) or m.group(2), m.start(1) if m.group(1) is not None else m.start(2))
                 for m in re.finditer(r"\$\$(.+?)\$\$|\$(.+?)\$", text, re.S)]
        if spans:
            joined, mapping = "", []
            for body, start in spans:
                mapping.append((len(joined), start))
                joined += body + r" \\ "
            return joined, spans[0][1]
    return text, 0


def read(text):
    """Parse an answer: (parts, offset), each part a Relation; ReadError with a position otherwise."""
    if not isinstance(text, str):
        raise ReadError("the answer is not text", 0)
    body, offset = strip_math(text)
    try:
        tokens = tokenize(body)
        if len(tokens) == 1:
            raise ReadError("the answer is empty", 0)
        parser = Parser(tokens)
        parts = parser.parse_answer()
    except ReadError as exc:
        if exc.pos is not None:
            exc.pos += offset
        raise
    except RecursionError:
        raise ReadError(f"nested deeper than {MAX_DEPTH} levels", offset) from None
    return parts
