"""The FastAPI app: routes, schemas, auth, SSE, dashboard, error mapping (issue: REST API)."""
