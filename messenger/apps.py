from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.utils.translation import gettext_lazy as _


class MessengerConfig(AppConfig):
    name = "messenger"
    verbose_name = _("Messenger")
    default_auto_field = "django.db.models.BigAutoField"


class MessengerAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with the Messenger site (``messenger.admin_site``: grouped index),
    named in INSTALLED_APPS in its place."""

    default = False  # not the configuration of the "messenger" entry

    default_site = "messenger.admin_site.MessengerAdminSite"
