"""The dashboard and HTTP API that `sp-scheduler web` serves (Starlette on uvicorn).

`app.create_app` builds the ASGI application; `api` holds the JSON endpoints under /api/v1/, `pages`
the server-rendered pages; both read through `database.Database` (a pool used from worker threads,
so no psycopg call blocks the event loop) and build their documents with `sp_scheduler.documents`.
"""
