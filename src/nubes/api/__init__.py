"""The public REST API: FastAPI, one router per resource, logic in services."""
