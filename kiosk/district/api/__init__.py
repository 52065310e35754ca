"""The terminals' HTTP API (/api/v1): FastAPI dependencies and one router module per resource."""
