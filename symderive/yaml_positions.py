"""YAML loading that remembers where each string and mapping came from.

Errors in a problem file name the line and column, so every string read from
the file is a ``Located`` str carrying its position.
"""
import yaml


class Located(str):
    """A str with the 1-based line and column where its YAML scalar starts."""
    line = None
    column = None
    quoted = False


class LocatedDict(dict):
    line = None
    column = None


class _Loader(yaml.SafeLoader):
    pass


def _construct_str(loader, node):
    value = Located(loader.construct_scalar(node))
    value.line, value.column = node.start_mark.line + 1, node.start_mark.column + 1
    value.quoted = node.style in ("'", '"')
    return value


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


_Loader.add_constructor("tag:yaml.org,2002:str", _construct_str)
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)


def load(text):
    """Parse YAML text (safe subset) keeping positions."""
    return yaml.load(text, Loader=_Loader)


def position(value):
    """(line, column) of a located value, or (None, None)."""
    return getattr(value, "line", None), getattr(value, "column", None)


def inner_position(value, line, column):
    """File position of (line, column) inside a located expression string.

    Exact for strings on one line; for quoted strings it skips the quote.
    """
    start_line, start_col = position(value)
    if start_line is None or line is None:
        return start_line, start_col
    if line > 1:
        return start_line + line - 1, column
    return start_line, start_col + (column or 1) - 1 + (1 if getattr(value, "quoted", False) else 0)
