"""`shield serve`: the approval relay (cold; starlette, uvicorn and psycopg live only here).

The server carries held requests from shims to approvers and signed decisions back. It holds no
approver key and cannot approve anything: every shim verifies every decision against its own
trust store (`shim.approval.wait`). Modules, one job each:

    app.py        the Starlette application: routes, the long poll, the expiry sweep
    auth.py       bearer tokens (only their hashes are stored) and who may do what
    checks.py     what a submitted request or decision must look like (pure)
    hub.py        wakes waiting long polls, in this process and (PostgreSQL) in the others
    notify.py     Slack and generic webhooks, retried in a worker thread, never blocking
    schema.py     the tables and their migrations, per dialect
    store.py      the storage interface and its SQL, over SQLite or PostgreSQL
    run.py        bind, TLS, database, uvicorn: `shield serve` itself
"""
