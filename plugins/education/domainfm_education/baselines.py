"""Classical baselines trained side by side with the models: TF-IDF + logistic regression for grading."""

from __future__ import annotations

from typing import Any

import numpy as np

from domainfm.text_terms import closest_reference, overlap


class TfidfGrader:
    """Logistic regression on TF-IDF of the answer, its term-wise product with the closest reference's
    TF-IDF (what they share), and overlap / length features. Word and character n-grams."""

    def __init__(self, seed: int = 42, c: float = 4.0) -> None:
        self.seed, self.c = seed, c
        self.labels: list[str] = []

    def _features(self, refs_list: list[list[str]], answers: list[str]) -> Any:
        from scipy import sparse

        refs = [r[closest_reference(r, a)] for r, a in zip(refs_list, answers, strict=True)]
        a_vec, r_vec = self.vec.transform(answers), self.vec.transform(refs)
        dense = np.asarray(
            [[overlap(r, a), overlap(a, r), len(a.split()) / 30.0] for r, a in zip(refs, answers, strict=True)]
        )
        return sparse.hstack([a_vec, a_vec.multiply(r_vec), sparse.csr_matrix(dense)]).tocsr()

    def fit(self, table: Any) -> TfidfGrader:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        answers = list(table["student_answer"])
        refs = [list(r) for r in table["reference_answers"]]
        self.vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        self.vec.fit(answers + [x for r in refs for x in r])
        self.labels = sorted(set(table["label"]))
        self.clf = LogisticRegression(C=self.c, max_iter=3000, class_weight="balanced", random_state=self.seed)
        self.clf.fit(self._features(refs, answers), list(table["label"]))
        return self

    def predict(self, table: Any) -> list[str]:
        refs = [list(r) for r in table["reference_answers"]]
        return list(self.clf.predict(self._features(refs, list(table["student_answer"]))))
