from django.urls import path

from . import views

urlpatterns = [
    path("", views.home),
    path("checkout/", views.checkout),
    path("legacy-checkout/", views.legacy_checkout),
    path("flags.json", views.all_flags),
]
