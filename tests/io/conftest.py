"""Fixtures for the I/O tests: hand-built safetensors files, corrupt on purpose when needed."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

RawWriter = Callable[..., Path]


def _raw_safetensors(
    path: Path, header: dict[str, Any], data: bytes, *, length: int | None = None
) -> Path:
    """Write a safetensors file from a header dict and a data buffer, exactly as given.

    ``length`` overrides the 8-byte header-length field (to fake a truncated header).
    """
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    prefix = struct.pack("<Q", len(text) if length is None else length)
    path.write_bytes(prefix + text + data)
    return path


@pytest.fixture
def raw_safetensors() -> RawWriter:
    """``raw_safetensors(path, header, data, length=None)`` writes a file byte for byte."""
    return _raw_safetensors


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    return folder
