from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.utils.translation import gettext_lazy as _


class MessengerConfig(AppConfig):
    name = "messenger"
    verbose_name = _("Messenger")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from messenger.db.aggregates import register_sqlite_functions

        connection_created.connect(register_sqlite_functions, dispatch_uid="messenger_sqlite_functions")
