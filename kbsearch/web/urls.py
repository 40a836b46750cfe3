"""Routes of the search page, the document page and sign-in/out."""
from django.contrib.auth import views as auth_views
from django.urls import path

from kbsearch.web import views

app_name = "web"

urlpatterns = [
    path("", views.search_page, name="search"),
    path("documents/<int:document_id>/", views.document_page, name="document"),
    path("feedback/", views.feedback_form, name="feedback"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="/accounts/login/"), name="logout"),
]
