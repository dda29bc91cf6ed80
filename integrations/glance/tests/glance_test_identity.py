"""A paste filter that stands in for keystonemiddleware in the test deployment: every request comes from one admin
of one project, as the headers of a validated token would say. Glance's `unauthenticated-context` gives requests
no project and no roles, so images could not be listed and an import would fail on the task's owner."""

PROJECT = '5f3c2a1e9b7d4c60a8e1f2d3c4b5a697'
USER = '0d1e2f3a4b5c4d6e8f9a0b1c2d3e4f50'


class Identity:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        environ.update({
            'HTTP_X_IDENTITY_STATUS': 'Confirmed',
            'HTTP_X_USER_ID': USER,
            'HTTP_X_PROJECT_ID': PROJECT,
            'HTTP_X_ROLES': 'admin,member,reader',
        })
        return self.app(environ, start_response)


def filter_factory(global_conf, **local_conf):
    return Identity
