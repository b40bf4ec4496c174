"""Declared names as a course writes them with scripts: W_x or W^{(1)} for the tensor Wx or
W1, and W_{c,ij} for a name part followed by indices."""
from . import reader as R


def join_name(name, script, ctx):
    """The declared name that ``name`` and a first script make together (W_x -> Wx, W^{(1)} -> W1)."""
    kind, arg = script
    text = None
    if kind == "_" and isinstance(arg, (R.Name, R.Num, R.Word)) and not getattr(arg, "scripts", None):
        # W_{\mathrm{hr}} (a word) as well as W_x
        text = "".join(arg.letters) if isinstance(arg, R.Name) else arg.text.strip()
    elif kind == "^" and isinstance(arg, R.Group) and arg.paren in ("(", "[") and isinstance(arg.body, R.Num):
        text = arg.body.text
    elif kind == "^" and isinstance(arg, R.Num) and not ctx.declared(name):
        text = arg.text
    elif kind == "^" and not ctx.declared(name):
        # δ^{z_1}, δ^{z}: the sheet's name delta__z1 for ∂(loss)/∂z_1
        for inner in (script_text(arg), script_text(arg, "_")):
            if inner and ctx.tensor(f"{name}__{inner}") is not None:      # δ^{n_h}: delta__n_h
                return f"{name}__{inner}"
        return None
    if text is None:
        return None
    for cand in (f"{name}_{text}", f"{name}{text}"):
        if ctx.tensor(cand) is not None or ctx.size(cand) is not None or cand in ctx.constants \
                or cand in ctx.aliases or cand in getattr(ctx, "definitions", {}):   # a name the sheet defines: W_{hr}
            return cand
    return None


def script_text(node, joiner=""):
    """The letters and digits of a name written as a script, scripts flattened: z_{1} -> "z1", z -> "z";
    None for anything else. ``joiner`` goes before each subscript ("_": n_{h} -> "n_h").

    >>> script_text(R.Name(0, ["z"], [("_", R.Num(0, "1"))])), script_text(R.Num(0, "2"))
    ('z1', None)
    """
    if isinstance(node, R.Group) and node.paren == "{" and not node.scripts:
        return script_text(node.body, joiner)
    if not isinstance(node, R.Name):
        return None
    text = "".join(node.letters)
    for kind, arg in node.scripts:
        if kind != "_":
            return None
        if isinstance(arg, R.Num) and "." not in arg.text:
            text += joiner + arg.text
        elif isinstance(arg, R.Name) and not arg.scripts:
            text += joiner + "".join(arg.letters)
        else:
            return None
    return text


def split_name(name, scripts, ctx):
    """(declared name, remaining scripts): W_x, W_{x}, W^{(1)}, and W_{c,ij} (name part, then indices)."""
    scripts = list(scripts)
    own = ctx.tensor(name)
    if scripts and own is not None and own.shape:
        kind, arg = scripts[0]
        # y_{\mathrm{scores}}: an inner layer of the layer y (attention's scores), named by a word, not indices
        if kind == "_" and isinstance(arg, R.Word) and not arg.scripts and ctx.tensor(f"{name}_{arg.text}") is not None:
            return f"{name}_{arg.text}", scripts[1:]
    if scripts and own is not None and own.shape and ctx.used_names and name not in ctx.used_names:
        joined = join_name(name, scripts[0], ctx)      # z_2 for z2 when the question's z2 is used, z not
        if joined is not None and joined in ctx.used_names:
            return joined, scripts[1:]
    if not scripts or (own is not None and own.shape):
        return name, scripts
    joined = join_name(name, scripts[0], ctx)
    if joined is not None:
        return joined, scripts[1:]
    kind, arg = scripts[0]
    if kind == "_" and isinstance(arg, R.Tuple) and arg.paren == "," and len(arg.items) >= 2:
        joined = join_name(name, ("_", arg.items[0]), ctx)
        if joined is not None:
            rest = arg.items[1:]
            return joined, [("_", rest[0] if len(rest) == 1 else R.Tuple(arg.pos, rest, ","))] + scripts[1:]
    return name, scripts
