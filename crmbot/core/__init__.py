"""The ground floor: settings, the database and its tables, the clock, privacy (masking,
log scrubbing, erasure), the audit log and cron expressions. Everything else builds on
these; they import nothing of crmbot's above them.
"""
