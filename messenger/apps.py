from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.backends.signals import connection_created
from django.utils.translation import gettext_lazy as _


class MessengerConfig(AppConfig):
    name = "messenger"
    verbose_name = _("Messenger")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from messenger.db.aggregates import register_sqlite_functions

        connection_created.connect(register_sqlite_functions, dispatch_uid="messenger_sqlite_functions")


class MessengerAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with the Messenger site (``messenger.admin_site``: grouped index),
    named in INSTALLED_APPS in its place."""

    default = False  # not the configuration of the "messenger" entry

    default_site = "messenger.admin_site.MessengerAdminSite"
