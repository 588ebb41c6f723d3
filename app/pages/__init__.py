"""The explorer's pages, one module each; Dash imports them when the app is created (``app.create_app``)."""
