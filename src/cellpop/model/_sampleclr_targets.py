"""Sample-level supervised targets of SampleCLR: validation and per-sample encoding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from anndata import AnnData

from cellpop.data import check_obs_key


def _per_sample(col: pd.Series, codes: np.ndarray, key: str, sample_key: str) -> pd.Series:
    """The single value of ``col`` in each sample (NaN when missing); error if it varies."""
    df = pd.DataFrame({"v": col.to_numpy(), "s": codes})
    nun = df.groupby("s")["v"].nunique(dropna=True)
    if (nun > 1).any():
        bad = nun.index[nun > 1][:5].tolist()
        raise ValueError(
            f"supervised key {key!r} is not constant within samples of {sample_key!r} "
            f"(sample codes {bad}): supervised heads predict sample-level covariates."
        )
    return df.groupby("s")["v"].first()


def _ordinal_levels(col: pd.Series, key: str, orders: dict | None) -> list:
    if orders and key in orders:
        levels = list(orders[key])
    elif isinstance(col.dtype, pd.CategoricalDtype) and col.dtype.ordered:
        levels = list(col.cat.categories)
    else:
        raise ValueError(
            f"ordinal key {key!r}: order unknown. Make the column an ordered categorical or pass "
            f"ordinal_orders={{{key!r}: [lowest, ..., highest]}}."
        )
    seen = set(col.dropna().unique())
    unknown = seen - set(levels)
    if unknown:
        raise ValueError(
            f"ordinal key {key!r} has values outside its order: {sorted(map(str, unknown))}"
        )
    if len(levels) < 2:
        raise ValueError(f"ordinal key {key!r} needs at least 2 levels")
    return levels


def validate_supervised_keys(
    adata: AnnData,
    sample_key: str,
    codes: np.ndarray,
    classification_keys,
    regression_keys,
    ordinal_regression_keys,
    ordinal_orders,
) -> None:
    """Check the supervised keys (see ``SampleCLR.setup_anndata`` for the errors raised)."""
    groups = {
        "classification": classification_keys or [],
        "regression": regression_keys or [],
        "ordinal": ordinal_regression_keys or [],
    }
    for kind, keys in groups.items():
        if isinstance(keys, str):
            raise ValueError(f"{kind} keys must be a list of column names, got the string {keys!r}")
        for key in keys:
            check_obs_key(adata, key, f"{kind} key")
            col = adata.obs[key]
            if col.isna().all():
                raise ValueError(f"supervised key {key!r} has only missing values")
            if kind == "regression" and not pd.api.types.is_numeric_dtype(col):
                raise ValueError(f"regression key {key!r} must be numeric, got dtype {col.dtype}")
            if kind == "ordinal":
                _ordinal_levels(col, key, ordinal_orders)
            vals = _per_sample(col, codes, key, sample_key)
            if kind == "classification" and vals.dropna().nunique() < 2:
                raise ValueError(
                    f"classification key {key!r} needs at least 2 classes among samples"
                )


def per_sample_targets(
    adata: AnnData, setup_args: dict, codes: np.ndarray, n_samples: int
) -> tuple[dict[str, torch.Tensor], dict]:
    """Encode each supervised key per sample.

    Returns
    -------
    targets
        ``{"cls_<key>": long (n_samples,), "ord_<key>": long, "reg_<key>": float}``; missing
        values are ``-1`` (classification/ordinal) or NaN (regression, standardised values).
    info
        ``{"classification": {key: classes}, "ordinal": {key: levels},
        "regression": {key: (mean, std)}}``.
    """
    sample_key = setup_args["sample_key"]
    targets: dict[str, torch.Tensor] = {}
    info: dict = {"classification": {}, "ordinal": {}, "regression": {}}
    for key in setup_args.get("classification_keys") or []:
        vals = _per_sample(adata.obs[key], codes, key, sample_key)
        cats = sorted(map(str, vals.dropna().unique()))
        lookup = {c: i for i, c in enumerate(cats)}
        enc = [lookup[str(v)] if pd.notna(v) else -1 for v in vals.reindex(range(n_samples))]
        targets[f"cls_{key}"] = torch.tensor(enc, dtype=torch.long)
        info["classification"][key] = cats
    for key in setup_args.get("ordinal_regression_keys") or []:
        col = adata.obs[key]
        levels = _ordinal_levels(col, key, setup_args.get("ordinal_orders"))
        vals = _per_sample(col, codes, key, sample_key)
        lookup = {v: i for i, v in enumerate(levels)}
        enc = [lookup[v] if pd.notna(v) else -1 for v in vals.reindex(range(n_samples))]
        targets[f"ord_{key}"] = torch.tensor(enc, dtype=torch.long)
        info["ordinal"][key] = [str(v) for v in levels]
    for key in setup_args.get("regression_keys") or []:
        vals = _per_sample(adata.obs[key], codes, key, sample_key).reindex(range(n_samples))
        v = vals.to_numpy(dtype=np.float64)
        mean, std = float(np.nanmean(v)), float(np.nanstd(v)) or 1.0
        targets[f"reg_{key}"] = torch.tensor((v - mean) / std, dtype=torch.float32)
        info["regression"][key] = (mean, std)
    return targets, info
