from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from messenger.api.widget import WidgetBootstrapView
from messenger.views import health

urlpatterns = [
    path("api/widget/bootstrap/", WidgetBootstrapView.as_view(), name="widget-bootstrap"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/", include("messenger.api.v1.urls")),
    path("health/", health, name="health"),
    path("", include("messenger.urls_widget")),
    path("", include("messenger.urls_dashboard")),
    path("", include("messenger.urls_routing")),
]
