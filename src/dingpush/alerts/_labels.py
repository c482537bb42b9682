"""Label sets: read-only string maps that templates can read as ``labels.severity``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

__all__ = ["EMPTY", "LabelSet", "common", "matcher_text"]

#: Alertmanager lists ``alertname`` first wherever it shows labels; so do we.
ALERTNAME = "alertname"


def _quote(value: str) -> str:
    # OpenMetrics escaping, as Alertmanager writes matcher values.
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def matcher_text(labels: Mapping[str, str]) -> str:
    """``{alertname="X",severity="critical"}``: the equality matchers of a label set."""
    pairs = LabelSet(labels).sorted_pairs()
    return "{" + ",".join(f'{name}="{_quote(value)}"' for name, value in pairs) + "}"


class LabelSet(Mapping[str, str]):
    """An immutable map of label (or annotation) names to string values.

    A template reads a label as ``labels.severity`` or ``labels["severity"]``; a label the set
    does not have reads as ``""`` (as Alertmanager's Go templates print a missing label), so
    ``{% if alert.labels.owner %}`` needs no ``is defined``. A label whose name is also a method
    (``items``, ``keys``, ``values``, ``get``) is read with ``labels["items"]``.
    """

    __slots__ = ("_data",)

    _data: dict[str, str]

    def __init__(self, data: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        object.__setattr__(self, "_data", dict(data))

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._data.get(name, "")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a LabelSet is read-only")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"LabelSet({self._data!r})"

    def sorted_pairs(self) -> list[tuple[str, str]]:
        """``(name, value)`` pairs, ``alertname`` first, the rest by name."""
        names = sorted(self._data)
        if ALERTNAME in self._data:
            names.remove(ALERTNAME)
            names.insert(0, ALERTNAME)
        return [(name, self._data[name]) for name in names]

    def without(self, *names: str | Iterable[str]) -> LabelSet:
        """A copy without the given names; a mapping or list of names counts as its keys."""
        drop: set[str] = set()
        for item in names:
            if isinstance(item, str):
                drop.add(item)
            else:
                drop.update(item)
        return LabelSet((k, v) for k, v in self._data.items() if k not in drop)

    def differing(self, common: Mapping[str, str]) -> LabelSet:
        """The labels whose value is not the same in ``common`` (what sets this alert apart)."""
        return LabelSet((k, v) for k, v in self._data.items() if common.get(k) != v)

    def matchers(self) -> str:
        """``{alertname="X",…}``, the form Alertmanager's silence form and ``amtool`` read."""
        return matcher_text(self._data)


def common(label_sets: Iterable[Mapping[str, str]]) -> LabelSet:
    """The labels every set has with the same value (Alertmanager's ``commonLabels``)."""
    result: dict[str, str] | None = None
    for labels in label_sets:
        if result is None:
            result = dict(labels)
        else:
            result = {k: v for k, v in result.items() if labels.get(k) == v}
        if not result:
            break
    return LabelSet(result or {})


EMPTY = LabelSet()
