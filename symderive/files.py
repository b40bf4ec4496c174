"""Writing output files safely: a new file beside the target, then an atomic rename.

Opening ``output/NAME.tex`` for writing follows a symbolic link planted there and
overwrites its target, wherever it is; renaming a fresh file over the path replaces
the link itself. Readers never see a half-written sheet either.
"""
import os
import tempfile
from pathlib import Path


def write_atomically(path, text):
    """Write ``text`` (UTF-8) to ``path`` through a new file and ``os.replace``.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> (folder / "target").write_text("keep")
    4
    >>> (folder / "sheet.tex").symlink_to(folder / "target")
    >>> write_atomically(folder / "sheet.tex", "new")
    >>> (folder / "target").read_text(), (folder / "sheet.tex").is_symlink()
    ('keep', False)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, scratch = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(scratch, 0o644)
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise
