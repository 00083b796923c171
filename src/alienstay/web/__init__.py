"""The web gallery: `create_app(workspace)` in app.py, its data in gallery.py."""
