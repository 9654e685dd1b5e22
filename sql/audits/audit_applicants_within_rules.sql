-- Every numeric value in marts.applicants lies inside its valid range and under its cap.
with

rules as (
    select * from ref.feature_rules
),

values_long as (
    unpivot (
        select
            loan_id,
            person_age,
            person_income,
            person_emp_length,
            loan_amnt,
            loan_int_rate,
            loan_percent_income,
            cb_person_cred_hist_length
        from marts.applicants
    )
    on columns(* exclude (loan_id))
    into name feature value value
),

final as (
    select
        values_long.loan_id,
        values_long.feature,
        values_long.value
    from values_long
    join rules
        on values_long.feature = rules.feature
    where values_long.value < rules.valid_min
        or values_long.value > rules.valid_max
        or values_long.value > rules.cap
)

select * from final
