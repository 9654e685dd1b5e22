"""Applicants the HTTP and scoring tests send."""

GOOD = {
    "person_age": 22,
    "person_income": 59000,
    "person_home_ownership": "Rent",
    "person_emp_length": 3,
    "loan_intent": "Personal",
    "loan_grade": "D",
    "loan_amnt": 35000,
    "loan_int_rate": 16.02,
    "loan_percent_income": 0.59,
    "cb_person_default_on_file": "Y",
    "cb_person_cred_hist_length": 3,
}
