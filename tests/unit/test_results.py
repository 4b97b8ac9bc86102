"""How job results are rendered as JSON (contract §1.6)."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import json
import subprocess
import sys
import types
from pathlib import Path
from typing import NamedTuple

import pytest

from driver.results import ResultEncodingError, encode_result

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


def decoded(value: object) -> object:
    return json.loads(encode_result(value))


# --- the contract's examples ------------------------------------------------------------------


def test_nested_lists_in_a_dict_are_encoded_compactly() -> None:
    assert encode_result({"first": [1, 2, ["a", "b"]]}) == b'{"first":[1,2,["a","b"]]}'


def test_tuple_becomes_an_array() -> None:
    assert encode_result((1, 2, "b")) == b'[1,2,"b"]'


def test_nested_empty_dict_becomes_an_empty_object() -> None:
    assert encode_result({"a": {}}) == b'{"a":{}}'


def test_unknown_object_becomes_its_str() -> None:
    class Thing:
        def __str__(self) -> str:
            return "a thing"

    assert encode_result({"value": Thing()}) == b'{"value":"a thing"}'


def test_counter_becomes_an_object() -> None:
    assert decoded(collections.Counter(["a", "b", "a"])) == {"a": 2, "b": 1}


def test_spark_row_becomes_an_object_of_its_fields() -> None:
    sql = pytest.importorskip("pyspark.sql")
    row = sql.Row(name="bob", age=20, address=sql.Row(city="Oslo"))
    assert decoded(row) == {"name": "bob", "age": 20, "address": {"city": "Oslo"}}


# --- scalars ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(45, b"45"), (1.5, b"1.5"), ("text", b'"text"'), (True, b"true"), (False, b"false"), (None, b"null")],
)
def test_scalars_are_encoded_as_json_defines_them(value: object, expected: bytes) -> None:
    assert encode_result(value) == expected


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_become_null(value: float) -> None:
    assert decoded([1.0, value, {"x": value}]) == [1.0, None, {"x": None}]


def test_non_finite_float_beside_a_huge_int_becomes_null() -> None:
    assert decoded([10**400, float("nan")]) == [10**400, None]


def test_non_ascii_text_is_written_as_utf8() -> None:
    assert encode_result({"word": "smørbrød"}) == '{"word":"smørbrød"}'.encode()


def test_lone_surrogate_is_escaped_so_output_stays_valid() -> None:
    assert json.loads(encode_result("\udc80")) == "\udc80"


def test_decimal_becomes_a_number() -> None:
    values = [decimal.Decimal("1.50"), decimal.Decimal("12E+2"), decimal.Decimal("123456789012345678901")]
    assert encode_result(values) == b"[1.5,1200,123456789012345678901]"


def test_non_finite_decimal_becomes_null() -> None:
    assert decoded([decimal.Decimal("NaN"), decimal.Decimal("-Infinity")]) == [None, None]


def test_dates_and_times_become_iso_strings() -> None:
    value = [datetime.date(2024, 1, 2), datetime.datetime(2024, 1, 2, 3, 4, 5), datetime.time(6, 7)]
    assert decoded(value) == ["2024-01-02", "2024-01-02T03:04:05", "06:07:00"]


def test_bytes_become_base64() -> None:
    assert decoded([b"\x00\xff", bytearray(b"hi"), memoryview(b"hi")]) == ["AP8=", "aGk=", "aGk="]


# --- containers ---------------------------------------------------------------------------------


def test_ordered_dict_keeps_its_order() -> None:
    assert encode_result(collections.OrderedDict([("b", 1), ("a", 2)])) == b'{"b":1,"a":2}'


def test_non_string_keys_are_stringified_with_str() -> None:
    value = {1: "int", 2.5: "float", None: "none", (1, 2): "tuple", False: "bool"}
    assert decoded(value) == {"1": "int", "2.5": "float", "None": "none", "(1, 2)": "tuple", "False": "bool"}


def test_non_string_keys_are_stringified_in_nested_dicts_too() -> None:
    assert decoded([{"outer": {7: "seven"}}]) == [{"outer": {"7": "seven"}}]


def test_sets_become_sorted_arrays() -> None:
    assert encode_result({"s": {3, 1, 2}, "f": frozenset({"b", "a"})}) == b'{"s":[1,2,3],"f":["a","b"]}'


def test_set_of_unorderable_elements_still_becomes_an_array() -> None:
    assert sorted(decoded({1, "a"}), key=str) == [1, "a"]


def test_named_tuple_becomes_an_array_like_any_tuple() -> None:
    class Point(NamedTuple):
        x: int
        y: int

    assert encode_result([Point(1, 2)]) == b"[[1,2]]"


def test_other_sequences_and_mappings_become_arrays_and_objects() -> None:
    value = [range(3), collections.deque([4]), types.MappingProxyType({"k": 5})]
    assert decoded(value) == [[0, 1, 2], [4], {"k": 5}]


def test_iterator_is_not_consumed_but_stringified() -> None:
    iterator = iter([1, 2])
    assert isinstance(decoded(iterator), str)
    assert list(iterator) == [1, 2]


def test_dataclass_becomes_an_object_of_its_fields() -> None:
    @dataclasses.dataclass
    class Score:
        name: str
        points: list[object]

    assert decoded(Score("ann", [Score("bob", []), float("nan")])) == {
        "name": "ann",
        "points": [{"name": "bob", "points": []}, None],
    }


def test_values_inside_converted_values_are_converted_too() -> None:
    assert decoded({frozenset({(1, 2)}): {decimal.Decimal("2.5")}}) == {"frozenset({(1, 2)})": [2.5]}


def test_rows_collected_from_a_dataframe_become_objects() -> None:
    sql = pytest.importorskip("pyspark.sql")
    rows = [sql.Row(age=20, average=1250.0, tags={1: "x"}), sql.Row(age=21, average=float("nan"), tags={})]
    assert decoded(rows) == [
        {"age": 20, "average": 1250.0, "tags": {"1": "x"}},
        {"age": 21, "average": None, "tags": {}},
    ]


def test_row_without_field_names_becomes_an_array() -> None:
    sql = pytest.importorskip("pyspark.sql")
    assert decoded(sql.Row("a", "b")) == ["a", "b"]


def test_numpy_values_become_python_values(monkeypatch: pytest.MonkeyPatch) -> None:
    # numpy is not a dependency; a stand-in module with the two types the encoder looks for will do.
    class Generic:
        def item(self) -> float:
            return 2.5

    class NdArray:
        def tolist(self) -> list[object]:
            return [[1, 2], [Generic()]]

    fake_numpy = types.SimpleNamespace(generic=Generic, ndarray=NdArray)
    monkeypatch.setitem(sys.modules, "numpy", fake_numpy)
    assert decoded({"scalar": Generic(), "array": NdArray()}) == {"scalar": 2.5, "array": [[1, 2], [2.5]]}


def test_plain_containers_are_not_copied_but_encoded_as_they_are() -> None:
    value = {"words": ["a"] * 1000, "counts": list(range(1000)), "ratios": [0.5] * 1000}
    assert encode_result(value) == json.dumps(value, separators=(",", ":")).encode()


# --- failures -----------------------------------------------------------------------------------


def test_list_containing_itself_raises_value_error() -> None:
    looped: list[object] = [1]
    looped.append({"again": looped})
    with pytest.raises(ValueError, match="contains itself"):
        encode_result(looped)


def test_dict_containing_itself_raises_value_error() -> None:
    looped: dict[object, object] = {}
    looped[1] = looped
    with pytest.raises(ValueError, match="contains itself"):
        encode_result(looped)


def test_dataclass_containing_itself_raises_value_error() -> None:
    @dataclasses.dataclass
    class Node:
        children: list[object]

    node = Node([])
    node.children.append(node)
    with pytest.raises(ResultEncodingError, match="Circular reference"):
        encode_result(node)


def test_same_list_twice_is_not_mistaken_for_a_cycle() -> None:
    shared = [{1: "x"}]
    assert decoded([shared, shared]) == [[{"1": "x"}], [{"1": "x"}]]


def test_too_deep_nesting_raises_value_error() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep, {1: 2}]
    with pytest.raises(ValueError, match="nested too deeply"):
        encode_result(deep)


def test_object_whose_str_raises_gives_value_error() -> None:
    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no text")

    with pytest.raises(ResultEncodingError, match="no text"):
        encode_result([Broken()])


def test_encoder_works_without_loading_pyspark() -> None:
    script = (
        "import sys; from driver.results import encode_result; "
        "assert encode_result({'a': (1,)}) == b'{\"a\":[1]}'; "
        "assert 'pyspark' not in sys.modules, 'pyspark was imported'"
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPOSITORY_ROOT, check=True)
