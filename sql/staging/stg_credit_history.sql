-- staging.stg_credit_history: one row per credit-bureau record of raw.historicos_banco.
-- Blank text becomes NULL (367 blank cb_person_default_on_file); yes/no spellings
-- (Y/YES/S/SIM/TRUE/1, N/NO/NAO/NÃO/FALSE/0, any case) map to Y or N through ref.category_synonyms.
with

source as (
    select * from raw.historicos_banco
),

flags as (
    select spelling, category
    from ref.category_synonyms
    where feature = 'cb_person_default_on_file'
),

renamed as (
    select
        -- ids
        ref.text(source.cb_id) as cb_id,
        -- numerics
        cast(source.cb_person_cred_hist_length as double) as cb_person_cred_hist_length,
        -- categories
        ref.text(source.cb_person_default_on_file) as default_on_file_given
    from source
),

final as (
    select
        -- ids
        renamed.cb_id,
        -- numerics
        renamed.cb_person_cred_hist_length,
        -- categories
        coalesce(flags.category, renamed.default_on_file_given) as cb_person_default_on_file
    from renamed
    left join flags
        on lower(renamed.default_on_file_given) = flags.spelling
)

select * from final
