"""YAML loading that remembers where each string and mapping came from.

Errors in a problem file name the line and column, so every string read from
the file is a ``Located`` str carrying its position.
"""
import re

import yaml

try:                      # libyaml's parser (PyYAML's C extension): scanning and parsing in C
    from yaml._yaml import CParser
except ImportError:       # pragma: no cover - PyYAML built without libyaml
    CParser = None


class Located(str):
    """A str with the 1-based line and column where its YAML scalar starts, and where each
    of its source lines starts (``segments``: (offset in the value, file line, file column))."""
    line = None
    column = None
    segments = ()


class LocatedDict(dict):
    line = None
    column = None


#: Nesting a problem or answers file may have (real files need fewer than 15 levels).
MAX_NESTING = 100
#: Values a document may hold once its aliases are expanded (a 1 MB file without aliases
#: holds fewer): ten levels of nine aliases each would otherwise expand to 9**10 values.
MAX_EXPANDED = 500_000


class BoundedComposer:
    """A composer mix-in that refuses, with the position, documents nested deeper than
    ``MAX_NESTING``, recursive aliases, and aliases that expand beyond ``MAX_EXPANDED``
    values. PyYAML's composer recurses once per level (50,000 ``[`` overflow Python's
    stack), and an alias costs one node but expands to its whole subtree wherever the
    document is walked or printed.

    >>> load("a: &x [1, 2]\\nb: [*x, *x]")
    {'a': [1, 2], 'b': [[1, 2], [1, 2]]}
    >>> try:
    ...     load("a: " + "[" * 200)
    ... except yaml.YAMLError as exc:
    ...     print(exc.problem, exc.problem_mark.column)
    nested too deeply (more than 100 levels) 102
    """

    def compose_node(self, parent, index):
        sizes = self.__dict__.setdefault("_expanded", {})
        depth = self.__dict__.get("_depth", 0) + 1
        event = self.peek_event()
        if depth > MAX_NESTING:
            raise yaml.composer.ComposerError(None, None, f"nested too deeply (more than {MAX_NESTING} levels)",
                                              event.start_mark)
        if isinstance(event, yaml.AliasEvent):
            node = self.anchors.get(event.anchor)
            if node is not None and id(node) not in sizes:
                raise yaml.composer.ComposerError(None, None, f"alias *{event.anchor} refers to a value that "
                                                  "contains it", event.start_mark)
        self._depth = depth
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth = depth - 1
        if id(node) not in sizes:
            children = (node.value if isinstance(node, yaml.SequenceNode) else
                        [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else ())
            sizes[id(node)] = 1 + sum(sizes.get(id(child), 1) for child in children)
            if sizes[id(node)] > MAX_EXPANDED:
                raise yaml.composer.ComposerError(None, None, f"aliases expand to more than {MAX_EXPANDED:,} "
                                                  "values", node.start_mark)
        return node


#: What YAML counts as a line break (its marks count lines by these).
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


class _Text:
    """The document's text, to cut a scalar's source out of it by its marks' (line, column)."""

    def __init__(self, text):
        self.text = text
        self._line_starts = None

    def between(self, start, end):
        if self._line_starts is None:
            self._line_starts = [0] + [m.end() for m in _LINE_BREAK.finditer(self.text)]
        starts = self._line_starts
        return self.text[starts[start.line] + start.column:starts[end.line] + end.column]


class _Loader(BoundedComposer, yaml.SafeLoader):
    """The pure-Python loader (PyYAML's reader, scanner and parser)."""

    def __init__(self, text):
        super().__init__(text)
        self.source = _Text(text)


if CParser is not None:
    class _FastLoader(BoundedComposer, yaml.composer.Composer, CParser, yaml.constructor.SafeConstructor,
                      yaml.resolver.Resolver):
        """libyaml scans and parses (about 5x faster than PyYAML's Python reader and scanner); the
        nodes are still composed in Python, so ``BoundedComposer`` refuses deep nesting and alias
        bombs exactly as in ``_Loader``. libyaml's marks carry no buffer, so scalars' source lines
        are cut from the text by (line, column)."""

        def __init__(self, text):
            CParser.__init__(self, text)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            yaml.composer.Composer.__init__(self)
            self.source = _Text(text)
else:                     # pragma: no cover
    _FastLoader = _Loader


def _construct_str(loader, node):
    value = Located(loader.construct_scalar(node))
    value.line, value.column = node.start_mark.line + 1, node.start_mark.column + 1
    value.segments = _segments(node, loader.source)
    return value


def _segments(node, source):
    """Where each source line of a scalar's content starts in the file.

    Plain and quoted scalars start at the node (after the quote); block scalars
    (``|``, ``>``) start on the line after the indicator, at their indentation;
    continuation lines start at their first non-blank character. The value joins
    the lines with one character (a space or a newline), so offsets advance by
    each line's stripped length plus one.
    """
    mark, end = node.start_mark, node.end_mark
    if mark.line == end.line and node.style not in ("|", ">"):
        return ((0, mark.line + 1, mark.column + 1 + (1 if node.style in ("'", '"') else 0)),)
    raw = source.between(mark, end)
    lines = raw.split("\n")
    segments, offset = [], 0
    if node.style in ("|", ">"):
        first_line, body = mark.line + 2, lines[1:]
    else:
        first_col = mark.column + 1 + (1 if node.style in ("'", '"') else 0)
        head = lines[0][1:] if node.style in ("'", '"') else lines[0]
        segments.append((0, mark.line + 1, first_col))
        offset = len(head.rstrip()) + 1
        first_line, body = mark.line + 2, lines[1:]
    for n, text in enumerate(body):
        stripped = text.lstrip(" \t")
        if not stripped.strip():
            continue
        segments.append((offset, first_line + n, len(text) - len(stripped) + 1))
        offset += len(stripped.rstrip()) + 1
    return tuple(segments) or ((0, mark.line + 1, mark.column + 1),)


def _construct_map(loader, node):
    loader.flatten_mapping(node)
    out = LocatedDict()
    out.line, out.column = node.start_mark.line + 1, node.start_mark.column + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark) from None
        out[key] = loader.construct_object(value_node, deep=True)
    return out


for _loader in {_Loader, _FastLoader}:
    _loader.add_constructor("tag:yaml.org,2002:str", _construct_str)
    _loader.add_constructor("tag:yaml.org,2002:map", _construct_map)


def load(text, loader=_FastLoader):
    """Parse YAML text (safe subset) keeping positions. ``loader``: ``_Loader`` for PyYAML's
    pure-Python parser, which gives the same result. A document libyaml refuses is read again
    by the pure-Python parser, so that errors (message and position) are those of one parser:
    libyaml, for one, refuses 1000 nested brackets while scanning ahead, before the composer
    sees the 101st level."""
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError:
        if loader is _Loader:
            raise
        return yaml.load(text, Loader=_Loader)


def position(value):
    """(line, column) of a located value, or (None, None)."""
    return getattr(value, "line", None), getattr(value, "column", None)


def inner_position(value, line, column):
    r"""File position of (line, column), 1-based, inside a located expression string.

    >>> doc = load("a: >-\n  1 +\n  zz\nb: '2*y'\n")
    >>> inner_position(doc["a"], 1, 5), inner_position(doc["b"], 1, 3)
    ((3, 3), (4, 7))
    """
    start_line, start_col = position(value)
    if start_line is None or line is None:
        return start_line, start_col
    text = str(value).strip()
    lead = len(str(value)) - len(str(value).lstrip())
    offset = lead + sum(len(l) + 1 for l in text.split("\n")[:line - 1]) + (column or 1) - 1
    segments = getattr(value, "segments", ()) or ((0, start_line, start_col),)
    seg_offset, seg_line, seg_col = max((s for s in segments if s[0] <= offset), default=segments[0])
    return seg_line, seg_col + offset - seg_offset


def key_position(mapping, key):
    """(line, column) of ``key`` in a loaded mapping (the key itself carries its position)."""
    for k in mapping:
        if k == key:
            return position(k)
    return getattr(mapping, "line", None), getattr(mapping, "column", None)


def locate(error, value):
    """Translate an error's in-expression position into a file position."""
    line, column = inner_position(value, error.line, error.column)
    error.line, error.column = None, None
    return error.located(line=line, column=column)
