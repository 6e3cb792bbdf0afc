"""Planning: a recipe plus checkpoint headers become a list of :class:`TensorJob`.

Every check happens here, before a single tensor byte is read: unknown methods and
parameters, missing tensors, shape and layer-count mismatches, bad layer ranges, parameter
values out of range. All problems are collected and reported together.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from mergelab import arch
from mergelab.checkpoint import Checkpoint
from mergelab.errors import ConfigError, MergelabError, PlanError, join_problems
from mergelab.methods import MergeMethod, Param, all_methods, get_method
from mergelab.params import gradient_position, resolve
from mergelab.recipe import ParamSetting, Recipe
from mergelab.vocab import VocabPlan, plan_vocabulary

log = logging.getLogger(__name__)

DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
}


@dataclass(frozen=True)
class InputRef:
    """One tensor to read: model index (into :attr:`Plan.checkpoints`) and tensor name."""

    model: int
    name: str


Combine = Callable[[list[torch.Tensor]], torch.Tensor]


@dataclass(frozen=True)
class TensorJob:
    """Everything the engine needs to produce one output tensor.

    A job either runs the registered merge ``method`` on ``base`` and ``inputs`` with
    ``params``, or, when ``combine`` is given, calls ``combine(tensors)`` on the read tensors
    (base first when there is one); ``method`` then only labels the job (MoE stacking,
    task-vector application, layer scaling).
    """

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    method: str
    base: InputRef | None
    inputs: tuple[InputRef, ...]
    params: dict[str, Any]
    vocab: VocabPlan | None = None
    combine: Combine | None = None

    @property
    def nbytes(self) -> int:
        return _numel(self.shape) * self.dtype.itemsize

    def reads(self) -> tuple[InputRef, ...]:
        return ((self.base,) if self.base is not None else ()) + self.inputs


@dataclass
class Plan:
    """A validated merge: the models it reads and the jobs that produce the output."""

    recipe: Recipe
    refs: list[str]
    checkpoints: list[Checkpoint]
    jobs: list[TensorJob]
    config_source: int
    tokenizer_source: int
    layer_count: int
    vocab: VocabPlan | None = None
    seed: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def output_bytes(self) -> int:
        return sum(job.nbytes for job in self.jobs)

    def input_bytes(self, job: TensorJob) -> int:
        return sum(self.checkpoints[ref.model].tensors[ref.name].nbytes for ref in job.reads())

    def peak_memory_estimate(self, prefetch: int = 2) -> int:
        """Bytes held at once: ``prefetch`` jobs' raw inputs plus one job's float32 working set.

        The working set is the upcast inputs, a stacked copy and a few same-sized
        temporaries (masks, deltas), bounded by six tensors per input.
        """
        if not self.jobs:
            return 0
        largest = max(self.jobs, key=lambda j: _numel(j.shape) * len(j.reads()))
        raw = self.input_bytes(largest)
        work = _numel(largest.shape) * 4 * (len(largest.reads()) * 3 + 3)
        return raw * prefetch + work

    def close(self) -> None:
        for ckpt in self.checkpoints:
            ckpt.close()


def build_plan(recipe: Recipe, *, seed: int | None = None) -> Plan:
    """Open every input's headers and turn ``recipe`` into jobs, or raise with all problems."""
    method = _method(recipe.merge_method)
    refs = recipe.referenced_models()
    checkpoints = open_checkpoints(refs)
    try:
        return _Planner(recipe, method, refs, checkpoints, seed).plan()
    except BaseException:
        for ckpt in checkpoints:
            ckpt.close()
        raise


def _method(name: str) -> MergeMethod:
    try:
        return get_method(name)
    except KeyError:
        names = list(all_methods())
        hint = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
        fix = f"did you mean '{hint[0]}'?" if hint else "run `mergelab methods` to list them"
        raise ConfigError(f"unknown merge_method '{name}'; {fix}") from None


def open_checkpoints(refs: list[str]) -> list[Checkpoint]:
    """Open every reference's headers, or raise one PlanError naming every failure."""
    opened: list[Checkpoint] = []
    problems: list[str] = []
    for ref in refs:
        try:
            opened.append(Checkpoint.open(ref))
        except MergelabError as exc:
            problems.append(str(exc))
    if problems:
        for ckpt in opened:
            ckpt.close()
        raise PlanError(join_problems("cannot open the inputs", problems))
    return opened


@dataclass
class _Source:
    """One model feeding a run of layers: ``start`` is its first layer, params its scope."""

    model: int
    start: int
    params: dict[str, ParamSetting]


@dataclass
class _Section:
    """Output layers produced from the same sources (the whole model, or one slice)."""

    out_start: int
    length: int
    base: _Source | None
    inputs: list[_Source]
    params: dict[str, ParamSetting]


class _Planner:
    def __init__(
        self,
        recipe: Recipe,
        method: MergeMethod,
        refs: list[str],
        checkpoints: list[Checkpoint],
        seed: int | None,
    ) -> None:
        self.recipe = recipe
        self.method = method
        self.refs = refs
        self.ckpts = checkpoints
        self.seed = seed if seed is not None else (recipe.seed or 0)
        self.problems: list[str] = []
        self.layers = [arch.count_layers(c.config, c.tensors) for c in checkpoints]

    # -- entry -----------------------------------------------------------------------------
    def plan(self) -> Plan:
        self._check_parameter_names()
        sections = self._sections()
        self._raise_if_problems()
        reference = self._reference_model(sections)
        vocab = self._vocabulary()
        self._raise_if_problems()
        jobs = self._jobs(sections, reference, vocab)
        self._raise_if_problems()
        layer_count = sum(s.length for s in sections)
        return Plan(
            recipe=self.recipe,
            refs=self.refs,
            checkpoints=self.ckpts,
            jobs=jobs,
            config_source=reference,
            tokenizer_source=vocab.tokenizer_model if vocab else self._tokenizer_model(),
            layer_count=layer_count,
            vocab=vocab,
            seed=self.seed,
        )

    def _raise_if_problems(self) -> None:
        if self.problems:
            problems, self.problems = self.problems, []
            raise PlanError(join_problems("the recipe does not fit its models", problems))

    def _index(self, ref: str) -> int:
        return self.refs.index(ref)

    # -- parameters ------------------------------------------------------------------------
    def _scopes(self) -> list[tuple[str, dict[str, ParamSetting]]]:
        r = self.recipe
        scopes = [("parameters", r.parameters)]
        scopes += [(f"models[{i}] ({m.model})", m.parameters) for i, m in enumerate(r.models or [])]
        for i, s in enumerate(r.slices or []):
            scopes.append((f"slices[{i}]", s.parameters))
            scopes += [
                (f"slices[{i}].sources[{j}] ({src.model})", src.parameters)
                for j, src in enumerate(s.sources)
            ]
        return scopes

    def _check_parameter_names(self) -> None:
        valid = self.method.param_names
        for where, scope in self._scopes():
            for key in scope:
                if key in valid:
                    continue
                hint = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
                fix = (
                    f"did you mean '{hint[0]}'?"
                    if hint
                    else f"{self.method.name} takes: {', '.join(valid) or 'no parameters'}"
                )
                self.problems.append(f"unknown parameter '{key}' in {where}; {fix}")

    # -- layout ----------------------------------------------------------------------------
    def _sections(self) -> list[_Section]:
        if self.recipe.slices:
            return [self._slice_section(i) for i in range(len(self.recipe.slices))]
        return [self._models_section()]

    def _split_base(
        self, sources: list[_Source], base_ref: str | None, where: str
    ) -> tuple[_Source | None, list[_Source]]:
        use = self.method.base
        base_idx = self._index(base_ref) if base_ref else None
        if use == "required" and base_idx is None:
            self.problems.append(
                f"{self.method.name} needs a base model; add 'base_model:' to the recipe"
            )
        base: _Source | None = None
        inputs = sources
        if use in ("required", "optional") and base_idx is not None:
            base = next((s for s in sources if s.model == base_idx), None)
            inputs = [s for s in sources if s.model != base_idx]
            if base is None:
                if self.recipe.slices:
                    self.problems.append(
                        f"{where}: the base model {base_ref} must be one of the slice's sources "
                        f"(with its layer range) for {self.method.name}"
                    )
                base = _Source(base_idx, 0, {})
        n = len(inputs)
        lo, hi = self.method.min_models, self.method.max_models
        if n < lo or (hi is not None and n > hi):
            want = f"exactly {lo}" if lo == hi else f"at least {lo}" if hi is None else f"{lo}-{hi}"
            self.problems.append(
                f"{where}: {self.method.name} merges {want} model(s) besides the base, got {n}"
            )
        return base, inputs

    def _models_section(self) -> _Section:
        entries = self.recipe.models or []
        sources = [_Source(self._index(e.model), 0, e.parameters) for e in entries]
        base, inputs = self._split_base(sources, self.recipe.base_model, "models")
        involved = [s.model for s in ([base] if base else []) + inputs]
        counts = {self.refs[i]: self.layers[i] for i in involved}
        if len(set(counts.values())) > 1:
            listed = ", ".join(f"{r} has {n}" for r, n in counts.items())
            self.problems.append(
                f"the models have different layer counts ({listed}); "
                "use 'slices:' with layer_range to choose matching layers"
            )
        length = max(counts.values(), default=0)
        return _Section(0, length, base, inputs, {})

    def _slice_section(self, i: int) -> _Section:
        assert self.recipe.slices is not None
        spec = self.recipe.slices[i]
        where = f"slices[{i}]"
        lengths = set()
        sources = []
        for j, src in enumerate(spec.sources):
            model = self._index(src.model)
            start, end = src.layer_range
            total = self.layers[model]
            if not 0 <= start < end <= total:
                self.problems.append(
                    f"{where}.sources[{j}]: layer_range [{start}, {end}] is out of bounds for "
                    f"{src.model}, which has {total} layers (use 0 <= start < end <= {total})"
                )
            lengths.add(end - start)
            sources.append(_Source(model, start, src.parameters))
        if len(lengths) > 1:
            self.problems.append(
                f"{where}: the sources' layer ranges differ in length ({sorted(lengths)}); "
                "they are merged layer by layer, so give them equal lengths"
            )
        base_ref = spec.base_model or self.recipe.base_model
        base, inputs = self._split_base(sources, base_ref, where)
        out_start = sum(
            s.sources[0].layer_range[1] - s.sources[0].layer_range[0]
            for s in self.recipe.slices[:i]
        )
        return _Section(out_start, max(lengths, default=0), base, inputs, spec.parameters)

    def _reference_model(self, sections: list[_Section]) -> int:
        """The model whose config (and tensor list) the output follows."""
        if self.recipe.base_model:
            return self._index(self.recipe.base_model)
        first = sections[0]
        return first.base.model if first.base else first.inputs[0].model

    def _tokenizer_model(self) -> int:
        mode = self.recipe.tokenizer_mode
        if mode not in ("base", "union"):
            return self._index(mode)
        if self.recipe.base_model:
            return self._index(self.recipe.base_model)
        return self._index(self.refs[0])

    def _vocabulary(self) -> VocabPlan | None:
        try:
            return plan_vocabulary(
                self.recipe.tokenizer_mode,
                self.refs,
                self.ckpts,
                tokenizer_model=self._tokenizer_model(),
                explicit=self.recipe.tokenizer is not None
                or self.recipe.tokenizer_source is not None,
                pad_to_multiple_of=self.recipe.tokenizer.pad_to_multiple_of
                if self.recipe.tokenizer
                else None,
            )
        except MergelabError as exc:
            self.problems.append(str(exc))
            return None

    # -- jobs ------------------------------------------------------------------------------
    def _jobs(
        self, sections: list[_Section], reference: int, vocab: VocabPlan | None
    ) -> list[TensorJob]:
        ref_ckpt = self.ckpts[reference]
        names = list(ref_ckpt.tensors)
        layer_templates = [n for n in names if arch.layer_index(n) == 0]
        pre = [n for n in names if arch.position(n) == "pre"]
        post = [n for n in names if arch.position(n) == "post"]
        jobs: list[TensorJob] = []
        for name in pre:
            jobs.append(self._job(name, name, sections[0], 0, 0.0, vocab))
        for section in sections:
            for k in range(section.length):
                t = gradient_position(k, section.length)
                for template in layer_templates:
                    out_name = arch.with_layer_index(template, section.out_start + k)
                    jobs.append(self._job(out_name, template, section, k, t, vocab))
        for name in post:
            jobs.append(self._job(name, name, sections[-1], 0, 0.0, vocab))
        return jobs

    def _job(
        self,
        out_name: str,
        template: str,
        section: _Section,
        k: int,
        t: float,
        vocab: VocabPlan | None,
    ) -> TensorJob:
        def ref(src: _Source) -> InputRef:
            name = template
            if arch.layer_index(template) is not None:
                name = arch.with_layer_index(template, src.start + k)
            return InputRef(src.model, name)

        base = ref(section.base) if section.base else None
        inputs = tuple(ref(s) for s in section.inputs)
        remap = vocab if vocab is not None and arch.is_vocab_tensor(out_name) else None
        shape = self._check_shapes(out_name, base, inputs, remap)
        params = self._params(out_name, t, section, inputs)
        dtype = self._out_dtype(base or inputs[0])
        return TensorJob(out_name, shape, dtype, self.method.name, base, inputs, params, remap)

    def _check_shapes(
        self,
        out_name: str,
        base: InputRef | None,
        inputs: Sequence[InputRef],
        remap: VocabPlan | None,
    ) -> tuple[int, ...]:
        shapes: dict[int, tuple[int, ...]] = {}
        for r in ((base,) if base else ()) + tuple(inputs):
            info = self.ckpts[r.model].tensors.get(r.name)
            if info is None:
                self.problems.append(
                    f"tensor {r.name} is missing in {self.refs[r.model]}; "
                    "the models must share an architecture"
                )
                continue
            shapes[r.model] = info.shape
        if not shapes:
            return ()
        first = next(iter(shapes.values()))
        if remap is not None:
            return (remap.rows, *first[1:])
        if len(set(shapes.values())) > 1:
            listed = ", ".join(f"{self.refs[m]} {list(s)}" for m, s in shapes.items())
            if arch.is_vocab_tensor(out_name):
                self.problems.append(
                    f"vocabulary sizes differ in {out_name} ({listed}); set "
                    "'tokenizer_source: base' or 'tokenizer_source: union' to align them"
                )
            else:
                self.problems.append(f"shape mismatch in {out_name}: {listed}")
        return first

    def _params(
        self, tensor: str, t: float, section: _Section, inputs: Sequence[InputRef]
    ) -> dict[str, Any]:
        scopes = [section.params, self.recipe.parameters]
        values: dict[str, Any] = {}
        for p in self.method.params:
            if p.per_model:
                per = [
                    self._value(p, tensor, t, [src.params, *scopes], self.refs[src.model])
                    for src in section.inputs
                ]
                values[p.kwarg] = per
            else:
                values[p.kwarg] = self._value(p, tensor, t, scopes, None)
        self._check_normalizable(tensor, values)
        resolved = all(
            v is not None and (not isinstance(v, list) or None not in v) for v in values.values()
        )
        if self.method.validate is not None and resolved:
            for problem in self.method.validate(values):
                self._problem_once(problem)
        return values

    def _value(
        self,
        p: Param,
        tensor: str,
        t: float,
        scopes: list[dict[str, ParamSetting]],
        model: str | None,
    ) -> Any:
        value = resolve(p.name, tensor, t, scopes)
        owner = f" for {model}" if model else ""
        if value is None:
            if p.required:
                self._problem_once(
                    f"missing required parameter '{p.name}'{owner} ({self.method.name}); "
                    f"add it under parameters"
                )
                return None
            return p.default
        return self._coerce(p, value, owner)

    def _coerce(self, p: Param, value: Any, owner: str) -> Any:
        kind = p.kind
        bad = f"parameter '{p.name}'{owner} "
        if kind in ("float", "int"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self._problem_once(bad + f"must be a number, got {value!r}")
                return p.default
            value = float(value) if kind == "float" else int(value)
            if (
                value != value
                or (p.low is not None and value < p.low)
                or (p.high is not None and value > p.high)
            ):
                lo = "-inf" if p.low is None else f"{p.low:g}"
                hi = "inf" if p.high is None else f"{p.high:g}"
                self._problem_once(
                    bad + f"is {value:g}, outside [{lo}, {hi}]; choose a value in range"
                )
            return value
        if kind == "bool":
            if not isinstance(value, bool):
                self._problem_once(bad + f"must be true or false, got {value!r}")
            return value
        if kind == "bool_or_str" and isinstance(value, bool):
            return value
        if p.choices is not None and value not in p.choices:
            self._problem_once(bad + f"is {value!r}; choose one of {list(p.choices)}")
        return value

    def _check_normalizable(self, tensor: str, values: dict[str, Any]) -> None:
        weights = values.get("weight")
        if (
            values.get("normalize") is True
            and isinstance(weights, list)
            and weights
            and all(isinstance(w, float) for w in weights)
            and abs(sum(weights)) < 1e-8
        ):
            self._problem_once(
                f"the weights sum to zero with normalize: true ({tensor} and others); "
                "change the weights or set normalize: false"
            )

    def _problem_once(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    def _out_dtype(self, ref: InputRef) -> torch.dtype:
        name = self.recipe.out_dtype or self.recipe.dtype
        if name is not None:
            return DTYPES[name]
        return self.ckpts[ref.model].tensors[ref.name].dtype


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n
