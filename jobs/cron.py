"""The clock (`rq cron jobs.cron`): what runs on a schedule. Crontab strings are UTC.

Two clocks would enqueue every job twice (RQ has no leader lock): run one, and every job here is
idempotent anyway.
"""

from rq import cron

from jobs import bank, payments, tasks

cron.register(tasks.expire_unpaid, queue_name="default", cron="* * * * *")
cron.register(tasks.offer_waitlists, queue_name="default", cron="* * * * *")
cron.register(tasks.flush_notifications, queue_name="mail", cron="* * * * *")
# Money that must move (refunds due, open intents of released bookings) but whose job was lost.
cron.register(payments.settle_due, queue_name="default", cron="*/5 * * * *")
# Bank transfers whose match job was lost (the webhook answered; the worker or Redis was down).
cron.register(bank.match_pending, queue_name="default", cron="* * * * *")
# calendar: sessions for the coming weeks, nightly at 00:05 club time (17:05 UTC); attendance sweep.
cron.register(tasks.generate_sessions, queue_name="default", cron="5 17 * * *")
cron.register(tasks.mark_attendance, queue_name="default", cron="*/10 * * * *")
