-- Each staging table has one row per id, or the mart's joins would multiply applications.
with

keys as (
    select 'stg_borrowers' as source, person_id as id from staging.stg_borrowers where person_id is not null
    union all
    select 'stg_loans', loan_id from staging.stg_loans where loan_id is not null
    union all
    select 'stg_credit_history', cb_id from staging.stg_credit_history where cb_id is not null
),

final as (
    select
        source,
        id,
        count(*) as copies
    from keys
    group by source, id
    having count(*) > 1
)

select * from final
