from django.urls import path

from packs import apis

urlpatterns = [
    path("packs/", apis.PackListRequestApi.as_view(), name="pack-list"),
    path("packs/<uuid:job_id>", apis.PackJobApi.as_view(), name="pack-detail"),
    path("packs/<uuid:job_id>/files/<str:name>", apis.PackFileApi.as_view(), name="pack-file"),
]
