from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from messenger.api.widget import WidgetBootstrapView
from messenger.views import health

urlpatterns = [
    path("api/widget/bootstrap/", WidgetBootstrapView.as_view(), name="widget-bootstrap"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI with its script in a file of its own (no inline script under our CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("messenger.api.v1.urls")),
    path("health/", health, name="health"),
    path("", include("messenger.urls_widget")),
    path("", include("messenger.urls_dashboard")),
    path("", include("messenger.urls_routing")),
]
