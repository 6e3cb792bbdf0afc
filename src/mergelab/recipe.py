"""Merge recipes: mergekit-compatible YAML as strict pydantic models.

A recipe mergekit accepts is accepted here with the same meaning (``spec/recipe.md``).
Unknown keys are errors naming the nearest valid key. mergekit's ``modules`` (multi-module
merges) and per-slice ``residual_weight`` are recognised and refused with a clear message.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mergelab.errors import ConfigError

Scalar = float | int | bool | str
ConfigT = TypeVar("ConfigT", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FilteredValue(_Strict):
    """One ``{filter, value}`` item: applies when ``filter`` is a substring of the tensor name."""

    filter: str | None = None
    value: Scalar | list[Scalar]


ParamSetting = Scalar | list[Scalar] | FilteredValue | list[FilteredValue]
Parameters = dict[str, Any]


def parse_setting(name: str, raw: Any) -> ParamSetting:
    """A parameter value: scalar, gradient list, ``{filter, value}`` or a list of those."""
    if isinstance(raw, (bool, int, float, str)):
        return raw
    if isinstance(raw, dict):
        return _filtered(name, raw)
    if isinstance(raw, list) and raw:
        if all(isinstance(v, dict) for v in raw):
            return [_filtered(name, v) for v in raw]
        if all(isinstance(v, (bool, int, float, str)) for v in raw):
            return list(raw)
    raise ValueError(
        f"parameter '{name}' must be a number, a list of numbers (a gradient) or a list of "
        f"{{filter, value}} items; got {raw!r}"
    )


def _filtered(name: str, raw: dict[str, Any]) -> FilteredValue:
    unknown = [k for k in raw if k not in ("filter", "value")]
    if unknown:
        hint = difflib.get_close_matches(str(unknown[0]), ["filter", "value"], n=1, cutoff=0.4)
        fix = f"did you mean '{hint[0]}'?" if hint else "use 'filter' and 'value'"
        raise ValueError(f"parameter '{name}': unknown key '{unknown[0]}'; {fix}")
    if "value" not in raw:
        raise ValueError(f"parameter '{name}': a {{filter, value}} item needs 'value'")
    value = raw["value"]
    if not isinstance(value, (bool, int, float, str, list)):
        raise ValueError(f"parameter '{name}': value must be a number or a list of numbers")
    return FilteredValue(filter=raw.get("filter"), value=value)


class _WithParameters(_Strict):
    parameters: Parameters = Field(default_factory=dict)

    @field_validator("parameters", mode="before")
    @classmethod
    def _parse_parameters(cls, raw: Any) -> dict[str, ParamSetting]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise ValueError("'parameters' must be a mapping of parameter names to values")
        return {str(k): parse_setting(str(k), v) for k, v in raw.items()}


class ModelEntry(_WithParameters):
    """An input model of a ``models:`` recipe, with its own parameters."""

    model: str


class SliceSource(_WithParameters):
    """One model's half-open layer range inside an output slice."""

    model: str
    layer_range: tuple[int, int]


class Slice(_WithParameters):
    """An output slice: its sources are merged layer by layer with the recipe's method."""

    sources: list[SliceSource] = Field(min_length=1)
    base_model: str | None = None
    residual_weight: float | None = None


class TokenizerSettings(_Strict):
    """The ``tokenizer:`` block: where the output vocabulary comes from."""

    source: str = "base"
    pad_to_multiple_of: int | None = Field(default=None, gt=0)
    tokens: dict[str, Any] | None = None


DType = Literal["float32", "float16", "bfloat16", "float64"]


class Recipe(_WithParameters):
    """A merge recipe (``mergelab merge``), field for field compatible with mergekit's."""

    merge_method: str
    base_model: str | None = None
    models: list[ModelEntry] | None = None
    slices: list[Slice] | None = None
    modules: dict[str, Any] | None = None
    dtype: DType | None = None
    out_dtype: DType | None = None
    tokenizer_source: str | None = None
    tokenizer: TokenizerSettings | None = None
    chat_template: str | None = None
    name: str | None = None
    seed: int | None = None

    @model_validator(mode="after")
    def _one_input_form(self) -> Recipe:
        problems = []
        if self.modules is not None:
            problems.append(
                "multi-module recipes ('modules:') are not supported; "
                "merge each module with its own 'models:' or 'slices:' recipe"
            )
        forms = [f for f in ("models", "slices") if getattr(self, f)]
        if self.modules is None and len(forms) != 1:
            problems.append("give exactly one of 'models:' or 'slices:' (a non-empty list)")
        if self.tokenizer_source is not None and self.tokenizer is not None:
            problems.append("give either 'tokenizer_source' or a 'tokenizer:' block, not both")
        if self.tokenizer is not None and self.tokenizer.tokens:
            problems.append(
                "'tokenizer.tokens' (per-token embedding sources) is not supported; remove it"
            )
        for i, s in enumerate(self.slices or []):
            if s.residual_weight is not None:
                problems.append(f"slices[{i}].residual_weight is not supported; remove it")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def tokenizer_mode(self) -> str:
        """``base``, ``union`` or a model reference: where the output vocabulary comes from."""
        if self.tokenizer is not None:
            return self.tokenizer.source
        return self.tokenizer_source or "base"

    def referenced_models(self) -> list[str]:
        """Every model reference in recipe order, base first, without repeats."""
        refs: list[str] = [self.base_model] if self.base_model else []
        for entry in self.models or []:
            refs.append(entry.model)
        for s in self.slices or []:
            if s.base_model:
                refs.append(s.base_model)
            refs.extend(src.model for src in s.sources)
        if self.tokenizer_mode not in ("base", "union"):
            refs.append(self.tokenizer_mode)
        return list(dict.fromkeys(refs))

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def load_recipe(source: Recipe | dict[str, Any] | str | Path) -> Recipe:
    """A validated recipe from a pydantic object, a dict, a YAML file path or YAML text."""
    return load_config(
        source, Recipe, name="recipe", file_kind="recipe file", needs="'merge_method' and 'models'"
    )


def load_config(
    source: ConfigT | dict[str, Any] | str | Path,
    model: type[ConfigT],
    *,
    name: str,
    file_kind: str,
    needs: str,
) -> ConfigT:
    """A validated ``model`` from an instance, a dict, a YAML file path or YAML text.

    Every problem becomes one ConfigError line: a missing file, YAML syntax (with its line),
    a non-mapping document (saying it ``needs`` those keys), or pydantic's complaints.
    """
    if isinstance(source, model):
        return source
    where = name
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source):
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"{file_kind} {path} does not exist; check the path")
        where = str(path)
        source = path.read_text(encoding="utf-8")
    if isinstance(source, str):
        try:
            source = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{where} is not valid YAML{line}; fix its syntax") from None
    if not isinstance(source, dict):
        raise ConfigError(f"{where} must be a YAML mapping with {needs}")
    try:
        return model.model_validate(source)
    except ValidationError as exc:
        raise ConfigError(f"{where}: " + describe_validation_error(exc, model)) from None


def describe_validation_error(exc: ValidationError, root: type[BaseModel]) -> str:
    """All of pydantic's problems as one line, unknown keys with the nearest valid key."""
    problems: list[str] = []
    seen: set[str] = set()
    for err in exc.errors():
        loc = [p for p in err["loc"] if not _is_union_branch(p)]
        where = ".".join(str(p) for p in loc) or "recipe"
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            valid = _valid_keys_at(root, loc[:-1])
            hint = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
            fix = f"did you mean '{hint[0]}'?" if hint else f"valid keys: {', '.join(valid)}"
            text = f"unknown key '{where}'; {fix}"
        elif err["type"] == "missing":
            text = f"missing required key '{where}'"
        elif err["type"] == "value_error":
            text = str(err["msg"]).removeprefix("Value error, ")
        else:
            text = f"{where}: {err['msg']} (got {err.get('input')!r})"
        if text not in seen:
            seen.add(text)
            problems.append(text)
    return "; ".join(problems)


def _is_union_branch(part: object) -> bool:
    """pydantic puts union branch names ('list[...]', 'FilteredValue') into error paths."""
    return isinstance(part, str) and ("[" in part or part[:1].isupper())


def _valid_keys_at(root: type[BaseModel], loc: list[Any]) -> list[str]:
    model: type[BaseModel] | None = root
    for part in loc:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        model = _model_in(field.annotation) if field is not None else None
    return list(model.model_fields) if model is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
