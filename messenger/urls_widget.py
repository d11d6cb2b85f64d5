from django.urls import path

from messenger.api.attachments import AttachmentDownloadView, OperatorAttachmentUploadView, WidgetAttachmentUploadView
from messenger.views_widget import demo

urlpatterns: list = [
    path("api/widget/attachments/", WidgetAttachmentUploadView.as_view(), name="widget-attachment-upload"),
    path("api/operator/attachments/", OperatorAttachmentUploadView.as_view(), name="operator-attachment-upload"),
    path("api/attachments/<int:attachment_id>/", AttachmentDownloadView.as_view(), name="attachment-download"),
    path("demo/", demo, name="demo"),
]
