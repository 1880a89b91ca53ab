"""POPPY mixins: the soft labels S (§2.1, App. A.2) and fine-tuning (§2.2.5: bulk embeddings
query a reference atlas; binary phenotype head)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import torch
from anndata import AnnData

from cellpop.data import CellDataModule, check_obs_key
from cellpop.module import POPPYPhenotypeModule


class SimilarityMixin:
    """``compositions`` and ``sample_similarity`` of :class:`cellpop.model.POPPY`."""

    def compositions(self) -> pd.DataFrame:
        """Cell-type composition of every training sample (rows sum to 1, CL ID columns)."""
        from cellpop.tl import cell_type_composition

        comp = cell_type_composition(self.adata, self.sample_key, self._setup_args["cell_type_key"])
        return comp.loc[self.sample_order_]

    def sample_similarity(
        self, ontology=None, k: int = 100, n_jobs: int | None = None, cache=None
    ) -> pd.DataFrame:
        """The soft labels ``S`` ``(n_samples, n_samples)`` of §2.1 / App. A.2.

        Compositions are propagated on the pruned Cell Ontology, compared by exact EMD with
        hop costs (:func:`cellpop.ontology.composition_distances`) and turned into similarities
        by the adaptive kNN kernel with ``k`` neighbours (App. A.2: k = 100; ``n - 1`` when
        fewer samples).

        Parameters
        ----------
        ontology
            A :class:`cellpop.ontology.CellOntology` (``None``: CL 2022-12-15 via
            :func:`cellpop.datasets.cell_ontology`).
        k, n_jobs
            Kernel neighbours; EMD worker processes.
        cache
            Optional ``.npz`` path for the EMD matrix (``composition_distances(cache=)``): reused
            when the compositions and ontology are unchanged (SHA-256 key), written otherwise.
            The EMD is the expensive part (about 14 µs CPU per pair of samples for a 71-term
            ontology, docs/ontology.md); the kernel is recomputed for each ``k``.

        Returns
        -------
        DataFrame indexed and columned by sample id, float64 in ``[0, 1]``, diagonal 1.

        Raises
        ------
        KeyError
            A cell type unknown to the ontology (all named).
        """
        from cellpop.ontology import CellOntology, adaptive_kernel, composition_distances

        co = ontology if ontology is not None else CellOntology()
        comp = self.compositions()
        comp.columns = co.map_labels(comp.columns.astype(str))
        comp = comp.T.groupby(level=0).sum().T  # alt IDs mapping to one term
        D = composition_distances(comp, co.prune(comp.columns), n_jobs=n_jobs, cache=cache)
        S = adaptive_kernel(D, k=k)
        return pd.DataFrame(S, index=comp.index, columns=comp.index)


class PhenotypeMixin:
    """``fine_tune`` and ``predict_phenotype`` of :class:`cellpop.model.POPPY`."""

    def fine_tune(
        self,
        bulk,
        label_key: str,
        reference: AnnData | None = None,
        positive: str | None = None,
        max_epochs: int = 100,
        batch_size: int = 32,
        train_size: float = 0.9,
        early_stopping: bool = False,
        early_stopping_patience: int | None = None,
        plan_kwargs: dict | None = None,
        n_key: int | None = None,
        temperature: float | None = None,
        accelerator: str = "auto",
        devices="auto",
        **trainer_kwargs,
    ) -> None:
        """Fine-tune a cross-attention phenotype head on labelled bulk profiles (§2.2.5).

        Each bulk embedding ``z_b`` queries the reference cells' POPPY embeddings (the frozen
        cell encoder's projection, :meth:`get_latent_representation`); the prediction is the
        attention-weighted sum of per-cell value scores plus a bias, trained with binary
        cross-entropy. The bulk encoder is fine-tuned with the head; the cell encoder is not
        ("we freeze the cell encoder", §3.5).

        Parameters
        ----------
        bulk
            MuData (its bulk modality) or AnnData of bulk profiles with ``obs[label_key]``.
        label_key
            Binary ``obs`` column (two classes; missing values are an error).
        reference
            AnnData of reference cells with the registered cell input (``None``: the training
            cells). Fixed for the model's lifetime (stored as a buffer).
        positive
            The class coded 1 (``None``: the second category in sorted order).
        max_epochs, batch_size, train_size
            Budget (ours: 100 epochs of 32 profiles); fraction of profiles used for training
            (the rest gives ``validation_loss``).
        early_stopping, early_stopping_patience, accelerator, devices
            As in :meth:`train` (early stopping off by default: small cohorts).
        plan_kwargs
            :class:`cellpop.train.TrainingPlan` options (ours: AdamW, lr 1e-3, weight decay
            1e-4, no schedule).
        n_key, temperature
            Query/key dimension and ``tau_ft`` (ours: ``d`` and ``sqrt(d)``).

        Raises
        ------
        RuntimeError
            Before :meth:`train`.
        KeyError, ValueError
            Missing ``label_key``, a label with other than two classes or missing values, a
            ``positive`` class not in the labels, bulk genes not overlapping the model's.
        """
        self._check_trained()
        bulk = self._modality(bulk, "bulk")
        X = self._bulk_matrix(bulk)
        y, classes = _binary(bulk, label_key, positive)
        ref = self.get_latent_representation(reference)
        head = {"n_ref": ref.shape[0], "n_ref_features": ref.shape[1], "n_key": n_key,
                "temperature": temperature}  # fmt: skip
        self.module.add_phenotype_head(**head)
        self.module.phenotype.reference.copy_(torch.as_tensor(ref))
        self.module.phenotype.to(self.device)
        wrapper = POPPYPhenotypeModule(self.module)
        dm = CellDataModule(
            X, labels=y, validation_size=1.0 - train_size, batch_size=batch_size,
            split_by_sample=False,
        )  # fmt: skip
        plan = {"optimizer": "AdamW", "lr": 1e-3, "weight_decay": 1e-4, "scheduler": None,
                **(plan_kwargs or {})}  # fmt: skip
        self.phenotype_spec_ = {"head": head, "label_key": label_key, "classes": classes}
        self._run_stage(
            dm, plan, int(max_epochs), accelerator, devices, early_stopping,
            early_stopping_patience, trainer_kwargs, module=wrapper,
        )  # fmt: skip

    @torch.inference_mode()
    def predict_phenotype(
        self,
        bulk,
        reference: AnnData | None = None,
        key_added: str | None = None,
        attribution: Literal["attention", "contribution"] = "attention",
        batch_size: int = 256,
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """Phenotype probabilities of bulk profiles and per-cell attributions (§2.2.5).

        Parameters
        ----------
        bulk
            MuData (bulk modality) or AnnData of bulk profiles (genes matched by name).
        reference
            The reference AnnData of :meth:`fine_tune` (``None``: the training cells), only
            used to write ``key_added``.
        key_added
            When given, writes into ``reference.obs``: ``<key>_attention`` (mean over the bulk
            profiles of ``alpha_i * N_ref``: 1 = an average cell) and ``<key>_score`` (the
            cell's value score ``v_i``, > 0 towards the positive class).
        attribution
            Returned matrix: ``"attention"`` (``alpha``) or ``"contribution"``
            (``alpha_i * v_i``, summing with the bias to the logit).
        batch_size
            Profiles per pass.

        Returns
        -------
        proba
            DataFrame indexed by the bulk ``obs_names``: ``logit``, ``probability`` of the
            positive class, ``prediction`` (class label at 0.5).
        attributions
            float32 ``(n_bulk, N_ref)``.

        Raises
        ------
        RuntimeError
            Before :meth:`fine_tune`.
        ValueError
            ``reference`` with another number of cells than the fine-tuning reference, unknown
            ``attribution``, bulk genes not overlapping the model's.
        """
        spec = getattr(self, "phenotype_spec_", None)
        if spec is None or self.module.phenotype is None:
            raise RuntimeError("POPPY has no phenotype head: call model.fine_tune() first.")
        if attribution not in ("attention", "contribution"):
            raise ValueError(
                f"attribution must be 'attention' or 'contribution', got {attribution!r}"
            )
        bulk = self._modality(bulk, "bulk")
        X = self._bulk_matrix(bulk)
        wrapper = POPPYPhenotypeModule(self.module)
        wrapper.eval()
        logits, alphas = [], []
        for i in range(0, len(X), batch_size):
            x = torch.as_tensor(X[i : i + batch_size], device=self.device)
            lg, alpha, v = wrapper.predict(x)
            logits.append(lg.float().cpu().numpy())
            alphas.append(alpha.float().cpu().numpy())
        logit, alpha, v = np.concatenate(logits), np.concatenate(alphas), v.float().cpu().numpy()
        att = alpha if attribution == "attention" else alpha * v[None, :]
        prob = 1.0 / (1.0 + np.exp(-logit))
        classes = spec["classes"]
        out = pd.DataFrame(
            {"logit": logit, "probability": prob,
             "prediction": pd.Categorical(np.where(prob > 0.5, classes[1], classes[0]), classes)},
            index=pd.Index(bulk.obs_names.astype(str)),
        )  # fmt: skip
        if key_added is not None:
            ref = self.adata if reference is None else reference
            n_ref = spec["head"]["n_ref"]
            if ref.n_obs != n_ref:
                raise ValueError(
                    f"reference has {ref.n_obs} cells; the phenotype head was fitted on {n_ref}."
                )
            ref.obs[f"{key_added}_attention"] = alpha.mean(0) * n_ref
            ref.obs[f"{key_added}_score"] = v
        return out, att


def _binary(bulk: AnnData, key: str, positive) -> tuple[np.ndarray, list]:
    check_obs_key(bulk, key, "label_key")
    col = bulk.obs[key]
    if col.isna().any():
        raise ValueError(f"label_key={key!r} has {int(col.isna().sum())} missing value(s).")
    classes = sorted(col.astype(str).unique())
    if len(classes) != 2:
        raise ValueError(f"label_key={key!r} must have exactly 2 classes, got {classes[:10]}.")
    if positive is not None:
        if str(positive) not in classes:
            raise ValueError(f"positive={positive!r} is not a class of {key!r}: {classes}.")
        classes = [c for c in classes if c != str(positive)] + [str(positive)]
    return (col.astype(str).to_numpy() == classes[1]).astype(np.int64), classes
