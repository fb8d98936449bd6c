"""The web console: server-rendered pages (Jinja2 + htmx) over the same domain functions as the API."""
