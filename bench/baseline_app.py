"""The baselines: built the way the challenge's published solutions serve the model.

`/predict`: FastAPI + pydantic + the sklearn pipeline loaded with joblib, one DataFrame per request,
calibrated as the served model is (BASELINE_A, BASELINE_B), so both sides decide with the same
probabilities. `/predict-onnx`: the same FastAPI app calling onnxruntime on cashscore's own graph
(BASELINE_ONNX), so the ratio to it says what Litestar and cashscore's scoring core add.
Started by bench/serve.py with BASELINE_MODEL, BASELINE_ONNX, BASELINE_A, BASELINE_B and BASELINE_THRESHOLD.
"""

from __future__ import annotations

import math
import os

import joblib
import numpy as np
import onnxruntime
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

MODEL = joblib.load(os.environ["BASELINE_MODEL"])
THRESHOLD = float(os.environ.get("BASELINE_THRESHOLD", "0.5"))
A, B = float(os.environ.get("BASELINE_A", "1")), float(os.environ.get("BASELINE_B", "0"))
SESSION = onnxruntime.InferenceSession(os.environ["BASELINE_ONNX"], providers=["CPUExecutionProvider"])
app = FastAPI()
TEXT = {"person_home_ownership", "loan_intent", "loan_grade", "cb_person_default_on_file"}


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
    raw = min(max(float(MODEL.predict_proba(frame)[0, 1]), 1e-7), 1 - 1e-7)
    p = 1.0 / (1.0 + math.exp(-(A * math.log(raw / (1 - raw)) + B)))
    return {"default_probability": p, "decision": "deny" if p >= THRESHOLD else "approve"}


@app.post("/predict-onnx")
def predict_onnx(applicant: Applicant) -> dict[str, object]:
    values = applicant.model_dump()
    feeds = {
        name: np.array([[np.nan if value is None else value]], dtype=np.float32)
        if isinstance(value, float | int) or value is None and name not in TEXT
        else np.array([[value or ""]], dtype=object)
        for name, value in values.items()
    }
    p = float(SESSION.run(["probabilities"], feeds)[0][0, 1])
    return {"default_probability": p, "decision": "deny" if p >= THRESHOLD else "approve"}
