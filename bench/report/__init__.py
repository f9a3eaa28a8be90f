"""Report tables and rendering through Jinja2 templates."""
