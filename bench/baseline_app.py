"""The baseline: built the way the challenge's published solutions serve the model.

FastAPI + pydantic + the sklearn pipeline loaded with joblib, one DataFrame per request.
Started by bench/serve.py with BASELINE_MODEL and BASELINE_THRESHOLD set.
"""

from __future__ import annotations

import os

import joblib
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

MODEL = joblib.load(os.environ["BASELINE_MODEL"])
THRESHOLD = float(os.environ.get("BASELINE_THRESHOLD", "0.5"))
app = FastAPI()


class Applicant(BaseModel):
    person_age: float
    person_income: float
    person_home_ownership: str
    person_emp_length: float | None = None
    loan_intent: str
    loan_grade: str
    loan_amnt: float
    loan_int_rate: float | None = None
    loan_percent_income: float | None = None
    cb_person_default_on_file: str | None = ""
    cb_person_cred_hist_length: float | None = None


@app.post("/predict")
def predict(applicant: Applicant) -> dict[str, object]:
    frame = pd.DataFrame([applicant.model_dump()]).fillna({"cb_person_default_on_file": ""})
    p = float(MODEL.predict_proba(frame)[0, 1])
    return {"default_probability": p, "decision": "deny" if p >= THRESHOLD else "approve"}
