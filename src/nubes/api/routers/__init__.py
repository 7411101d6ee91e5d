"""One router per resource; `nubes.api.app` includes them all."""
