"""POPPY: cross-modal (single-cell <-> bulk) sample embeddings supervised by the Cell Ontology.

Paper: "Cross-modal transfer learning for mapping bulk transcriptomes at cellular level"
(POPPY), /shared/papers/004. Sections cited in the docstrings are the paper's.
"""

from __future__ import annotations

import logging
import re
from typing import Literal

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from mudata import MuData
from scipy import sparse
from scvi import REGISTRY_KEYS

from cellpop.data import (
    CrossCohortSampler,
    align_columns,
    check_categorical_obs,
    check_cohorts,
    check_constant_within_samples,
    check_finite,
    gene_positions,
    get_input_matrix,
    to_memory,
)
from cellpop.model.base import SampleModel
from cellpop.model.base._docs import doc
from cellpop.module import POPPYModule

from ._poppy_mixins import PhenotypeMixin, SimilarityMixin

logger = logging.getLogger(__name__)

_CL_ID = re.compile(r"^CL:\d{7}$")


def _dense(X) -> np.ndarray:
    X = to_memory(X)
    return np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float32)


class POPPY(PhenotypeMixin, SimilarityMixin, SampleModel):
    """Cell-set and bulk encoders aligned by ontology-aware contrastive learning (POPPY).

    Each single-cell sample is a set of per-cell embeddings pooled by linear-score attention
    (§2.2.1); each bulk profile (pseudobulk, in-silico mixture or real bulk) goes through a
    gene-token encoder (§2.2.2). Both are trained with the multi-positive loss (eqs. 3-5) whose
    soft labels are the Cell-Ontology EMD similarity ``S`` of the samples' compositions
    (§2.1, App. A.2), with the cross-cohort positive sampler (§2.2.4). A cross-attention head
    over reference cells can then be fine-tuned for a binary phenotype (§2.2.5).

    Parameters
    ----------
    mdata
        MuData registered with :meth:`setup_mudata`.
    n_latent
        Shared embedding dimension ``d`` (paper: not given; ours 64).
    n_hidden
        Hidden width of the two-layer FFNs (ours 128).
    n_token
        Gene-token dimension of the bulk encoder (ours 32).
    temperature
        ``tau_cl`` of eq. 3 (not given; ours 0.1).
    bulk_encoder
        ``None``: the gene-token encoder. A trained :class:`cellpop.model.ScJEPA` (expression
        input): its encoder, frozen, is applied to the bulk profiles (the paper's
        "single-cell model applied to bulk", POPPY-TranscriptFormer, §3.2); the bulk genes are
        then matched to the ScJEPA's genes.
    batch_norm
        BatchNorm1d between the two layers of both FFNs (ours; without it the encoders
        collapse on the shared data, see ``docs/poppy.md``).

    Examples
    --------
    >>> POPPY.setup_mudata(mdata, sample_key="donor_id", cohort_key="cohort",
    ...                    cell_type_key="cell_type_ontology_term_id", rna_obsm_key="X_pca")
    >>> model = POPPY(mdata)
    >>> model.train(ontology=cellpop.ontology.CellOntology())
    >>> z_bulk = model.get_sample_representation(modality="bulk")
    """

    _module_cls = POPPYModule
    _default_batch_size = 32  # ours: the paper gives no batch size
    _default_patience = 50  # ours
    _input_args = ("rna_layer", "rna_obsm_key")

    def __init__(
        self,
        mdata: MuData,
        n_latent: int = 64,
        n_hidden: int = 128,
        n_token: int = 32,
        temperature: float = 0.1,
        bulk_encoder=None,
        batch_norm: bool = True,
    ):
        if not isinstance(mdata, MuData):
            raise TypeError(f"POPPY takes a MuData (see setup_mudata), got {type(mdata).__name__}.")
        rna = next(
            (m for m in mdata.mod.values() if self._get_most_recent_anndata_manager(m)), None
        )
        if rna is None:
            raise ValueError("Call POPPY.setup_mudata(mdata, ...) before creating the model.")
        super().__init__(rna)
        self.mdata = mdata
        args = self._setup_args
        bulk = mdata.mod[args["bulk_key"]]
        backbone = None
        if bulk_encoder is not None and not isinstance(bulk_encoder, dict):
            from cellpop.model import ScJEPA

            if not isinstance(bulk_encoder, ScJEPA):
                raise TypeError("bulk_encoder must be a trained ScJEPA with expression input.")
            bulk_encoder = bulk_encoder._frozen_encoder_spec()
        if bulk_encoder is not None:
            backbone = {"sizes": bulk_encoder["sizes"], "target_sum": bulk_encoder["target_sum"]}
            self.bulk_var_names_ = np.asarray(bulk_encoder["genes"], dtype=object)
        else:
            self.bulk_var_names_ = np.asarray(bulk.var_names.astype(str), dtype=object)
        n_cell_input = self._input(check=False).shape[1]
        self.module = self._module_cls(
            n_cell_input=n_cell_input, n_genes=len(self.bulk_var_names_), n_latent=n_latent,
            n_hidden=n_hidden, n_token=n_token, temperature=temperature, bulk_backbone=backbone,
            batch_norm=batch_norm,
        )  # fmt: skip
        if bulk_encoder is not None and "state" in bulk_encoder:
            self.module.bulk_backbone.encoder.load_state_dict(bulk_encoder.pop("state"))
        self._model_summary_string = (
            f"POPPY: {len(self.sample_order_)} samples, {n_cell_input} cell features, "
            f"{len(self.bulk_var_names_)} bulk genes "
            f"({'frozen ScJEPA encoder' if backbone else 'gene tokens'}), {n_latent}-d embeddings"
        )
        self.init_params_ = self._get_init_params(locals())

    # ------------------------------------------------------------------ setup
    @classmethod
    @doc.dedent
    def setup_mudata(
        cls,
        mdata: MuData,
        *,
        sample_key: str,
        cell_type_key: str,
        rna_key: str = "rna",
        bulk_key: str = "bulk",
        cohort_key: str | None = None,
        rna_obsm_key: str | None = None,
        rna_layer: str | None = None,
        bulk_layer: str | None = None,
        min_cells_per_sample: int = 10,
        **kwargs,
    ):
        """Register a MuData of single cells (``rna``) and bulk profiles (``bulk``).

        The two modalities hold different observations: cells, and bulk profiles (pseudobulk,
        in-silico mixtures, e.g. from :func:`cellpop.tl.paired_bulk`). They are linked by
        ``obs[sample_key]``: every single-cell sample needs at least one bulk profile; bulk
        profiles of other samples are ignored in training.

        Parameters
        ----------
        mdata
            The MuData. Only ``mdata.mod[rna_key]`` is registered (scvi-tools' MuData fields
            need paired observations, which cells and bulk profiles are not).
        sample_key
            Sample column in both modalities' ``obs``.
        cell_type_key
            ``rna`` ``obs`` column of Cell Ontology IDs (``CL:0000000``; the soft labels
            ``S`` compare compositions over the ontology, §2.1).
        rna_key, bulk_key
            Modality names.
        cohort_key
            ``rna`` ``obs`` column of the cohort (study) of each sample, constant within a
            sample; enables the cross-cohort positive sampler (§2.2.4).
        rna_obsm_key, rna_layer
            Per-cell input: an embedding (the paper's frozen single-cell encoder output, e.g.
            ``"X_pca"``) or a layer used as given. One of them (``None`` and ``None``: ``X``).
        bulk_layer
            Bulk layer (``None``: ``X``) with non-negative expression (counts or CPM/TPM);
            the model log-normalises each profile.
        min_cells_per_sample
            Samples with fewer cells raise an error.

        Raises
        ------
        KeyError
            A missing modality (naming the ones present), a missing ``obs`` column or input key.
        ValueError
            Cell types without a CL ID (named), NaN, negative bulk values, a cohort that varies
            within a sample, fewer than 2 samples, a small sample, a single-cell sample without
            bulk profile (named).
        TypeError
            A non-MuData input or an unknown keyword.
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        if not isinstance(mdata, MuData):
            raise TypeError(f"setup_mudata needs a MuData, got {type(mdata).__name__}.")
        for key, what in ((rna_key, "rna_key"), (bulk_key, "bulk_key")):
            if key not in mdata.mod:
                raise KeyError(
                    f"{what}={key!r} is not a modality of the MuData (modalities: "
                    f"{list(mdata.mod)})."
                )
        rna, bulk = mdata.mod[rna_key], mdata.mod[bulk_key]
        cls._check_samples(rna, sample_key, min_cells_per_sample)
        check_categorical_obs(rna, cell_type_key, "cell_type_key")
        labels = pd.Index(rna.obs[cell_type_key].astype(str).unique())
        bad = labels[~labels.str.match(_CL_ID)]
        if len(bad):
            raise ValueError(
                f"cell_type_key={cell_type_key!r} has {len(bad)} label(s) without a Cell Ontology "
                f"ID (CL:xxxxxxx): {bad[:10].tolist()}. Map them first, e.g. with "
                "cellpop.ontology.CellOntology().map_labels."
            )
        if cohort_key is not None:
            check_constant_within_samples(rna, cohort_key, sample_key, "cohort_key", ".")
        check_categorical_obs(bulk, sample_key, f"mdata.mod[{bulk_key!r}].obs[{sample_key!r}]")
        B = to_memory(get_input_matrix(bulk, layer=bulk_layer))
        check_finite(B, f"mdata.mod[{bulk_key!r}] bulk input")
        if (B.data if sparse.issparse(B) else np.asarray(B)).min(initial=0.0) < 0:
            raise ValueError(f"mdata.mod[{bulk_key!r}] bulk input has negative values.")
        have = set(bulk.obs[sample_key].astype(str))
        missing = sorted(set(rna.obs[sample_key].astype(str)) - have)
        if missing:
            raise ValueError(
                f"{len(missing)} single-cell sample(s) have no bulk profile in "
                f"mdata.mod[{bulk_key!r}]: {missing[:10]}. Build them with "
                "cellpop.tl.paired_bulk (pseudobulk and in-silico mixtures)."
            )
        cls._register(
            rna, setup_method_args, layer=rna_layer, obsm_key=rna_obsm_key,
            categorical={
                REGISTRY_KEYS.SAMPLE_KEY: (sample_key, "sample_key"),
                REGISTRY_KEYS.BATCH_KEY: (cohort_key, "cohort_key"),
                REGISTRY_KEYS.LABELS_KEY: (cell_type_key, "cell_type_key"),
            },
            transfer_kwargs=kwargs,
        )  # fmt: skip

    @classmethod
    def setup_anndata(cls, adata, **kwargs):
        """Not used: POPPY reads a MuData of cells and bulk profiles.

        Raises
        ------
        TypeError
            Always, pointing to :meth:`setup_mudata`.
        """
        raise TypeError("POPPY takes a MuData of cells and bulk profiles: use setup_mudata().")

    # ------------------------------------------------------------------ inputs
    def _modality(self, mdata, which: str) -> AnnData:
        """``mdata.mod[<rna_key | bulk_key>]`` (an AnnData is returned as is)."""
        if mdata is None:
            mdata = self.mdata
        if isinstance(mdata, AnnData):
            return mdata
        key = self._setup_args[f"{which}_key"]
        if not isinstance(mdata, MuData) or key not in mdata.mod:
            have = list(mdata.mod) if isinstance(mdata, MuData) else type(mdata).__name__
            raise KeyError(f"modality {key!r} ({which}_key) is missing from the input: {have}.")
        return mdata.mod[key]

    def _bulk_matrix(self, bulk: AnnData) -> np.ndarray:
        """Bulk profiles ``(n, G)`` float32 in the model's bulk-gene order.

        Raises
        ------
        ValueError
            No gene shared with the model, more than half missing, negative or NaN values.
        """
        layer = self._setup_args["bulk_layer"]
        X = to_memory(get_input_matrix(bulk, layer=layer))
        check_finite(X, "bulk input")
        names = pd.Index(bulk.var_names.astype(str))
        shared = names.intersection(pd.Index(self.bulk_var_names_.astype(str)))
        if len(shared) == 0:
            raise ValueError(
                f"the bulk genes share no gene with the model's {len(self.bulk_var_names_)} "
                f"bulk genes (e.g. {list(self.bulk_var_names_[:3])}; got {names[:3].tolist()})."
            )
        X = _dense(align_columns(X, gene_positions(names, self.bulk_var_names_)))
        if X.min(initial=0.0) < 0:
            raise ValueError("bulk input has negative values.")
        return X

    def _paired_bulk(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per training sample, its ``K`` bulk profiles ``(n_samples, K, G)`` and mask."""
        bulk = self._modality(None, "bulk")
        X = self._bulk_matrix(bulk)
        owner = bulk.obs[self.sample_key].astype(str).to_numpy()
        rows = [np.flatnonzero(owner == s) for s in self.sample_order_]
        k = max(len(r) for r in rows)
        out = np.zeros((len(rows), k, X.shape[1]), dtype=np.float32)
        mask = np.zeros((len(rows), k), dtype=bool)
        for i, r in enumerate(rows):  # pseudobulk rows first when present
            src = bulk.obs["source"].to_numpy()[r] if "source" in bulk.obs else None
            if src is not None:
                r = r[np.argsort(src != "pseudobulk", kind="stable")]
            out[i, : len(r)], mask[i, : len(r)] = X[r], True
        return torch.as_tensor(out), torch.as_tensor(mask)

    # ------------------------------------------------------------------ train
    def _default_max_epochs(self) -> int:
        """200 epochs (ours; the paper gives no budget)."""
        return 200

    def _plan_defaults(self, max_epochs: int) -> dict:
        """AdamW, lr 1e-3, weight decay 1e-4, linear warm-up over 10 epochs (a tenth of
        ``max_epochs`` when shorter) then cosine decay (ours: the paper gives no optimiser
        settings)."""
        return dict(
            optimizer="AdamW", lr=1e-3, weight_decay=1e-4, scheduler="warmup_cosine",
            warmup_epochs=min(10, max_epochs // 10),
        )  # fmt: skip

    @doc.dedent
    def train(
        self,
        max_epochs: int | None = None,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        batch_size: int | None = None,
        train_size: float = 0.9,
        early_stopping: bool = True,
        early_stopping_patience: int | None = None,
        load_to_device: bool | Literal["auto"] = "auto",
        plan_kwargs: dict | None = None,
        datasplitter_kwargs: dict | None = None,
        n_cells: tuple[int, int] = (1000, 1000),
        ontology=None,
        similarity: pd.DataFrame | None = None,
        k: int = 100,
        cross_cohort: bool | None = None,
        same_cohort_weight: float = 2.0,
        **trainer_kwargs,
    ) -> None:
        """Contrastive alignment of the cell-set and bulk encoders (eqs. 3-5).

        %(train_notes)s

        Parameters
        ----------
        %(param_train_common)s

        Model defaults: ``max_epochs=None``: 200; ``batch_size``: 32 samples per step;
        ``early_stopping_patience``: 50; ``plan_kwargs``: :meth:`_plan_defaults` (all ours,
        the paper gives none). ``datasplitter_kwargs``: ``group_by_batch=False`` (cohorts are
        split across train and validation so that cross-cohort positives exist).
        n_cells
            ``(min, max)`` cells drawn per sample and step; smaller samples use all their
            cells (padding masked). Ours: 1000; the paper pools each sample's full set.
        ontology
            :class:`cellpop.ontology.CellOntology` for ``S`` (``None``: CL 2022-12-15).
        similarity
            A precomputed ``S`` (samples x samples DataFrame) instead of the ontology's.
        k
            Neighbours of the similarity kernel (App. A.2: 100, for 1,458 samples). With few
            samples ``k`` is capped at ``n - 1`` and S becomes nearly flat; on 48 samples
            ``k = 5`` aligned better (``docs/poppy.md``).
        cross_cohort
            Use the cross-cohort positive sampler (§2.2.4); ``None``: when ``cohort_key`` was
            registered.
        same_cohort_weight
            Preference for same-cohort negatives in that sampler (ours: 2).

        Raises
        ------
        ValueError
            ``max_epochs < 1``; ``cross_cohort=True`` without ``cohort_key``, with one cohort or
            a cohort with a single training sample; ``similarity`` not covering the samples.
        """
        max_epochs = self._check_epochs(max_epochs)
        names = pd.Index(self.sample_order_)
        if similarity is None:
            similarity = self.sample_similarity(ontology, k=k)
        missing = names.difference(similarity.index.astype(str))
        if len(missing):
            raise ValueError(f"similarity lacks {len(missing)} sample(s): {list(missing[:5])}")
        S = similarity.copy()
        S.index, S.columns = S.index.astype(str), S.columns.astype(str)
        S = S.loc[names, names].to_numpy(dtype=np.float32)
        cohort_key = self._setup_args.get("cohort_key")
        if cross_cohort is None:
            cross_cohort = cohort_key is not None
        split = {"group_by_batch": False, **(datasplitter_kwargs or {})}
        if cross_cohort:
            if cohort_key is None:
                raise ValueError("cross_cohort=True needs cohort_key= in setup_mudata.")
            codes, _ = self._samples(self.adata_manager)
            cohorts = self.adata.obs[cohort_key].astype(str).groupby(codes).first().to_numpy()
            check_cohorts(cohorts, f"cohort_key={cohort_key!r}")
            split["batch_sampler"] = CrossCohortSampler(S, cohorts, same_cohort_weight)
        bulk, bulk_mask = self._paired_bulk()
        dm = self._set_datamodule(
            batch_size or self._default_batch_size, train_size, load_to_device,
            n_cells=n_cells, n_views=1, small_sample="mask",
            sample_targets={"bulk": bulk, "bulk_mask": bulk_mask}, **split,
        )  # fmt: skip
        if cross_cohort:  # the sampler sees the training samples only: check them too
            check_cohorts(cohorts[dm.train_samples], f"cohort_key={cohort_key!r} (training)")
        plan = {**self._plan_defaults(max_epochs), **(plan_kwargs or {})}
        plan["similarity"] = torch.as_tensor(S)
        self._run_stage(
            dm, plan, max_epochs, accelerator, devices, early_stopping, early_stopping_patience,
            trainer_kwargs,
        )  # fmt: skip
        self.similarity_ = pd.DataFrame(S, index=names, columns=names)

    # ------------------------------------------------------------------ outputs
    def _embed_batch(self, batch: dict) -> torch.Tensor:
        """Each cell as a one-cell set: its embedding after the FFN projection (unit norm)."""
        return self.module.embed_cells(batch[REGISTRY_KEYS.X_KEY])

    def get_latent_representation(
        self,
        mdata: MuData | AnnData | None = None,
        indices=None,
        batch_size: int | None = None,
        key_added: str | None = None,
        return_attention: bool = False,
    ):
        """Cell embeddings after the encoder's projection ``(n_cells, d)`` (unit norm).

        Parameters
        ----------
        mdata
            ``None`` (training data), a MuData (its ``rna`` modality) or the cells' AnnData.
            A query is read, never modified.
        indices, batch_size
            Cells to embed; cells per pass (default 1024).
        key_added
            Also write the array to the ``rna`` AnnData's ``obsm[key_added]``.
        return_attention
            Also return each cell's attention weight ``alpha`` (eq. 2) over **all** cells of
            its sample, ``(n_cells,)`` (sums to 1 per sample); needs ``sample_key`` in a query.

        Returns
        -------
        ``z`` float32, or ``(z, alpha)`` with ``return_attention=True``.

        Raises
        ------
        RuntimeError, KeyError, ValueError
            Untrained model, missing modality or keys, wrong input width.
        """
        rna = None if mdata is None else self._modality(mdata, "rna")
        z = super().get_latent_representation(rna, indices, batch_size, key_added)
        if not return_attention:
            return z
        alpha = self._attention(rna)
        return z, alpha if indices is None else alpha[np.asarray(indices)]

    @torch.inference_mode()
    def _cell_logits(self, manager) -> np.ndarray:
        """Attention logits ``f(x)`` (eq. 2) of every cell, float64 ``(n_cells,)``."""
        self.module.eval()
        return np.concatenate(
            [self.module.cell_scores(b[REGISTRY_KEYS.X_KEY]).double().cpu().numpy()
             for b in self._inference_batches(manager)]
        )  # fmt: skip

    def _attention(self, rna: AnnData | None) -> np.ndarray:
        """Softmax of the logits over all cells of each sample, float32 ``(n_cells,)``."""
        manager = self._manager(rna, samples=True)
        codes, _ = self._samples(manager)
        logits = self._cell_logits(manager)
        e = np.exp(logits - pd.Series(logits).groupby(codes).transform("max").to_numpy())
        return (e / pd.Series(e).groupby(codes).transform("sum").to_numpy()).astype(np.float32)

    def get_sample_representation(
        self,
        mdata: MuData | AnnData | None = None,
        modality: Literal["rna", "bulk"] = "rna",
        key_added: str | None = None,
    ) -> pd.DataFrame:
        """Sample embeddings ``(n, d)`` (unit norm), columns ``latent_i``.

        Parameters
        ----------
        mdata
            ``None`` (training data), a MuData, or the modality's AnnData (e.g. a bulk cohort
            without single cells). Queries are read, never modified.
        modality
            ``"rna"``: ``E_c`` over **all** cells of each sample (index: sample ids);
            ``"bulk"``: ``E_b`` of every bulk profile (index: the bulk ``obs_names``).
        key_added
            Also write the DataFrame to that modality's ``uns[key_added]``.

        Raises
        ------
        RuntimeError
            Untrained model.
        KeyError, ValueError
            Unknown ``modality``, missing modality or keys, bulk genes not overlapping the
            model's (or more than half missing), invalid values.
        """
        if modality not in ("rna", "bulk"):
            raise ValueError(f"modality must be 'rna' or 'bulk', got {modality!r}")
        if modality == "rna":
            rna = None if mdata is None else self._modality(mdata, "rna")
            return super().get_sample_representation(rna, key_added=key_added)
        self._check_trained()
        bulk = self._modality(mdata, "bulk")
        z = self._embed_bulk(self._bulk_matrix(bulk))
        df = pd.DataFrame(
            z, index=pd.Index(bulk.obs_names.astype(str)),
            columns=[f"latent_{i}" for i in range(z.shape[1])],
        )  # fmt: skip
        return self._write_uns(bulk, key_added, df)

    @torch.inference_mode()
    def _embed_bulk(self, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
        self.module.eval()
        out = [
            self.module.embed_bulk(torch.as_tensor(X[i : i + batch_size], device=self.device))
            .float().cpu().numpy()
            for i in range(0, len(X), batch_size)
        ]  # fmt: skip
        return np.concatenate(out)

    @torch.inference_mode()
    def _sample_vectors(self, manager) -> pd.DataFrame:
        """``E_c`` of every sample over all its cells: eq. 2's softmax per sample, exactly.

        Two passes over the cells in blocks (:meth:`_inference_batches`, sparse input stays
        sparse): the attention logits and each sample's maximum, then the weighted sums.
        """
        codes, names = self._samples(manager)
        n, c = len(names), torch.as_tensor(codes)
        logit = torch.as_tensor(self._cell_logits(manager))
        mx = torch.full((n,), -torch.inf, dtype=torch.float64)
        mx = mx.scatter_reduce(0, c, logit, reduce="amax")
        w = torch.exp(logit - mx[c])
        num, start = None, 0
        for batch in self._inference_batches(manager):
            x = batch[REGISTRY_KEYS.X_KEY].double().cpu()
            if num is None:
                num = torch.zeros(n, x.shape[1], dtype=torch.float64)
            stop = start + len(x)
            num.index_add_(0, c[start:stop], w[start:stop, None] * x)
            start = stop
        denom = torch.zeros(n, dtype=torch.float64).index_add_(0, c, w)
        pooled = (num / denom[:, None]).float().to(self.device)
        z = torch.nn.functional.normalize(self.module.cell_ffn(pooled), dim=-1).cpu().numpy()
        return pd.DataFrame(z, index=names, columns=[f"latent_{i}" for i in range(z.shape[1])])

    # ------------------------------------------------------------------ save / load
    def _validate_anndata(self, adata=None, copy_if_view: bool = True):
        """scvi-tools' check, on the ``rna`` modality of a MuData."""
        if isinstance(adata, MuData):
            adata = self._modality(adata, "rna")
        return super()._validate_anndata(adata, copy_if_view=copy_if_view)

    def save(self, dir_path: str, overwrite: bool = False, save_anndata: bool = False, **kwargs):
        """Save the model (``save_anndata=True`` is not supported: save the MuData yourself).

        Raises
        ------
        ValueError
            With ``save_anndata=True``.
        """
        if save_anndata:
            raise ValueError("POPPY.save(save_anndata=True) is not supported: write the MuData.")
        super().save(dir_path, overwrite=overwrite, save_anndata=False, **kwargs)

    @classmethod
    def load(cls, dir_path: str, mdata: MuData | None = None, **kwargs):
        """Load a saved POPPY onto ``mdata`` (set up like the training MuData).

        Raises
        ------
        TypeError
            If ``mdata`` is not a MuData.
        """
        if not isinstance(mdata, MuData):
            raise TypeError("POPPY.load(dir_path, mdata) needs the MuData the model works on.")
        import warnings

        with warnings.catch_warnings():  # scvi-tools compares the concatenated MuData genes
            warnings.filterwarnings("ignore", message=".*`var_names` for the loaded.*")
            warnings.filterwarnings("ignore", message=".*mod_names is deprecated.*")
            return super().load(dir_path, adata=mdata, **kwargs)
