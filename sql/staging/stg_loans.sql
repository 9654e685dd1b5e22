-- staging.stg_loans: one row per loan record of raw.emprestimos.
-- Blank text becomes NULL (312 blank loan_intent, 310 blank loan_grade); intent and grade
-- spellings map to the contract's categories through ref.category_synonyms; an unknown spelling
-- is kept as given for audit_stg_unknown_categories. loan_status stays NULL when missing (343 rows).
with

source as (
    select * from raw.emprestimos
),

intents as (
    select spelling, category
    from ref.category_synonyms
    where feature = 'loan_intent'
),

grades as (
    select spelling, category
    from ref.category_synonyms
    where feature = 'loan_grade'
),

renamed as (
    select
        -- ids
        ref.text(source.loan_id) as loan_id,
        -- numerics
        cast(source.loan_amnt as double) as loan_amnt,
        cast(source.loan_int_rate as double) as loan_int_rate,
        cast(source.loan_percent_income as double) as loan_percent_income,
        -- categories
        ref.text(source.loan_intent) as loan_intent_given,
        ref.text(source.loan_grade) as loan_grade_given,
        -- label
        cast(source.loan_status as integer) as loan_status
    from source
),

final as (
    select
        -- ids
        renamed.loan_id,
        -- numerics
        renamed.loan_amnt,
        renamed.loan_int_rate,
        renamed.loan_percent_income,
        -- categories
        coalesce(intents.category, renamed.loan_intent_given) as loan_intent,
        coalesce(grades.category, renamed.loan_grade_given) as loan_grade,
        -- label
        renamed.loan_status
    from renamed
    left join intents
        on lower(renamed.loan_intent_given) = intents.spelling
    left join grades
        on lower(renamed.loan_grade_given) = grades.spelling
)

select * from final
