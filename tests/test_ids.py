"""workspace/ids.py: the one image id -> row mapping (catalog, clusters, word index, embeddings)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from alienstay.workspace.ids import MISSING, DuplicateIds, IdRows, first_rows

ODD = ["b", "a", "a/b c", "é", "ab", "zz\nnewline", "日本", "a" * 70, ""]


def test_each_id_finds_its_own_row_and_missing_ones_none() -> None:
    rows = IdRows(ODD)
    for row, image_id in enumerate(ODD):
        assert rows.row(image_id) == row
        assert image_id in rows
    for absent in ("c", "a ", "A", "é ", "a" * 71, "a" * 69, "日", "b\x00"):
        assert rows.row(absent) is None
        assert absent not in rows
    assert rows.row(3) is None  # not a string: never an id


def test_vectorised_lookups_equal_the_scalar_ones() -> None:
    rng = np.random.default_rng(0)
    ids = [f"h{int(i):05d}-{int(j)}" for i, j in zip(rng.integers(0, 10**5, 3000), rng.integers(0, 9, 3000))]
    ids = list(dict.fromkeys(ids))
    rows = IdRows(pa.chunked_array([pa.array(ids[:1000]), pa.array(ids[1000:])]))
    asked = ids[::7] + ["nope", "h00000-99", ids[0] + "x", "a" * 40] + ids[5:9]
    many = rows.rows(pa.array(asked))
    assert many.dtype == np.int64
    assert many.tolist() == [MISSING if rows.row(i) is None else rows.row(i) for i in asked]
    assert many.tolist()[: len(ids[::7])] == list(range(0, len(ids), 7))
    assert rows.rows(asked).tolist() == many.tolist()  # a list and an Arrow array alike
    assert rows.rows(pa.array(["b", None, "a"])).tolist() == [MISSING, MISSING, MISSING]  # none of these ids


def test_duplicates_are_refused_with_what_to_do() -> None:
    with pytest.raises(DuplicateIds, match="1 image ids appear more than once .*'a'.*first_rows"):
        IdRows(["b", "a", "c", "a"])
    with pytest.raises(ValueError, match="no image id"):
        IdRows(pa.array(["a", None]))
    with pytest.raises(ValueError, match="NUL"):
        IdRows(["a", "b\x00c"])


def test_sorted_already_is_checked() -> None:
    assert IdRows(["a", "b", "c"], sorted_already=True).rows(["c", "a", "x"]).tolist() == [2, 0, MISSING]
    with pytest.raises(ValueError, match="not"):
        IdRows(["b", "a"], sorted_already=True)


def test_first_rows_keeps_the_first_of_each_id_in_table_order() -> None:
    assert first_rows(["b", "a", "b", "c", "a", "b"]).tolist() == [0, 1, 3]
    assert first_rows(pa.array(["x", None, "x", None])).tolist() == [0, 1]
    assert first_rows([]).tolist() == []


def test_empty_tables_find_nothing() -> None:
    rows = IdRows(pa.array([], pa.string()))
    assert len(rows) == 0 and rows.row("a") is None and rows.rows(["a", "b"]).tolist() == [MISSING, MISSING]


def test_ids_of_one_length_and_of_many_map_alike() -> None:
    same = [f"p{i:04d}" for i in (7, 3, 9, 1)]  # one length: the bytes are used as they are
    mixed = [*same, "p1", "p12345"]
    for ids in (same, mixed):
        rows = IdRows(pa.array(ids).slice(0))  # and from a slice, whose buffers start elsewhere
        assert [rows.row(i) for i in ids] == list(range(len(ids))) == rows.rows(ids).tolist()
    sliced = IdRows(pa.array(["zz", *same, "aa"]).slice(1, 4))
    assert sliced.rows(same).tolist() == [0, 1, 2, 3] and sliced.row("zz") is None and sliced.row("aa") is None
    with pytest.raises(ValueError, match="NUL"):
        IdRows(["ab", "c\x00"])
