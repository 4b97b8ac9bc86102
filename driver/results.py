"""A job's return value, encoded once as the JSON the server sends back (contract §1.6, Python side).

``encode_result`` gives compact UTF-8 JSON bytes. The mapping, including the cases where JSON has no
direct equivalent and we had to choose:

* ``dict`` and its subclasses (``Counter``, ``OrderedDict``, pyhocon ``ConfigTree``) and any other
  ``Mapping`` → object, in iteration order. A key that is not a ``str`` becomes ``str(key)`` (``1`` →
  ``"1"``, ``True`` → ``"True"``, ``None`` → ``"None"``, ``(1, 2)`` → ``"(1, 2)"``); if two keys give the
  same text, the later one wins.
* ``list``, ``tuple`` (named tuples included, like Scala's tuples and case classes), ``range``, ``deque``
  and other sequences → array. ``set``/``frozenset`` → array, sorted when the elements can be ordered
  (so equal sets always give equal JSON), otherwise in iteration order.
* ``pyspark.sql.Row`` → object of its fields, nested rows included; a row without field names → array.
* ``str``, ``int``, ``bool``, ``None`` and finite ``float`` as JSON defines them. ``NaN`` and
  ``±Infinity`` → ``null``: JSON has no such numbers, and spray-json, which spark-jobserver renders
  with, maps them to ``null`` as well.
* ``decimal.Decimal`` → number: exactly, as an integer, when it has no fractional digits, otherwise the
  nearest ``float``; a non-finite one → ``null``.
* ``datetime``, ``date``, ``time`` → ISO 8601 string (``isoformat()``).
* ``bytes``, ``bytearray``, ``memoryview`` → base64 string (standard alphabet, padded): lossless and
  compact, where ``str()`` would give Python's ``b'...'`` literal.
* numpy scalars → the equivalent Python scalar, numpy arrays → nested arrays (only if numpy is loaded).
* dataclass instances → object of their fields.
* anything else → ``str(obj)`` as a JSON string.

A container that contains itself cannot be encoded and raises :class:`ResultEncodingError` (a
``ValueError``), as does any other failure, such as a ``__str__`` that raises.

For speed, the standard library's C encoder does the work. It writes tuple subclasses (``Row``), dict
keys, ``NaN`` and containers without ever consulting a ``default`` hook, so a short walk first rebuilds
only the containers it would get wrong; containers of plain values are recognised from the set of
their element types and passed through untouched. Values the encoder does not know reach the
``default`` hook, whose answer goes through the same walk.
"""

from __future__ import annotations

import base64
import collections.abc
import dataclasses
import datetime
import decimal
import json
import math
import sys
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = ["ResultEncodingError", "encode_result"]

# Types that the C encoder writes exactly as §1.6 wants, whatever their value.
_PLAIN_TYPES = frozenset({str, int, bool, type(None)})
# Types whose values are fine once infinities and NaN are ruled out.
_PLAIN_OR_FLOAT_TYPES = _PLAIN_TYPES | {float}
_NUMBER_TYPES = frozenset({int, float, bool})
_STRING_TYPES = frozenset({str})
_NOT_CONVERTED = object()


class ResultEncodingError(ValueError):
    """The job's result cannot be rendered as JSON."""


def encode_result(value: object) -> bytes:
    """Encode a job result as compact UTF-8 JSON; see the module docstring for the mapping."""
    try:
        return _dumps(_normalise(value, set()))
    except ResultEncodingError:
        raise
    except RecursionError as error:
        raise ResultEncodingError("job result is nested too deeply to encode as JSON") from error
    except Exception as error:  # the result's own methods (__str__, __iter__, …) may raise anything
        raise ResultEncodingError(f"job result cannot be encoded as JSON: {error}") from error


def _dumps(value: Any) -> bytes:
    try:
        return _UTF8_ENCODER.encode(value).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate cannot be written as UTF-8; \u escapes keep the output valid JSON.
        return _ASCII_ENCODER.encode(value).encode("ascii")


def _normalise(value: Any, active: set[int]) -> Any:
    """Return ``value``, or a copy of it that the C encoder writes correctly.

    ``active`` holds the ids of the containers being walked, to detect one that contains itself.
    """
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return _normalise_mapping(value, active)
    if isinstance(value, (list, tuple)):
        return _normalise_sequence(value, active)
    return value  # str and int subclasses are written natively; anything else meets the default hook


def _normalise_mapping(mapping: Mapping[Any, Any], active: set[int]) -> Any:
    if set(map(type, mapping)) <= _STRING_TYPES and _all_plain(mapping.values()):
        return mapping
    with _walking(mapping, active):
        return {_key_text(key): _normalise(item, active) for key, item in mapping.items()}


def _normalise_sequence(items: list[Any] | tuple[Any, ...], active: set[int]) -> Any:
    fields = _row_fields(items)
    if fields is not None:
        return _normalise_mapping(fields, active)
    if _all_plain(items):
        return items
    with _walking(items, active):
        return [_normalise(item, active) for item in items]


def _all_plain(values: Collection[Any]) -> bool:
    """Whether the encoder can write every one of ``values`` as it is (checked at C speed)."""
    kinds = set(map(type, values))
    if kinds <= _PLAIN_TYPES:
        return True
    if kinds <= _PLAIN_OR_FLOAT_TYPES:
        return _floats_finite(values, kinds)
    return False


def _floats_finite(values: Collection[Any], kinds: set[type]) -> bool:
    if kinds <= _NUMBER_TYPES:
        try:
            return all(map(math.isfinite, values))
        except OverflowError:
            pass  # an int too large for a float; look at the floats alone
    return all(math.isfinite(value) for value in values if type(value) is float)


@contextmanager
def _walking(container: object, active: set[int]) -> Iterator[None]:
    marker = id(container)
    if marker in active:
        raise ResultEncodingError(
            f"job result contains a {type(container).__name__} that contains itself; "
            "a self-referencing structure cannot be encoded as JSON"
        )
    active.add(marker)
    try:
        yield
    finally:
        active.discard(marker)


def _key_text(key: Any) -> str:
    return key if isinstance(key, str) else str(key)


def _row_fields(items: tuple[Any, ...] | list[Any]) -> dict[str, Any] | None:
    """The fields of a pyspark ``Row`` as a dict, or None when ``items`` is not a row with names."""
    # A Row can only exist once pyspark is imported, so looking in sys.modules keeps pyspark optional
    # and costs nothing when it is absent.
    spark_types = sys.modules.get("pyspark.sql.types")
    row_class = getattr(spark_types, "Row", None)
    if row_class is None or not isinstance(items, row_class) or not hasattr(items, "__fields__"):
        return None
    fields: dict[str, Any] = items.asDict(recursive=True)
    return fields


def _encode_unknown(obj: Any) -> Any:
    """The encoder's ``default`` hook: turn a value it does not know into one it does."""
    return _normalise(_convert(obj), set())


def _convert(obj: Any) -> Any:
    # datetime is a subclass of date, so one check covers both.
    if isinstance(obj, (datetime.date, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, decimal.Decimal):
        return _decimal_number(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(obj).decode("ascii")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        # Shallow on purpose: the encoder recurses into the fields and notices a cycle through them.
        return {field.name: getattr(obj, field.name) for field in dataclasses.fields(obj)}
    converted = _numpy_value(obj)
    if converted is not _NOT_CONVERTED:
        return converted
    return _convert_collection(obj)


def _convert_collection(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return dict(obj.items())
    if isinstance(obj, collections.abc.Set):
        return _sorted_if_possible(obj)
    if isinstance(obj, collections.abc.Sequence):
        return list(obj)
    # Iterators and generators are not consumed: reading them could have side effects.
    return str(obj)


def _decimal_number(value: decimal.Decimal) -> int | float | None:
    if not value.is_finite():
        return None
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return int(value)
    return float(value)


def _sorted_if_possible(items: collections.abc.Set[Any]) -> list[Any]:
    try:
        return sorted(items)
    except TypeError:  # elements of unrelated types cannot be ordered
        return list(items)


def _numpy_value(obj: Any) -> Any:
    # numpy is never imported here: if the job had produced numpy values, it would already be loaded.
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return _NOT_CONVERTED
    if isinstance(obj, numpy.generic):
        return obj.item()
    if isinstance(obj, numpy.ndarray):
        return obj.tolist()
    return _NOT_CONVERTED


def _make_encoder(*, ensure_ascii: bool) -> json.JSONEncoder:
    # Built once: json.dumps with any option set builds a new encoder per call, which would double the
    # cost of a small result. An encoder keeps no state between calls, so sharing it is safe.
    return json.JSONEncoder(
        separators=(",", ":"), allow_nan=False, ensure_ascii=ensure_ascii, default=_encode_unknown
    )


_UTF8_ENCODER = _make_encoder(ensure_ascii=False)
_ASCII_ENCODER = _make_encoder(ensure_ascii=True)
