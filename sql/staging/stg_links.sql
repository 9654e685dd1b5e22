-- staging.stg_links: one row per loan application of the link table (raw.ids; older dumps call it
-- `id`, which the restore exposes as raw.ids). Blank ids become NULL: the 4 blank person_id values
-- cannot tell which of the 4 blank borrower records they mean, so they join no borrower.
with

source as (
    select * from raw.ids
),

final as (
    select
        -- ids
        ref.text(source.loan_id) as loan_id,
        ref.text(source.person_id) as person_id,
        ref.text(source.cb_id) as cb_id
    from source
)

select * from final
