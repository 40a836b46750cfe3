"""Per-leg timing of the index calls of a search, without touching the index's code.

Hybrid search runs both legs inside the backend (``BaseIndexBackend.search``, under the
embedded backend's lock so a generation switch cannot fall between them), so timing around the
backend call from outside sees one number. ``legs_timed(index)`` returns a twin of the backend: an
instance of a subclass that shares the original's state (the same ``__dict__``: the same lock,
store and caches) and times ``bm25_search`` and ``vector_search`` wherever they are called from,
the backend's own hybrid included. Fusion is what a hybrid call spent beyond its two legs, recorded
only for calls that ran both legs (a keyword-only or vector-only search has no fusion); a backend
with a native hybrid reports all of a hybrid call as fusion, since it cannot be split.
"""
import threading
import time
import weakref

from kbsearch.ops.metrics import SEARCH_LEG_SECONDS

_LEG_METHODS = {"bm25_search": "bm25", "vector_search": "vector"}
# The call that runs one leg or fuses both (contract v2).
_FUSED_METHODS = ("search",)
_twin_classes: dict[type, type] = {}
# One twin per backend object, made at its first search rather than at every search. The twin
# holds the original's ``__dict__``, not the original, so it never keeps a closed backend alive.
_twins: "weakref.WeakKeyDictionary[object, object]" = weakref.WeakKeyDictionary()
_twin_lock = threading.Lock()
_inside = threading.local()  # seconds and count of the legs inside the current search call, per thread


def _timed_leg(method_name: str, leg: str):
    def timed(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return getattr(super(type(self), self), method_name)(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            SEARCH_LEG_SECONDS.labels(leg=leg).observe(elapsed)
            if getattr(_inside, "legs", None) is not None:
                _inside.legs += elapsed
                _inside.count += 1

    timed.__name__ = method_name
    return timed


def _timed_fusion(method_name: str):
    def timed(self, *args, **kwargs):
        outer = getattr(_inside, "legs", None), getattr(_inside, "count", 0)
        _inside.legs, _inside.count = 0.0, 0
        started = time.perf_counter()
        try:
            return getattr(super(type(self), self), method_name)(*args, **kwargs)
        finally:
            total = time.perf_counter() - started
            # Both legs, or none (a native hybrid that cannot be split): the rest is fusion.
            if _inside.count != 1:
                SEARCH_LEG_SECONDS.labels(leg="fusion").observe(max(0.0, total - _inside.legs))
            legs, count = outer
            _inside.legs = legs if legs is None else legs + total
            _inside.count = count

    timed.__name__ = method_name
    return timed


def twin_class_of(backend_class: type) -> type:
    """The timing subclass of ``backend_class`` (made once per class)."""
    with _twin_lock:
        twin = _twin_classes.get(backend_class)
        if twin is None:
            methods = {name: _timed_leg(name, leg) for name, leg in _LEG_METHODS.items() if hasattr(backend_class, name)}
            methods.update({name: _timed_fusion(name) for name in _FUSED_METHODS if hasattr(backend_class, name)})
            twin = type(f"LegTimed{backend_class.__name__}", (backend_class,), methods)
            _twin_classes[backend_class] = twin
        return twin


def legs_timed(index):
    """A twin of ``index`` that records each leg's time; state and behaviour are the original's."""
    with _twin_lock:
        twin = _twins.get(index)
    if twin is None:
        twin = object.__new__(twin_class_of(type(index)))
        twin.__dict__ = index.__dict__
        with _twin_lock:
            _twins[index] = twin
    return twin
