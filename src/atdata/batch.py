"""``SampleBatch``: a list of samples with each field gathered across the batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar, cast

import numpy as np

from atdata._fields import fields_of, is_packable
from atdata.dict_sample import DictSample
from atdata.errors import SampleError

__all__ = ["SampleBatch"]

T = TypeVar("T")


class SampleBatch(Generic[T]):
    """Samples of one type, with every field reachable as an attribute.

    Array fields are stacked into one array of shape ``(B, ...)`` (one
    allocation, one copy per sample); every other field is a list. Samples
    in ``.samples`` then hold views of the stacked rows.

    >>> import atdata
    >>> b = SampleBatch([atdata.DictSample(x=1), atdata.DictSample(x=2)])
    >>> b.x
    [1, 2]
    """

    samples: list[T]
    """The samples, in order."""
    sample_type: type[T]
    """Their type (``DictSample`` for an empty batch of unknown type)."""

    def __init__(self, samples: Sequence[T], sample_type: type[T] | None = None) -> None:
        self.samples = list(samples)
        if sample_type is None:
            sample_type = type(self.samples[0]) if self.samples else cast("type[T]", DictSample)
        self.sample_type = sample_type
        self._fields: dict[str, Any] = {}
        if not self.samples:
            return
        if is_packable(sample_type):
            for spec in fields_of(sample_type):
                values = [s.__dict__[spec.name] for s in self.samples]
                if spec.type.kind == "ndarray":
                    self._fields[spec.name] = self._stack(spec.name, values, _attribute_setter)
                else:
                    self._fields[spec.name] = values
        else:
            dict_samples: list[DictSample] = self.samples  # type: ignore[assignment]
            names: dict[str, None] = {}
            for d in dict_samples:
                names.update(dict.fromkeys(d.keys()))
            for name in names:
                values = [d.get(name) for d in dict_samples]
                if all(isinstance(v, np.ndarray) for v in values):
                    self._fields[name] = self._stack(name, values, _item_setter)
                else:
                    self._fields[name] = values

    def _stack(self, name: str, values: list[Any], store: Callable[[Any, str, Any], None]) -> Any:
        if any(v is None for v in values):
            # an optional array missing in some samples: a list of arrays that own their memory
            return [None if v is None else (v if v.flags.owndata else v.copy()) for v in values]
        first = values[0]
        for v in values:
            if v.shape != first.shape or v.dtype != first.dtype:
                raise SampleError(
                    f"cannot batch arrays of shape {first.shape} {first.dtype} and {v.shape} {v.dtype}; "
                    "iterate without batch_size or make the shapes equal with a lens",
                    field=name,
                )
        out = np.empty((len(values), *first.shape), dtype=first.dtype)
        for i, v in enumerate(values):
            out[i] = v
        for i, s in enumerate(self.samples):
            store(s, name, out[i])
        return out

    def __getattr__(self, name: str) -> Any:
        fields = self.__dict__.get("_fields", {})
        try:
            return fields[name]
        except KeyError:
            raise AttributeError(
                f"SampleBatch of {self.sample_type.__name__} has no field {name!r}; fields: {list(fields)}"
            ) from None

    def keys(self) -> list[str]:
        """The field names."""
        return list(self._fields)

    def to_dict(self) -> dict[str, Any]:
        """Field name to gathered value (stacked array or list)."""
        return dict(self._fields)

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return f"SampleBatch[{self.sample_type.__name__}](n={len(self.samples)}, fields={list(self._fields)})"


def _attribute_setter(sample: Any, name: str, value: Any) -> None:
    sample.__dict__[name] = value


def _item_setter(sample: Any, name: str, value: Any) -> None:
    sample[name] = value
