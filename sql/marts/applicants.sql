-- marts.applicants: one row per loan application (one row per link-table row; 34,489 on the real
-- dump, where Alura's own inner join gives 34,501 because the 4 blank person_id values join each
-- other 4x4). Borrower, loan and bureau records are left-joined so no application is lost.
--
-- Rules (bounds and caps come from ref.feature_rules, seeded from features/contract.py, which the
-- scoring service applies too; features/rules.py is the same logic for one applicant):
-- * a value outside its valid range is impossible and becomes NULL: age over 100 (5 rows hold
--   123 or 144), employment over 60 years (2 rows hold 123);
-- * employment and credit history cannot start before the working age of 14 (ref.constants):
--   a longer one becomes NULL (2 employment and 158 credit-history values on the real dump);
-- * income above the cap of 1,000,000 is winsorised (9 rows, up to 6,000,000);
-- * a missing loan_percent_income is derived as amount / (capped) income, rounded to 2 places as the
--   dump does (259 of the 316 missing). A stated share is kept even where it disagrees with amount / income by
--   more than 0.02 (1,115 rows): it is what the loan was granted on, and the disagreement is itself
--   a strong signal (48 % of those loans defaulted against 22 % overall; recomputing them cost
--   0.004 held-out ROC-AUC).
-- * a category outside the contract's list becomes NULL (audit_stg_unknown_categories reports it).
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

rules as (
    select
        max(valid_min) filter (where feature = 'person_age') as age_min,
        max(valid_max) filter (where feature = 'person_age') as age_max,
        max(valid_min) filter (where feature = 'person_income') as income_min,
        max(valid_max) filter (where feature = 'person_income') as income_max,
        max(cap) filter (where feature = 'person_income') as income_cap,
        max(valid_min) filter (where feature = 'person_emp_length') as emp_min,
        max(valid_max) filter (where feature = 'person_emp_length') as emp_max,
        max(valid_min) filter (where feature = 'loan_amnt') as amount_min,
        max(valid_max) filter (where feature = 'loan_amnt') as amount_max,
        max(valid_min) filter (where feature = 'loan_int_rate') as rate_min,
        max(valid_max) filter (where feature = 'loan_int_rate') as rate_max,
        max(valid_min) filter (where feature = 'loan_percent_income') as percent_min,
        max(valid_max) filter (where feature = 'loan_percent_income') as percent_max,
        max(valid_min) filter (where feature = 'cb_person_cred_hist_length') as hist_min,
        max(valid_max) filter (where feature = 'cb_person_cred_hist_length') as hist_max
    from ref.feature_rules
),

constants as (
    select * from ref.constants
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

in_range as (
    select
        joined.loan_id,
        joined.person_id,
        joined.cb_id,
        case when joined.person_age between rules.age_min and rules.age_max
            then joined.person_age end as person_age,
        case
            when joined.person_income not between rules.income_min and rules.income_max then null
            when joined.person_income > rules.income_cap then rules.income_cap
            else joined.person_income
        end as person_income,
        joined.person_home_ownership,
        case when joined.person_emp_length between rules.emp_min and rules.emp_max
            then joined.person_emp_length end as person_emp_length,
        joined.loan_intent,
        joined.loan_grade,
        case when joined.loan_amnt between rules.amount_min and rules.amount_max
            then joined.loan_amnt end as loan_amnt,
        case when joined.loan_int_rate between rules.rate_min and rules.rate_max
            then joined.loan_int_rate end as loan_int_rate,
        case when joined.loan_percent_income between rules.percent_min and rules.percent_max
            then joined.loan_percent_income end as loan_percent_income,
        joined.cb_person_default_on_file,
        case when joined.cb_person_cred_hist_length between rules.hist_min and rules.hist_max
            then joined.cb_person_cred_hist_length end as cb_person_cred_hist_length,
        joined.loan_status
    from joined
    cross join rules
),

final as (
    select
        -- ids
        in_range.loan_id,
        in_range.person_id,
        in_range.cb_id,
        -- borrower
        in_range.person_age,
        in_range.person_income,
        home.category as person_home_ownership,
        case when in_range.person_emp_length <= coalesce(in_range.person_age - constants.working_age, in_range.person_emp_length)
            then in_range.person_emp_length end as person_emp_length,
        -- loan
        intent.category as loan_intent,
        grade.category as loan_grade,
        in_range.loan_amnt,
        in_range.loan_int_rate,
        case
            when in_range.loan_percent_income is null and in_range.person_income > 0
                then round(in_range.loan_amnt / in_range.person_income, 2)
            else in_range.loan_percent_income
        end as loan_percent_income,
        -- credit bureau
        flag.category as cb_person_default_on_file,
        case when in_range.cb_person_cred_hist_length <= coalesce(in_range.person_age - constants.working_age, in_range.cb_person_cred_hist_length)
            then in_range.cb_person_cred_hist_length end as cb_person_cred_hist_length,
        -- label
        in_range.loan_status
    from in_range
    cross join constants
    left join categories as home
        on home.feature = 'person_home_ownership' and home.category = in_range.person_home_ownership
    left join categories as intent
        on intent.feature = 'loan_intent' and intent.category = in_range.loan_intent
    left join categories as grade
        on grade.feature = 'loan_grade' and grade.category = in_range.loan_grade
    left join categories as flag
        on flag.feature = 'cb_person_default_on_file' and flag.category = in_range.cb_person_default_on_file
)

select * from final
