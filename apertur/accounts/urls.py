from django.urls import path

from apertur.accounts import views

app_name = "accounts"

urlpatterns = [
    path("login", views.login_view, name="login"),
    path("signup", views.signup_view, name="signup"),
    path("logout", views.logout_view, name="logout"),
    path("confirm-email/<uidb64>/<token>", views.confirm_email_view, name="confirm-email"),
    path("confirm-email/resend", views.resend_confirmation_view, name="resend-confirmation"),
    path("password-reset", views.PasswordResetView.as_view(), name="password-reset"),
    path("password-reset/sent", views.PasswordResetDoneView.as_view(), name="password-reset-done"),
    path(
        "password-reset/<uidb64>/<token>",
        views.PasswordResetConfirmView.as_view(),
        name="password-reset-confirm",
    ),
    path("password-reset/done", views.PasswordResetCompleteView.as_view(), name="password-reset-complete"),
]
