-- Every loan application appears once in marts.applicants: loan ids that repeat.
select
    loan_id,
    count(*) as copies
from marts.applicants
group by loan_id
having count(*) > 1
