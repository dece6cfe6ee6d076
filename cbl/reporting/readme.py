"""Replace a generated section of a Markdown file (the README) between marker comments.

    <!-- cbl:NAME:start -->
    ... generated, replaced on every run ...
    <!-- cbl:NAME:end -->

Everything outside the markers is left byte for byte as it was.
"""

from __future__ import annotations

import os
from pathlib import Path


class MarkerError(Exception):
    """The file lacks the markers, or has them more than once or out of order."""


def markers(name: str) -> tuple[str, str]:
    return f"<!-- cbl:{name}:start -->", f"<!-- cbl:{name}:end -->"


def replace_section(text: str, name: str, content: str, filename: str = "README") -> str:
    """`text` with what lies between the `name` markers replaced by `content` (surrounded by newlines)."""
    start, end = markers(name)
    if text.count(start) != 1 or text.count(end) != 1:
        raise MarkerError(
            f"{filename} needs exactly one {start} and one {end} marker "
            f"(found {text.count(start)} and {text.count(end)}); add them where the table should go"
        )
    i, j = text.index(start) + len(start), text.index(end)
    if j < i:
        raise MarkerError(f"{filename}: {end} comes before {start}")
    return text[:i] + "\n" + content.strip("\n") + "\n" + text[j:]


def update_file(path: str | os.PathLike, name: str, content: str) -> None:
    """Replace the `name` section of the file in place (written to a temporary file, then renamed)."""
    path = Path(path)
    try:
        # bytes, not read_text(): universal newlines would turn a CRLF README into LF outside the markers
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise MarkerError(f"cannot read {path}: {e}") from None
    new = replace_section(text, name, content, filename=str(path))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(new.encode("utf-8"))
    os.replace(tmp, path)  # a crash mid-write never leaves a half-written README
