"""Hotels-50K sampling: N hotels spread over the chains, M images each, reproducible from a seed."""

from __future__ import annotations

import random

import pandas as pd

NO_CHAIN = "-1"  # the dataset's "no chain" chain: 58 % of the images


def sample_images(
    metadata: pd.DataFrame, split: str, hotels: int, per_hotel: int, seed: int
) -> pd.DataFrame:
    """``hotels`` hotels drawn round-robin over chains (chain -1 first), ``per_hotel`` images each.

    Round-robin spreads a small sample over as many chains as possible instead of letting
    the no-chain majority (58 % of images) fill it. Same inputs and seed, same sample.
    """
    rows = metadata[metadata["split"] == split]
    rng = random.Random(seed)
    chain_of_hotel = rows.groupby("hotel_id", sort=True)["chain_id"].first().fillna(NO_CHAIN)
    by_chain: dict[str, list[str]] = {}
    for hotel_id, chain_id in chain_of_hotel.items():
        by_chain.setdefault(chain_id, []).append(hotel_id)
    for hotel_ids in by_chain.values():
        rng.shuffle(hotel_ids)
    chains = sorted(c for c in by_chain if c != NO_CHAIN)
    rng.shuffle(chains)
    chains = ([NO_CHAIN] if NO_CHAIN in by_chain else []) + chains

    picked: list[str] = []
    while len(picked) < hotels and any(by_chain[c] for c in chains):
        for chain_id in chains:
            if by_chain[chain_id] and len(picked) < hotels:
                picked.append(by_chain[chain_id].pop())

    parts = []
    grouped = rows.groupby("hotel_id", sort=False)
    for hotel_id in picked:
        images = grouped.get_group(hotel_id).sort_values("image_id")
        keep = sorted(rng.sample(range(len(images)), min(per_hotel, len(images))))
        parts.append(images.iloc[keep])
    return pd.concat(parts, ignore_index=True) if parts else rows.iloc[0:0]
