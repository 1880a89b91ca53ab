"""Cell Ontology layer: label mapping, pruning, propagation, hop costs, EMD and the POPPY kernel.

Reusable pieces of POPPY's ontology-based sample similarity (paper 004, §2.1, App. A.1-A.2):
:class:`CellOntology` wraps a Cell Ontology release, :meth:`CellOntology.prune` gives a
:class:`PrunedOntology` (used terms plus ancestors), :func:`composition_distances` computes the
exact all-pairs EMD between compositions, and :func:`adaptive_kernel` turns distances into the
soft similarity S.
"""

from ._emd import composition_distances
from ._kernel import adaptive_kernel
from ._ontology import ROOT, CellOntology, PrunedOntology

__all__ = ["ROOT", "CellOntology", "PrunedOntology", "adaptive_kernel", "composition_distances"]
