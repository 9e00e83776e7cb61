from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.PortalLoginView.as_view(), name="login"),
    path("logout/", views.PortalLogoutView.as_view(), name="logout"),
    path("mfa/enrol/", views.mfa_enrol, name="mfa-enrol"),
    path("mfa/enrol/qr.svg", views.mfa_qr, name="mfa-qr"),
    path("mfa/verify/", views.mfa_verify, name="mfa-verify"),
]
