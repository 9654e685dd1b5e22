-- Every row of marts.training_set has a label of 0 (repaid) or 1 (defaulted).
select
    loan_id,
    loan_status
from marts.training_set
where loan_status not in (0, 1)
    or loan_status is null
