"""Use cases shared by the CLI and (later) the REST API: devices, downlinks, queries."""
