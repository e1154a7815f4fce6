"""Each area's statements and the small store that runs them, over a `jobs.db.Database`.

The queue's SQL lives in `jobs` (`jobs.sql`, `jobs.store.Store`); the other tables (API keys,
quotas, schedules, the research tables) have theirs here, one module per area, so that the
API, the scheduler, the kinds and the CLI hold no SQL and never touch a pool: they are
handed a store built over `store.db`. Nothing here imports a process's package (`api`,
`worker`, `scheduler`, `kinds`, `conveyor`); what a store returns (a row, a dataclass) is
defined here or in `jobs`.
"""
