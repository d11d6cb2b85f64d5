from django.urls import path

from messenger.api import operator
from messenger.views_dashboard import dashboard

urlpatterns: list = [
    path("dashboard/", dashboard, name="dashboard"),
    path("api/operator/conversations/", operator.ConversationListView.as_view(), name="operator-conversations"),
    path(
        "api/operator/conversations/<int:conversation_id>/",
        operator.ConversationDetailView.as_view(),
        name="operator-conversation",
    ),
    path(
        "api/operator/conversations/<int:conversation_id>/messages/",
        operator.ConversationMessagesView.as_view(),
        name="operator-conversation-messages",
    ),
    path("api/operator/canned/", operator.CannedResponseListView.as_view(), name="operator-canned"),
    path("api/operator/operators/", operator.OperatorListView.as_view(), name="operator-operators"),
    path("api/operator/branches/", operator.BranchListView.as_view(), name="operator-branches"),
    path("api/operator/labels/", operator.LabelListView.as_view(), name="operator-labels"),
    path("api/operator/fairness/", operator.FairnessView.as_view(), name="operator-fairness"),
]
