"""Lenses: typed, bidirectional views between sample types, and the registry that chains them.

A lens has a getter (source -> view) and an optional putter (view, source ->
source). ``ds.as_type(View)`` finds the shortest chain of registered lenses
from the dataset's type to ``View``. Every packable type is reachable from
:class:`~atdata.DictSample` without writing a lens.

>>> import atdata
>>> @atdata.packable
... class Full:
...     name: str
...     value: int
>>> @atdata.packable
... class NameOnly:
...     name: str
>>> @atdata.lens
... def name_only(s: Full) -> NameOnly:
...     return NameOnly(name=s.name)
>>> @name_only.putter
... def _(v: NameOnly, s: Full) -> Full:
...     return Full(name=v.name, value=s.value)
>>> name_only(Full("a", 1))
NameOnly(name='a')
"""

from __future__ import annotations

import functools
import inspect
import threading
import typing
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from atdata._fields import fields_of, is_packable, registered_types
from atdata.dict_sample import DictSample
from atdata.errors import LensNotFoundError

__all__ = ["Lens", "LensNetwork", "lens"]

S = TypeVar("S")
V = TypeVar("V")
W = TypeVar("W")


class Lens(Generic[S, V]):
    """A getter from ``source_type`` to ``view_type`` with an optional putter.

    Types are read from the getter's annotations (string annotations work).
    Without a putter, ``put`` returns the source unchanged.
    """

    def __init__(
        self,
        get: Callable[[S], V],
        put: Callable[[V, S], S] | None = None,
        *,
        source_type: type[S] | None = None,
        view_type: type[V] | None = None,
    ) -> None:
        params = list(inspect.signature(get).parameters.values())
        if len(params) != 1:
            raise ValueError(
                f"a lens getter takes exactly one argument, {get!r} takes {len(params)}"
            )
        if source_type is None or view_type is None:
            hints = typing.get_type_hints(get)
            source_type = source_type or hints.get(params[0].name)
            view_type = view_type or hints.get("return")
        if not isinstance(source_type, type) or not isinstance(view_type, type):
            raise ValueError(f"annotate the source and view types of lens getter {get!r}")
        self.source_type: type[S] = source_type
        self.view_type: type[V] = view_type
        self.__name__: str = getattr(get, "__name__", "lens")
        self._get = get
        self._put = put
        functools.update_wrapper(self, get)

    def putter(self, put: Callable[[V, S], S]) -> Callable[[V, S], S]:
        """Decorator that sets the putter of this lens; returns ``put`` unchanged."""
        self._put = put
        return put

    def get(self, source: S) -> V:
        """Map a source sample to its view."""
        return self._get(source)

    def put(self, view: V, source: S) -> S:
        """Write ``view`` back into ``source`` (the source itself if there is no putter)."""
        return source if self._put is None else self._put(view, source)

    def __call__(self, source: S) -> V:
        return self._get(source)

    def then(self, other: Lens[V, W]) -> Lens[S, W]:
        """The composition ``other . self``: get through both, put back through both."""
        first, second = self, other

        def get(s: S) -> W:
            return second.get(first.get(s))

        def put(v: W, s: S) -> S:
            return first.put(second.put(v, first.get(s)), s)

        composed = Lens(get, put, source_type=first.source_type, view_type=second.view_type)
        composed.__name__ = f"{first.__name__}_then_{second.__name__}"
        return composed

    def __repr__(self) -> str:
        return f"Lens({self.source_type.__name__} -> {self.view_type.__name__})"


class LensNetwork:
    """The process-wide registry of lenses; finds the shortest lens path between two types.

    ``LensNetwork()`` always returns the one registry (as in the existing atdata).
    """

    _instance: LensNetwork | None = None

    def __new__(cls) -> LensNetwork:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
            cls._instance._setup()
        return cls._instance

    def _setup(self) -> None:
        self._edges: dict[type, dict[type, Lens[Any, Any]]] = {}
        self._lock = threading.Lock()

    def register(self, lens: Lens[Any, Any]) -> None:
        """Add ``lens``; a later lens for the same (source, view) pair replaces the earlier one."""
        with self._lock:
            self._edges.setdefault(lens.source_type, {})[lens.view_type] = lens

    def _neighbours(self, t: type) -> dict[type, Lens[Any, Any]]:
        out = dict(self._edges.get(t, {}))
        if t is DictSample:
            for cls in registered_types():
                out.setdefault(cls, dict_sample_lens(cls))
        return out

    def transform(self, source: type[S], view: type[V]) -> Lens[S, V]:
        """Return a lens from ``source`` to ``view``, composing registered lenses if needed."""
        if source is DictSample and view not in self._edges.get(source, {}):
            if is_packable(view):
                return cast(Lens[S, V], dict_sample_lens(view))
        with self._lock:
            previous: dict[type, tuple[type, Lens[Any, Any]]] = {}
            queue = deque([source])
            seen = {source}
            while queue:
                t = queue.popleft()
                if t is view:
                    break
                for nxt, edge in self._neighbours(t).items():
                    if nxt not in seen:
                        seen.add(nxt)
                        previous[nxt] = (t, edge)
                        queue.append(nxt)
        if view not in previous:
            known = sorted(v.__name__ for v in self._edges.get(source, {}))
            raise LensNotFoundError(
                f"no lens path from {source.__name__} to {view.__name__}; "
                f"lenses from {source.__name__}: {known or 'none'}"
            )
        path: list[Lens[Any, Any]] = []
        t = view
        while t is not source:
            t, edge = previous[t][0], previous[t][1]
            path.append(edge)
        path.reverse()
        result = path[0]
        for edge in path[1:]:
            result = result.then(edge)
        return result


network: LensNetwork = LensNetwork()
"""The process-wide lens registry (the one ``LensNetwork()`` returns)."""


def dict_sample_lens(cls: type[V]) -> Lens[DictSample, V]:
    """The built-in lens from ``DictSample`` to the packable type ``cls`` (one per type)."""
    cached = cls.__dict__.get("_atdata_dict_lens")
    if cached is not None:
        return cached

    def get(d: DictSample) -> V:
        return cls.from_data(d.as_mapping())  # type: ignore[attr-defined]  # a packable type

    def put(view: V, source: DictSample) -> DictSample:
        data = source.to_dict()
        data.update({s.name: getattr(view, s.name) for s in fields_of(cls)})
        return DictSample(data)

    result = Lens(get, put, source_type=DictSample, view_type=cls)
    result.__name__ = f"DictSample_to_{cls.__name__}"
    cls._atdata_dict_lens = result  # type: ignore[attr-defined]
    return result


def lens(get: Callable[[S], V]) -> Lens[S, V]:
    """Decorator: make a :class:`Lens` from an annotated getter and register it."""
    result: Lens[S, V] = Lens(get)
    network.register(result)
    return result
