from django.urls import path
from django.views.generic import RedirectView

from messenger.api import operator, operator_reports
from messenger.views_dashboard import dashboard, reports_page

urlpatterns: list = [
    path("dashboard/", dashboard, name="dashboard"),
    path("dashboard/reports/", reports_page, name="dashboard-reports"),
    path("analytics/", RedirectView.as_view(pattern_name="dashboard-reports", permanent=False)),
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
    path("api/operator/visitors/", operator.VisitorListView.as_view(), name="operator-visitors"),
    path("api/operator/labels/", operator.LabelListView.as_view(), name="operator-labels"),
    path("api/operator/fairness/", operator.FairnessView.as_view(), name="operator-fairness"),
    path("api/operator/reports/now/", operator_reports.SessionReportNowView.as_view(), name="operator-reports-now"),
    path(
        "api/operator/reports/summary/",
        operator_reports.SessionReportSummaryView.as_view(),
        name="operator-reports-summary",
    ),
    *(
        path(f"api/operator/reports/{name}/", json_view.as_view(), name=f"operator-reports-{name}")
        for name, (json_view, _csv) in operator_reports.VIEWS.items()
    ),
    *(
        path(f"api/operator/reports/{name}/csv/", csv_view.as_view(), name=f"operator-reports-{name}-csv")
        for name, (_json, csv_view) in operator_reports.VIEWS.items()
    ),
]
