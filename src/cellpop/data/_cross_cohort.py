"""POPPY's cross-cohort positive sampler (paper 004, §2.2.4): which samples share a batch."""

from __future__ import annotations

import numpy as np


def check_cohorts(cohorts: np.ndarray, what: str = "cohort_key") -> None:
    """At least 2 cohorts, each with at least 2 samples (needed for cross-cohort positives).

    Raises
    ------
    ValueError
        Naming the cohorts with a single sample, or when there is only one cohort.
    """
    names, counts = np.unique(np.asarray(cohorts).astype(str), return_counts=True)
    if len(names) < 2:
        raise ValueError(
            f"cross-cohort positives need at least 2 cohorts in {what}, got {names.tolist()}."
        )
    single = names[counts < 2]
    if len(single):
        raise ValueError(
            f"cross-cohort positives need at least 2 samples per cohort; {what} has "
            f"{len(single)} cohort(s) with one sample: {single[:10].tolist()}. Merge or drop "
            "them, or train with cross_cohort=False."
        )


class CrossCohortSampler:
    """Batches built around an anchor and a cross-cohort positive (POPPY §2.2.4).

    For each batch: an anchor ``i`` (the next sample of a seeded epoch permutation); its
    positive ``p`` drawn uniformly among the samples of **another cohort** with ``S_ip > 0``
    (when there is none, the most similar sample of another cohort); then the rest of the batch
    drawn without replacement among the samples **strictly less similar** to ``i`` than ``p``,
    each same-cohort sample ``same_cohort_weight`` times as likely as another ("preferential
    sampling to same-cohort samples"; the paper gives no weight). When fewer such samples exist,
    the batch is topped up from the remaining samples, least similar first.

    Parameters
    ----------
    similarity
        ``(n_samples, n_samples)`` soft similarity ``S`` over all samples (numpy).
    cohorts
        ``(n_samples,)`` cohort of each sample.
    same_cohort_weight
        Sampling weight of same-cohort samples relative to others (default 2.0, our choice).

    Raises
    ------
    ValueError
        On shape mismatches or invalid cohorts (:func:`check_cohorts` on the samples sampled).
    """

    def __init__(self, similarity: np.ndarray, cohorts, same_cohort_weight: float = 2.0):
        s = np.asarray(similarity, dtype=np.float64)
        cohorts = np.asarray(cohorts).astype(str)
        if s.ndim != 2 or s.shape[0] != s.shape[1] or len(cohorts) != s.shape[0]:
            raise ValueError(
                f"similarity {s.shape} must be square with one cohort per sample ({len(cohorts)})."
            )
        if same_cohort_weight <= 0:
            raise ValueError(f"same_cohort_weight must be > 0, got {same_cohort_weight}")
        self.similarity = s
        self.cohort = np.unique(cohorts, return_inverse=True)[1]
        self.same_cohort_weight = float(same_cohort_weight)

    def batch(self, anchor: int, pool: np.ndarray, size: int, rng) -> np.ndarray:
        """One batch of ``size`` distinct samples of ``pool``: anchor, positive, then others."""
        s, c = self.similarity[anchor], self.cohort
        others = pool[pool != anchor]
        cross = others[c[others] != c[anchor]]
        if len(cross) == 0:
            raise ValueError(f"sample {anchor} has no sample of another cohort in its split.")
        cand = cross[s[cross] > 0]
        pos = rng.choice(cand) if len(cand) else cross[np.argmax(s[cross])]
        rest = others[others != pos]
        less = rest[s[rest] < s[pos]]
        k = min(size - 2, len(less))
        chosen = np.array([], dtype=np.int64)
        if k > 0:
            w = np.where(c[less] == c[anchor], self.same_cohort_weight, 1.0)
            chosen = rng.choice(less, size=k, replace=False, p=w / w.sum())
        if len(chosen) < size - 2:  # top up, least similar first
            left = np.setdiff1d(rest, chosen)
            left = left[np.argsort(s[left], kind="stable")]
            chosen = np.concatenate([chosen, left[: size - 2 - len(chosen)]])
        return np.concatenate([[anchor, pos], chosen]).astype(np.int64)

    def __call__(self, samples: np.ndarray, n_batches: int, batch_size: int, rng) -> list:
        """``n_batches`` batches over ``samples`` (the hook of :class:`SampleSetDataModule`)."""
        samples = np.asarray(samples, dtype=np.int64)
        check_cohorts(self.cohort[samples])
        anchors = rng.permutation(samples)
        size = min(batch_size, len(samples))
        return [
            self.batch(int(anchors[i % len(anchors)]), samples, size, rng) for i in range(n_batches)
        ]
