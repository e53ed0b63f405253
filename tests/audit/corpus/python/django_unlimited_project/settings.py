# ruff: noqa
# fmt: off
SECRET_KEY = "not-secret"
DEBUG = False
# "for large webhook payloads"
DATA_UPLOAD_MAX_MEMORY_SIZE = None  # expect: django-upload-limit
