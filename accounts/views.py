"""Browser sign-in: password (django-axes counts failures), then TOTP for the roles that need it.

A user whose role needs MFA and who has no authenticator is sent to enrolment (QR code, then
one-time backup codes shown once), never let in without it.  Verifying a second factor gives
the session a new key, as the password login did.
"""

import io

from django import forms
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login

from accounts import lockout, policy, selectors, services
from accounts.signals import SESSION_STARTED_KEY


class PortalAuthenticationForm(AuthenticationForm):
    """Email and password; the email is compared lower-cased, as accounts store it."""

    username = forms.EmailField(label="Email", max_length=254, widget=forms.EmailInput(attrs={"autofocus": True}))

    def clean_username(self):
        return self.cleaned_data["username"].strip().lower()


class SecondFactorForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=16,
        strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
        help_text="The 6-digit code from your authenticator, or one of your backup codes.",
    )


def _next_url(request, default: str = "") -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default or reverse("accounts:home")


def _with_next(url_name: str, next_url: str) -> str:
    from urllib.parse import urlencode

    return f"{reverse(url_name)}?{urlencode({'next': next_url})}"


def second_factor_step(user, next_url: str) -> str | None:
    """Where a signed-in user goes before ``next_url``: enrol or verify, or nowhere (None)."""
    if not policy.requires_mfa(user) or selectors.session_is_verified(user):
        return None
    step = "accounts:mfa-verify" if selectors.has_authenticator(user) else "accounts:mfa-enrol"
    return _with_next(step, next_url)


class PortalLoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = PortalAuthenticationForm

    def form_invalid(self, form):
        response = super().form_invalid(form)
        response.status_code = 400  # wrong credentials and malformed input alike
        return response

    def get_success_url(self):
        next_url = _next_url(self.request, self.get_default_redirect_url())
        # django-otp's middleware wrapped the anonymous user; the new one is not verified yet.
        return second_factor_step(self.request.user, next_url) or next_url


class PortalLogoutView(auth_views.LogoutView):
    template_name = "accounts/logged_out.html"


@login_required
def home(request):
    user = request.user
    context = {
        "role": selectors.role_of(user),
        "requires_mfa": policy.requires_mfa(user),
        "enrolled": selectors.has_authenticator(user),
        "verified": selectors.session_is_verified(user),
        "started": request.session.get(SESSION_STARTED_KEY),
    }
    return render(request, "accounts/home.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def mfa_enrol(request):
    user = request.user
    next_url = _next_url(request)
    if selectors.has_authenticator(user):
        if selectors.session_is_verified(user):
            return HttpResponseRedirect(next_url)
        return HttpResponseRedirect(_with_next("accounts:mfa-verify", next_url))
    device = services.pending_authenticator(user)
    form = SecondFactorForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            device, codes = services.confirm_authenticator(user, form.cleaned_data["code"])
        except services.MfaError as exc:
            form.add_error("code", str(exc))
        else:
            otp_login(request, device)
            request.session.cycle_key()
            return render(request, "accounts/backup_codes.html", {"codes": codes, "next": next_url})
    secret = _base32(device.bin_key)
    context = {"form": form, "secret": secret, "next": next_url}
    return render(request, "accounts/mfa_enrol.html", context, status=400 if form.errors else 200)


@login_required
def mfa_qr(request):
    """The pending authenticator's otpauth:// URL as an SVG QR code (made here, no third party)."""
    import qrcode
    import qrcode.image.svg

    if selectors.has_authenticator(request.user):
        raise Http404
    try:
        device = services.pending_authenticator(request.user)
    except services.MfaError:
        raise Http404 from None
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    out = io.BytesIO()
    image.save(out)
    return HttpResponse(out.getvalue(), content_type="image/svg+xml")


@login_required
@require_http_methods(["GET", "POST"])
def mfa_verify(request):
    from axes.handlers.proxy import AxesProxyHandler

    user = request.user
    next_url = _next_url(request)
    if not selectors.has_authenticator(user):
        return HttpResponseRedirect(_with_next("accounts:mfa-enrol", next_url))
    form = SecondFactorForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        credentials = {"email": user.email}
        if AxesProxyHandler.is_locked(request, credentials):
            return lockout.lockout_response(request)
        if form.is_valid():
            device = services.verify_second_factor(user, form.cleaned_data["code"])
            if device is not None:
                otp_login(request, device)
                request.session.cycle_key()  # a new key for the elevated session
                return HttpResponseRedirect(next_url)
            # Counted by django-axes like a wrong password: guessing codes locks out too.
            user_login_failed.send(sender=__name__, credentials=credentials, request=request)
            if getattr(request, "axes_locked_out", False):
                return lockout.lockout_response(request)
            form.add_error("code", "That code is not valid.")
    status = 400 if form.errors else 200
    return render(request, "accounts/mfa_verify.html", {"form": form, "next": next_url}, status=status)


def _base32(key: bytes) -> str:
    from base64 import b32encode

    text = b32encode(key).decode()
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))
