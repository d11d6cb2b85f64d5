"""/api/v1/: the REST API, version 1 (docs/integrations.md). Paths have no trailing slash."""

from django.urls import path, re_path

from messenger.api.v1 import reports, reports_now, views
from messenger.api.v1.errors import not_found

urlpatterns = [
    path("me", views.MeView.as_view(), name="v1-me"),
    path("conversations", views.ConversationListView.as_view(), name="v1-conversations"),
    path("conversations/<int:conversation_id>", views.ConversationView.as_view(), name="v1-conversation"),
    path(
        "conversations/<int:conversation_id>/messages",
        views.ConversationMessagesView.as_view(),
        name="v1-conversation-messages",
    ),
    path("conversations/<int:conversation_id>/status", views.ConversationStatusView.as_view(), name="v1-status"),
    path("conversations/<int:conversation_id>/priority", views.ConversationPriorityView.as_view(), name="v1-priority"),
    path("conversations/<int:conversation_id>/labels", views.ConversationLabelsView.as_view(), name="v1-labels"),
    path("conversations/<int:conversation_id>/assignee", views.ConversationAssigneeView.as_view(), name="v1-assignee"),
    path("conversations/<int:conversation_id>/transfer", views.ConversationTransferView.as_view(), name="v1-transfer"),
    path("contacts", views.ContactListView.as_view(), name="v1-contacts"),
    path("contacts/<int:contact_id>", views.ContactView.as_view(), name="v1-contact"),
    path(
        "contacts/<int:contact_id>/conversations",
        views.ContactConversationsView.as_view(),
        name="v1-contact-conversations",
    ),
    path("inboxes", views.InboxListView.as_view(), name="v1-inboxes"),
    path("reports/summary", reports.ReportSummaryView.as_view(), name="v1-reports-summary"),
    path("reports/now", reports_now.ReportNowView.as_view(), name="v1-reports-now"),
    *(
        path(f"reports/{name}", json_view.as_view(), name=f"v1-reports-{name}")
        for name, (json_view, _csv) in reports.VIEWS.items()
    ),
    *(
        path(f"reports/{name}/csv", csv_view.as_view(), name=f"v1-reports-{name}-csv")
        for name, (_json, csv_view) in reports.VIEWS.items()
    ),
    re_path(r"^.*$", not_found),
]
