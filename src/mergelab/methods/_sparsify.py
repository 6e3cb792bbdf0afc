"""Sparsifiers of the task-arithmetic family: which entries of a task vector ``d`` survive.

- magnitude (TIES, Yadav et al. 2023, https://arxiv.org/abs/2306.01708): keep the
  ``max(1, int(density * n))`` entries of largest ``|d|``.
- outliers (Model Breadcrumbs, Davari & Belilovsky 2024, https://arxiv.org/abs/2312.06795):
  rank by ``|d|``, drop the top ``int(gamma * n)``, keep the next ``int(density * n)``.
- random (DARE, Yu et al. 2024, https://arxiv.org/abs/2311.03099): keep each entry with
  probability ``density``.
- della (DELLA-Merging, Deep et al. 2024, https://arxiv.org/abs/2406.11617): per row, keep
  probability ``p = (density - epsilon) + 2 epsilon rank / (row_len - 1)``, rank 0 for the
  smallest magnitude.

A density >= 1 keeps ``d`` unchanged (no rescaling, no random draws), as mergekit does;
DELLA with density <= 0 keeps nothing (also mergekit's), before checking epsilon.
Random keep masks come from the model's generator (:mod:`mergelab.methods._draws`), in flat
(row-major) order: an entry is kept with probability ``p`` (to 2^-32).

A sparsifier sees the task vector block by block (:mod:`mergelab.methods._blocks`): magnitude
and outliers first observe every block to find their thresholds, then :meth:`keep` is called
on the blocks in flat order; :meth:`restart` rewinds the ordered state (random draws, the tie
budget) before the blocks are kept again. The ``inverse_density`` rescale is applied by
:meth:`keep`; the L1 rescale needs the whole tensor's norms and is :class:`L1Rescaled`, one
more pass.

Deviations from mergekit 0.1.5: equal magnitudes are ordered by position instead of by an
unstable sort (so the kept set is reproducible); the random draws come from the injected
generator (:mod:`mergelab.methods._draws`) instead of ``torch.bernoulli`` on the global RNG;
DELLA ranks along the last dimension (mergekit: dim 1, the same for 1-D and 2-D tensors) and
gives a one-entry row ``p = density`` (mergekit: NaN).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

import torch

from mergelab.errors import ConfigError
from mergelab.methods._draws import keep_mask
from mergelab.methods._rescale import NORM_EPS, RescaleMode
from mergelab.methods._select import TopK

HELD_ENTRIES = 2**24  # the L1 rescale keeps the kept blocks of tensors up to this size


class Sparsifier(Protocol):
    """Chooses the kept entries of one model's task vector, block by block."""

    @property
    def passes(self) -> int: ...

    def observe(self, step: int, delta: torch.Tensor) -> None:
        """Gather pass ``step``'s statistics from the next block (``delta``, fresh, may be
        overwritten)."""

    def end_pass(self, step: int) -> None: ...

    def restart(self) -> None: ...

    def keep(self, delta: torch.Tensor) -> torch.Tensor:
        """The next block's kept entries (``delta``, fresh, may be reused), zeros elsewhere."""


class Dense:
    """Keeps every entry: density >= 1, or a method that does not sparsify."""

    passes = 0

    def observe(self, step: int, delta: torch.Tensor) -> None:
        raise AssertionError("a dense task vector needs no pass")

    def end_pass(self, step: int) -> None:
        raise AssertionError("a dense task vector needs no pass")

    def restart(self) -> None:
        pass

    def keep(self, delta: torch.Tensor) -> torch.Tensor:
        return delta


class Magnitude:
    """Keep the ``max(1, int(density * n))`` largest-magnitude entries (``density < 1``)."""

    def __init__(self, numel: int, density: float, rescale: RescaleMode, dtype: torch.dtype):
        self._top = TopK(numel, max(1, int(density * numel)), dtype)
        self._divisor = inverse_density_divisor(density, rescale)
        self.passes = self._top.passes

    def observe(self, step: int, delta: torch.Tensor) -> None:
        self._top.observe(step, delta.abs_())

    def end_pass(self, step: int) -> None:
        self._top.end_pass(step)

    def restart(self) -> None:
        self._top.restart()

    def keep(self, delta: torch.Tensor) -> torch.Tensor:
        return _divide(delta.mul_(self._top.factors(delta.abs())), self._divisor)


class Outliers:
    """Drop the top ``int(gamma * n)`` magnitudes, keep the next ``int(density * n)``."""

    def __init__(
        self, numel: int, density: float, gamma: float, rescale: RescaleMode, dtype: torch.dtype
    ):
        n_keep = int(density * numel)
        n_drop = min(int(gamma * numel), numel - n_keep)  # density + gamma > 1: drop fewer
        self._upper = TopK(numel, n_drop, dtype)  # the outliers
        self._lower = TopK(numel, n_drop + n_keep, dtype)  # outliers and kept entries
        self._divisor = inverse_density_divisor(density, rescale)
        self.passes = max(self._upper.passes, self._lower.passes)

    def observe(self, step: int, delta: torch.Tensor) -> None:
        scores = delta.abs_()
        for top in (self._upper, self._lower):
            if step < top.passes:
                top.observe(step, scores)

    def end_pass(self, step: int) -> None:
        for top in (self._upper, self._lower):
            if step < top.passes:
                top.end_pass(step)

    def restart(self) -> None:
        self._upper.restart()
        self._lower.restart()

    def keep(self, delta: torch.Tensor) -> torch.Tensor:
        scores = delta.abs()
        band = self._lower.factors(scores).sub_(self._upper.factors(scores))  # 1 inside
        return _divide(delta.mul_(band), self._divisor)


class _Drawn:
    """Ordered random keep masks ``u < p`` from a generator.

    With ``remember`` (set when the L1 rescale keeps the blocks twice, once for the norms and
    once for the output, and does not remember the kept blocks themselves) the masks of the
    first traversal are kept, one byte per entry, and :meth:`restart` replays them instead of
    drawing again: drawing costs more than the rest of a block's arithmetic. Without it,
    :meth:`restart` rewinds the generator.
    """

    passes = 0

    def __init__(self, generator: torch.Generator, remember: bool):
        self._generator = generator
        self._start = generator.get_state()
        self._remember = remember
        self._masks: list[torch.Tensor] = []
        self._replay: int | None = None  # index of the next mask to replay

    def observe(self, step: int, delta: torch.Tensor) -> None:
        raise AssertionError("a random sparsifier needs no pass")

    def end_pass(self, step: int) -> None:
        raise AssertionError("a random sparsifier needs no pass")

    def restart(self) -> None:
        if self._masks:
            self._replay = 0
        else:
            self._generator.set_state(self._start)

    def mask(self, like: torch.Tensor, keep_prob: float | torch.Tensor) -> torch.Tensor:
        """The next block's mask (1 kept, 0 dropped, in ``like``'s dtype): entry ``i`` kept
        with probability ``keep_prob`` (a number, or a tensor like ``like``), drawn in flat
        order by :func:`~mergelab.methods._draws.keep_mask`."""
        if self._replay is not None:
            self._replay += 1
            kept = self._masks[self._replay - 1]
        else:
            kept = keep_mask(like.shape, keep_prob, self._generator, like.device)
            if self._remember:
                self._masks.append(kept)
        return kept.view(torch.uint8).to(like.dtype)  # from bytes: several times faster than bool


class Random(_Drawn):
    """Keep each entry independently with probability ``density`` (DARE's drop)."""

    def __init__(
        self, density: float, rescale: RescaleMode, generator: torch.Generator, remember: bool
    ):
        super().__init__(generator, remember)
        self._density = density
        self._divisor = inverse_density_divisor(density, rescale)

    def keep(self, delta: torch.Tensor) -> torch.Tensor:
        return _divide(delta.mul_(self.mask(delta, self._density)), self._divisor)


class Della(_Drawn):
    """Keep each entry with a probability that grows with its magnitude rank in its row."""

    def __init__(
        self,
        density: float,
        epsilon: float,
        rescale: RescaleMode,
        generator: torch.Generator,
        remember: bool,
    ):
        problem = _della_problem(density, epsilon)
        if problem is not None:
            raise ConfigError(problem)
        super().__init__(generator, remember)
        self._density, self._epsilon = density, epsilon
        self._inverse = rescale == "inverse_density"

    def keep(self, delta: torch.Tensor) -> torch.Tensor:
        # rows: (r, L); a 0-d or 1-D tensor is one row
        rows = delta.reshape(1, -1) if delta.dim() < 2 else delta.reshape(-1, delta.shape[-1])
        length = rows.shape[-1]
        order = torch.sort(rows.abs(), dim=-1, stable=True).indices  # ascending magnitude
        positions = torch.arange(length, device=delta.device).expand_as(order)
        rank = torch.empty_like(order).scatter_(-1, order, positions)  # 0 = smallest |d|
        # frac = rank / (L - 1) in [0, 1]; a one-entry row sits in the middle
        frac = rank.to(delta.dtype) / (length - 1) if length > 1 else torch.full_like(rows, 0.5)
        p = (self._density - self._epsilon) + 2.0 * self._epsilon * frac  # (r, L), in (0, 1)
        kept = rows.mul_(self.mask(rows, p))
        if self._inverse:
            kept.div_(p)
        return kept.reshape(delta.shape)


class L1Rescaled:
    """``inner``'s kept entries scaled by ``|d|_1 / |kept|_1`` over the whole tensor (left as
    they are when either norm is below 1e-7): one more pass, after ``inner``'s.

    With ``remember`` the pass also keeps each block's kept entries (the output's blocks
    before the scale), and :meth:`next_kept` hands them out in order: the output pass then
    rereads no model. It costs the tensor's size in memory, so it is used for tensors of at
    most :data:`HELD_ENTRIES` entries.
    """

    def __init__(self, inner: Sparsifier, remember: bool = False):
        self._inner = inner
        self.passes = inner.passes + 1
        self._before = 0.0  # |d|_1
        self._after = 0.0  # |kept|_1
        self._factor = 1.0
        self._kept: deque[torch.Tensor] | None = deque() if remember else None

    @property
    def remembers(self) -> bool:
        return self._kept is not None

    def observe(self, step: int, delta: torch.Tensor) -> None:
        if step < self._inner.passes:
            self._inner.observe(step, delta)
            return
        if self._kept is not None:
            self._before += float(delta.abs().sum())
            kept = self._inner.keep(delta)
            self._after += float(kept.abs().sum())
            self._kept.append(kept)
            return
        # the kept magnitudes are the magnitudes' kept entries (every sparsifier chooses by
        # |d| or at random), so one in-place abs serves both norms; abs().sum() is several
        # times faster than vector_norm(ord=1) on a CPU
        magnitudes = delta.abs_()
        self._before += float(magnitudes.sum())
        self._after += float(self._inner.keep(magnitudes).sum())

    def end_pass(self, step: int) -> None:
        if step < self._inner.passes:
            self._inner.end_pass(step)
            return
        if self._before >= NORM_EPS and self._after >= NORM_EPS:
            self._factor = self._before / self._after

    def restart(self) -> None:
        self._inner.restart()

    def keep(self, delta: torch.Tensor) -> torch.Tensor:
        return self._inner.keep(delta).mul_(self._factor)

    def next_kept(self) -> torch.Tensor:
        """The next remembered block's kept entries, rescaled (each block once, in order)."""
        assert self._kept is not None
        return self._kept.popleft().mul_(self._factor)


class Nothing(Dense):
    """Keeps no entry (DELLA at density <= 0)."""

    def keep(self, delta: torch.Tensor) -> torch.Tensor:
        return delta.zero_()


def inverse_density_divisor(density: float, rescale: RescaleMode) -> float:
    """What kept entries are divided by: the density under ``inverse_density``, else 1 (and 1
    for density 0, which defines no scale)."""
    return density if rescale == "inverse_density" and density > 0 else 1.0


def _divide(kept: torch.Tensor, divisor: float) -> torch.Tensor:
    return kept if divisor == 1.0 else kept.div_(divisor)


def rescaled(sparsifier: Sparsifier, rescale: RescaleMode, numel: int) -> Sparsifier:
    """``sparsifier`` with the L1 rescale when ``rescale`` asks for it (others are built in)."""
    if rescale == "l1" and not isinstance(sparsifier, Dense):
        return L1Rescaled(sparsifier, remember=holds_kept(numel))
    return sparsifier


def holds_kept(numel: int) -> bool:
    """Whether the L1 rescale keeps a tensor of ``numel`` entries' kept blocks in memory."""
    return numel <= HELD_ENTRIES


def _replays_masks(rescale: RescaleMode, numel: int) -> bool:
    """Whether a random sparsifier keeps its masks for the output pass: the L1 rescale keeps
    the blocks twice and does not hold the kept blocks themselves."""
    return rescale == "l1" and not holds_kept(numel)


def magnitude(numel: int, density: float, rescale: RescaleMode, dtype: torch.dtype) -> Sparsifier:
    """TIES's trim of one task vector of ``numel`` entries."""
    if density >= 1.0:
        return Dense()
    return rescaled(Magnitude(numel, density, rescale, dtype), rescale, numel)


def outliers(
    numel: int, density: float, gamma: float, rescale: RescaleMode, dtype: torch.dtype
) -> Sparsifier:
    """Model Breadcrumbs' band of one task vector of ``numel`` entries."""
    if density >= 1.0:
        return Dense()
    return rescaled(Outliers(numel, density, gamma, rescale, dtype), rescale, numel)


def random(
    numel: int, density: float, rescale: RescaleMode, generator: torch.Generator
) -> Sparsifier:
    """DARE's random drop of one task vector of ``numel`` entries."""
    if density >= 1.0:
        return Dense()
    masks = _replays_masks(rescale, numel)
    return rescaled(Random(density, rescale, generator, masks), rescale, numel)


def della(
    numel: int, density: float, epsilon: float, rescale: RescaleMode, generator: torch.Generator
) -> Sparsifier:
    """DELLA's magnitude-ranked random drop of one task vector of ``numel`` entries."""
    if density >= 1.0:
        return Dense()
    if density <= 0.0:
        return Nothing()
    masks = _replays_masks(rescale, numel)
    return rescaled(Della(density, epsilon, rescale, generator, masks), rescale, numel)


def della_problems(params: dict[str, Any]) -> list[str]:
    """The planner's check of DELLA's ``0 < density - epsilon`` and ``density + epsilon < 1``."""
    problems = []
    for density, epsilon in zip(params["density"], params["epsilon"], strict=True):
        problem = _della_problem(density, epsilon) if 0.0 < density < 1.0 else None
        if problem is not None:
            problems.append(problem)
    return problems


def _della_problem(density: float, epsilon: float) -> str | None:
    """Why DELLA cannot keep entries with these settings, or None when it can."""
    if density - epsilon > 0.0 and density + epsilon < 1.0:
        return None
    return (
        f"della needs 0 < density - epsilon and density + epsilon < 1, got density={density}"
        f" and epsilon={epsilon}; lower epsilon or move density towards 0.5"
    )
