"""``mergelab vector ...`` (extract, apply, analogy, the store) and ``mergelab extract-lora``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mergelab.commands import THREADS_HELP
from mergelab.units import format_size
from mergelab.vectors import (
    TaskVector,
    VectorStore,
    analogy,
    apply_vectors,
    extract_lora,
    extract_vector,
    make_recipe,
    parse_term,
)
from mergelab.vectors.extract import ExtractResult
from mergelab.vectors.fingerprint import short
from mergelab.vectors.terms import resolve_source

vector_app = typer.Typer(
    help="Task vectors: extract, store, apply (equip / negate), analogy.",
    no_args_is_help=True,
)

_STORE_HELP = "Vector store folder (default: $MERGELAB_VECTOR_STORE or ~/.mergelab/vectors)."


def register(app: typer.Typer) -> None:
    app.add_typer(vector_app, name="vector")
    app.command("extract-lora")(extract_lora_command)


def _store(path: Path | None) -> VectorStore:
    return VectorStore(path) if path is not None else VectorStore.default()


def _report_extract(console: Console, result: ExtractResult, what: str) -> None:
    console.print(
        f"extracted {result.tensors} tensors into [bold]{result.out}[/] ({what}): "
        f"{format_size(result.stored_bytes)}, {100 * result.ratio:.1f}% of the dense "
        f"{format_size(result.dense_bytes)}, in {result.seconds:.1f} s"
    )


@vector_app.command("extract")
def extract_command(
    finetune: str = typer.Argument(..., help="The fine-tuned model (folder or hub id)."),
    base: str = typer.Option(..., "--base", help="The model it was fine-tuned from."),
    out: Path = typer.Option(..., "--out", "-o", help="Artifact folder to write, e.g. math.tv."),
    density: float | None = typer.Option(None, help="Keep this fraction of each tensor's entries."),
    sparsify: str | None = typer.Option(
        None, help="Which entries --density keeps: magnitude (largest) or dare (random, rescaled)."
    ),
    rank: int | None = typer.Option(None, help="Low-rank (SVD) per matrix; also a PEFT adapter."),
    dtype: str = typer.Option("float32", help="Value dtype: float32, float64, bfloat16, float16."),
    seed: int = typer.Option(0, help="Seed of the dare draws."),
    name: str | None = typer.Option(None, help="Name recorded in the artifact (default: folder)."),
    overwrite: bool = typer.Option(False, help="Replace an existing artifact folder."),
    device: str = typer.Option("cpu", help="Compute device: cpu or cuda."),
    threads: int | None = typer.Option(None, help=THREADS_HELP),
) -> None:
    """Extract the task vector FINETUNE - BASE into a .tv artifact."""
    recipe = make_recipe(dtype=dtype, sparsify=sparsify, density=density, rank=rank, seed=seed)
    result = extract_vector(
        finetune,
        base,
        out,
        recipe=recipe,
        name=name,
        overwrite=overwrite,
        device=device,
        threads=threads,
    )
    _report_extract(Console(), result, f"compression: {recipe.compression}")


def extract_lora_command(
    finetune: str = typer.Argument(..., help="The fine-tuned model (folder or hub id)."),
    base: str = typer.Option(..., "--base", help="The model it was fine-tuned from."),
    rank: int = typer.Option(..., "--rank", help="LoRA rank r of every matrix."),
    out: Path = typer.Option(..., "--out", "-o", help="Adapter folder to write."),
    dtype: str = typer.Option("float32", help="Factor dtype: float32, bfloat16, float16."),
    overwrite: bool = typer.Option(False, help="Replace an existing adapter folder."),
    device: str = typer.Option("cpu", help="Compute device: cpu or cuda."),
    threads: int | None = typer.Option(None, help=THREADS_HELP),
) -> None:
    """Extract FINETUNE - BASE as a PEFT LoRA adapter of rank r (truncated SVD)."""
    result = extract_lora(
        finetune,
        base,
        out,
        rank=rank,
        dtype=dtype,
        overwrite=overwrite,
        device=device,
        threads=threads,
    )
    _report_extract(Console(), result, f"PEFT LoRA adapter, r={rank}")


@vector_app.command("apply")
def apply_command(
    base: str = typer.Argument(..., help="The base model the vectors were extracted from."),
    terms: list[str] = typer.Argument(
        ..., help="SOURCE[:SCALE] terms: a .tv folder, a store name or a fine-tune; scale 1."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output model folder."),
    store: Path | None = typer.Option(None, help=_STORE_HELP),
    ignore_fingerprint: bool = typer.Option(
        False, "--ignore-fingerprint", help="Apply even to a base with another fingerprint."
    ),
    overwrite: bool = typer.Option(False, help="Replace an existing output folder."),
    device: str = typer.Option("cpu", help="Compute device: cpu or cuda."),
    threads: int | None = typer.Option(None, help=THREADS_HELP),
) -> None:
    """Write BASE + sum of scale * vector (equip with +s, unlearn with -s)."""
    parsed = [parse_term(t) for t in terms]
    result = apply_vectors(
        base,
        parsed,
        out,
        store=_store(store),
        ignore_fingerprint=ignore_fingerprint,
        overwrite=overwrite,
        device=device,
        threads=threads,
    )
    formula = " ".join(
        f"{'+' if t.scale >= 0 else '-'} {abs(t.scale):g}*{t.source}" for t in parsed
    )
    Console().print(
        f"wrote [bold]{result.out}[/] = {base} {formula} "
        f"({result.tensors} tensors, {format_size(result.bytes)}, {result.seconds:.1f} s)"
    )


@vector_app.command("analogy")
def analogy_command(
    base: str = typer.Option(..., "--base", help="The common base model."),
    a: str = typer.Option(..., "--a", help="A in A : B :: C : D (model or vector)."),
    b: str = typer.Option(..., "--b", help="B in A : B :: C : D (model or vector)."),
    c: str = typer.Option(..., "--c", help="C in A : B :: C : D (model or vector)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output model folder (D)."),
    scale: float = typer.Option(1.0, help="Scale s of tau_C + tau_B - tau_A."),
    store: Path | None = typer.Option(None, help=_STORE_HELP),
    ignore_fingerprint: bool = typer.Option(
        False, "--ignore-fingerprint", help="Apply even to a base with another fingerprint."
    ),
    overwrite: bool = typer.Option(False, help="Replace an existing output folder."),
    device: str = typer.Option("cpu", help="Compute device: cpu or cuda."),
    threads: int | None = typer.Option(None, help=THREADS_HELP),
) -> None:
    """A is to B as C is to D: write BASE + s (tau_C + tau_B - tau_A)."""
    result = analogy(
        base,
        a,
        b,
        c,
        out,
        scale=scale,
        store=_store(store),
        ignore_fingerprint=ignore_fingerprint,
        overwrite=overwrite,
        device=device,
        threads=threads,
    )
    Console().print(
        f"wrote [bold]{result.out}[/] = {base} + {scale:g} * (tau({c}) + tau({b}) - tau({a})) "
        f"({result.tensors} tensors, {result.seconds:.1f} s)"
    )


@vector_app.command("list")
def list_command(store: Path | None = typer.Option(None, help=_STORE_HELP)) -> None:
    """List the vectors in the store."""
    vectors = _store(store)
    entries = vectors.entries()
    console = Console()
    if not entries:
        console.print(
            f"the store {vectors.root} holds no vectors; add one with `mergelab vector add`"
        )
        return
    table = Table(title=f"task vectors in {vectors.root}")
    for col in ("name", "source", "base fingerprint", "compression", "size", "created"):
        table.add_column(col)
    for e in entries:
        if e.meta is None:
            table.add_row(
                e.name, f"[red]unreadable: {e.problem}[/]", "", "", format_size(e.size), ""
            )
            continue
        m = e.meta
        table.add_row(
            e.name,
            m.source.ref,
            short(m.base.fingerprint),
            m.recipe.compression,
            format_size(e.size),
            m.created,
        )
    console.print(table)


@vector_app.command("show")
def show_command(
    vector: str = typer.Argument(..., help="A store name or a .tv folder."),
    store: Path | None = typer.Option(None, help=_STORE_HELP),
) -> None:
    """Show one vector's metadata and how its tensors are stored."""
    ref, _ = resolve_source(vector, _store(store))
    with TaskVector.open(ref) as tv:
        m = tv.meta
        kinds = Counter(s.kind for s in m.tensors.values())
        table = Table(title=f"task vector {m.name}", show_header=False)
        table.add_column("field")
        table.add_column("value")
        rows = [
            ("path", str(tv.path)),
            ("source", f"{m.source.ref} ({m.source.fingerprint})"),
            ("base", f"{m.base.ref} ({m.base.fingerprint})"),
            ("architecture", m.architecture),
            ("compression", m.recipe.compression),
            ("value dtype", m.recipe.dtype),
            ("tensors", ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))),
            ("stored", format_size(tv.stored_bytes())),
            ("peft adapter", str(tv.path / m.peft) if m.peft else "none"),
            ("created", f"{m.created} (mergelab {m.mergelab_version})"),
        ]
        for key, value in rows:
            table.add_row(key, value)
        Console().print(table)


@vector_app.command("add")
def add_command(
    artifact: Path = typer.Argument(..., help="A .tv folder to copy into the store."),
    name: str | None = typer.Option(None, help="Store it under this name (default: its own)."),
    overwrite: bool = typer.Option(False, help="Replace a stored vector of the same name."),
    store: Path | None = typer.Option(None, help=_STORE_HELP),
) -> None:
    """Copy a vector into the store."""
    dest = _store(store).add(artifact, name=name, overwrite=overwrite)
    Console().print(f"added [bold]{dest.name}[/] to {dest.parent}")


@vector_app.command("remove")
def remove_command(
    name: str = typer.Argument(..., help="The stored vector to delete."),
    store: Path | None = typer.Option(None, help=_STORE_HELP),
) -> None:
    """Delete a vector from the store."""
    path = _store(store).remove(name)
    Console().print(f"removed {path}")
