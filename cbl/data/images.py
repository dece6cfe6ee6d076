"""Reading one image file, and what a damaged one becomes: a `DamagedImageError` naming the file and its class.

Large real datasets hold the odd truncated or unreadable JPEG.  PIL opens such a file lazily and fails only while
decoding it, inside a DataLoader worker, where the error would reach the run as "Caught OSError in DataLoader worker
process 0" without the file's name.  `open_rgb` decodes the whole image at once (PIL's LOAD_TRUNCATED_IMAGES stays
off: a truncated file is an error, not a grey band) and turns any failure into one line naming the file, its class
and what to do; cbl.data.torch_loader re-raises it in the main process as that line (`unwrap_worker_error`), so a
run stops with it (recorded in metrics.json; `resume=true` continues once the file is fixed).  `cbl-check-data`
(cbl/commands/check_data.py) decodes every image of a dataset beforehand and lists the damaged ones.
"""

from __future__ import annotations

import os

from PIL import Image

HINT = "replace or remove it (cbl-check-data lists every damaged image of a dataset), then run again with resume=true"


class DamagedImageError(ValueError):
    """An image file that cannot be decoded; the message is one line naming it."""


def open_rgb(path: str | os.PathLike, label: int | None = None, class_name: str | None = None) -> Image.Image:
    """The image at `path`, fully decoded, in RGB; a DamagedImageError naming it (and its class) if it cannot be."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")  # convert() decodes every pixel: a truncated file fails here, not later
    except Exception as e:  # OSError (truncated, unreadable), UnidentifiedImageError, DecompressionBombError, ...
        raise DamagedImageError(damaged_message(path, e, label, class_name)) from None


def damaged_message(path, error: BaseException, label: int | None = None, class_name: str | None = None) -> str:
    what = " ".join(f"{error}".split()) or type(error).__name__  # one line, whatever the library's text
    cls = "" if label is None and class_name is None else \
        f" (class {label if label is not None else ''}{' ' if label is not None and class_name else ''}{class_name or ''})"
    return f"damaged image {path}{cls}: {type(error).__name__}: {what}; {HINT}"


def unwrap_worker_error(error: DamagedImageError) -> DamagedImageError:
    """A DamagedImageError re-raised by a DataLoader worker carries the worker's traceback in its message; the
    original one line is its last line."""
    lines = [line for line in str(error).splitlines() if "damaged image " in line]
    if not lines:
        return error
    line = lines[-1]
    return DamagedImageError(line[line.index("damaged image "):])
