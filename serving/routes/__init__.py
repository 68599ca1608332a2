"""The API's routers: predict, feedback, and the operations endpoints (health, model card, the page)."""
