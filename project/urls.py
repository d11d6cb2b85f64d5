from django.contrib import admin
from django.urls import include, path

from messenger.views_dashboard import StaffPasswordResetView

urlpatterns = [
    path("admin/", admin.site.urls),
    # Django's auth views, the reset request through the e-mail outbox (docs/integrations.md).
    path("accounts/password_reset/", StaffPasswordResetView.as_view(), name="password_reset"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("messenger.urls")),
]

handler404 = "messenger.middleware.page_not_found"
handler500 = "messenger.middleware.server_error"
