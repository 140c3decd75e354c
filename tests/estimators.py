"""The River estimators of the test matrix, as factories the service loads (``tests.estimators:<name>``).

Every kind of estimator River has: forests, ensembles, nearest neighbours, naive Bayes, Hoeffding
and adaptive trees, linear models, one-vs-rest and one-vs-one, a one-hot pipeline over string
features, regressors, anomaly detectors (unsupervised, supervised, a filter). Seeds wherever an
estimator draws random numbers: exact recovery needs a deterministic estimator.
"""

from __future__ import annotations

import numbers

from river import (
    anomaly,
    base,
    compose,
    dummy,
    ensemble,
    forest,
    linear_model,
    multiclass,
    naive_bayes,
    neighbors,
    preprocessing,
    tree,
)


def arf() -> base.Estimator:
    return forest.ARFClassifier(seed=42, n_models=3)


def amf() -> base.Estimator:
    return forest.AMFClassifier(seed=42)


def adaboost() -> base.Estimator:
    return ensemble.AdaBoostClassifier(tree.HoeffdingTreeClassifier(), seed=42)


def bagging() -> base.Estimator:
    return ensemble.BaggingClassifier(tree.HoeffdingTreeClassifier(), n_models=3, seed=42)


def knn() -> base.Estimator:
    return preprocessing.StandardScaler() | neighbors.KNNClassifier()


def gaussian_nb() -> base.Estimator:
    return naive_bayes.GaussianNB()


def hoeffding_tree() -> base.Estimator:
    return tree.HoeffdingTreeClassifier()


def adaptive_tree() -> base.Estimator:
    return tree.HoeffdingAdaptiveTreeClassifier(seed=42)


def passive_aggressive() -> base.Estimator:
    return preprocessing.StandardScaler() | linear_model.PAClassifier()


def one_vs_rest() -> base.Estimator:
    return preprocessing.StandardScaler() | multiclass.OneVsRestClassifier(linear_model.LogisticRegression())


def one_vs_one() -> base.Estimator:
    """No probabilities at all: River's predict_proba_one raises; the label is all there is."""
    return preprocessing.StandardScaler() | multiclass.OneVsOneClassifier(linear_model.LogisticRegression())


def one_hot_logreg() -> base.Estimator:
    numeric = compose.SelectType(numbers.Number) | preprocessing.StandardScaler()
    text = compose.SelectType(str) | preprocessing.OneHotEncoder()
    return (numeric + text) | linear_model.LogisticRegression()


def no_change() -> base.Estimator:
    """Overrides predict_one; its probabilities mix ints and floats."""
    return dummy.NoChangeClassifier()


def pa_regressor() -> base.Estimator:
    """Answers with NumPy floats."""
    return preprocessing.StandardScaler() | linear_model.PARegressor()


def arf_regressor() -> base.Estimator:
    return forest.ARFRegressor(seed=42, n_models=3)


def amf_regressor() -> base.Estimator:
    """Predicts None before it has learned anything."""
    return forest.AMFRegressor(seed=42)


def adaptive_tree_regressor() -> base.Estimator:
    return preprocessing.StandardScaler() | tree.HoeffdingAdaptiveTreeRegressor(seed=42)


def half_space_trees() -> base.Estimator:
    """Scores ints until its first window is complete, floats afterwards."""
    return preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=42, window_size=50)


def one_class_svm() -> base.Estimator:
    return preprocessing.StandardScaler() | anomaly.OneClassSVM()


def quantile_filter() -> base.Estimator:
    return anomaly.QuantileFilter(preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=42, window_size=50), q=0.95)


def gaussian_scorer() -> base.Estimator:
    """A supervised anomaly detector: it scores the label itself (here a poll's value)."""
    return anomaly.GaussianScorer(grace_period=20)
