"""The files next to the weights of a model made from task vectors or a soup.

The weights keep the source model's tensor names, shapes and dtypes, so its ``config.json``,
``generation_config.json`` and tokenizer files are copied unchanged; a README.md card says
how the model was made.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from mergelab.output_files import TOKENIZER_FILES

_COPIED = ("config.json", "generation_config.json", *TOKENIZER_FILES)


def copy_support_files(source: Path, dest: Path) -> None:
    """Copy config, generation config and tokenizer files of model folder ``source``."""
    for name in _COPIED:
        if (source / name).is_file():
            shutil.copyfile(source / name, dest / name)


def write_card(dest: Path, title: str, lines: list[str], record: dict[str, Any], file: str) -> None:
    """README.md (``title``, then ``lines``) and the machine-readable ``record`` as ``file``."""
    card = [
        "---",
        "library_name: transformers",
        "tags: [mergelab]",
        "---",
        f"# {title}",
        "",
        *lines,
        "",
    ]
    (dest / "README.md").write_text("\n".join(card), encoding="utf-8")
    (dest / file).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
