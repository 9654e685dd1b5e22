"""What a protected-age rule costs: the served model's twin refit with age capped at the protected
age and/or held non-increasing in age, on the same training split, scored on the same held-out rows.

Prints, for each design, the held-out ROC-AUC and the share of held-out applicants at or above the
protected age whose TreeSHAP age contribution raises their risk (LightGBM's pred_contrib).
Run: `.venv/bin/python bench/protected_age.py --models DIR --train-db DB [--age 60]`
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from sklearn.base import clone
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shared import refit, split  # noqa: E402

from cashscore.training import preprocess  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--train-db", type=Path, default=Path("data/cashscore.duckdb"))
    parser.add_argument("--age", type=float, default=60.0, help="the protected age (60: Estatuto da Pessoa Idosa)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    part = split(args.train_db, args.models)
    X_train, X_test, y_train, y_test = part.X_train, part.X_test, part.y_train, part.y_test
    served, _, _ = refit(args.train_db, args.models)
    age = preprocess.output_columns("tree").index("person_age")
    old = (X_test["person_age"] >= args.age).to_numpy()

    def measure(cap: bool, non_increasing: bool, method: str) -> tuple[float, float]:
        model = clone(served)
        booster = model.steps[-1][1]
        constraints = list(booster.get_params()["monotone_constraints"])
        constraints[age] = -1 if non_increasing else 0
        booster.set_params(monotone_constraints=constraints, monotone_constraints_method=method)
        train, test = X_train.copy(), X_test.copy()
        if cap:
            train, test = preprocess.protect_age(train, args.age), preprocess.protect_age(test, args.age)
        model.fit(train, y_train)
        p = model.predict_proba(test)[:, 1]
        shap = model.steps[-1][1].booster_.predict(model[:-1].transform(test), pred_contrib=True)[:, age]
        return roc_auc_score(y_test, p), float((shap[old] > 0).mean()) if old.any() else float("nan")

    print(f"## protected age {args.age:g}: {old.sum()} of {len(X_test):,} held-out applicants at or above it")
    print("(risk-raising: LightGBM's TreeSHAP age contribution above 0; the served design also proves its own")
    print(" path contributions never are, see the card's protected_age)")
    for label, cap, non_increasing, method in (
        ("age free (before)", False, False, "intermediate"),
        (f"age capped at {args.age:g}", True, False, "intermediate"),
        ("non-increasing in age", False, True, "intermediate"),
        (f"capped at {args.age:g}, non-increasing, intermediate", True, True, "intermediate"),
        (f"capped at {args.age:g}, non-increasing, basic (served)", True, True, "basic"),
    ):
        auc, raised = measure(cap, non_increasing, method)
        print(f"{label:<52} ROC-AUC {auc:.4f}   risk-raising age effect for {raised:6.1%} of them")


if __name__ == "__main__":
    main()
