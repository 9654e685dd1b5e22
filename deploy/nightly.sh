#!/usr/bin/env bash
# The nightly job: restore the day's dump, score the portfolio, measure fairness and drift against
# the model's training population, check and prune the decision log.
#
#   deploy/nightly.sh DUMP [DUMP ...]      (files or folders, as `cashscore restore` takes them)
#
# Settings come from the environment, as for every command: CASHSCORE_DB, CASHSCORE_MODELS,
# CASHSCORE_AUDIT_LOG, CASHSCORE_AUDIT_KEY, CASHSCORE_STREAM_MEMORY... The `cashscore` on PATH runs
# it, else this checkout's .venv/bin/cashscore.
#
# Exit status: 0 when all is well; 3 when the population drifted past the alert threshold (drift is
# measured last, so every other step has run and stored its results); 75 when another nightly job
# on the same database is still running (this one does nothing); any other failure stops the
# job at that step with the command's own status and message: a refused dump (unreadable, or
# shrinking a table by more than half) leaves yesterday's database, scores and monitoring in place.
#
# It never retrains: a new model is a decision for people (`cashscore train`, then the report, then
# `cashscore models --use VERSION` to roll back if needed).
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 DUMP [DUMP ...]" >&2
    exit 2
fi
cashscore=$(command -v cashscore || echo "$(dirname "$0")/../.venv/bin/cashscore")

step() { echo "nightly $(date -u +%FT%TZ): $*" >&2; }

# One job at a time per database: a night's job started while the last one still runs would race it
# restore for restore and scoring for scoring. flock(2) on descriptor 9, held by this shell until it
# exits (the lock belongs to the open file, which Python's process shares and leaves open).
lock="${CASHSCORE_DB:-data/cashscore.duckdb}.nightly.lock"
mkdir -p "$(dirname "$lock")"
exec 9>>"$lock"
# 75 only when the lock is held: any other failure (no python3, a lock file on a filesystem without
# locks) says what it is, instead of reading as another job running.
held=0
python3 -c '
import fcntl, sys
try:
    fcntl.flock(9, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    sys.exit(75)
' || held=$?
if [ "$held" -eq 75 ]; then
    echo "nightly: another nightly job on this database is still running (it holds $lock); this one did nothing" >&2
    exit 75
elif [ "$held" -ne 0 ]; then
    echo "nightly: cannot take the job's lock $lock (python3 exited $held); nothing was done" >&2
    exit 1
fi

step "restore $*"
"$cashscore" restore "$@"
step "score marts.applicants into scores.portfolio (the dashboard's portfolio)"
"$cashscore" score --table marts.applicants --into portfolio
step "fairness by age band (monitoring.fairness)"
"$cashscore" fairness --table marts.applicants
step "verify the decision log's chain, then remove the months beyond retention"
"$cashscore" audit verify
"$cashscore" audit prune
step "drift against the training population (monitoring.drift); exit 3 on an alert"
"$cashscore" monitor --table marts.applicants --fail-on alert
step "done"
