"""An independent implementation of Hotels-50K's counting rule, for checking alienstay's figures.

Written from the dataset's evaluator (GWUvision/Hotels-50K, evaluate/retrieval.py and
evaluate/utils.py), NOT from alienstay's code, and sharing none of it (plain csv, no numpy):

- the split CSVs map image id -> hotel id (first row skipped as a header); hotel_info.csv maps
  hotel id -> chain id (third column);
- the knn file: comma-separated, one row a query, its image id then exactly 100 result image ids;
  the query's hotel is looked up in the test split, every result's in the train split;
- hotel top-K: the share of ALL queries whose first result of their own hotel sits at
  position < K (0-based); chain top-K: the same by chain, over the queries whose chain is not -1
  (chain -1 results stay in the lists and simply never match).
"""

from __future__ import annotations

import csv
from pathlib import Path

HOTEL_KS = (1, 10, 100)
CHAIN_KS = (1, 3, 5)


def image_to_hotel(*split_csvs: Path) -> dict[int, int]:
    mapping: dict[int, int] = {}
    for path in split_csvs:
        with open(path, newline="") as handle:
            rows = csv.reader(handle)
            next(rows)  # the evaluator skips the first row
            for row in rows:
                mapping[int(row[0])] = int(row[1])
    return mapping


def hotel_to_chain(hotel_info_csv: Path) -> dict[int, int]:
    with open(hotel_info_csv, newline="") as handle:
        rows = csv.reader(handle)
        next(rows)
        return {int(row[0]): int(row[2]) for row in rows}


def evaluate(knn_file: Path, query_csv: Path, gallery_csvs: list[Path], hotel_info_csv: Path) -> dict:
    """Percent of queries with a hit in the first K results, as the evaluator prints them."""
    query_hotel = image_to_hotel(query_csv)
    result_hotel = image_to_hotel(*gallery_csvs)
    chain_of = hotel_to_chain(hotel_info_csv)
    hotel_first: list[int] = []  # per query, 0-based position of the first hit (100: none)
    chain_first: list[int] = []  # only queries with a chain
    with open(knn_file, newline="") as handle:
        for row in csv.reader(handle):
            if len(row) != 101:
                raise ValueError(f"row for query {row[0]} has {len(row) - 1} results, the evaluator needs 100")
            hotel = query_hotel[int(row[0])]
            results = [result_hotel[int(cell)] for cell in row[1:]]
            hotel_first.append(next((i for i, h in enumerate(results) if h == hotel), 100))
            if chain_of[hotel] > -1:
                chains = [chain_of[h] for h in results]
                chain_first.append(next((i for i, c in enumerate(chains) if c == chain_of[hotel]), 100))

    def percent(first: list[int], k: int) -> float:
        return 100.0 * sum(position < k for position in first) / len(first)

    return {"hotel": {str(k): percent(hotel_first, k) for k in HOTEL_KS},
            "chain": {str(k): percent(chain_first, k) for k in CHAIN_KS},
            "queries": len(hotel_first)}
