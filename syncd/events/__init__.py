"""Selzy's event webhooks (selzy-api.md §11): the event URL (address), the body's auth and parse
(payload), what getContact's answer means for a job (truth), the setHook registration (hooks),
the worker applying stored events (worker) and their composition (service). The HTTP receiver
is syncd/web/events.py, the tables syncd/db/events.py.

Events are fast hints: each makes syncd look at one contact with getContact; the scheduled
export stays the authority. Nothing is imported here, so that the pure modules stay cheap.
"""
