"""Errors that name where the bad input is: file, question and position."""


class SymderiveError(Exception):
    """Base class; ``location`` is filled in as the error travels up."""

    def __init__(self, message, line=None, column=None, *, file=None, question=None):
        super().__init__(message)
        self.message = message
        self.file, self.question, self.line, self.column = file, question, line, column

    def located(self, *, file=None, question=None, line=None, column=None):
        """Fill in location fields that are still unknown; returns self."""
        self.file = self.file or file
        self.question = self.question or question
        if self.line is None:
            self.line, self.column = line, column
        return self

    def __str__(self):
        where = ""
        if self.file:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        elif self.line is not None:
            where = f"line {self.line}, column {self.column}: "
        if self.question:
            where += f"question {self.question}: "
        return where + self.message


class ProblemFileError(SymderiveError):
    """The file cannot be read as a problem at all (exit status 2)."""


class ExpressionError(SymderiveError):
    """An expression is malformed, undeclared or outside the whitelist."""


class ShapeError(SymderiveError):
    """Sizes do not fit (kernel larger than the padded input, bad stride...)."""


class QuestionTimeout(SymderiveError):
    """A question took longer than its time limit."""


class VerifyError(Exception):
    """A cross-check could not be carried out (not a disagreement)."""
