-- pt.applicants: marts.applicants for the bank's analysts and Power BI, in Portuguese: one row per
-- row of the mart, the columns named as the challenge's analysts named them and the categories in
-- their Portuguese values (ref.category_labels, seeded from features/contract.py: `column_pt` and
-- `categories_pt`). The values are the mart's, cleaned and capped; only the words change.
-- Every Portuguese value is also an accepted spelling, so a row read here scores the same when it
-- is sent back to the API, `cashscore score` or score_default().
with

applicants as (
    select * from marts.applicants
),

labels as (
    select feature, category, label_pt
    from ref.category_labels
),

final as (
    select
        -- ids
        applicants.loan_id as id_emprestimo,
        applicants.person_id as id_pessoa,
        applicants.cb_id as id_historico,
        -- borrower
        applicants.person_age as idade,
        applicants.person_income as salario_ano,
        home.label_pt as situacao_propriedade,
        applicants.person_emp_length as tempo_trabalho,
        -- loan
        intent.label_pt as motivo_emprestimo,
        grade.label_pt as pontuacao_emprestimos,
        applicants.loan_amnt as valor_emprestimo,
        applicants.loan_int_rate as taxa_juros,
        applicants.loan_percent_income as renda_percentual,
        -- credit bureau
        flag.label_pt as inadimplencia_historico,
        applicants.cb_person_cred_hist_length as tempo_primeiro_credito,
        -- label: 1 = the loan defaulted
        applicants.loan_status as inadimplencia
    from applicants
    left join labels as home
        on home.feature = 'person_home_ownership' and home.category = applicants.person_home_ownership
    left join labels as intent
        on intent.feature = 'loan_intent' and intent.category = applicants.loan_intent
    left join labels as grade
        on grade.feature = 'loan_grade' and grade.category = applicants.loan_grade
    left join labels as flag
        on flag.feature = 'cb_person_default_on_file' and flag.category = applicants.cb_person_default_on_file
)

select * from final
