"""check_output_location refusals and atomic_output_dir's all-or-nothing behaviour."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mergelab.errors import OutputError
from mergelab.output_dir import atomic_output_dir, check_output_location


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_success_renames_temp_into_place(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with atomic_output_dir(dest, overwrite=False) as tmp:
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(".out.mergelab-tmp-")
        assert not dest.exists()
        (tmp / "model.safetensors").write_text("weights")
    assert (dest / "model.safetensors").read_text() == "weights"
    assert entries(tmp_path) == ["out"]


def test_creates_missing_parents(tmp_path: Path) -> None:
    dest = tmp_path / "a" / "b" / "out"
    with atomic_output_dir(dest, overwrite=False) as tmp:
        (tmp / "f").write_text("x")
    assert (dest / "f").read_text() == "x"


def write_then_fail(dest: Path, error: BaseException, *, overwrite: bool) -> None:
    with atomic_output_dir(dest, overwrite=overwrite) as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "model.safetensors").write_text("partial")
        raise error


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_removes_everything(tmp_path: Path, error: BaseException) -> None:
    with pytest.raises(type(error)):
        write_then_fail(tmp_path / "out", error, overwrite=False)
    assert entries(tmp_path) == []


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_leaves_existing_destination_untouched(
    tmp_path: Path, error: BaseException
) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with pytest.raises(type(error)):
        write_then_fail(dest, error, overwrite=True)
    assert entries(tmp_path) == ["out"]
    assert entries(dest) == ["old.txt"]


def test_overwrite_replaces_old_contents(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with atomic_output_dir(dest, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert entries(dest) == ["new.txt"]
    assert entries(tmp_path) == ["out"]


def test_empty_existing_destination_needs_no_overwrite(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    with atomic_output_dir(dest, overwrite=False) as tmp:
        (tmp / "f").write_text("x")
    assert entries(dest) == ["f"]


def test_destination_filled_meanwhile_is_not_clobbered(tmp_path: Path) -> None:
    dest = tmp_path / "out"

    def race() -> None:
        with atomic_output_dir(dest, overwrite=False) as tmp:
            (tmp / "new.txt").write_text("new")
            dest.mkdir()  # another process fills the destination meanwhile
            (dest / "theirs.txt").write_text("theirs")

    with pytest.raises(OutputError, match="appeared while writing"):
        race()
    assert entries(dest) == ["theirs.txt"]
    assert entries(tmp_path) == ["out"]


def test_parent_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    output = atomic_output_dir(tmp_path / "file" / "out", overwrite=False)
    with pytest.raises(OutputError, match="cannot create a folder next to"):
        output.__enter__()


# ---- check_output_location -------------------------------------------------------------------


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "models" / "base"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_text("w")
    return folder


@pytest.mark.parametrize("where", ["same", "inside", "contains"])
def test_overlap_with_an_input(model: Path, where: str) -> None:
    dest = {"same": model, "inside": model / "merged", "contains": model.parent}[where]
    with pytest.raises(OutputError, match="overlaps input") as info:
        check_output_location(dest, [model], overwrite=True)
    assert str(model) in str(info.value)


def test_overlap_through_a_symlink(model: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(model)
    with pytest.raises(OutputError, match="overlaps input"):
        check_output_location(link / "out", [model], overwrite=True)


def test_sibling_of_input_is_fine(model: Path) -> None:
    check_output_location(model.parent / "base-merged", [model], overwrite=False)


def test_non_empty_destination(model: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    check_output_location(dest, [model], overwrite=False)  # empty: fine
    (dest / "x").write_text("x")
    with pytest.raises(OutputError, match="exists and is not empty; pass --overwrite") as info:
        check_output_location(dest, [model], overwrite=False)
    assert str(dest) in str(info.value)
    check_output_location(dest, [model], overwrite=True)


def test_destination_is_a_file(model: Path, tmp_path: Path) -> None:
    (tmp_path / "out").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        check_output_location(tmp_path / "out", [model], overwrite=True)


def test_parent_cannot_be_created(model: Path, tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(OutputError, match="blocker is a file"):
        check_output_location(tmp_path / "blocker" / "deeper" / "out", [model], overwrite=False)


def test_parent_not_writable(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Permission bits do not bind root, so the refusal is simulated at os.access.
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode)
    )
    with pytest.raises(OutputError, match="is not writable") as info:
        check_output_location(locked / "new" / "out", [model], overwrite=False)
    assert str(locked) in str(info.value)
