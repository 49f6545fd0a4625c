"""Scikit-learn outlier detectors with statistical control limits, used by ``fault_detection``.

:class:`PCAMonitor` is classical multivariate statistical process monitoring: a PCA model of
normal operation, Hotelling's T² inside the model plane and the squared prediction error (SPE, Q)
off it, each with a control limit at a confidence level. :class:`ScoreLimitDetector` wraps any
scikit-learn outlier detector and puts its alarm limit at a quantile of the training scores.

Both follow the scikit-learn outlier-detector conventions (``score_samples``: higher is more
normal; ``decision_function`` < 0 and ``predict`` == -1 for outliers), so they sit at the end of a
``Pipeline`` and round-trip through pickle and ``mlflow.sklearn``. This module imports scikit-learn
and SciPy at import time; ``fault_detection`` imports it lazily.
"""

from __future__ import annotations

from typing import Any, Self, cast

import numpy as np
import numpy.typing as npt
from scipy import stats
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, OutlierMixin, TransformerMixin, clone
from sklearn.decomposition import PCA
from sklearn.utils.validation import check_is_fitted, validate_data

RULES = ("either", "t2", "spe", "both")

# scikit-learn is untyped: validate_data returns Any, so arrays past it are annotated by hand
FloatArray = npt.NDArray[np.float64]
Labels = npt.NDArray[np.int_]


class PCAMonitor(OutlierMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """PCA monitoring with Hotelling T² and SPE (Q) control limits.

    Fit it on (scaled) normal-operation data. ``n_components`` is an int >= 1 or a float in (0, 1):
    the fraction of variance to explain, as in :class:`sklearn.decomposition.PCA`.

    * ``T² = sum_a t_a² / λ_a`` over the retained components; limit
      ``a(n-1)(n+1) / (n(n-a)) · F_conf(a, n-a)``.
    * ``SPE = ||x - x̂||²`` (squared reconstruction error); limit ``g·χ²_h`` with g, h matched to
      the moments of out-of-fold SPE (each sample scored by a PCA fitted without it), which holds
      for new data; Jackson-Mudholkar from the residual eigenvalues for tiny data sets.
    * With ``rule="either"`` each limit sits at ``sqrt(confidence)``, so that normal samples
      raise an alarm at about ``1 - confidence`` overall; other rules use ``confidence`` per limit.
    * ``rule`` combines them into an alarm: ``either`` (T² or SPE above its limit), ``both``,
      ``t2`` or ``spe``. ``score_samples = -max/min(T²/limit, SPE/limit)``, ``offset_ = -1``.

    Contributions per variable j (each sums over j to its statistic):
    SPE: ``e_j²`` (squared residual); T² ("complete decomposition"):
    ``sum_a (t_a / λ_a) · p_ja · x_j`` with x centred, which can be negative for a variable.
    """

    def __init__(self, n_components: int | float = 0.9, confidence: float = 0.99, rule: str = "either") -> None:
        self.n_components = n_components
        self.confidence = confidence
        self.rule = rule

    def fit(self, X: npt.ArrayLike, y: object = None) -> Self:
        X = cast(FloatArray, validate_data(self, X, dtype=np.float64))
        n = X.shape[0]
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {', '.join(RULES)}; got {self.rule!r}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1); got {self.confidence!r}")
        self.pca_ = PCA(n_components=self.n_components, svd_solver="full").fit(X)
        a = int(self.pca_.n_components_)
        if n - a < 2:
            raise ValueError(f"{a} principal components need at least {a + 2} samples; got n_samples={n}")
        eig = np.linalg.svd(X - self.pca_.mean_, compute_uv=False) ** 2 / (n - 1)
        floor = np.finfo(float).eps * max(float(eig[0]), 1.0)
        self.n_samples_fit_ = n
        self.eigenvalues_ = np.maximum(self.pca_.explained_variance_, floor)
        self.residual_eigenvalues_ = eig[a:][eig[a:] > floor]
        # "either" alarms when one of two statistics crosses its limit: each limit sits at
        # sqrt(confidence) (Sidak) so that normal samples alarm at about 1 - confidence overall.
        level = float(np.sqrt(self.confidence)) if self.rule == "either" else float(self.confidence)
        self.limit_confidence_ = level
        self.t2_limit_ = float(a * (n - 1) * (n + 1) / (n * (n - a)) * stats.f.ppf(level, a, n - a))
        self.spe_limit_, self.spe_limit_method_ = _spe_limit(
            self.residual_eigenvalues_, level, _out_of_fold_spe(X, a))
        self.offset_ = -1.0
        return self

    def _parts(self, X: npt.ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
        check_is_fitted(self, "pca_")
        X = cast(FloatArray, validate_data(self, X, dtype=np.float64, reset=False))
        centred = X - self.pca_.mean_
        scores = centred @ self.pca_.components_.T
        return centred, scores, centred - scores @ self.pca_.components_

    @property
    def _n_features_out(self) -> int:  # for get_feature_names_out: pcamonitor0, pcamonitor1, ...
        return self.pca_.n_components_

    def transform(self, X: npt.ArrayLike) -> FloatArray:
        """Principal component scores t (one column per retained component)."""
        return self._parts(X)[1]

    def t2(self, X: npt.ArrayLike) -> FloatArray:
        return np.sum(self._parts(X)[1] ** 2 / self.eigenvalues_, axis=1)

    def spe(self, X: npt.ArrayLike) -> FloatArray:
        return np.sum(self._parts(X)[2] ** 2, axis=1)

    def t2_contributions(self, X: npt.ArrayLike) -> FloatArray:
        centred, scores, _ = self._parts(X)
        return ((scores / self.eigenvalues_) @ self.pca_.components_) * centred

    def spe_contributions(self, X: npt.ArrayLike) -> FloatArray:
        return self._parts(X)[2] ** 2

    def limit_ratio(self, X: npt.ArrayLike) -> FloatArray:
        """Statistic / limit under ``rule``: above 1 is an alarm."""
        _, scores, residual = self._parts(X)
        t2 = np.sum(scores ** 2 / self.eigenvalues_, axis=1) / self.t2_limit_
        spe = np.sum(residual ** 2, axis=1) / self.spe_limit_
        return {"either": np.maximum(t2, spe), "both": np.minimum(t2, spe), "t2": t2, "spe": spe}[self.rule]

    def score_samples(self, X: npt.ArrayLike) -> FloatArray:
        return -self.limit_ratio(X)

    def decision_function(self, X: npt.ArrayLike) -> FloatArray:
        return self.score_samples(X) - self.offset_

    def predict(self, X: npt.ArrayLike) -> Labels:
        return np.where(self.decision_function(X) < 0, -1, 1)


def _out_of_fold_spe(X: FloatArray, a: int, folds: int = 10) -> FloatArray | None:
    """SPE of each sample under a PCA fitted without it (k-fold), or None for tiny data sets.

    SPE of the training samples themselves is biased low (the model was fitted to them), most of
    all when many components are kept; limits from these out-of-fold values hold for new data."""
    n = X.shape[0]
    folds = min(folds, n // (a + 2))
    if folds < 3:
        return None
    order = np.random.default_rng(0).permutation(n)
    spe = np.empty(n)
    for part in np.array_split(order, folds):
        train = np.setdiff1d(order, part, assume_unique=True)
        pca = PCA(n_components=a, svd_solver="full").fit(X[train])
        centred = X[part] - pca.mean_
        residual = centred - (centred @ pca.components_.T) @ pca.components_
        spe[part] = np.sum(residual ** 2, axis=1)
    return spe


def _spe_limit(residual: FloatArray, confidence: float, oof_spe: FloatArray | None) -> tuple[float, str]:
    """(limit, method) for SPE at ``confidence``.

    With out-of-fold SPE values: Nomikos & MacGregor's ``g·χ²_h`` with g, h matched to their mean
    and variance. Otherwise Jackson-Mudholkar from the residual eigenvalues (Box's ``g·χ²_h`` from
    θ1, θ2 when h0 <= 0)."""
    if oof_spe is not None:
        mean, var = float(np.mean(oof_spe)), float(np.var(oof_spe, ddof=1))
        if mean > 1e-12 and var > 0:
            g, h = var / (2.0 * mean), 2.0 * mean ** 2 / var
            return float(g * stats.chi2.ppf(confidence, h)), "moments of out-of-fold SPE"
    if not residual.size:
        return 1e-9, "none (no residual space)"
    th1, th2, th3 = (float(np.sum(residual ** k)) for k in (1, 2, 3))
    h0 = 1.0 - 2.0 * th1 * th3 / (3.0 * th2 ** 2)
    if h0 > 0:
        c = stats.norm.ppf(confidence)
        base = c * np.sqrt(2.0 * th2 * h0 ** 2) / th1 + 1.0 + th2 * h0 * (h0 - 1.0) / th1 ** 2
        if base > 0:
            return float(th1 * base ** (1.0 / h0)), "jackson-mudholkar"
    g, h = th2 / th1, th1 ** 2 / th2
    return float(g * stats.chi2.ppf(confidence, h)), "box"


class ScoreLimitDetector(OutlierMixin, BaseEstimator):
    """Any scikit-learn outlier detector with its alarm limit at a training-score quantile.

    Anomaly score = ``-estimator.score_samples`` (higher is more anomalous); ``score_limit_`` is
    its ``confidence`` quantile over the training rows (for ``LocalOutlierFactor``,
    ``-negative_outlier_factor_``, because scoring the training rows as new points is biased).
    With ``confidence=None`` the estimator's own threshold (``-offset_``, set by its
    ``contamination``) is used instead.
    """

    def __init__(self, estimator: Any = None, confidence: float | None = 0.99) -> None:
        self.estimator = estimator
        self.confidence = confidence

    def fit(self, X: npt.ArrayLike, y: object = None) -> Self:
        X = cast(FloatArray, validate_data(self, X, dtype=np.float64))
        if self.confidence is not None and not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1); got {self.confidence!r}")
        self.estimator_ = clone(self.estimator).fit(X)
        if self.confidence is None:
            self.score_limit_ = -float(self.estimator_.offset_)
        else:
            self.score_limit_ = float(np.quantile(self._out_of_fold_scores(X), self.confidence))
        self.offset_ = -self.score_limit_
        return self

    def _out_of_fold_scores(self, X: FloatArray, folds: int = 5) -> FloatArray:
        """Anomaly scores of each training row from a detector fitted without it (k-fold): scores
        of the rows a detector was fitted on are biased towards normal, so limits from them alarm
        too often on new data. Falls back to in-sample scores for tiny data sets."""
        n = X.shape[0]
        if n < 10 * folds:
            if hasattr(self.estimator_, "negative_outlier_factor_"):
                return -self.estimator_.negative_outlier_factor_
            return -self.estimator_.score_samples(X)
        order = np.random.default_rng(0).permutation(n)
        scores = np.empty(n)
        for part in np.array_split(order, folds):
            train = np.setdiff1d(order, part, assume_unique=True)
            scores[part] = -clone(self.estimator).fit(X[train]).score_samples(X[part])
        return scores

    def score_samples(self, X: npt.ArrayLike) -> FloatArray:
        check_is_fitted(self, "estimator_")
        return self.estimator_.score_samples(validate_data(self, X, dtype=np.float64, reset=False))

    def decision_function(self, X: npt.ArrayLike) -> FloatArray:
        return self.score_samples(X) - self.offset_

    def predict(self, X: npt.ArrayLike) -> Labels:
        return np.where(self.decision_function(X) < 0, -1, 1)
