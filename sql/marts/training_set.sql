-- marts.training_set: one row per labelled loan application, the rows models learn from.
-- The 343 applications whose loan_status is NULL in the dump are left out (nothing to learn);
-- a status other than 0 or 1 is reported by audit_training_set_labels.
with

applicants as (
    select * from marts.applicants
),

final as (
    select *
    from applicants
    where loan_status is not null
)

select * from final
