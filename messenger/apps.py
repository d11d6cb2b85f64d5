from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MessengerConfig(AppConfig):
    name = "messenger"
    verbose_name = _("Messenger")
    default_auto_field = "django.db.models.BigAutoField"
