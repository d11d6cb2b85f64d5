"""URL patterns of the widget, dashboard and routing areas (each appends its own)."""

urlpatterns: list = []
