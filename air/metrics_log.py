"""Reads training.py's metrics.csv (one row per held-out evaluation) and applies its stop rule.

training.py (stopping and resuming) and sweep.py (the state of a trial) both read the rows and
the run of good evaluations here, so the two always agree on when a run has converged.
"""
import csv
import os


def read_rows(path, up_to=None):
    """The rows of a metrics.csv as dicts (column: text), optionally only to an iteration."""
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        rows = [row for row in csv.DictReader(f) if row.get("iteration")]
    if up_to is not None:
        rows = [row for row in rows if int(row["iteration"]) <= up_to]
    return rows


def accuracy_streak(rows, threshold):
    """How many of the last rows in a row have held-out accuracy >= threshold (0 without one)."""
    streak = 0
    if threshold is None:
        return streak
    for row in reversed(rows):
        if not float(row["heldout_accuracy"]) >= threshold:  # NaN also ends the streak
            break
        streak += 1
    return streak
