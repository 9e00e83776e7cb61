"""gunicorn settings: HTTPS only, TLS 1.3 minimum.  Paths and sizes come from the environment."""

import os
import ssl

bind = f"{os.environ.get('PORTAL_HOST', '127.0.0.1')}:{os.environ.get('PORTAL_PORT', '8443')}"
certfile = os.environ["PORTAL_TLS_CERT"]
keyfile = os.environ["PORTAL_TLS_KEY"]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
worker_class = "gthread"
timeout = 60
# gunicorn's control socket (a fixed path under XDG_RUNTIME_DIR) would let anyone who can reach it
# resize, reload or stop the server, and two servers on one host would share it: not used here.
control_socket_disable = True
graceful_timeout = 20
accesslog = "-"
# No query strings in the access log: a search parameter may carry personal data.
access_log_format = '{"remote":"%(h)s","method":"%(m)s","path":"%(U)s","status":%(s)s,"bytes":%(B)s,"ms":%(M)s}'


def ssl_context(conf, default_ssl_context_factory):
    context = default_ssl_context_factory()
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context
