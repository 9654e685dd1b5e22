-- Spellings in the dump that no synonym maps to a contract category (they reach the mart as NULL).
with

values_long as (
    select 'person_home_ownership' as feature, person_home_ownership as value from staging.stg_borrowers
    union all
    select 'loan_intent', loan_intent from staging.stg_loans
    union all
    select 'loan_grade', loan_grade from staging.stg_loans
    union all
    select 'cb_person_default_on_file', cb_person_default_on_file from staging.stg_credit_history
),

final as (
    select
        feature,
        value,
        count(*) as rows
    from values_long
    where value is not null
        and not exists (
            select 1
            from ref.category_synonyms as known
            where known.feature = values_long.feature
                and known.category = values_long.value
        )
    group by feature, value
)

select * from final
