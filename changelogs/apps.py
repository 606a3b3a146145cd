from django.apps import AppConfig


class ChangelogsConfig(AppConfig):
    name = "changelogs"
    verbose_name = "Changelogs and catalog"
