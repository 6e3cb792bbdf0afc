"""The merge-method registry: every method is one pure function registered by a decorator.

A method function has the signature::

    fn(base: Tensor | None, tensors: list[Tensor], *, <params>) -> Tensor

- ``base`` is the base model's tensor (``None`` when the method has no base or none was given),
  ``tensors`` the other models' tensors in recipe order, all already upcast to the compute dtype
  on the compute device and of equal shape (``passthrough`` gets exactly one).
- Every parameter arrives resolved for the current tensor: a per-model parameter as a list
  aligned with ``tensors``, a global one as a scalar. A parameter whose recipe key is a Python
  keyword is passed with a trailing underscore (``lambda`` -> ``lambda_``).
- Randomised methods declare ``randomized=True`` and receive ``generators``: one
  ``torch.Generator`` per entry of ``tensors``, seeded from (recipe seed, tensor name, model
  index) by the engine, so results do not depend on job order or thread count.
- No I/O, logging, casting or global state. The result has ``tensors[0]``'s shape.
- A method whose parameters constrain each other declares ``validate``: it receives the
  resolved keyword arguments of one tensor and returns the problems, so the planner reports
  them before any tensor is read.
- A member of the task-arithmetic family (``_task_arithmetic``) declares its ``consensus``,
  ``"sign"`` or ``"sum"``: it then promises that a model whose tensor equals the base's adds
  nothing, so :meth:`MergeMethod.inert_for_base_copies` can name the parameters it ignores.
- A method whose every output entry depends only on the same entry of its inputs declares
  ``elementwise=True``; the engine may then run it block by block over a large tensor.
- A method that needs whole-tensor statistics (norms, top-k thresholds) but can gather them
  in passes over blocks registers with :func:`block_merge_method` a factory
  ``make(shape, dtype, *, <params>) -> BlockMerge`` (``_blocks``; ``dtype`` is the compute
  dtype); its function is derived from it, and the engine streams it over large tensors.
"""

from __future__ import annotations

import functools
import keyword
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch

from mergelab.methods._blocks import BlockMerge, merge_in_blocks

BaseUse = Literal["required", "optional", "ignored", "none"]
Consensus = Literal["sign", "sum"]
ParamKind = Literal["float", "int", "bool", "str", "bool_or_str"]


class _Required:
    def __repr__(self) -> str:
        return "required"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Param:
    """One parameter of a merge method, as it appears in a recipe."""

    name: str
    kind: ParamKind = "float"
    default: Any = REQUIRED
    per_model: bool = False
    doc: str = ""
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def kwarg(self) -> str:
        """The keyword the method function receives this parameter under."""
        return self.name + "_" if keyword.iskeyword(self.name) else self.name


MethodFn = Callable[..., torch.Tensor]
# (tensor shape, compute dtype, **resolved parameters) -> the tensor's block-wise merge
BlockFactory = Callable[..., BlockMerge]
# resolved parameters of one tensor -> problems (empty when fine), checked before any read
Validator = Callable[[dict[str, Any]], list[str]]


@dataclass(frozen=True)
class MergeMethod:
    """A registered merge method: the function plus what the planner needs to call it."""

    name: str
    func: MethodFn
    base: BaseUse
    params: tuple[Param, ...]
    summary: str
    paper: str
    min_models: int = 1
    max_models: int | None = None
    randomized: bool = False
    validate: Validator | None = None
    elementwise: bool = False
    blockwise: BlockFactory | None = None
    consensus: Consensus | None = None

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def inert_for_base_copies(self, params: Mapping[str, Any]) -> frozenset[str]:
        """Per-model parameters that do not change a tensor's result for a model whose tensor
        equals the base's, given the recipe's global ``params`` (defaults fill the rest).

        In the task-arithmetic family such a model's task vector is zero: sparsified, scaled
        and summed it stays zero, and a zero entry never agrees with an elected sign, so
        only the ``sum`` consensus with ``normalize`` still counts its weight (in the
        divisor). Empty for every other method.
        """
        if self.consensus is None:
            return frozenset()
        inert = {p.name for p in self.params if p.per_model}
        spec = self.param("normalize")
        normalize = params.get("normalize", spec.default if spec is not None else False)
        if self.consensus == "sum" and normalize:
            inert.discard("weight")
        return frozenset(inert)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)


_REGISTRY: dict[str, MergeMethod] = {}


def merge_method(
    name: str,
    *,
    base: BaseUse,
    params: tuple[Param, ...] = (),
    summary: str,
    paper: str = "",
    min_models: int = 1,
    max_models: int | None = None,
    randomized: bool = False,
    validate: Validator | None = None,
    elementwise: bool = False,
    blockwise: BlockFactory | None = None,
    consensus: Consensus | None = None,
) -> Callable[[MethodFn], MethodFn]:
    """Register ``fn`` as merge method ``name`` (see the module docstring for the contract)."""

    def register(fn: MethodFn) -> MethodFn:
        if name in _REGISTRY:
            raise ValueError(f"merge method {name!r} is registered twice")
        _REGISTRY[name] = MergeMethod(
            name=name,
            func=fn,
            base=base,
            params=params,
            summary=summary,
            paper=paper,
            min_models=min_models,
            max_models=max_models,
            randomized=randomized,
            validate=validate,
            elementwise=elementwise,
            blockwise=blockwise,
            consensus=consensus,
        )
        return fn

    return register


def block_merge_method(name: str, **options: Any) -> Callable[[BlockFactory], BlockFactory]:
    """Register the block-wise merge ``make(shape, dtype, **params)`` as method ``name``;
    ``options`` are :func:`merge_method`'s (``base``, ``params``, ``summary``...)."""

    def register(make: BlockFactory) -> BlockFactory:
        def whole(
            base_tensor: torch.Tensor | None, tensors: list[torch.Tensor], **kwargs: object
        ) -> torch.Tensor:
            inputs = tensors if base_tensor is None else [base_tensor, *tensors]
            dtype = functools.reduce(torch.promote_types, (t.dtype for t in inputs))
            merge = make(tuple(tensors[0].shape), dtype, **kwargs)
            return merge_in_blocks(merge, base_tensor, tensors)

        whole.__doc__ = make.__doc__
        merge_method(name, blockwise=make, **options)(whole)
        return make

    return register


def get_method(name: str) -> MergeMethod:
    """The registered method ``name``; raises ``KeyError`` when there is none."""
    _load_builtin_methods()
    return _REGISTRY[name]


def all_methods() -> dict[str, MergeMethod]:
    """Every registered method by name, sorted."""
    _load_builtin_methods()
    return dict(sorted(_REGISTRY.items()))


def _load_builtin_methods() -> None:
    import mergelab.methods  # noqa: F401  (importing the package registers the built-ins)
