"""Sample-level helpers shared by SampleCLR, PopulationJEPA and POPPY."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from scvi.data._constants import _SETUP_ARGS_KEY

from cellpop.data import check_finite, get_input_matrix
from cellpop.tl._sample_adata import _sample_codes as sample_codes


class SampleMixin:
    """Sample bookkeeping for models whose setup registered ``sample_key`` (plus input keys)."""

    @property
    def _setup_args(self) -> dict:
        return self.adata_manager.registry[_SETUP_ARGS_KEY]

    @property
    def sample_key(self) -> str:
        """The ``adata.obs`` column naming each cell's sample (donor)."""
        return self._setup_args["sample_key"]

    @property
    def sample_info(self) -> pd.DataFrame:
        """One row per sample: the obs columns constant within each sample, plus ``n_cells``."""
        from cellpop.tl import sample_metadata

        return sample_metadata(self.adata, self.sample_key)

    def _input_matrix(self, adata: AnnData) -> np.ndarray:
        """Dense float32 input of ``adata`` checked against the trained model's features."""
        args = self._setup_args
        X = get_input_matrix(adata, layer=args.get("layer"), obsm_key=args.get("obsm_key"))
        if args.get("obsm_key") is None and adata is not self.adata:
            from cellpop.data import check_var_names_match

            check_var_names_match(adata, self.adata.var_names)
        X = X.toarray() if hasattr(X, "toarray") else np.asarray(X)
        if X.shape[1] != self.module.n_input:
            raise ValueError(
                f"input has {X.shape[1]} features but the model was trained on "
                f"{self.module.n_input}."
            )
        check_finite(X, "input")
        return X.astype(np.float32, copy=False)

    @staticmethod
    def _store(df: pd.DataFrame, adata: AnnData, key_added: str | None) -> pd.DataFrame:
        if key_added is not None:
            adata.uns[key_added] = df
        return df


def per_sample_mean(
    values: np.ndarray, adata: AnnData, sample_key: str, prefix: str = "latent"
) -> pd.DataFrame:
    """Mean of per-cell ``values`` ``(n_cells, d)`` within each sample of ``adata``.

    Returns
    -------
    DataFrame ``(n_samples, d)``: index = sample ids in category order (named ``sample_key``),
    columns ``f"{prefix}_{i}"``.

    Raises
    ------
    KeyError, ValueError
        As :func:`sample_codes` (missing key, cells without a sample).
    """
    codes, names = sample_codes(adata, sample_key)
    sums = np.zeros((len(names), values.shape[1]))
    np.add.at(sums, codes, values)
    mean = sums / np.bincount(codes, minlength=len(names))[:, None]
    return pd.DataFrame(mean, index=names, columns=[f"{prefix}_{i}" for i in range(mean.shape[1])])
