"""The web gallery: `create_app(workspace)` in app.py, the routes in routes_*.py and search_api.py over one Site (site.py), its data in gallery.py."""
