-- staging.stg_borrowers: one row per borrower record of raw.dados_mutuarios.
-- Text is trimmed and blanks become NULL (the dump stores missing text as ''; 4 blank person_id,
-- 331 blank person_home_ownership). Home ownership spellings map to the contract's categories
-- through ref.category_synonyms (any case, English or Portuguese); an unknown spelling is kept as
-- given so audit_stg_unknown_categories can report it.
with

source as (
    select * from raw.dados_mutuarios
),

synonyms as (
    select spelling, category
    from ref.category_synonyms
    where feature = 'person_home_ownership'
),

renamed as (
    select
        -- ids
        ref.text(source.person_id) as person_id,
        -- numerics
        cast(source.person_age as double) as person_age,
        cast(source.person_income as double) as person_income,
        cast(source.person_emp_length as double) as person_emp_length,
        -- categories
        ref.text(source.person_home_ownership) as person_home_ownership_given
    from source
),

final as (
    select
        -- ids
        renamed.person_id,
        -- numerics
        renamed.person_age,
        renamed.person_income,
        renamed.person_emp_length,
        -- categories
        coalesce(synonyms.category, renamed.person_home_ownership_given) as person_home_ownership
    from renamed
    left join synonyms
        on lower(renamed.person_home_ownership_given) = synonyms.spelling
)

select * from final
