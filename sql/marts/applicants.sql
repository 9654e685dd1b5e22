-- marts.applicants: one row per loan application (one row per link-table row; 34,489 on the real
-- dump, where Alura's own inner join gives 34,501 because the 4 blank person_id values join each
-- other 4x4). Borrower, loan and bureau records are left-joined so no application is lost.
--
-- Rules: every numeric column goes through the ref macros, which restore writes from the contract's
-- declarations (features/contract.py, which the scoring path applies too, column-wise, in
-- features/rules.py); declaring a bound, cap or start age there changes this view with no edit here. On the real dump:
-- * ref.bounded: a value outside its valid range is impossible and becomes NULL (5 ages of 123 or
--   144, 2 employment lengths of 123 years); a value above its cap is winsorised (9 incomes above
--   1,000,000, up to 6,000,000);
-- * ref.after_start_age: employment and credit history cannot start before 14 (min_start_age):
--   a longer one becomes NULL (2 employment and 158 credit-history values);
-- * ref.derived: a missing loan_percent_income is amount / (capped) income, rounded to 2 places as
--   the dump does (259 of the 316 missing). A stated share is kept even where it disagrees with
--   amount / income by more than 0.02 (1,115 rows): it is what the loan was granted on, and the
--   disagreement is itself a strong signal (48 % of those loans defaulted against 22 % overall;
--   recomputing them cost 0.004 held-out ROC-AUC).
-- * a category outside the contract's list becomes NULL (audit_stg_unknown_categories reports it).
-- Every numeric column is a DOUBLE here, as the rules' bounds and caps are.
with

links as (
    select * from staging.stg_links
),

borrowers as (
    select * from staging.stg_borrowers
),

loans as (
    select * from staging.stg_loans
),

credit_history as (
    select * from staging.stg_credit_history
),

categories as (
    select distinct feature, category
    from ref.category_synonyms
),

joined as (
    select
        links.loan_id,
        links.person_id,
        links.cb_id,
        borrowers.person_age,
        borrowers.person_income,
        borrowers.person_home_ownership,
        borrowers.person_emp_length,
        loans.loan_intent,
        loans.loan_grade,
        loans.loan_amnt,
        loans.loan_int_rate,
        loans.loan_percent_income,
        credit_history.cb_person_default_on_file,
        credit_history.cb_person_cred_hist_length,
        loans.loan_status
    from links
    left join borrowers
        on links.person_id = borrowers.person_id
    left join loans
        on links.loan_id = loans.loan_id
    left join credit_history
        on links.cb_id = credit_history.cb_id
),

bounded as (
    select
        joined.loan_id,
        joined.person_id,
        joined.cb_id,
        ref.bounded('person_age', joined.person_age) as person_age,
        ref.bounded('person_income', joined.person_income) as person_income,
        joined.person_home_ownership,
        ref.bounded('person_emp_length', joined.person_emp_length) as person_emp_length,
        joined.loan_intent,
        joined.loan_grade,
        ref.bounded('loan_amnt', joined.loan_amnt) as loan_amnt,
        ref.bounded('loan_int_rate', joined.loan_int_rate) as loan_int_rate,
        ref.bounded('loan_percent_income', joined.loan_percent_income) as loan_percent_income,
        joined.cb_person_default_on_file,
        ref.bounded('cb_person_cred_hist_length', joined.cb_person_cred_hist_length) as cb_person_cred_hist_length,
        joined.loan_status
    from joined
),

final as (
    select
        -- ids
        bounded.loan_id,
        bounded.person_id,
        bounded.cb_id,
        -- borrower
        ref.after_start_age('person_age', bounded.person_age, bounded.person_age) as person_age,
        ref.after_start_age('person_income', bounded.person_income, bounded.person_age) as person_income,
        home.category as person_home_ownership,
        ref.after_start_age('person_emp_length', bounded.person_emp_length, bounded.person_age)
            as person_emp_length,
        -- loan
        intent.category as loan_intent,
        grade.category as loan_grade,
        ref.after_start_age('loan_amnt', bounded.loan_amnt, bounded.person_age) as loan_amnt,
        ref.after_start_age('loan_int_rate', bounded.loan_int_rate, bounded.person_age) as loan_int_rate,
        ref.derived(
            'loan_percent_income',
            ref.after_start_age('loan_percent_income', bounded.loan_percent_income, bounded.person_age),
            bounded.loan_amnt,
            bounded.person_income
        ) as loan_percent_income,
        -- credit bureau
        flag.category as cb_person_default_on_file,
        ref.after_start_age('cb_person_cred_hist_length', bounded.cb_person_cred_hist_length, bounded.person_age)
            as cb_person_cred_hist_length,
        -- label
        bounded.loan_status
    from bounded
    left join categories as home
        on home.feature = 'person_home_ownership' and home.category = bounded.person_home_ownership
    left join categories as intent
        on intent.feature = 'loan_intent' and intent.category = bounded.loan_intent
    left join categories as grade
        on grade.feature = 'loan_grade' and grade.category = bounded.loan_grade
    left join categories as flag
        on flag.feature = 'cb_person_default_on_file' and flag.category = bounded.cb_person_default_on_file
)

select * from final
