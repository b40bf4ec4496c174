"""ask: text — an author-written answer for a question with no derivation (diagrams, concepts).

The sheet marks it as authored: the engine did not derive it."""
from ..answer import Kind, Result, Status
from ..authored_text import checked
from ..errors import ExpressionError


NOTHING_TO_CHECK = "authored text"
KEYS = {"answer"}

def solve(ctx):
    answer = ctx.option("answer")
    if not isinstance(answer, str) or not answer.strip():
        raise ExpressionError("ask 'text' needs an author-written 'answer'", ctx.question.line, None)
    checked(answer, "'answer': ")      # printed on the sheet; refused with its position if unsafe
    return ctx.answer([Result("", answer, answer, Kind.TEXT)], status=Status.AUTHORED)
