"""The platform's job kinds as the worker runs them: their payloads' load from the database,
the pure computation from `compute`, and the save (their statements are `stores.research`),
the price providers (`kinds.prices`), the demo kinds, and the default schedules that run
them.

`compute` holds only the pure science (engine, grid, research, patterns, curves, the payload
models): it imports neither asyncpg nor `jobs`, and these modules are where the two meet.
"""
