"""``SampleBatch``: a list of samples with each field gathered across the batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import numpy as np

from atdata.dict_sample import DictSample
from atdata.errors import SampleError
from atdata.sample import fields_of, is_packable

__all__ = ["SampleBatch"]

DT = TypeVar("DT")


class SampleBatch(Generic[DT]):
    """Samples of one type, with every field reachable as an attribute.

    Array fields are stacked into one array of shape ``(B, ...)`` (one
    allocation, one copy per sample); every other field is a list. Samples
    in ``.samples`` then hold views of the stacked rows.

    >>> import atdata
    >>> b = SampleBatch([atdata.DictSample(x=1), atdata.DictSample(x=2)])
    >>> b.x
    [1, 2]
    """

    def __init__(self, samples: Sequence[DT], sample_type: type | None = None) -> None:
        self.samples: list[DT] = list(samples)
        if sample_type is None:
            sample_type = type(self.samples[0]) if self.samples else DictSample
        self.sample_type: type = sample_type
        self._fields: dict[str, Any] = {}
        if not self.samples:
            return
        if is_packable(sample_type):
            for spec in fields_of(sample_type):
                values = [s.__dict__[spec.name] for s in self.samples]  # type: ignore[attr-defined]
                if spec.type.kind == "ndarray":
                    self._fields[spec.name] = self._stack(spec.name, values, lambda s: s.__dict__)
                else:
                    self._fields[spec.name] = values
        else:
            names: dict[str, None] = {}
            for s in self.samples:
                names.update(dict.fromkeys(s._data))  # type: ignore[attr-defined]
            for name in names:
                values = [s._data.get(name) for s in self.samples]  # type: ignore[attr-defined]
                if all(isinstance(v, np.ndarray) for v in values):
                    self._fields[name] = self._stack(name, values, lambda s: s._data)
                else:
                    self._fields[name] = values

    def _stack(self, name: str, values: list[Any], storage: Any) -> Any:
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
            storage(s)[name] = out[i]
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
