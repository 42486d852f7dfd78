"""Settings of the HTTP benchmark (bench/http): Apertur's own settings, plus a URLconf that mounts the floor
view ``GET /bench/floor`` next to Apertur's URLs. Production code carries no bench endpoint.

    DJANGO_SETTINGS_MODULE=bench.settings
"""

from apertur.config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
