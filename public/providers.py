"""Sign-in providers: which are configured, how Authlib reaches them, and what each says about a person.

Google and Apple speak OpenID Connect (an id_token carrying the nonce), Facebook speaks plain OAuth 2
followed by a Graph `me` call, and any number of generic OIDC issuers come from OIDC_<NAME>_*.
Only a provider whose settings are all present exists: it gets a button and routes, nothing else does.
"""

import json
import logging
import time
from dataclasses import dataclass

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from loafy.errors import ConfigError

log = logging.getLogger(__name__)

# Where the big providers live. Module-level so a test can point one at a local mock server.
GOOGLE_METADATA_URL = "https://accounts.google.com/.well-known/openid-configuration"
APPLE_ISSUER = "https://appleid.apple.com"
FACEBOOK_AUTHORIZE_URL = "https://www.facebook.com/v19.0/dialog/oauth"
FACEBOOK_TOKEN_URL = "https://graph.facebook.com/v19.0/oauth/access_token"  # noqa: S105 - a URL
FACEBOOK_PROFILE_URL = "https://graph.facebook.com/me"

# Apple accepts a client secret valid for up to 6 months; ours lives minutes, made per sign-in.
APPLE_SECRET_LIFETIME = 300
APPLE_SECRET_MAX_LIFETIME = 180 * 24 * 3600

HTTP_TIMEOUT = 10  # seconds; a provider that hangs must not hold a web worker for long

_SETTINGS = {
    "google": ("GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_SECRET"),
    "facebook": ("FACEBOOK_CLIENT_ID", "FACEBOOK_CLIENT_SECRET"),
    "apple": ("APPLE_CLIENT_ID", "APPLE_TEAM_ID", "APPLE_KEY_ID", "APPLE_PRIVATE_KEY"),
}


@dataclass(frozen=True)
class Provider:
    """A configured provider as the sign-in views see it."""

    name: str
    label: str
    kind: str  # "oidc" (id_token with nonce) or "facebook" (OAuth 2 + Graph me)
    form_post: bool = False  # Apple posts its callback instead of redirecting with a query


@dataclass(frozen=True)
class Profile:
    """Who the provider says signed in, cleaned to fit our columns."""

    subject: str
    email: str | None
    email_verified: bool
    name: str | None
    avatar_url: str | None


class ProviderError(Exception):
    """The provider answered, but not with something we can use (missing or malformed fields)."""


def register_providers(oauth, config):
    """Register a client for every configured provider on `oauth`; return {name: Provider}."""
    registered = {}
    for name, spec in _registrations(config).items():
        provider = spec.pop("provider")
        oauth.register(name, **spec)
        registered[name] = provider
    return registered


def _registrations(config):
    specs = {}
    if _configured(config, "google"):
        specs["google"] = {
            "provider": Provider("google", "Google", "oidc"),
            "client_id": config["GOOGLE_CLIENT_ID"],
            "client_secret": config["GOOGLE_CLIENT_SECRET"],
            "server_metadata_url": GOOGLE_METADATA_URL,
            "client_kwargs": {"scope": "openid email profile", "default_timeout": HTTP_TIMEOUT},
        }
    if _configured(config, "facebook"):
        specs["facebook"] = {
            "provider": Provider("facebook", "Facebook", "facebook"),
            "client_id": config["FACEBOOK_CLIENT_ID"],
            "client_secret": config["FACEBOOK_CLIENT_SECRET"],
            "authorize_url": FACEBOOK_AUTHORIZE_URL,
            "access_token_url": FACEBOOK_TOKEN_URL,
            "client_kwargs": {
                "scope": "email public_profile",
                "token_endpoint_auth_method": "client_secret_post",
                "default_timeout": HTTP_TIMEOUT,
            },
        }
    if _configured(config, "apple"):
        # Fail at start-up, naming the variable, rather than at the first person's sign-in.
        make_apple_client_secret(
            config["APPLE_TEAM_ID"],
            config["APPLE_CLIENT_ID"],
            config["APPLE_KEY_ID"],
            config["APPLE_PRIVATE_KEY"],
        )
        specs["apple"] = {
            "provider": Provider("apple", "Apple", "oidc", form_post=True),
            "client_id": config["APPLE_CLIENT_ID"],
            "client_secret": None,  # made fresh for each token request, see apple_client_secret()
            "server_metadata_url": APPLE_ISSUER + "/.well-known/openid-configuration",
            "authorize_params": {"response_mode": "form_post"},
            "client_kwargs": {
                "scope": "openid name email",
                "token_endpoint_auth_method": "client_secret_post",
                "default_timeout": HTTP_TIMEOUT,
            },
        }
    for name, oidc in (config.get("OIDC_PROVIDERS") or {}).items():
        if name in specs or name in _SETTINGS:
            raise ConfigError(f"OIDC_{name.upper()}_* clashes with the built-in {name} provider; rename it")
        specs[name] = {
            "provider": Provider(name, oidc["label"], "oidc"),
            "client_id": oidc["client_id"],
            "client_secret": oidc["client_secret"],
            "server_metadata_url": oidc["issuer"].rstrip("/") + "/.well-known/openid-configuration",
            "client_kwargs": {"scope": "openid email profile", "default_timeout": HTTP_TIMEOUT},
        }
    return specs


def _configured(config, name):
    """All settings present: configured. None: not configured. Some: a one-line ConfigError."""
    names = _SETTINGS[name]
    present = [n for n in names if config.get(n)]
    if not present:
        return False
    missing = [n for n in names if not config.get(n)]
    if missing:
        raise ConfigError(f"{missing[0]} is not set but {present[0]} is; set both or neither")
    return True


def make_apple_client_secret(team_id, client_id, key_id, private_key, now=None, lifetime=None):
    """Apple's client secret: an ES256 JWT from the team id, key id and the .p8 private key."""
    lifetime = APPLE_SECRET_LIFETIME if lifetime is None else lifetime
    if not 0 < lifetime <= APPLE_SECRET_MAX_LIFETIME:
        raise ValueError("Apple accepts a client secret valid for at most 6 months")
    issued = int(time.time() if now is None else now)
    header = {"alg": "ES256", "kid": key_id}
    payload = {
        "iss": team_id,
        "iat": issued,
        "exp": issued + lifetime,
        "aud": APPLE_ISSUER,
        "sub": client_id,
    }
    try:
        return jwt.encode(header, payload, ECKey.import_key(_pem(private_key)), algorithms=["ES256"])
    except (JoseError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"APPLE_PRIVATE_KEY is not a valid EC private key in PEM form ({type(exc).__name__})"
        )


def apple_client_secret(config):
    return make_apple_client_secret(
        config["APPLE_TEAM_ID"],
        config["APPLE_CLIENT_ID"],
        config["APPLE_KEY_ID"],
        config["APPLE_PRIVATE_KEY"],
    )


def _pem(key):
    # An environment variable often carries the .p8 file with "\n" written out.
    return key.replace("\\n", "\n").strip() + "\n"


def fetch_profile(provider, client, token, apple_user=None):
    """The Profile for a finished token exchange; ProviderError when the answer is unusable."""
    if provider.kind == "facebook":
        response = client.get(FACEBOOK_PROFILE_URL, params={"fields": "id,name,email,picture"}, token=token)
        response.raise_for_status()
        return facebook_profile(response.json())
    claims = token.get("userinfo")
    if not claims:
        # OpenID Connect without a verified id_token means no nonce check: refuse it.
        raise ProviderError("the provider returned no id_token")
    profile = oidc_profile(claims)
    if provider.form_post and not profile.name:
        profile = Profile(**{**profile.__dict__, "name": apple_name(apple_user)})
    return profile


def oidc_profile(claims):
    return _profile(
        subject=claims.get("sub"),
        email=claims.get("email"),
        email_verified=claims.get("email_verified") in (True, "true", "True"),
        name=claims.get("name")
        or " ".join(str(p) for p in (claims.get("given_name"), claims.get("family_name")) if p),
        avatar_url=claims.get("picture"),
    )


def facebook_profile(data):
    """Graph `me`: an e-mail is only there when Facebook has confirmed it, so present means verified."""
    if not isinstance(data, dict):
        raise ProviderError("Facebook's profile is not a JSON object")
    picture = data.get("picture")
    avatar = picture.get("data", {}).get("url") if isinstance(picture, dict) else None
    email = data.get("email")
    return _profile(
        subject=data.get("id"),
        email=email,
        email_verified=bool(email),
        name=data.get("name"),
        avatar_url=avatar,
    )


def apple_name(user_field):
    """Apple sends the name once, on the first sign-in, as JSON in the `user` form field."""
    if not user_field:
        return None
    try:
        data = json.loads(user_field)
    except ValueError:
        return None
    name = data.get("name") if isinstance(data, dict) else None
    if not isinstance(name, dict):
        return None
    parts = [name.get("firstName"), name.get("lastName")]
    return " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip()) or None


def _profile(subject, email, email_verified, name, avatar_url):
    if isinstance(subject, int) and not isinstance(subject, bool):
        subject = str(subject)
    if not isinstance(subject, str) or not subject.strip() or len(subject) > 255:
        raise ProviderError("the provider did not say who signed in")
    if not isinstance(email, str) or not email.strip():
        email, email_verified = None, False  # none given; what is given is checked by the sign-in
    name = name.strip()[:200] if isinstance(name, str) and name.strip() else None
    if not (isinstance(avatar_url, str) and avatar_url.startswith("https://") and len(avatar_url) <= 500):
        avatar_url = None
    return Profile(subject.strip(), email.strip() if email else None, bool(email_verified), name, avatar_url)
