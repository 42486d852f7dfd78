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
    path("account", views.account_view, name="account"),
    path("account/password", views.change_password_view, name="change-password"),
    path("account/email", views.change_email_view, name="change-email"),
    path("account/email/confirm/<str:token>", views.confirm_email_change_view, name="confirm-email-change"),
    path("account/sessions", views.end_other_sessions_view, name="end-other-sessions"),
]
