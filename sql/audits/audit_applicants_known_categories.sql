-- Every category in marts.applicants is one the feature contract lists.
with

values_long as (
    unpivot (
        select
            loan_id,
            person_home_ownership,
            loan_intent,
            loan_grade,
            cb_person_default_on_file
        from marts.applicants
    )
    on columns(* exclude (loan_id))
    into name feature value value
),

final as (
    select *
    from values_long
    where not exists (
        select 1
        from ref.category_synonyms as known
        where known.feature = values_long.feature
            and known.category = values_long.value
    )
)

select * from final
