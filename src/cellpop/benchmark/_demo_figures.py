"""Figures of ``cellpop demo``: donor UMAP, cell importance, cell UMAPs, metacell dotplot,
POPPY matching.

Each figure is drawn when the sections that feed it ran (see :func:`draw_all`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from anndata import AnnData

from cellpop.benchmark._demo import DemoContext

#: Marker genes of the Kang 2018 cell types among its 1,287 genes (standard PBMC markers; the
#: megakaryocyte markers PPBP, PF4, GP9 and ITGA2B and the B-cell MS4A1 are not in the file).
KANG_DOTPLOT_MARKERS: dict[str, list[str]] = {
    "B": ["CD79A"],
    "CD14+ mono": ["CD14", "LYZ", "S100A8"],
    "FCGR3A+ mono": ["FCGR3A", "MS4A7"],
    "DC": ["HLA-DQA1"],
    "CD4+ T": ["IL7R", "CCR7", "LEF1"],
    "T / CD8+ T": ["CD3D", "CCL5"],
    "NK": ["GNLY", "NKG7"],
}


def draw_all(ctx: DemoContext) -> dict[str, Path]:
    """Draw every figure the finished sections allow; returns description -> PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    out, drawn = ctx.out, {}
    if "best_sampleclr" in ctx.extra and "X_pseudobulk" in ctx.donor_reps:
        drawn["donor UMAP: best SampleCLR variant next to pseudobulk, coloured by disease"] = (
            donor_umap(ctx, out / "donor_umap.png")
        )
    if ctx.stephenson is not None and "sampleclr_importance" in ctx.stephenson.obsm:
        drawn["SampleCLR disease head: cell importance per cell type"] = cell_importance(
            ctx.stephenson, out / "cell_importance.png"
        )
    if ctx.kang is not None and {"X_scjepa", "X_scproto"} & set(ctx.kang.obsm):
        drawn["cell UMAPs of ScJEPA and ScProto by cell type, prototypes marked"] = cell_umap(
            ctx, out / "cell_umap.png"
        )
    if ctx.metacells is not None:
        drawn["ScProto metacells: marker-gene dotplot (scanpy)"] = metacell_dotplot(
            ctx.metacells, out / "metacell_dotplot.png"
        )
    if "poppy" in ctx.extra:
        drawn["POPPY: soft labels S and held-out cell-set x pseudobulk similarity"] = (
            poppy_matching(ctx.extra["poppy"], out / "poppy_matching.png")
        )
    return drawn


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def donor_umap(ctx: DemoContext, path: Path) -> Path:
    """UMAPs of the donors (coloured by disease): the best self-supervised SampleCLR variant,
    PopulationJEPA when it ran, and pseudobulk."""
    import matplotlib.pyplot as plt

    from cellpop import pl

    key, name = ctx.extra["best_sampleclr"]
    panels = [(key, name)]
    if "X_popjepa" in ctx.donor_reps:
        panels.append(("X_popjepa", "PopulationJEPA"))
    panels.append(("X_pseudobulk", "pseudobulk (mean PCs)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 4))
    for i, (ax, (k, title)) in enumerate(zip(np.atleast_1d(axes), panels)):
        pl.sample_embedding(
            ctx.donor_reps[k], color="disease", metadata=ctx.donor_meta, rep_key=k, ax=ax,
            title=f"{title}: 20 donors",
            legend_loc="right margin" if i == len(panels) - 1 else None,
        )  # fmt: skip
    return _save(fig, path)


def cell_importance(cells: AnnData, path: Path) -> Path:
    """Heatmap of the SampleCLR disease head's cell importance by cell type."""
    import matplotlib.pyplot as plt

    from cellpop import pl

    fig, ax = plt.subplots(figsize=(10, 5.5))
    pl.cell_importance_heatmap(cells.obsm["sampleclr_importance"], cells.obs["cell_type"], ax=ax)
    ax.set_title("SampleCLR + disease head: cell importance")
    return _save(fig, path)


def _umap(X: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D UMAP (scanpy: 15-NN graph on ``X``, then ``tl.umap``), shape ``(n, 2)``."""
    import scanpy as sc

    a = AnnData(obsm={"rep": np.asarray(X, dtype=np.float32)})
    sc.pp.neighbors(a, use_rep="rep", n_neighbors=15, random_state=seed)
    sc.tl.umap(a, random_state=seed)
    return a.obsm["X_umap"]


def cell_umap(ctx: DemoContext, path: Path) -> Path:
    """Cell UMAPs coloured by cell type: ScJEPA, and ScProto with its prototypes (embedded in
    the same UMAP as the cells) marked by black crosses.

    Writes ``obsm["X_umap_scjepa"]`` / ``obsm["X_umap_scproto"]`` into ``ctx.kang`` and the
    prototypes' coordinates into ``ctx.metacells.obsm["X_umap_scproto"]``.
    """
    import matplotlib.pyplot as plt
    import scanpy as sc

    cells, seed = ctx.kang, ctx.seeds[0]
    panels = [k for k in ("X_scjepa", "X_scproto") if k in cells.obsm]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels) + 2.5, 5))
    for i, (ax, key) in enumerate(zip(np.atleast_1d(axes), panels)):
        name = key.removeprefix("X_")
        X = cells.obsm[key]
        protos = ctx.extra.get("scproto_prototypes") if key == "X_scproto" else None
        coords = _umap(X if protos is None else np.vstack([X, protos]), seed)
        cells.obsm[f"X_umap_{name}"] = coords[: cells.n_obs]
        sc.pl.embedding(
            cells, basis=f"umap_{name}", color="cell_type", ax=ax, show=False,
            legend_loc="right margin" if i == len(panels) - 1 else None,
            title=f"{'ScJEPA' if name == 'scjepa' else 'ScProto'} latent, Kang 2018",
        )  # fmt: skip
        if protos is not None:
            pc = coords[cells.n_obs :]
            ctx.metacells.obsm["X_umap_scproto"] = pc
            ax.scatter(pc[:, 0], pc[:, 1], marker="x", c="black", s=40, linewidths=1.5,
                       label=f"{len(pc)} prototypes")  # fmt: skip
            ax.text(0.01, 0.01, f"x = prototype ({len(pc)})", transform=ax.transAxes)
    return _save(fig, path)


def metacell_dotplot(metacells: AnnData, path: Path) -> Path:
    """scanpy dotplot of marker genes in the decoded metacells, grouped by majority cell type.

    Colour: mean log1p CP10k over the group's metacells, scaled to [0, 1] per gene; dot size:
    share of the group's metacells above 1 CP10k (``expression_cutoff = log1p(1)``). Empty
    prototypes ("unassigned") are left out.
    """
    import scanpy as sc

    mc = metacells[metacells.obs["majority_label"].astype(str) != "unassigned"].copy()
    mc.X = np.log1p(mc.X)
    mc.obs["majority_label"] = mc.obs["majority_label"].cat.remove_unused_categories()
    markers = {
        group: [g for g in genes if g in mc.var_names]
        for group, genes in KANG_DOTPLOT_MARKERS.items()
    }
    markers = {g: v for g, v in markers.items() if v}
    if not markers:  # another dataset: its most variable decoded genes
        var = np.asarray(mc.X.var(axis=0)).ravel()
        markers = {"most variable": list(mc.var_names[np.argsort(var)[::-1][:12]])}
    dp = sc.pl.dotplot(
        mc, markers, groupby="majority_label", standard_scale="var",
        expression_cutoff=float(np.log1p(1.0)), show=False, return_fig=True,
    )  # fmt: skip
    dp.legend(
        colorbar_title=f"{mc.n_obs} ScProto metacells:\nmean log1p CP10k\n(scaled per gene)",
        size_title="metacells > 1 CP10k (%)",
    )
    dp.savefig(str(path), dpi=120)
    import matplotlib.pyplot as plt

    plt.close("all")
    return path


def poppy_matching(info: dict, path: Path) -> Path:
    """POPPY's soft labels S (samples grouped by cohort) and the held-out cell-set x
    pseudobulk cosine similarities (the diagonal is each sample's own pair)."""
    import matplotlib.pyplot as plt

    cohort = info["cohort"].loc[info["S"].index].sort_values(kind="stable")
    order, first = cohort.index, int((cohort == cohort.iloc[0]).sum())
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), layout="constrained")
    im = axes[0].imshow(info["S"].loc[order, order].to_numpy(), cmap="viridis", vmin=0, vmax=1)
    axes[0].axhline(first - 0.5, color="white", lw=0.8)
    axes[0].axvline(first - 0.5, color="white", lw=0.8)
    axes[0].set(xticks=[], yticks=[], title=f"soft labels S: {len(order)} samples")
    axes[0].set_xlabel(f"{cohort.iloc[0]} | {cohort.iloc[-1]}")
    fig.colorbar(im, ax=axes[0], fraction=0.046)
    held = info["held"]
    im = axes[1].imshow(info["sim"], cmap="magma")
    axes[1].set_xticks(range(len(held)), held, rotation=90, fontsize=7)
    axes[1].set_yticks(range(len(held)), held, fontsize=7)
    axes[1].set(xlabel="pseudobulk embedding", ylabel="cell-set embedding")
    axes[1].set_title("held-out samples: cosine similarity")
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    return _save(fig, path)
